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
final class EngineAnswer: HTTPClientResponseDelegate, Sendable {
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
        var task: HTTPClient.Task<Void>?
        var waiter: CheckedContinuation<Result, Never>?
        var cancelled = false
        var timer: Scheduled<Void>?
        var head: HTTPResponseHead?
        var body: ByteBuffer?
        var limit = 0
        var error: (any Error)?
        var timedOut = false
        var done = false
    }
    private let state = Mutex(State())
    private let bounds: Bounds

    private init(bounds: Bounds) { self.bounds = bounds }

    /// Sends `request` and waits for the whole answer (or the error that cut it). Cancelling the
    /// calling task cancels the request.
    static func fetch(_ request: HTTPClient.Request, on client: HTTPClient, bounds: Bounds) async -> Result {
        let answer = EngineAnswer(bounds: bounds)
        // The calling task's loop when it runs on one of the client's (the pipeline prefers its
        // connection's loop): an idle engine connection on that loop is preferred, and the
        // delegate runs there. (Not `.delegateAndChannel(on:)`: a request that requires a loop
        // with no idle connection on it gets an "overflow" connection that AsyncHTTPClient closes
        // after the request — measured: a new engine connection per request.)
        let loop = client.eventLoopGroup.any()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Result, Never>) in
                answer.begin(request, on: client, loop: loop, waiter: c)
            }
        } onCancel: {
            answer.cancel()
        }
    }

    private func begin(_ request: HTTPClient.Request, on client: HTTPClient, loop: any EventLoop, waiter: CheckedContinuation<Result, Never>) {
        let cancelled = state.withLock { s -> Bool in
            s.waiter = waiter
            return s.cancelled
        }
        if cancelled {
            complete(error: HTTPClientError.cancelled)
            return
        }
        let task = client.execute(request: request, delegate: self, eventLoop: .delegate(on: loop), logger: nil)
        let timer = loop.scheduleTask(in: .milliseconds(bounds.headMs)) { [self] in expire() }
        // The head's timer is kept unless the answer already ended or its head is already in (off
        // the connection's loop, the delegate may have run meanwhile and armed the body's timer).
        let (cancelNow, dropTimer) = state.withLock { s -> (Bool, Bool) in
            s.task = task
            if s.done || s.head != nil { return (s.cancelled && !s.done, true) }
            s.timer = timer
            return (s.cancelled, false)
        }
        if dropTimer { timer.cancel() }
        if cancelNow { task.fail(reason: HTTPClientError.cancelled) }
        task.futureResult.whenComplete { [self] result in
            switch result {
            case .success: complete(error: nil)
            case .failure(let error): complete(error: error)
            }
        }
    }

    /// The timer fired before the head (or the whole body) was in.
    private func expire() {
        let task = state.withLock { s -> HTTPClient.Task<Void>? in
            if s.done { return nil }
            s.timedOut = true
            s.timer = nil
            return s.task
        }
        task?.fail(reason: HTTPClientError.deadlineExceeded)
    }

    private func cancel() {
        let task = state.withLock { s -> HTTPClient.Task<Void>? in
            s.cancelled = true
            return s.done ? nil : s.task
        }
        task?.fail(reason: HTTPClientError.cancelled)
    }

    private func complete(error: (any Error)?) {
        let (waiter, timer, result) = state.withLock { s -> (CheckedContinuation<Result, Never>?, Scheduled<Void>?, Result) in
            s.done = true
            if s.error == nil { s.error = error }
            defer { s.waiter = nil; s.timer = nil }
            return (s.waiter, s.timer, Result(head: s.head, body: s.body ?? ByteBuffer(), error: s.error, timedOut: s.timedOut && s.error != nil))
        }
        timer?.cancel()
        waiter?.resume(returning: result)
    }

    // MARK: HTTPClientResponseDelegate (on the connection's event loop)

    func didReceiveHead(task: HTTPClient.Task<Void>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        let failing = head.status.code >= 400
        let ms = failing ? bounds.errorBodyMs : bounds.bodyMs
        let next = task.eventLoop.scheduleTask(in: .milliseconds(ms)) { [self] in expire() }
        let old = state.withLock { s -> Scheduled<Void>? in
            s.head = head
            s.limit = failing ? bounds.errorBodyLimit : bounds.bodyLimit
            if s.done { return next }
            defer { s.timer = next }
            return s.timer
        }
        old?.cancel()
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Void>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
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
        if let tooLarge { task.fail(reason: TooLarge(limit: tooLarge)) }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveError(task: HTTPClient.Task<Void>, _ error: any Error) {
        state.withLock { s in if s.error == nil { s.error = error } }
    }

    func didFinishRequest(task: HTTPClient.Task<Void>) throws {}
}
