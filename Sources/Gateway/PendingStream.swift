import Fleet
import HTTPTypes
import Hummingbird
import Observability
import Storage
import OpenAIWire
import Tenancy

/// Where the request's task leaves a stream that waits for its first token
/// (``HTTPConnectionHandler`` makes one per request and resolves what it holds in a task of its own).
final class PendingSlot: @unchecked Sendable {
    var stream: PendingStream?
    /// The request's task, which a hang-up cancels while its engine call runs
    /// (``HangUpHook/cancelling(_:_:)``). Set on the connection's loop right after the task is made:
    /// the task runs on that loop too, so its first step comes after.
    var task: Task<Void, Never>?
}

/// A stream whose engine answered its head but not yet its first event (issue 16). The pipeline's
/// task (authentication, parsing, shield, admission, the engine call: ~24 KB of task-allocator
/// slabs, which a task keeps until it ends) returns this instead of waiting; a task of its own
/// waits for the first event here, with a small async context, and builds the response — the
/// stream, or, when every backend broke before its first token, the error the pipeline would have
/// answered. Failover runs in a child task of its own (`Fleet`'s attempt loop, resumed through the
/// ``FleetDispatch``), so its frames go when it returns.
final class PendingStream: @unchecked Sendable {
    var engine: Engine
    var events: EngineStream
    let dispatch: FleetDispatch
    /// The relay for `engine` (its backend follows a failover).
    var relay: StreamResponder
    /// The ledger row as it was before a backend was chosen.
    let record: RequestRecord
    let admission: Billing.Admission
    let keyHeaders: HTTPFields
    /// The connection's event loop (a failover's task runs there, as the pipeline did).
    let executor: LoopExecutor

    init(engine: Engine, events: EngineStream, dispatch: FleetDispatch, relay: StreamResponder, record: RequestRecord,
         admission: Billing.Admission, keyHeaders: HTTPFields, executor: LoopExecutor) {
        self.engine = engine
        self.events = events
        self.dispatch = dispatch
        self.relay = relay
        self.record = record
        self.admission = admission
        self.keyHeaders = keyHeaders
        self.executor = executor
    }

    /// The response: the stream once its first event is in, else (every backend broke before it)
    /// the error response. Carries `x-request-id` (it is built after the request-id middleware ran).
    @inline(never)
    func resolve() async -> Response {
        while true {
            guard let error = await Fleet.firstEvent(events, backend: engine.name) else { break }
            if let failed = await failOver(error) { return failed }
        }
        dispatch.firstEventCame()
        var row = record
        row.backend = engine.name
        var response = relay.response(events, record: row)
        response.headers[.xRequestID] = relay.requestID
        return response
    }

    /// The stream broke before its first token: the next backend (in a child task), or the error response.
    @inline(never)
    func failOver(_ error: EngineError) async -> Response? {
        let executor = self.executor, dispatch = self.dispatch
        let next: Result<(Engine, UpstreamResponse), EngineError> = await withTaskGroup(of: Result<(Engine, UpstreamResponse), EngineError>.self) { group in
            group.addTask(executorPreference: executor) {
                do throws(EngineError) {
                    try dispatch.firstEventFailed(error)
                    return .success(try await dispatch.next())
                } catch {
                    return .failure(error)
                }
            }
            return await group.next()!
        }
        switch next {
        case .success(let (engine, .stream(events))):
            self.engine = engine
            self.events = events
            relay.backend = BackendTag(engine: engine)
            return nil
        case .success(let (engine, _)):
            return await failed(.streamCut(backend: engine.name, detail: "the engine did not answer with a stream"))
        case .failure(let e):
            return await failed(e)
        }
    }

    /// What the pipeline answers when the engine call fails: the admission released, the ledger
    /// row (not durable) with the failure, the error with the key's and the rate-limit headers.
    @inline(never)
    func failed(_ error: EngineError) async -> Response {
        relay.recorder.platform.billing.release(admission)
        var record = record
        let apiError = CompletionPipeline.failure(error, record: &record) ?? .server()
        let withHeaders = await relay.recorder.failed(apiError, record: record, keyHeaders: keyHeaders,
                                                      engine: ContinuousClock.now - relay.engineStart)
        var response = errorResponse(withHeaders)
        response.headers[.xRequestID] = relay.requestID
        return response
    }
}
