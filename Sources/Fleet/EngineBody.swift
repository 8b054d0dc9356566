import AsyncHTTPClient
import Clocks
import Synchronization
import NIOCore
import NIOHTTP1

/// One streamed engine response read through AsyncHTTPClient's delegate API: the connection's
/// event loop hands each body part to this object, and the one task that reads the stream takes
/// them with ``next()`` (the part it has not taken yet holds the connection's reads:
/// backpressure). Unlike `HTTPClientResponse.Body`, it needs no task of its own and can be
/// stopped from anywhere with ``cancel()`` — the silence watchdog, the client's hang-up — which
/// closes the engine connection. (Issue 16: a reader task and an `AsyncThrowingStream` between
/// it and the responder cost ~12 KB per open stream.)
final class EngineBody: HTTPClientResponseDelegate, EngineExchange, Sendable {
    typealias Response = Void

    /// What lets the connection read on once the reader took a held part.
    private enum Ack {
        case promise(EventLoopPromise<Void>)  // AsyncHTTPClient's delegate waits for it
        case resume(EngineRequest)  // the gateway's own client holds its reads

        func release() {
            switch self {
            case .promise(let p): p.succeed(())
            case .resume(let r): r.resumeReading()
            }
        }
    }

    private struct State {
        var task: (any EngineCall)?
        var cancelRequested: HTTPClientError?
        var head: HTTPResponseHead?
        var headWaiter: CheckedContinuation<HTTPResponseHead, any Error>?
        var headTimer: Scheduled<Void>?
        /// A part the reader has not taken yet, and the promise that lets the connection read on.
        var part: ByteBuffer?
        var partAck: Ack?
        var partWaiter: CheckedContinuation<ByteBuffer?, any Error>?
        var finished = false
        var error: (any Error)?
    }
    private let state = Mutex(State())
    /// When bytes last arrived (the silence watchdog reads it).
    let activity: Activity

    init(activity: Activity) { self.activity = activity }

    /// Sends `request` and returns at once; ``head(within:)`` waits for the response head.
    static func start(_ request: HTTPClient.Request, on client: HTTPClient, clock: any PlatformClock) -> EngineBody {
        let body = EngineBody(activity: Activity(clock: clock))
        let task = client.execute(request: request, delegate: body)
        task.futureResult.whenComplete { [body] result in
            if case .failure(let error) = result { body.fail(error) } else { body.finish() }
        }
        let pending = body.state.withLock { s -> HTTPClientError? in
            s.task = task
            return s.cancelRequested
        }
        if let pending { task.fail(reason: pending) }
        return body
    }

    /// The same through the gateway's own client (``EnginePool``, plain-HTTP engines): `request`
    /// is the whole request, head and body, sent in one write; the connection is taken (or
    /// opened) on the calling task's event loop.
    static func start(_ request: ByteBuffer, on pool: EnginePool, clock: any PlatformClock) -> EngineBody {
        let body = EngineBody(activity: Activity(clock: clock))
        let call = pool.execute(request, on: pool.group.any(), exchange: body)
        let pending = body.state.withLock { s -> HTTPClientError? in
            if !s.finished && s.error == nil { s.task = call }  // (over already: keep no cycle)
            return s.cancelRequested
        }
        if let pending { call.fail(reason: pending) }
        return body
    }

    /// Waits for the response head. Past `deadlineMs` without one, the request fails with
    /// `HTTPClientError.deadlineExceeded` (the first-byte timeout; the body is not bounded).
    func head(within ms: Int64) async throws -> HTTPResponseHead {
        let timer = state.withLock { $0.task?.eventLoop }.map { loop in
            loop.scheduleTask(in: .milliseconds(ms)) { [self] in
                if state.withLock({ $0.head == nil }) { cancel(reason: .deadlineExceeded) }
            }
        }
        let armed = state.withLock { s -> Bool in
            if s.head != nil || s.error != nil || s.finished { return false }
            s.headTimer = timer
            return true
        }
        if !armed { timer?.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<HTTPResponseHead, any Error>) in
                let result: Result<HTTPResponseHead, any Error>? = state.withLock { s in
                    if let head = s.head { return .success(head) }
                    if let error = s.error { return .failure(error) }
                    if s.finished { return .failure(HTTPClientError.remoteConnectionClosed) }
                    s.headWaiter = c
                    return nil
                }
                if let result { c.resume(with: result) }
            }
        } onCancel: {
            cancel()
        }
    }

    /// The next part of the body; nil at its end. Throws the request's error (the connection
    /// broke, or it was cancelled). One reader at a time.
    func next() async throws -> ByteBuffer? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<ByteBuffer?, any Error>) in
                let (result, ack) = state.withLock { s -> (Result<ByteBuffer?, any Error>?, Ack?) in
                    if let part = s.part {
                        s.part = nil
                        defer { s.partAck = nil }
                        return (.success(part), s.partAck)
                    }
                    if let error = s.error { return (.failure(error), nil) }
                    if s.finished { return (.success(nil), nil) }
                    s.partWaiter = c
                    return (nil, nil)
                }
                if let ack {  // a held part taken: the connection reads on, the silence counts again
                    activity.touch()
                    activity.hold(false)
                    ack.release()
                }
                if let result { c.resume(with: result) }
            }
        } onCancel: {
            cancel()
        }
    }

    /// Stops the request (closing the engine connection); the reader's pending or next
    /// ``next()`` throws. Safe from any thread, any number of times.
    func cancel(reason: HTTPClientError = .cancelled) {
        let task = state.withLock { s -> (any EngineCall)? in
            if s.task == nil, s.cancelRequested == nil { s.cancelRequested = reason }
            if s.finished || s.error != nil {  // over: a part nobody will take goes, with its hold
                s.part = nil
                s.partAck = nil
            }
            return s.task
        }
        task?.fail(reason: reason)
    }

    /// A part arrived that the reader has not taken yet.
    var hasWaitingPart: Bool { state.withLock { $0.part != nil } }

    // MARK: HTTPClientResponseDelegate (on the connection's event loop)

    func didReceiveHead(task: HTTPClient.Task<Void>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        received(head: head)
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func received(head: HTTPResponseHead) {
        let (waiter, timer) = state.withLock { s in
            s.head = head
            defer { s.headWaiter = nil; s.headTimer = nil }
            return (s.headWaiter, s.headTimer)
        }
        timer?.cancel()
        waiter?.resume(returning: head)
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Void>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        activity.touch()
        let promise = task.eventLoop.makePromise(of: Void.self)
        let waiter = state.withLock { s -> CheckedContinuation<ByteBuffer?, any Error>? in
            if let waiter = s.partWaiter {
                s.partWaiter = nil
                return waiter
            }
            // The reader is busy: it gets this part at its next call, and only then may the
            // connection read on (AsyncHTTPClient waits for the promise before the next part).
            s.part = buffer
            s.partAck = .promise(promise)
            activity.hold(true)
            return nil
        }
        guard let waiter else { return promise.futureResult }
        waiter.resume(returning: buffer)
        promise.succeed(())
        return promise.futureResult
    }

    func didReceiveError(task: HTTPClient.Task<Void>, _ error: any Error) { fail(error) }

    // MARK: EngineExchange (the gateway's own client, on the connection's event loop)

    func received(part: ByteBuffer) -> Bool {
        activity.touch()
        let (waiter, held) = state.withLock { s -> (CheckedContinuation<ByteBuffer?, any Error>?, Bool) in
            if let waiter = s.partWaiter {
                s.partWaiter = nil
                return (waiter, false)
            }
            // The reader is busy: it gets this part at its next call, and only then does the
            // connection read on. (After an error the part is dropped: the reader gets the error.)
            guard s.error == nil else { return (nil, false) }
            s.part = buffer(appending: part, to: s.part)
            guard let request = s.task as? EngineRequest else { return (nil, false) }
            s.partAck = .resume(request)
            activity.hold(true)
            return (nil, true)
        }
        waiter?.resume(returning: part)
        return !held
    }

    /// A part kept for the reader, with another appended (the connection delivers one part per
    /// read, so there is at most one, but a hold is never lost).
    private func buffer(appending part: ByteBuffer, to kept: ByteBuffer?) -> ByteBuffer {
        guard var kept else { return part }
        var part = part
        kept.writeBuffer(&part)
        return kept
    }

    func receivedEnd() { finish() }

    func failed(_ error: any Error) { fail(error) }

    func didFinishRequest(task: HTTPClient.Task<Void>) throws {}

    private func finish() {
        let (head, part) = state.withLock { s in
            s.finished = true
            // The request (the gateway's own client) holds this object as its exchange: no cycle.
            defer { s.headWaiter = nil; s.partWaiter = nil; s.task = nil }
            return (s.headWaiter, s.partWaiter)
        }
        head?.resume(throwing: HTTPClientError.remoteConnectionClosed)
        part?.resume(returning: nil)
    }

    private func fail(_ error: any Error) {
        let (head, part, ack, timer, e) = state.withLock { s in
            if s.error == nil && !s.finished { s.error = error }
            // A part not taken yet stays: the reader gets it before the error (the bytes the
            // engine sent before a cut are relayed).
            defer { s.headWaiter = nil; s.partWaiter = nil; s.partAck = nil; s.headTimer = nil; s.task = nil }
            return (s.headWaiter, s.partWaiter, s.partAck, s.headTimer, s.error ?? error)
        }
        timer?.cancel()
        if let ack {
            activity.hold(false)
            ack.release()
        }
        head?.resume(throwing: e)
        part?.resume(throwing: e)
    }
}
