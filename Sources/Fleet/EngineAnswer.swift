import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import Synchronization

/// One whole (non-streamed) engine answer read through AsyncHTTPClient's delegate API, on the
/// event loop of the task that asks (issue 16). The async `HTTPClient.execute` cost, per request,
/// a task and an actor for its cancellation, a deadline timer, a `HTTPClientResponse.Body` stream,
/// and then a task and a timer of ours to bound the body's read; here one object takes the head
/// and the body parts on the caller's loop (its engine connection is taken on that loop when one
/// is idle there) and one timer bounds the wait for the head, then the read of the body.
final class EngineAnswer: HTTPClientResponseDelegate, EngineExchange, Sendable {
    typealias Response = Void

    /// What came back: the head (nil if none came), the body read so far, and why it stopped short
    /// (nil: the answer is whole).
    struct Result: Sendable {
        var head: HTTPResponseHead?
        var body: ByteBuffer
        var error: (any Error)?
        /// The error is the timer's: no head within the first-byte timeout, or the body not read
        /// within its bound.
        var timedOut: Bool
    }

    /// How long the head may take, and how long and how large the body may be once the head is in
    /// (chosen by its status: an error answer is read for its message only).
    struct Bounds: Sendable {
        var headMs: Int64
        var bodyMs: Int64
        var bodyLimit: Int
        var errorBodyMs: Int64
        var errorBodyLimit: Int
    }

    /// The body grew past its limit.
    struct TooLarge: Error, CustomStringConvertible {
        let limit: Int
        var description: String { "the answer is larger than \(limit) bytes" }
    }

    private struct State {
        var task: (any EngineCall)?
        var waiter: CheckedContinuation<Result, Never>?
        var cancelled = false
        var timer: Scheduled<Void>?
        /// When ``timer`` fires.
        var timerAt = NIODeadline.distantFuture
        /// When the answer must be in by: the head's bound, then the body's. A later deadline than
        /// the timer's keeps the timer, which re-arms for the rest when it fires.
        var deadline = NIODeadline.distantFuture
        var head: HTTPResponseHead?
        var body: ByteBuffer?
        var limit = 0
        var error: (any Error)?
        var timedOut = false
        var done = false
    }
    private let state = Mutex(State())
    private let bounds: Bounds
    /// The calling task's loop when it runs on one (the pipeline prefers its connection's loop):
    /// an idle engine connection on it is taken first, the answer is taken there and its timers
    /// run there.
    private let loop: any EventLoop

    private init(bounds: Bounds, loop: any EventLoop) {
        self.bounds = bounds
        self.loop = loop
    }

    /// Sends `request` and waits for the whole answer (or the error that cut it). Cancelling the
    /// calling task cancels the request.
    static func fetch(_ request: HTTPClient.Request, on client: HTTPClient, bounds: Bounds) async -> Result {
        // (Not `.delegateAndChannel(on:)`: a request that requires a loop with no idle connection
        // on it gets an "overflow" connection that AsyncHTTPClient closes after the request —
        // measured: a new engine connection per request.)
        await EngineAnswer(bounds: bounds, loop: client.eventLoopGroup.any()).run { answer in
            let task = client.execute(request: request, delegate: answer, eventLoop: .delegate(on: answer.loop), logger: nil)
            task.futureResult.whenComplete { result in
                switch result {
                case .success: answer.complete(error: nil)
                case .failure(let error): answer.complete(error: error)
                }
            }
            return task
        }
    }

    /// The same through the gateway's own client (``EnginePool``, plain-HTTP engines): `request`
    /// is the whole request, head and body, sent in one write.
    static func fetch(_ request: ByteBuffer, on pool: EnginePool, bounds: Bounds) async -> Result {
        await EngineAnswer(bounds: bounds, loop: pool.group.any()).run { answer in
            pool.execute(request, on: answer.loop, exchange: answer)
        }
    }

    /// Arms the head's timer, sends the request with `send` and waits for the answer; cancelling
    /// the calling task cancels the request.
    private func run(_ send: @escaping @Sendable (EngineAnswer) -> any EngineCall) async -> Result {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Result, Never>) in
                let cancelled = state.withLock { s -> Bool in
                    s.waiter = c
                    return s.cancelled
                }
                if cancelled {
                    complete(error: HTTPClientError.cancelled)
                    return
                }
                // The head's timer is armed before the request goes out (the head's arrival
                // moves its deadline to the body's).
                let at = NIODeadline.now() + .milliseconds(bounds.headMs)
                let timer = loop.scheduleTask(deadline: at) { [self] in expire() }
                state.withLock { s in
                    s.timer = timer
                    s.timerAt = at
                    s.deadline = at
                }
                let call = send(self)
                let (cancelNow, expiredNow) = state.withLock { s -> (Bool, Bool) in
                    if !s.done { s.task = call }  // (over already: keep no cycle)
                    return (s.cancelled && !s.done, s.timedOut && !s.done)
                }
                if cancelNow {
                    call.fail(reason: HTTPClientError.cancelled)
                } else if expiredNow {
                    call.fail(reason: HTTPClientError.deadlineExceeded)
                }
            }
        } onCancel: {
            cancel()
        }
    }

    /// The timer fired before the head (or the whole body) was in: the answer has timed out, unless
    /// its deadline moved later (the body's bound), which the timer then waits for.
    private func expire() {
        let now = NIODeadline.now()
        let (task, later) = state.withLock { s -> ((any EngineCall)?, NIODeadline?) in
            if s.done { return (nil, nil) }
            if s.deadline > now { return (nil, s.deadline) }
            s.timedOut = true
            s.timer = nil
            return (s.task, nil)
        }
        if let later { return rearm(at: later) }
        task?.fail(reason: HTTPClientError.deadlineExceeded)
    }

    /// Replaces the timer with one that fires at `when` (none when the answer is already over).
    private func rearm(at when: NIODeadline) {
        let timer = loop.scheduleTask(deadline: when) { [self] in expire() }
        let (old, over) = state.withLock { s -> (Scheduled<Void>?, Bool) in
            if s.done { return (nil, true) }
            defer { s.timer = timer; s.timerAt = when }
            return (s.timer, false)
        }
        old?.cancel()
        if over { timer.cancel() }
    }

    private func cancel() {
        let task = state.withLock { s -> (any EngineCall)? in
            s.cancelled = true
            return s.done ? nil : s.task
        }
        task?.fail(reason: HTTPClientError.cancelled)
    }

    private func complete(error: (any Error)?) {
        let (waiter, timer, result) = state.withLock { s -> (CheckedContinuation<Result, Never>?, Scheduled<Void>?, Result) in
            s.done = true
            if s.error == nil { s.error = error }
            defer { s.waiter = nil; s.timer = nil; s.task = nil }  // the request holds this object: no cycle
            return (s.waiter, s.timer, Result(head: s.head, body: s.body ?? ByteBuffer(), error: s.error, timedOut: s.timedOut && s.error != nil))
        }
        timer?.cancel()
        waiter?.resume(returning: result)
    }

    // MARK: HTTPClientResponseDelegate (on the connection's event loop)

    func didReceiveHead(task: HTTPClient.Task<Void>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        received(head: head)
        return task.eventLoop.makeSucceededVoidFuture()
    }

    /// The head is in: the body's bound (by its status) replaces the head's. The timer stays when it
    /// fires no later (it then waits for the rest): one timer per answer instead of two (issue 16).
    func received(head: HTTPResponseHead) {
        let failing = head.status.code >= 400
        let deadline = NIODeadline.now() + .milliseconds(failing ? bounds.errorBodyMs : bounds.bodyMs)
        let sooner = state.withLock { s -> Bool in
            s.head = head
            s.limit = failing ? bounds.errorBodyLimit : bounds.bodyLimit
            if s.done { return false }
            s.deadline = deadline
            return deadline < s.timerAt
        }
        if sooner { rearm(at: deadline) }
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Void>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        if let tooLarge = receivedBody(buffer) { task.fail(reason: tooLarge) }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    /// Keeps a body part; the error to stop the request with when the body is too large.
    private func receivedBody(_ buffer: ByteBuffer) -> TooLarge? {
        var buffer = buffer
        let tooLarge = state.withLock { s -> Int? in
            if s.body == nil {
                s.body = buffer
            } else {
                s.body!.writeBuffer(&buffer)
            }
            if s.body!.readableBytes > s.limit, s.error == nil {
                s.error = TooLarge(limit: s.limit)
                return s.limit
            }
            return nil
        }
        return tooLarge.map { TooLarge(limit: $0) }
    }

    func didReceiveError(task: HTTPClient.Task<Void>, _ error: any Error) {
        state.withLock { s in if s.error == nil { s.error = error } }
    }

    func didFinishRequest(task: HTTPClient.Task<Void>) throws {}

    // MARK: EngineExchange (the gateway's own client, on the connection's event loop)

    func received(part: ByteBuffer) -> Bool {
        if let tooLarge = receivedBody(part) {
            state.withLock { $0.task }?.fail(reason: tooLarge)
        }
        return true
    }

    func receivedEnd() { complete(error: nil) }

    func failed(_ error: any Error) { complete(error: error) }
}
