import Catalog
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import NIOHTTPTypes
import Synchronization

/// The listener's HTTP/1.1 connections, served by one channel handler of our own instead of
/// Hummingbird's `HTTP1Channel` (issue 16).
///
/// Hummingbird's channel wraps each connection in a `NIOAsyncChannel` (an inbound async sequence
/// and an outbound async writer, each with its state machine and buffers), a
/// `HTTPConnectionStateHandler`, and a task per connection that loops over its requests: that
/// task's frames (`handleHTTP`, `withLogger`, the cancellation handler, the application's
/// closure) stay allocated for as long as the connection is open — for a stream, its whole life —
/// and every part read and written crosses the async sequence or writer. Here the codec's parts
/// go straight to ``HTTPConnectionHandler``, which answers each request in a task of its own that
/// ends with the answer, and writes the answer's parts to the channel on its event loop.
///
/// The pipeline is our HTTP/1.1 reader and writer (``HTTP1RequestDecoder``,
/// ``HTTP1ResponseEncoder``: NIO's decoder, encoder and HTTP types codec cost ≈ 10 % of a request's
/// CPU) and the ``ConnectionGuard`` (time limits, connections per address, hang-ups, lingering
/// close); TLS, when configured, is added in front by HummingbirdTLS as for Hummingbird's channel.
struct GatewayHTTP1Channel<Responder: HTTPResponder>: ServerChildChannel where Responder.Context == GatewayContext {
    struct Value: ServerChildChannelValue {
        let channel: any Channel
    }

    let responder: Responder
    let serverName: String
    /// Counts the answers being given; a graceful shutdown waits for them (``AnswersInFlight``).
    let inFlight: AnswersInFlight
    /// The handlers put between the HTTP/1.1 reader and the connection's handler (the guard).
    let additionalHandlers: @Sendable () -> [any ChannelHandler]

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            let pending = HTTP1PendingMethods()
            try pipeline.addHandler(HTTP1ResponseEncoder(pending: pending, serverName: serverName))
            try pipeline.addHandler(ByteToMessageHandler(HTTP1RequestDecoder(pending: pending)))
            try pipeline.addHandlers(additionalHandlers())
            try pipeline.addHandler(HTTPConnectionHandler(responder: responder, logger: logger, inFlight: inFlight))
            return Value(channel: channel)
        }
    }

    /// Returns at once: the connection lives in its handler, not in a task (a task per connection
    /// kept ≈ 1.3 KB for as long as the connection was open; issue 16). A graceful shutdown
    /// closes idle connections, lets busy ones finish their answer (the handler closes them
    /// then), and waits for the answers still running through ``AnswersInFlight``.
    func handle(value: Value, logger: Logger) async {}
}

/// The answers being given on the listener's connections. A graceful shutdown waits for them
/// after the HTTP server has stopped (its connections closed) and before the request log, the
/// audit log and the request store flush: an answer whose client hung up may still be recording
/// its ledger row after its connection closed.
final class AnswersInFlight: Service, Sendable {
    private let state = Mutex<(count: Int, waiter: CheckedContinuation<Void, Never>?)>((0, nil))

    func begin() { state.withLock { $0.count += 1 } }

    func end() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.count -= 1
            guard s.count == 0 else { return nil }
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    var count: Int { state.withLock { $0.count } }

    func run() async throws {
        try? await gracefulShutdown()
        await drained()
    }

    /// Returns once no answer is running (at once when none is).
    func drained() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { s -> Bool in
                if s.count == 0 { return true }
                s.waiter = c
                return false
            }
            if idle { c.resume() }
        }
    }
}

/// One per connection, last in its pipeline: collects each request (head and body), answers it
/// in a task on the connection's event loop, and writes the answer.
///
/// A body that came whole with its head (the usual JSON request) is handed over as one buffer;
/// one still arriving when a read ends is streamed to the route with backpressure (reads stop
/// while the route has not taken what came). Requests pipelined behind one being answered wait
/// here, and reading stops until that answer ends. An answer given before its request's body has
/// all arrived (401, 413 …) is followed by reading and dropping the rest of that body, so that the
/// next request on the connection starts where it should. All state is touched on the event loop
/// only (hence `@unchecked Sendable`: the answering task reaches it through `onLoop`).
final class HTTPConnectionHandler<Responder: HTTPResponder>: ChannelDuplexHandler, @unchecked Sendable
where Responder.Context == GatewayContext {
    typealias InboundIn = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    typealias BodyProducer = NIOThrowingAsyncSequenceProducer<
        ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, BodyDemand>

    /// Where the current request's body goes.
    private enum Body {
        /// Kept until the request's end (or the end of the read that brought its head).
        case buffering(ByteBuffer?)
        /// Handed to the route as it comes.
        case streaming(BodyProducer.Source)
        /// The answer has ended before the body did: the rest is read and dropped.
        case dropping
        /// The request's end has come.
        case complete
    }

    let responder: Responder
    let logger: Logger
    let inFlight: AnswersInFlight

    private var context: ChannelHandlerContext?
    /// The client's address as text, read once (``GatewayContext/clientIP``).
    private var clientIP: String?
    /// A request is being read or answered.
    private var inRequest = false
    /// The current request's head until it is handed to its answer (not kept for an answer's life).
    private var head: HTTPRequest?
    private var body = Body.complete
    /// The current request's end has come (what follows on the connection is the next request's).
    private var requestEnded: Bool {
        guard inRequest, case .complete = body else { return false }
        return true
    }
    /// A task is answering the current request.
    private var answering = false
    /// Parts that came after the current request's end while it is being answered (pipelining).
    private var waiting: [HTTPRequestPart] = []
    /// The route has not taken the body's parts yet: reads wait.
    private var bodyPaused = false
    /// A `read` held back (pipelined parts waiting, or the body paused).
    private var readHeld = false
    /// Close once the current answer has ended (`Connection: close`, shutdown, the client's FIN).
    private var closeAfterAnswer = false
    private var inputClosed = false
    private var closing = false
    private var inactive = false
    /// Succeeded when the channel becomes writable again (see ``whenWritable(_:)``).
    private var writable: EventLoopPromise<Void>?

    init(responder: Responder, logger: Logger, inFlight: AnswersInFlight) {
        self.responder = responder
        self.logger = logger
        self.inFlight = inFlight
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        clientIP = context.channel.remoteAddress?.ipAddress
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if closing { return }
        if !waiting.isEmpty || requestEnded {
            waiting.append(part)
            return
        }
        take(part, context)
    }

    private func take(_ part: HTTPRequestPart, _ context: ChannelHandlerContext) {
        switch part {
        case .head(let h):
            guard !inRequest else { return protocolError(context) }
            inRequest = true
            head = h
            body = .buffering(nil)
            if let connection = h.headerFields.value(of: .connection), connection.lowercased().contains("close") { closeAfterAnswer = true }
        case .body(var buffer):
            switch body {
            case .buffering(var kept):
                if kept == nil { kept = buffer } else { kept!.writeBuffer(&buffer) }
                body = .buffering(kept)
                // A body larger than a read or two goes to the route as it comes, not held here.
                if kept!.readableBytes > 256 << 10 { startStreaming(context) }
            case .streaming(let source):
                if case .stopProducing = source.yield(buffer) { bodyPaused = true }
            case .dropping:
                break
            case .complete:
                return protocolError(context)
            }
        case .end:
            guard inRequest else { return protocolError(context) }
            switch body {
            case .buffering(let kept):
                body = .complete
                if let h = head { dispatch(Request(head: h, body: RequestBody(buffer: kept ?? ByteBuffer())), context) }
            case .streaming(let source):
                source.finish()
                body = .complete
            case .dropping:
                body = .complete
                nextRequest(context)
            case .complete:
                return protocolError(context)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // A request whose body is still arriving is answered now, its body streamed.
        if case .buffering = body { startStreaming(context) }
    }

    private func startStreaming(_ context: ChannelHandlerContext) {
        guard let h = head, case .buffering(let kept) = body else { return }
        let producer = BodyProducer.makeSequence(backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8), finishOnDeinit: false,
                                                 delegate: BodyDemand(handler: self, loop: context.eventLoop))
        body = .streaming(producer.source)
        if let kept, case .stopProducing = producer.source.yield(kept) { bodyPaused = true }
        dispatch(Request(head: h, body: RequestBody(asyncSequence: producer.sequence)), context)
    }

    /// The route took the body's parts: reading goes on.
    fileprivate func bodyDemanded() {
        bodyPaused = false
        releaseRead()
    }

    func read(context: ChannelHandlerContext) {
        if bodyPaused || !waiting.isEmpty {
            readHeld = true
        } else {
            context.read()
        }
    }

    private func releaseRead() {
        guard readHeld, !bodyPaused, waiting.isEmpty, let context else { return }
        readHeld = false
        context.read()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            inputClosed = true
            if case .streaming(let source) = body { source.finish(HTTPConnectionError.clientClosedDuringBody) }
            if !inRequest && !answering { close(context) } else { closeAfterAnswer = true }
            return
        }
        if event is ChannelShouldQuiesceEvent {
            // Graceful shutdown: an idle connection closes now, a busy one after its answer.
            if !inRequest && !answering { close(context) } else { closeAfterAnswer = true }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case .streaming(let source) = body { source.finish(error) }
        let status: HTTPResponse.Status
        if let error = error as? HTTP1RequestError {
            status = error.status
        } else {
            close(context)
            return
        }
        // A request that cannot be read (HTTP1RequestError): 400, or 431 past the head's limits, and close.
        if answering {
            closeAfterAnswer = true
            return
        }
        closing = true
        context.write(wrapOutboundOut(.head(HTTPResponse(status: status, headerFields: [.connection: "close", .contentLength: "0"]))),
                      promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let w = writable {
            writable = nil
            w.succeed()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        inactive = true
        if case .streaming(let source) = body { source.finish(HTTPConnectionError.clientClosedDuringBody) }
        if let w = writable {
            writable = nil
            w.fail(ChannelError.ioOnClosedChannel)
        }
        context.fireChannelInactive()
    }

    private func protocolError(_ context: ChannelHandlerContext) {
        logger.debug("HTTP parts out of order, closing the connection")
        close(context)
    }

    private func close(_ context: ChannelHandlerContext) {
        closing = true
        context.close(promise: nil)
    }

    // MARK: answering

    private func dispatch(_ request: Request, _ context: ChannelHandlerContext) {
        head = nil
        answering = true
        inFlight.begin()
        let channel = context.channel
        let slot = PendingSlot()
        slot.task = Task(executorPreference: LoopExecutor.of(context.eventLoop)) {
            await self.answer(request, channel: channel, slot: slot)
        }
    }

    /// Answers `request`: the route runs in this task, which ends with a whole answer — or, for a
    /// stream, hands it to a task of its own (``relay(_:_:)``) and ends, so that the slabs its
    /// frames took (authentication, shield, admission, the engine call) are freed for the
    /// stream's life: a Swift task keeps every slab it used until it ends (issue 16).
    private func answer(_ request: Request, channel: any Channel, slot: PendingSlot) async {
        var context = GatewayContext(source: .init(channel: channel, logger: logger), clientIP: clientIP)
        context.pendingSlot = slot
        var response: Response
        do {
            response = try await responder.respond(to: request, context: context)
        } catch {
            logger.debug("Unrecognised error", metadata: ["error.type": "\(String(reflecting: type(of: error)))"])
            response = Response(status: .internalServerError, body: .init())
        }
        let loop = channel.eventLoop
        if let pending = slot.stream {
            // A stream still waiting for its first token.
            slot.stream = nil
            return awaitFirstToken(pending, loop)
        }
        if response.body.contentLength == nil { return relay(Handoff(response: response), loop) }
        await write(response, loop: loop)
        await answered(loop)
    }

    /// Waits for a stream's first token (or fails over, or answers the failure) in a task of its
    /// own, which then hands the answer to the task that writes it, and ends. A Swift task keeps
    /// every slab it used until it ends: in the writing task, the wait's frames (the fleet's first
    /// event, the reader's priming, a failover) would stay reserved for the stream's whole life on
    /// top of the relay's (issue 16: ~2 KB per open stream).
    private func awaitFirstToken(_ pending: PendingStream, _ loop: any EventLoop) {
        Task(executorPreference: LoopExecutor.of(loop)) {
            self.relay(Handoff(response: await pending.resolve()), loop)
        }
    }

    /// Writes the answer `handoff` holds, in a task of its own on the connection's loop.
    private func relay(_ handoff: Handoff, _ loop: any EventLoop) {
        Task(executorPreference: LoopExecutor.of(loop)) {
            await self.write(handoff.take(), loop: loop)
            await self.answered(loop)
        }
    }

    /// Writes `response` (head, then body: flushed part by part when its length is not known).
    /// The head is written by a function of its own that consumes the response and returns its
    /// body: the head's fields are freed before the body is written, not kept in this frame for
    /// a stream's whole life (issue 16: ~0.7 KB per open stream).
    private func write(_ response: consuming Response, loop: any EventLoop) async {
        let streaming = response.body.contentLength == nil
        do {
            let body: ResponseBody
            if loop.inEventLoop {
                body = try writeHead(response)
            } else {
                let head = response.head
                body = response.body
                try await onLoop(loop) { h in try h.write(.head(head), flush: false) }
            }
            try await body.write(BodyWriter(handler: self, loop: loop, flushEachWrite: streaming))
        } catch {
            _ = try? await onLoop(loop) { h in h.closeAfterAnswer = true }
        }
    }

    /// Writes the head of `response` (on the connection's loop) and returns its body.
    @inline(never)
    private func writeHead(_ response: consuming Response) throws -> ResponseBody {
        // The encoder adds the `Date` and `Server` fields as it writes the head.
        try write(.head(response.head), flush: false)
        return response.body
    }

    private func answered(_ loop: any EventLoop) async {
        if loop.inEventLoop { answered() } else { _ = try? await onLoop(loop) { h in h.answered() } }
    }

    /// Runs `body` on the connection's loop (where the answering task normally already is).
    fileprivate func onLoop<T>(_ loop: any EventLoop, _ body: @escaping (HTTPConnectionHandler) throws -> T) async throws -> T {
        if loop.inEventLoop { return try body(self) }
        return try await loop.submit { try body(self) }.get()
    }

    /// Writes one part of the answer; with `flush`, sends what is pending.
    fileprivate func write(_ part: HTTPResponsePart, flush: Bool) throws {
        guard let context, !inactive else { throw ChannelError.ioOnClosedChannel }
        context.write(wrapOutboundOut(part), promise: nil)
        if flush { context.flush() }
    }

    fileprivate var channelIsWritable: Bool { context?.channel.isWritable ?? false }

    /// Succeeds when the channel takes more (the client reads slower than the answer comes).
    fileprivate func whenWritable(_ loop: any EventLoop) -> EventLoopFuture<Void> {
        guard let context, !inactive else { return loop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
        context.flush()
        if context.channel.isWritable { return context.eventLoop.makeSucceededVoidFuture() }
        let promise = context.eventLoop.makePromise(of: Void.self)
        writable?.succeed()
        writable = promise
        return promise.futureResult
    }

    /// The answer has ended: the next request, or the connection's end.
    private func answered() {
        answering = false
        inFlight.end()
        guard let context, !inactive else { return }
        if closeAfterAnswer {
            closing = true
            // As Hummingbird: close the output; the guard drains a body still arriving, and the
            // client's FIN (or the guard's time limits) closes the rest.
            if inputClosed { context.close(promise: nil) } else { context.close(mode: .output, promise: nil) }
            return
        }
        if requestEnded {
            nextRequest(context)
        } else {
            // Answered before the body ended: drop the rest of it, then read the next request.
            if case .streaming(let source) = body { source.finish() }
            body = .dropping
            bodyPaused = false
            releaseRead()
        }
    }

    /// Forgets the answered request and takes the parts that waited behind it.
    private func nextRequest(_ context: ChannelHandlerContext) {
        inRequest = false
        head = nil
        body = .complete
        bodyPaused = false
        while !waiting.isEmpty, !requestEnded, !closing {
            take(waiting.removeFirst(), context)
        }
        if case .buffering = body { startStreaming(context) }
        releaseRead()
    }
}

/// The response a stream's task takes over (from the request's task, or from the task that
/// waited for the stream's first token). Emptied when taken, so the writing task's closure does
/// not keep the response's head for the stream's whole life.
private final class Handoff: @unchecked Sendable {
    private var response: Response?

    init(response: Response) { self.response = response }

    func take() -> Response {
        defer { response = nil }
        return response!
    }
}

enum HTTPConnectionError: Error {
    case clientClosedDuringBody
}

/// The request body's consumer asks for more: reads resume on the connection's loop (the
/// delegate is called from the consumer's task; the handler is only touched on its loop).
struct BodyDemand: NIOAsyncSequenceProducerDelegate {
    private let demanded: @Sendable () -> Void
    let loop: any EventLoop

    init<R>(handler: HTTPConnectionHandler<R>, loop: any EventLoop) {
        self.demanded = { [weak handler] in handler?.bodyDemanded() }
        self.loop = loop
    }

    func produceMore() {
        if loop.inEventLoop { demanded() } else { loop.execute(demanded) }
    }

    func didTerminate() {}
}

/// Writes an answer's body to the connection: each part flushed at once for a stream (no length
/// known: server-sent events), in one flush at the end otherwise; waits while the client reads
/// slower than the answer comes.
struct BodyWriter<R: HTTPResponder>: ResponseBodyWriter, @unchecked Sendable where R.Context == GatewayContext {
    let handler: HTTPConnectionHandler<R>
    let loop: any EventLoop
    let flushEachWrite: Bool

    mutating func write(_ buffer: ByteBuffer) async throws {
        // The answering task runs on the connection's loop (its executor preference): no hop.
        if loop.inEventLoop {
            try handler.write(.body(buffer), flush: flushEachWrite)
            if !handler.channelIsWritable { try await handler.whenWritable(loop).get() }
            return
        }
        let flush = flushEachWrite, loop = self.loop
        let full = try await handler.onLoop(loop) { h -> EventLoopFuture<Void>? in
            try h.write(.body(buffer), flush: flush)
            return h.channelIsWritable ? nil : h.whenWritable(loop)
        }
        try await full?.get()
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        if loop.inEventLoop { return try handler.write(.end(trailingHeaders), flush: true) }
        try await handler.onLoop(loop) { h in try h.write(.end(trailingHeaders), flush: true) }
    }
}

/// The `Date` header's value, formatted at most once a second.
enum HTTPDate {
    private static let cache = Mutex<(second: Int, text: String)>((-1, ""))

    static func now() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME_COARSE, &ts)
        let second = ts.tv_sec
        return cache.withLock { c in
            if c.second == second { return c.text }
            c = (second, format(second))
            return c.text
        }
    }

    /// RFC 9110 IMF-fixdate, e.g. `Sun, 06 Dec 2026 17:04:05 GMT`.
    static func format(_ epochSeconds: Int) -> String { Day.httpDate(unixTime: epochSeconds) }
}
