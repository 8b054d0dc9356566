import AsyncHTTPClient
import Clocks
import Foundation
import Logging
import NIOCore
import OpenAIWire
import Synchronization


/// The engines behind the gateway: picks a backend for each request (DESIGN §5), counts what it
/// sent to each, tracks their health, fails over before the first byte and queues by tier when
/// every eligible backend is full.
public final class Fleet: Sendable {
    public let engines: [Engine]
    public let options: FleetOptions
    let logger: Logger
    let state: Mutex<RouterState>
    let waiters: WaitQueue
    /// Told when a request that waited for a free backend leaves the queue (dispatched, timed out
    /// or cancelled): its model and how long it waited.
    let onQueueWait: (@Sendable (String, Duration) -> Void)?
    /// The catalog ids of the backends' configured `models` (fixed at start; discovered ones are in the state).
    let configuredModels: Set<String>

    /// A pooled HTTP client for engines. A refused connection fails at once (no silent retry
    /// loop), so failover to another engine is immediate. `maxConnections` bounds the open
    /// connections per engine host (a request past it waits for a free one, then fails).
    public static func makeHTTPClient(connectTimeoutMs: Int, maxConnections: Int = 512) -> HTTPClient {
        var config = HTTPClient.Configuration()
        config.timeout.connect = .milliseconds(Int64(connectTimeoutMs))
        config.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = max(1, maxConnections)
        config.connectionPool.retryConnectionEstablishment = false
        config.decompression = .disabled
        // No tracing (the gateway has no tracer): AsyncHTTPClient's default is the global no-op
        // tracer, for which it still parsed each request's URL a second time to build span
        // attributes (~1 % of the CPU per request, issue 16).
        config.tracing.tracer = nil
        // An engine request's head and body in one write, not two (``RequestHeadFlush``).
        config.http1_1ConnectionDebugInitializer = { channel in RequestHeadFlush.install(on: channel) }
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    /// One client per backend, pooled to its `max_connections` and its connect timeout (the
    /// caller shuts them down).
    public static func makeHTTPClients(for configs: [BackendConfig]) -> [HTTPClient] {
        configs.map { makeHTTPClient(connectTimeoutMs: $0.timeouts.connectMs, maxConnections: $0.maxConnections) }
    }

    /// Closes the engines' idle connections of the gateway's own client (at shutdown).
    public func closeEngineConnections() {
        for engine in engines { engine.closeConnections() }
    }

    /// The platform's clock: breakers (failures, cooldowns, probes), queue deadlines, the times
    /// the report shows. Tests inject a ``ManualClock`` and step through a cooldown or a deadline.
    let clock: any PlatformClock

    public convenience init(configs: [BackendConfig], http: HTTPClient, logger: Logger, options: FleetOptions = FleetOptions(),
                            clock: any PlatformClock = SystemClock(), onQueueWait: (@Sendable (String, Duration) -> Void)? = nil) {
        self.init(configs: configs, clients: configs.map { _ in http }, logger: logger, options: options, clock: clock, onQueueWait: onQueueWait)
    }

    /// One HTTP client per backend (`clients[i]` for `configs[i]`), each pooled to that
    /// backend's `max_connections` (see ``makeHTTPClients(for:)``).
    public init(configs: [BackendConfig], clients: [HTTPClient], logger: Logger, options: FleetOptions = FleetOptions(),
                clock: any PlatformClock = SystemClock(), onQueueWait: (@Sendable (String, Duration) -> Void)? = nil) {
        precondition(clients.count == configs.count, "one HTTP client per backend")
        self.onQueueWait = onQueueWait
        self.engines = zip(configs, clients).map { Engine(config: $0, http: $1, logger: logger, clock: clock) }
        self.configuredModels = Set(configs.flatMap { $0.models.keys })
        self.logger = logger
        self.options = options
        self.clock = clock
        let breaker = CircuitBreaker(threshold: options.breakerThreshold, cooldownMs: Int64(options.breakerCooldownMs))
        self.state = Mutex(RouterState(
            backends: configs.map { _ in BackendRuntime(breaker: breaker) },
            prefix: PrefixIndex(blockChars: options.prefixBlockChars),
            rng: SplitMix64(seed: options.seed ?? UInt64.random(in: 0...UInt64.max))))
        self.waiters = WaitQueue(clock: clock)
    }

    // MARK: Models

    /// Catalog ids served by at least one engine (configured or discovered).
    public var servedModels: Set<String> {
        let discovered = state.withLock { s in s.backends.flatMap { $0.discovered.keys } }
        return configuredModels.union(discovered)
    }

    /// Whether an engine serves catalog id `model` (configured or discovered): the per-request
    /// check, without building ``servedModels``.
    public func serves(_ model: String) -> Bool {
        configuredModels.contains(model) || state.withLock { s in s.backends.contains { $0.discovered[model] != nil } }
    }

    /// The engine's own name for catalog model `model` on backend `i`.
    func engineModel(_ i: Int, _ model: String, _ s: RouterState) -> String? { s.served(self, i, model) }

    public func engines(serving model: String) -> [Engine] {
        state.withLock { s in engines.indices.filter { engineModel($0, model, s) != nil }.map { engines[$0] } }
    }

    /// Asks every backend with `discover_models` which models it has and serves the catalog
    /// models among them (run at start, after the catalog is loaded).
    public func discoverModels(catalogIDs: [String]) async {
        await withTaskGroup(of: Void.self) { group in
            for (i, engine) in engines.enumerated() where engine.config.discoverModels {
                group.addTask {
                    let result = await engine.probe()
                    guard let names = result.available else { return }
                    let mapped = ModelNameMatcher.map(engineNames: names, catalogIDs: catalogIDs)
                    self.state.withLock { $0.backends[i].discovered = mapped }
                    self.logger.info("discovered models", metadata: ["backend": "\(engine.name)", "models": "\(mapped.keys.sorted())"])
                }
            }
        }
    }

    // MARK: Sending

    /// Sends a request for catalog model `model` to the best backend, retrying on another one
    /// (never the same twice, at most `maxAttempts`) while nothing reached the client: connect
    /// error, 5xx or timeout before the first byte. A refused connection sent nothing, so it does
    /// not use up an attempt (the backends themselves bound the tries) and opens that backend's
    /// breaker at once. When every eligible backend is full the request waits in the gateway
    /// until `queueDeadlineMs`; the waiters with the lowest `priority` rank (the caller's billing
    /// tier's, from the configuration: 0 before 1) are served first, then by arrival.
    /// The rank of batch work (issue 17): after every tier. A batch request also never takes a
    /// free slot while an interactive request waits for one (it queues behind it instead), so
    /// batch runs only on capacity interactive traffic leaves free.
    public static let batchPriority = Int.max

    /// `file`: the uploaded file of a multipart endpoint (audio), sent with the body's fields.
    /// A stream is returned once its first event is in (failover before it happens here).
    public func send(model: String, endpoint: Endpoint, body: JSONValue, stream: Bool,
                     priority tierPriority: Int = 0, file: Multipart.Part? = nil) async throws(EngineError) -> (Engine, UpstreamResponse) {
        let dispatch = FleetDispatch(fleet: self, model: model, endpoint: endpoint, body: body, stream: stream, priority: tierPriority, file: file)
        while true {
            let (engine, response) = try await dispatch.next()
            guard case .stream(let events) = response else { return (engine, response) }
            if let e = await Self.firstEvent(events, backend: engine.name) {
                try dispatch.firstEventFailed(e)
                continue
            }
            dispatch.firstEventCame()
            return (engine, response)
        }
    }

    /// Like ``send(model:endpoint:body:stream:priority:file:)``, but a stream is returned as soon as
    /// the engine answered its head, before its first event: the caller waits for that event
    /// (``firstEvent(_:backend:)``) wherever it likes — the gateway in a task smaller than the one
    /// that authenticated and admitted the request, which ends first (issue 16: a task's
    /// allocator keeps its high-water mark until the task ends) — and reports it on the returned
    /// dispatch: ``FleetDispatch/firstEventCame()``, or ``FleetDispatch/firstEventFailed(_:)``
    /// then ``FleetDispatch/next()`` for the next backend (failover before the first token).
    public func dispatch(model: String, endpoint: Endpoint, body: JSONValue, stream: Bool,
                         priority tierPriority: Int = 0, file: Multipart.Part? = nil) async throws(EngineError) -> (Engine, UpstreamResponse, FleetDispatch) {
        let dispatch = FleetDispatch(fleet: self, model: model, endpoint: endpoint, body: body, stream: stream, priority: tierPriority, file: file)
        let (engine, response) = try await dispatch.next()
        return (engine, response, dispatch)
    }

    /// One attempt of a dispatch: pick a backend (or wait for room), send; the loop's state is in
    /// `d`, so a stream that breaks before its first token resumes it.
    @inline(never)
    func attempt(_ d: FleetDispatch) async throws(EngineError) -> (Engine, UpstreamResponse) {
        defer {
            if let queuedSince = d.queuedSince {
                onQueueWait?(d.model, ContinuousClock.now - queuedSince)
                d.queuedSince = nil
            }
        }
        let model = d.model, priority = d.priority, enqueuedAt = d.enqueuedAt, deadline = d.deadline
        while d.attempts < options.maxAttempts && d.tried.count < engines.count {
            let yieldToInteractive = priority == Self.batchPriority && waiters.hasWaiter(before: priority)
            let pick = yieldToInteractive ? Pick.saturated
                : state.withLock { s in s.select(fleet: self, model: model, hashes: d.hashes, exclude: d.tried, nowMs: clock.now(),
                                                 waitedMs: clock.now() - enqueuedAt) }
            let index: Int
            switch pick {
            case .chosen(let i):
                index = i
            case .noneServing:
                throw .rejected(backend: "-", error: .unavailable("No engine is configured to serve '\(model)'. The operator must add a backend for it."))
            case .noneHealthy:
                if let lastError = d.lastError { throw lastError }
                let retry = max(1, options.breakerCooldownMs / 1000)
                throw .rejected(backend: "-", error: .unavailable("Every engine serving '\(model)' is failing its health checks. Retry in \(retry) s.", retryAfter: retry))
            case .saturated:
                if d.queuedSince == nil { d.queuedSince = ContinuousClock.now }
                let mySeq = d.seq ?? waiters.nextSeq()
                d.seq = mySeq
                let excluded = d.tried
                // The scored policy first waits for a warm backend, then accepts a cold one.
                let coldAt = enqueuedAt + Int64(options.coldLoadAfterMs)
                let phaseEnd = options.policy == .scored && clock.now() < coldAt ? min(deadline, coldAt) : deadline
                let woken = await waiters.wait(model: model, priority: priority, seq: mySeq, deadlineMs: phaseEnd) { [self] in
                    // Registered under the same check: a release between the check and the wait is not lost.
                    if priority == Self.batchPriority && waiters.hasWaiter(before: priority) { return false }
                    return state.withLock { s in
                        s.hasRoom(fleet: self, model: model, exclude: excluded, nowMs: clock.now(), waitedMs: clock.now() - enqueuedAt)
                    }
                }
                if !woken && clock.now() >= deadline {
                    throw .saturated(model: model, waitedMs: Int(clock.now() - enqueuedAt), retryAfter: 2)
                }
                continue
            }
            d.tried.insert(index)
            let engine = engines[index]
            var upstreamBody = d.body
            let served = state.withLock { engineModel(index, model, $0) } ?? model
            upstreamBody.set("model", .string(served))
            let response: UpstreamResponse
            do {
                response = try await engine.send(UpstreamRequest(endpoint: d.endpoint, body: upstreamBody, stream: d.stream, file: d.file)) { [self] end in
                    switch end {
                    case .completed: finish(index, failure: nil)
                    case .cancelled: finish(index, failure: nil, neutral: true)
                    case .failed(let e): finish(index, failure: e)
                    }
                }
            } catch {
                if Task.isCancelled {  // the client went away: nothing to learn about the engine
                    finish(index, failure: nil, neutral: true)
                    throw error
                }
                if case .refused(_, let detail) = error {
                    // No connection at all: the engine is not there. A closed pooled connection
                    // may be an engine that restarted: an ordinary failure for its breaker.
                    finish(index, failure: error, trip: detail != Engine.closedChannel)
                    logger.warning("engine refused the connection, trying another", metadata: ["backend": "\(engine.name)", "error": "\(error)"])
                    d.lastError = error
                    continue
                }
                d.attempts += 1
                if Self.retryable(error) {
                    finish(index, failure: error)
                    logger.warning("engine failed before the first byte, trying another", metadata: ["backend": "\(engine.name)", "error": "\(error)"])
                    d.lastError = error
                    continue
                }
                finish(index, failure: nil)  // the engine answered: it is alive (the request was bad)
                throw error
            }
            d.attempts += 1
            switch response {
            case .complete:
                finish(index, failure: nil)
            case .abandoned:
                finish(index, failure: nil, neutral: true)
            case .stream:
                // "First byte" is the first token: the caller waits for it and reports.
                d.streaming = index
            }
            return (engine, response)
        }
        throw d.lastError ?? .rejected(backend: "-", error: .unavailable("No engine could take the request for '\(model)'.", retryAfter: 1))
    }

    /// Waits for a stream's first event; returns the error when it broke before it.
    public static func firstEvent(_ events: EngineStream, backend: String) async -> EngineError? {
        do {
            try await events.prime()
            return nil
        } catch {
            return error as? EngineError ?? .streamCut(backend: backend, detail: "\(error)")
        }
    }

    /// Failures before the first byte that another backend may not have.
    static func retryable(_ e: EngineError) -> Bool {
        switch e {
        case .unreachable, .refused, .malformed: return true
        case .timeout(_, _, let streaming): return !streaming
        case .rejected(_, let api): return api.status >= 500 || api.status == 429
        case .streamCut, .saturated: return false
        }
    }

    /// A request on backend `i` ended: release its slot, feed the breaker, wake a waiter.
    func finish(_ i: Int, failure: EngineError?, neutral: Bool = false, trip: Bool = false) {
        let now = clock.now()
        state.withLock { s in
            s.backends[i].inFlight -= 1
            if let failure {
                s.backends[i].failures += 1
                s.backends[i].noteError("\(failure.apiError.message)", at: now)
                if case .rejected(_, let api) = failure, api.status == 429 { return }  // busy, not sick
                if trip { s.backends[i].breaker.trip(nowMs: now); return }
                s.backends[i].breaker.failure(nowMs: now)
            } else if !neutral {
                s.backends[i].breaker.success()
            }
        }
        waiters.wakeOne { [self] model in state.withLock { s in engineModel(i, model, s) != nil } }
    }

    /// The engine sent a response head: it is alive (the slot stays taken until the stream ends).
    func markAlive(_ i: Int) {
        state.withLock { $0.backends[i].breaker.success() }
    }
}

/// The state of one request's trip through the fleet: the backends tried, the attempts that may
/// have reached an engine, the last error, its place in the wait queue. ``Fleet/send`` keeps it
/// for its own loop; ``Fleet/dispatch`` hands it to the caller, which waits for a stream's first
/// event and comes back here to fail over (issue 16: the wait runs outside the task that did the
/// request's set-up). Used by one task at a time.
public final class FleetDispatch: @unchecked Sendable {
    let fleet: Fleet
    let model: String
    let endpoint: Endpoint
    let body: JSONValue
    let stream: Bool
    let priority: Int
    let file: Multipart.Part?
    let hashes: [UInt64]
    let enqueuedAt: Int64
    let deadline: Int64
    var tried = Set<Int>()
    var attempts = 0  // tries that may have reached an engine
    var lastError: EngineError?
    var seq: UInt64?
    var queuedSince: ContinuousClock.Instant?
    /// The backend whose stream waits for its first event.
    var streaming: Int?

    init(fleet: Fleet, model: String, endpoint: Endpoint, body: JSONValue, stream: Bool, priority: Int, file: Multipart.Part?) {
        self.fleet = fleet
        self.model = model
        self.endpoint = endpoint
        self.body = body
        self.stream = stream
        self.priority = priority  // a rank: the wait queue serves the lowest first
        self.file = file
        let routingKey = endpoint.spec.routingKey(body)
        hashes = routingKey.isEmpty ? [] : PrefixIndex(blockChars: fleet.options.prefixBlockChars).blockHashes(routingKey)
        enqueuedAt = fleet.clock.now()
        deadline = enqueuedAt + Int64(fleet.options.queueDeadlineMs)
    }

    /// The next backend's answer (failover included); throws when none is left.
    public func next() async throws(EngineError) -> (Engine, UpstreamResponse) {
        streaming = nil
        return try await fleet.attempt(self)
    }

    /// The stream's first event came: its engine is alive.
    public func firstEventCame() {
        if let streaming { fleet.markAlive(streaming) }
        streaming = nil
    }

    /// The stream broke before its first token, so it reached nobody (the relay already released
    /// the slot): rethrows when the caller was cancelled, else notes the error for ``next()``.
    public func firstEventFailed(_ e: EngineError) throws(EngineError) {
        let backend = streaming.map { fleet.engines[$0].name } ?? "-"
        streaming = nil
        if Task.isCancelled { throw e }
        fleet.logger.warning("stream broke before its first token, trying another", metadata: ["backend": "\(backend)", "error": "\(e)"])
        lastError = e
    }
}
