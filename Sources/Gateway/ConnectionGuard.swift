import NIOCore
import NIOHTTPTypes
import Synchronization

/// Limits on the listener's connections (config `server:`): how long a client may take to send a
/// request head and its body, how long an idle keep-alive connection is kept, how long an early
/// answer lingers to drain the rest of a body, and how many connections one address may hold.
public struct ConnectionLimits: Sendable, Equatable {
    /// From accepting a connection to its first request head being complete.
    public var headerTimeoutMs: Int64 = 10_000
    /// From the end of a response to the next request head (keep-alive).
    public var idleTimeoutMs: Int64 = 60_000
    /// The longest pause between two pieces of a request body.
    public var bodyTimeoutMs: Int64 = 30_000
    /// After an early answer (401, 404, 413 …) to a request whose body is still arriving: the
    /// longest pause, and the longest total time, spent reading and discarding the rest before
    /// the connection is closed whole (as nginx's lingering close).
    public var lingerTimeoutMs: Int64 = 2_000
    public var lingerTimeMs: Int64 = 10_000
    /// Open connections per client address (0: no limit).
    public var maxConnectionsPerClient = 1_000
    /// The listen socket's queue of connections the kernel has accepted and the gateway not taken
    /// yet (capped by the kernel's `net.core.somaxconn`). Past it a new connection's SYN is dropped
    /// and the client tries again a second later. 256, Hummingbird's default, kept: in a storm of
    /// 5 000 streams opened at once (issue 16, stop 32) 4 096 let every connection in at once and
    /// the set-ups queued inside the gateway (first event p50 from the connection attempt 1.14 →
    /// 1.80 s, p99 2.30 → 2.51 s), where 256 turned part of the storm away for a second.
    public var listenBacklog = 256

    public init() {}
}

/// Counts open connections per client address, shared by every connection of the listener.
final class ConnectionCounter: Sendable {
    private let open = Mutex<[String: Int]>([:])

    /// Counts one more connection from `address`; false (and nothing counted) when that address
    /// already holds `limit`.
    func acquire(_ address: String, limit: Int) -> Bool {
        open.withLock { o in
            let n = o[address, default: 0]
            if limit > 0 && n >= limit { return false }
            o[address] = n + 1
            return true
        }
    }

    func release(_ address: String) {
        open.withLock { o in
            let n = o[address, default: 0] - 1
            o[address] = n > 0 ? n : nil
        }
    }
}

/// What to do when the client of a connection goes away while its request is being answered:
/// the request's task is cancelled for the span of its engine call (``cancelling(_:_:)``), the
/// connection guard fires the hook.
final class HangUpHook: Sendable {
    /// `task`: the request's task while it runs its engine call.
    private let state = Mutex<(fired: Bool, task: Task<Void, Never>?)>((false, nil))

    /// Runs `body` in `task` (the calling task: the request's), which the client's hang-up
    /// cancels while `body` runs (at once when the client is already gone). Whatever `body`
    /// throws after the hang-up (the engine call it interrupted failing), the caller sees
    /// `CancellationError`: the request ended because its client went away.
    ///
    /// The request's own task is cancelled, not a task made for the call: a task per request, its
    /// start and the request's resumption after it were two trips through the event loop's queue
    /// (issue 16). The cancellation stays with the request's task for the rest of its answer, as it
    /// would with any cancelled task: what follows an engine call (settling, the ledger's group
    /// commit) does not depend on the task not being cancelled.
    func cancelling<T>(_ task: Task<Void, Never>, _ body: () async throws -> T) async throws -> T {
        let fired = state.withLock { s -> Bool in
            if !s.fired { s.task = task }
            return s.fired
        }
        if fired { task.cancel() }
        defer { state.withLock { $0.task = nil } }
        do {
            return try await body()
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw error
        }
    }

    func fire() {
        let task = state.withLock { s -> Task<Void, Never>? in
            s.fired = true
            defer { s.task = nil }
            return s.task
        }
        task?.cancel()
    }
}

/// The hang-up hooks of the open connections, by channel.
public final class HangUpRegistry: Sendable {
    private let hooks = Mutex<[ObjectIdentifier: HangUpHook]>([:])

    public init() {}

    func open(_ channel: any Channel) -> HangUpHook {
        let hook = HangUpHook()
        hooks.withLock { $0[ObjectIdentifier(channel)] = hook }
        return hook
    }

    func close(_ channel: any Channel) { _ = hooks.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) } }

    func hook(for channel: any Channel) -> HangUpHook? { hooks.withLock { $0[ObjectIdentifier(channel)] } }
}

/// One per connection, between the HTTP codec and Hummingbird's request handling. It enforces
/// `ConnectionLimits`: slow or silent clients are closed, and an answer given before the request
/// body has arrived never leaves a half-closed socket behind — the rest of the body is read and
/// thrown away for a bounded time, so the client can finish sending and read the answer, then the
/// connection is closed whole.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    enum Phase {
        case awaitingHead  // before a request head: after accept (header timeout) or keep-alive (idle timeout)
        case readingBody                // head received, body still arriving
        case processing                 // request complete, response not finished
        case lingering                  // output closed early, discarding the rest of the body
    }

    let limits: ConnectionLimits
    let counter: ConnectionCounter
    let hangUps: HangUpRegistry
    private var hangUp: HangUpHook?
    private var phase = Phase.awaitingHead
    private var address: String?
    private var started = false
    private var timer: Scheduled<Void>?
    /// When the pending `timer` fires.
    private var timerAt: NIODeadline?
    /// When the current phase's time limit runs out; nil: no limit (processing).
    private var deadline: NIODeadline?
    private var lastBodyRead = NIODeadline.now()
    private var lingerStarted = NIODeadline.now()
    /// The response ended before the request body did (an early answer).
    private var answeredEarly = false

    init(limits: ConnectionLimits, counter: ConnectionCounter, hangUps: HangUpRegistry) {
        self.limits = limits
        self.counter = counter
        self.hangUps = hangUps
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // Each connection keeps its receive buffer for as long as it is open (NIO pools it per
        // channel), i.e. for a whole stream: start it at 512 bytes, which holds a usual request,
        // instead of NIO's 2 048 (it doubles on each full read, up to 64 KB, as before). Set here,
        // before the connection's first read (issue 16: memory per open stream).
        context.channel.setOption(ChannelOptions.recvAllocator, value: Self.receiveBuffers).whenFailure { _ in }
        if context.channel.isActive { start(context) }
    }

    static let receiveBuffers = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536)

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        let ip = context.channel.remoteAddress?.ipAddress ?? "-"
        guard counter.acquire(ip, limit: limits.maxConnectionsPerClient) else {
            context.close(promise: nil)
            return
        }
        address = ip
        hangUp = hangUps.open(context.channel)
        arm(context, in: limits.headerTimeoutMs)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        if let address { counter.release(address) }
        address = nil
        if hangUp != nil {
            hangUp?.fire()
            hangUps.close(context.channel)
            hangUp = nil
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if case .lingering = phase {
            // Discarded; the end of the body (or the client's FIN) closes the connection.
            lastBodyRead = .now()
            if case .end = part { context.close(promise: nil) }
            return
        }
        switch part {
        case .head:
            phase = .readingBody
            answeredEarly = false
            lastBodyRead = .now()
            arm(context, in: limits.bodyTimeoutMs)
        case .body:
            lastBodyRead = .now()
        case .end:
            phase = .processing
            cancelTimer()
            if answeredEarly { becomeIdle(context) }
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .lingering = phase {
            // Hummingbird no longer asks for data on this connection; keep reading to drain.
            context.read()
            return
        }
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            switch phase {
            case .lingering:
                context.close(promise: nil)
                return
            case .processing:
                // An HTTP/1.1 client that closes while waiting for its answer has gone away: stop
                // the work done for it (the engine call), whatever the answer would have been.
                hangUp?.fire()
            default:
                break
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            switch phase {
            case .processing: becomeIdle(context)
            case .readingBody: answeredEarly = true  // the body timeout keeps running
            default: break
            }
        }
        context.write(data, promise: promise)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        // Hummingbird half-closes after answering a `Connection: close` request. If that request's
        // body is still arriving, the socket would wait for a FIN stuck behind unread data for ever.
        if mode == .output, case .readingBody = phase {
            phase = .lingering
            lingerStarted = .now()
            lastBodyRead = .now()
            context.close(mode: .output, promise: promise)
            arm(context, in: limits.lingerTimeoutMs)
            context.read()
            return
        }
        context.close(mode: mode, promise: promise)
    }

    private func becomeIdle(_ context: ChannelHandlerContext) {
        phase = .awaitingHead
        arm(context, in: limits.idleTimeoutMs)
    }

    /// No time limit until the next `arm` (the pending timer, if any, will find nothing to do).
    private func cancelTimer() {
        deadline = nil
    }

    /// Sets the current phase's limit to `ms` from now. The timer is lazy (issue 16): a pending
    /// timer that fires no later than the new limit is kept (when it fires early it re-arms for the
    /// rest), so a keep-alive connection's requests schedule and cancel no timer at all in the
    /// steady state — before, each request cancelled one and scheduled two (body, then idle).
    private func arm(_ context: ChannelHandlerContext, in ms: Int64) {
        let limit = NIODeadline.now() + .milliseconds(max(1, ms))
        deadline = limit
        if timer != nil, let timerAt, timerAt <= limit { return }
        schedule(context, at: limit)
    }

    private func schedule(_ context: ChannelHandlerContext, at when: NIODeadline) {
        timer?.cancel()
        timerAt = when
        let loop = context.eventLoop.assumeIsolatedUnsafeUnchecked()
        timer = loop.scheduleTask(deadline: when) { [self] in self.fire(context) }
    }

    private func fire(_ context: ChannelHandlerContext) {
        timer = nil
        timerAt = nil
        guard let limit = deadline else { return }
        let now = NIODeadline.now()
        if now < limit {
            schedule(context, at: limit)  // the limit moved on since this timer was set
            return
        }
        deadline = nil
        switch phase {
        case .awaitingHead:
            context.close(promise: nil)
        case .readingBody:
            let quiet = (now - lastBodyRead).nanoseconds / 1_000_000
            if quiet >= limits.bodyTimeoutMs { context.close(promise: nil) } else { arm(context, in: limits.bodyTimeoutMs - quiet) }
        case .lingering:
            let quiet = (now - lastBodyRead).nanoseconds / 1_000_000
            let total = (now - lingerStarted).nanoseconds / 1_000_000
            if quiet >= limits.lingerTimeoutMs || total >= limits.lingerTimeMs {
                context.close(promise: nil)
            } else {
                arm(context, in: min(limits.lingerTimeoutMs - quiet, limits.lingerTimeMs - total))
            }
        case .processing:
            break
        }
    }
}
