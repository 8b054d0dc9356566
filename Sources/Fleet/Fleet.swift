import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import OpenAIWire
import Synchronization

/// Fleet-wide routing settings (configuration; the defaults are the production choice).
public struct FleetOptions: Sendable, Equatable {
    public var policy: RoutingPolicy
    public var weights: RoutingWeights
    /// Backends tried for one request (a different one each time), before the first byte only.
    public var maxAttempts: Int
    /// Consecutive failures that open a backend's circuit breaker.
    public var breakerThreshold: Int
    /// How long an open breaker keeps a backend out before a half-open trial.
    public var breakerCooldownMs: Int
    /// How long a request may wait in the gateway queue when every eligible backend is full.
    public var queueDeadlineMs: Int
    /// Characters per prefix block for prefix affinity.
    public var prefixBlockChars: Int
    /// Seed of the tie-break generator (nil: a random seed).
    public var seed: UInt64?
    /// `scored` policy: while a backend holding the model is merely full, wait for it this long
    /// before sending the request to one that must load the model cold (a load costs seconds,
    /// a slot frees in a fraction of that).
    public var coldLoadAfterMs: Int

    public init(policy: RoutingPolicy = .scored, weights: RoutingWeights = RoutingWeights(), maxAttempts: Int = 3,
                breakerThreshold: Int = 3, breakerCooldownMs: Int = 1000, queueDeadlineMs: Int = 10_000,
                prefixBlockChars: Int = 256, seed: UInt64? = nil, coldLoadAfterMs: Int = 500) {
        self.coldLoadAfterMs = coldLoadAfterMs
        self.policy = policy; self.weights = weights; self.maxAttempts = max(1, maxAttempts)
        self.breakerThreshold = breakerThreshold; self.breakerCooldownMs = breakerCooldownMs
        self.queueDeadlineMs = max(0, queueDeadlineMs); self.prefixBlockChars = prefixBlockChars; self.seed = seed
    }
}

/// The engines behind the gateway: picks a backend for each request (DESIGN §5), counts what it
/// sent to each, tracks their health, fails over before the first byte and queues by tier when
/// every eligible backend is full.
public final class Fleet: Sendable {
    public let engines: [Engine]
    public let options: FleetOptions
    let logger: Logger
    private let state: Mutex<RouterState>
    private let waiters: WaitQueue

    /// The one pooled HTTP client for all engines. A refused connection fails at once (no silent
    /// retry loop), so failover to another engine is immediate.
    public static func makeHTTPClient(connectTimeoutMs: Int) -> HTTPClient {
        var config = HTTPClient.Configuration()
        config.timeout.connect = .milliseconds(Int64(connectTimeoutMs))
        config.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 512
        config.connectionPool.retryConnectionEstablishment = false
        config.decompression = .disabled
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    /// Milliseconds for the circuit breakers (failures, cooldowns, probes); injected so tests step
    /// through a cooldown without sleeping. Queue deadlines wait in real time.
    let breakerClock: @Sendable () -> Int64

    public convenience init(configs: [BackendConfig], http: HTTPClient, logger: Logger, options: FleetOptions = FleetOptions()) {
        self.init(configs: configs, http: http, logger: logger, options: options, breakerClock: { Activity.nowMs() })
    }

    public init(configs: [BackendConfig], http: HTTPClient, logger: Logger, options: FleetOptions,
                breakerClock: @escaping @Sendable () -> Int64) {
        self.engines = configs.map { Engine(config: $0, http: http, logger: logger) }
        self.logger = logger
        self.options = options
        self.breakerClock = breakerClock
        let breaker = CircuitBreaker(threshold: options.breakerThreshold, cooldownMs: Int64(options.breakerCooldownMs))
        self.state = Mutex(RouterState(
            backends: configs.map { _ in BackendRuntime(breaker: breaker) },
            prefix: PrefixIndex(blockChars: options.prefixBlockChars),
            rng: SplitMix64(seed: options.seed ?? UInt64.random(in: 0...UInt64.max))))
        self.waiters = WaitQueue()
    }

    // MARK: Models

    /// Catalog ids served by at least one engine (configured or discovered).
    public var servedModels: Set<String> {
        let discovered = state.withLock { s in s.backends.flatMap { $0.discovered.keys } }
        return Set(engines.flatMap { $0.config.models.keys }).union(discovered)
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
    /// breaker at once. When every eligible backend is full the
    /// request waits in the gateway until `queueDeadlineMs`; the waiters with the highest
    /// `priority` (the caller's billing tier's, from the configuration) are served first, then
    /// by arrival.
    public func send(model: String, endpoint: Endpoint, body: JSONValue, stream: Bool,
                     priority tierPriority: Int = 0) async throws(EngineError) -> (Engine, UpstreamResponse) {
        let hashes = endpoint == .embeddings ? [] : PrefixIndex(blockChars: options.prefixBlockChars)
            .blockHashes(PrefixIndex.promptKey(endpoint: endpoint, body: body))
        let priority = -tierPriority  // the wait queue serves the lowest first
        let deadline = Activity.nowMs() + Int64(options.queueDeadlineMs)
        let enqueuedAt = Activity.nowMs()
        var tried = Set<Int>()
        var attempts = 0  // tries that may have reached an engine
        var lastError: EngineError?
        var seq: UInt64?

        while attempts < options.maxAttempts && tried.count < engines.count {
            let pick = state.withLock { s in s.select(fleet: self, model: model, hashes: hashes, exclude: tried, nowMs: breakerClock(),
                                                           waitedMs: Activity.nowMs() - enqueuedAt) }
            let index: Int
            switch pick {
            case .chosen(let i):
                index = i
            case .noneServing:
                throw .rejected(backend: "-", error: .unavailable("No engine is configured to serve '\(model)'. The operator must add a backend for it."))
            case .noneHealthy:
                if let lastError { throw lastError }
                let retry = max(1, options.breakerCooldownMs / 1000)
                throw .rejected(backend: "-", error: .unavailable("Every engine serving '\(model)' is failing its health checks. Retry in \(retry) s.", retryAfter: retry))
            case .saturated:
                let mySeq = seq ?? waiters.nextSeq()
                seq = mySeq
                let excluded = tried
                // The scored policy first waits for a warm backend, then accepts a cold one.
                let coldAt = enqueuedAt + Int64(options.coldLoadAfterMs)
                let phaseEnd = options.policy == .scored && Activity.nowMs() < coldAt ? min(deadline, coldAt) : deadline
                let woken = await waiters.wait(model: model, priority: priority, seq: mySeq, deadlineMs: phaseEnd) { [self] in
                    // Registered under the same check: a release between the check and the wait is not lost.
                    state.withLock { s in
                        s.hasRoom(fleet: self, model: model, exclude: excluded, nowMs: breakerClock(), waitedMs: Activity.nowMs() - enqueuedAt)
                    }
                }
                if !woken && Activity.nowMs() >= deadline {
                    throw .saturated(model: model, waitedMs: Int(Activity.nowMs() - enqueuedAt), retryAfter: 2)
                }
                continue
            }
            tried.insert(index)
            let engine = engines[index]
            var upstreamBody = body
            let served = state.withLock { engineModel(index, model, $0) } ?? model
            upstreamBody.set("model", .string(served))
            let response: UpstreamResponse
            do {
                response = try await engine.send(UpstreamRequest(endpoint: endpoint, body: upstreamBody, stream: stream)) { [self] end in
                    switch end {
                    case .completed: finish(index, failure: nil)
                    case .cancelled: finish(index, failure: nil, neutral: true)
                    case .failed(let e): finish(index, failure: e)
                    }
                }
            } catch {
                if case .refused = error {
                    finish(index, failure: error, trip: true)
                    logger.warning("engine refused the connection, trying another", metadata: ["backend": "\(engine.name)", "error": "\(error)"])
                    lastError = error
                    continue
                }
                attempts += 1
                if Self.retryable(error) {
                    finish(index, failure: error)
                    logger.warning("engine failed before the first byte, trying another", metadata: ["backend": "\(engine.name)", "error": "\(error)"])
                    lastError = error
                    continue
                }
                finish(index, failure: nil)  // the engine answered: it is alive (the request was bad)
                throw error
            }
            attempts += 1
            switch response {
            case .complete:
                finish(index, failure: nil)
            case .abandoned:
                finish(index, failure: nil, neutral: true)
            case .stream(let events):
                // "First byte" is the first token: a stream that breaks before it reached
                // nobody, so it is retried elsewhere (the relay already released the slot).
                if let e = await Self.firstEvent(events, backend: engine.name) {
                    if Task.isCancelled { throw e }
                    logger.warning("stream broke before its first token, trying another", metadata: ["backend": "\(engine.name)", "error": "\(e)"])
                    lastError = e
                    continue
                }
                markAlive(index)
            }
            return (engine, response)
        }
        throw lastError ?? .rejected(backend: "-", error: .unavailable("No engine could take the request for '\(model)'.", retryAfter: 1))
    }

    /// Waits for a stream's first event; returns the error when it broke before it.
    static func firstEvent(_ events: EngineStream, backend: String) async -> EngineError? {
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
        let now = breakerClock()
        state.withLock { s in
            s.backends[i].inFlight -= 1
            if let failure {
                s.backends[i].failures += 1
                s.backends[i].noteError("\(failure.apiError.message)")
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

    // MARK: Health

    /// Probes every backend forever, each at its own `probe_interval_ms` (run as a service task;
    /// ends when cancelled).
    public func runHealthChecks() async {
        await withDiscardingTaskGroup { group in
            for i in engines.indices {
                group.addTask {
                    while !Task.isCancelled {
                        await self.probeBackend(i)
                        try? await Task.sleep(for: .milliseconds(self.engines[i].config.probeIntervalMs))
                    }
                }
            }
        }
    }

    /// One probe round over every backend (tests call this instead of waiting for the loop).
    public func probeAll() async {
        await withDiscardingTaskGroup { group in
            for i in engines.indices { group.addTask { await self.probeBackend(i) } }
        }
    }

    func probeBackend(_ i: Int) async {
        let engine = engines[i]
        // Requests in flight tell more than a probe can (their outcomes feed the breaker); an
        // engine that serves one request at a time (llama.cpp) is not probed meanwhile at all.
        if engine.adapter.servesOneAtATime && state.withLock({ $0.backends[i].inFlight > 0 && $0.backends[i].breaker.isClosed }) { return }
        let result = await engine.probe(timeoutMs: 2000)  // probes run one after another: a short interval needs no short timeout
        let now = breakerClock()
        let revived = state.withLock { s -> Bool in
            var b = s.backends[i]
            // A probe that fails while the backend is busy answering us is not a failure: a loaded
            // engine answers probes late; a broken one fails the requests themselves.
            if !result.ok && b.inFlight > 0 && b.breaker.isClosed {
                b.noteError("health probe while busy (ignored): \(result.detail)")
                s.backends[i] = b
                return false
            }
            b.lastProbeOK = result.ok
            b.lastProbeAt = Date()
            var revived = false
            if result.ok {
                b.metrics = result.metrics
                if let resident = result.resident { b.resident = resident }
                b.breaker.tick(nowMs: now)
                switch b.breaker.state {
                case .halfOpen:
                    b.breaker.success()
                    revived = true
                case .closed(let n) where n > 0:
                    b.breaker.success()
                case .closed, .open:
                    break  // open: still cooling down; the next probe after the cooldown closes it
                }
            } else {
                b.noteError("health probe: \(result.detail)")
                b.breaker.failure(nowMs: now)
                b.metrics = nil
            }
            s.backends[i] = b
            if revived { s.prefix.forget(backend: i) }  // a restarted engine has an empty KV cache
            return revived
        }
        if revived {
            logger.info("backend healthy again", metadata: ["backend": "\(engine.name)"])
            waiters.wakeAll()
        }
    }

    /// True when the engine answers its health check.
    public func probe(_ engine: Engine, timeoutMs: Int = 2000) async -> Bool {
        await engine.probe(timeoutMs: timeoutMs).ok
    }

    /// True when at least one engine answers.
    public func anyReady() async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            for engine in engines { group.addTask { await self.probe(engine) } }
            for await ok in group where ok {
                group.cancelAll()
                return true
            }
            return false
        }
    }

    // MARK: Reporting

    /// `GET /admin/v1/backends`: each backend's state, load, models and recent errors.
    public func backendsReport() -> JSONValue {
        let now = breakerClock()
        let (rows, queued) = state.withLock { s -> ([JSONValue], Int) in
            let rows: [JSONValue] = engines.indices.map { i in
                var b = s.backends[i]
                b.breaker.tick(nowMs: now)
                let e = engines[i]
                let models = Set(e.config.models.keys).union(b.discovered.keys).sorted()
                var engine: [(String, JSONValue)] = []
                if let m = b.metrics {
                    engine = [("waiting", m.waiting.map { .int($0) } ?? .null), ("running", m.running.map { .int($0) } ?? .null),
                              ("kv_cache_usage", m.kvUsage.map { .double($0) } ?? .null)]
                }
                return .object([
                    ("name", .string(e.name)), ("kind", .string(e.kind.rawValue)), ("url", .string(e.config.url)),
                    ("state", .string(b.breaker.label)),
                    ("in_flight", .int(b.inFlight)), ("capacity", .int(e.config.capacity)),
                    ("load", .double(Double(b.inFlight) / Double(e.config.capacity))),
                    ("engine_metrics", engine.isEmpty ? .null : .object(engine)),
                    ("models", .array(models.map { .string($0) })),
                    ("resident_models", b.resident.map { .array($0.sorted().map { .string($0) }) } ?? .null),
                    ("requests", .int(b.requests)), ("failures", .int(b.failures)),
                    ("last_probe_ok", b.lastProbeOK.map { .bool($0) } ?? .null),
                    ("last_probe_at", b.lastProbeAt.map { .string(Self.iso($0)) } ?? .null),
                    ("recent_errors", .array(b.recentErrors.reversed().map {
                        .object([("at", .string(Self.iso($0.at))), ("message", .string($0.message))])
                    })),
                ])
            }
            return (rows, 0)
        }
        return .object([("object", "list"), ("policy", .string(options.policy.rawValue)),
                        ("queued", .int(queued + waiters.count)), ("data", .array(rows))])
    }

    /// Requests sent to each backend so far (benchmarks and tests).
    public var requestCounts: [String: Int] {
        state.withLock { s in Dictionary(uniqueKeysWithValues: engines.indices.map { (engines[$0].name, s.backends[$0].requests) }) }
    }

    /// The breaker label of each backend.
    public var backendStates: [String: String] {
        let now = breakerClock()
        return state.withLock { s in
            Dictionary(uniqueKeysWithValues: engines.indices.map { i in
                var b = s.backends[i].breaker
                b.tick(nowMs: now)
                return (engines[i].name, b.label)
            })
        }
    }

    static func iso(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: d)
    }
}

/// What the fleet knows about one backend, guarded by the fleet's lock.
struct BackendRuntime {
    var inFlight = 0
    var breaker: CircuitBreaker
    var metrics: EngineMetrics?
    /// Engine model names resident in memory; nil when the engine does not say.
    var resident: Set<String>?
    /// Catalog id → engine name, found by discovery.
    var discovered: [String: String] = [:]
    var recentErrors: [(at: Date, message: String)] = []
    var requests = 0
    var failures = 0
    var lastProbeOK: Bool?
    var lastProbeAt: Date?

    init(breaker: CircuitBreaker) { self.breaker = breaker }

    mutating func noteError(_ message: String) {
        recentErrors.append((Date(), String(message.prefix(300))))
        if recentErrors.count > 10 { recentErrors.removeFirst(recentErrors.count - 10) }
    }

    func isResident(_ engineModel: String) -> Bool? {
        guard let resident else { return nil }
        return resident.contains(engineModel) || resident.contains(engineModel + ":latest")
    }
}

enum Pick {
    case chosen(Int)
    case saturated
    case noneHealthy
    case noneServing
}

struct RouterState {
    var backends: [BackendRuntime]
    var prefix: PrefixIndex
    var rng: SplitMix64
    var rotation: [String: Int] = [:]

    /// Whether the model is loaded on backend `i`: engines that report it (Ollama's `/api/ps`)
    /// say so; the others serve only what they loaded at start, so a served model is resident.
    func residency(_ fleet: Fleet, _ i: Int, _ model: String) -> Bool? {
        guard fleet.engines[i].adapter.reportsResidency else { return true }
        return served(fleet, i, model).flatMap { backends[i].isResident($0) }
    }

    func served(_ fleet: Fleet, _ i: Int, _ model: String) -> String? {
        fleet.engines[i].config.models[model] ?? backends[i].discovered[model]
    }

    /// Filter (serves the model, healthy, not full), then the policy; reserves the slot.
    mutating func select(fleet: Fleet, model: String, hashes: [UInt64], exclude: Set<Int>, nowMs: Int64, waitedMs: Int64 = 0) -> Pick {
        var serving: [Int] = []
        for i in backends.indices where !exclude.contains(i) && served(fleet, i, model) != nil { serving.append(i) }
        if serving.isEmpty { return exclude.isEmpty ? .noneServing : .noneHealthy }
        let healthy = serving.filter { backends[$0].breaker.admits(nowMs: nowMs) }
        if healthy.isEmpty { return .noneHealthy }
        let matches = hashes.isEmpty ? [:] : prefix.matches(hashes)
        let candidates: [RoutingCandidate] = healthy.compactMap { i in
            let b = backends[i]
            let config = fleet.engines[i].config
            let c = RoutingCandidate(index: i, inFlight: b.inFlight, capacity: config.capacity, engineWaiting: b.metrics?.waiting,
                                     kvUsage: b.metrics?.kvUsage, resident: residency(fleet, i, model),
                                     prefixBlocks: matches[i] ?? 0, promptBlocks: hashes.count)
            return c.isFull ? nil : c
        }
        if candidates.isEmpty { return .saturated }
        if fleet.options.policy == .scored, waitedMs < fleet.options.coldLoadAfterMs,
           !candidates.contains(where: { $0.resident != false }),
           healthy.contains(where: { residency(fleet, $0, model) == true }) {
            return .saturated  // only cold backends are free: wait a little for a warm one
        }
        let rotationValue = rotation[model, default: 0]
        guard let chosen = Router.choose(candidates, policy: fleet.options.policy, weights: fleet.options.weights,
                                         rotation: rotationValue, using: &rng) else { return .saturated }
        rotation[model] = chosen + 1
        backends[chosen].inFlight += 1
        backends[chosen].requests += 1
        backends[chosen].breaker.dispatched(nowMs: nowMs)
        if !hashes.isEmpty { prefix.record(hashes, backend: chosen) }
        if backends[chosen].resident != nil, let name = served(fleet, chosen, model) {
            backends[chosen].resident!.insert(name)  // the engine loads it now
        }
        return .chosen(chosen)
    }

    /// Whether `select` would find a free backend now (without reserving).
    func hasRoom(fleet: Fleet, model: String, exclude: Set<Int>, nowMs: Int64, waitedMs: Int64) -> Bool {
        let healthy = backends.indices.filter { i in
            !exclude.contains(i) && served(fleet, i, model) != nil && backends[i].breaker.admits(nowMs: nowMs)
        }
        let free = healthy.filter { backends[$0].inFlight < fleet.engines[$0].config.capacity }
        if free.isEmpty { return false }
        if fleet.options.policy == .scored, waitedMs < fleet.options.coldLoadAfterMs,
           !free.contains(where: { residency(fleet, $0, model) != false }),
           healthy.contains(where: { residency(fleet, $0, model) == true }) {
            return false
        }
        return true
    }
}

/// Requests waiting for a free backend, served by tier priority then arrival order.
final class WaitQueue: Sendable {
    struct Waiter {
        let id: UInt64
        let model: String
        let priority: Int
        let seq: UInt64
        let continuation: CheckedContinuation<Bool, Never>
    }

    private let waiting = Mutex<[Waiter]>([])
    private let counter = Atomic<UInt64>(0)

    func nextSeq() -> UInt64 { counter.add(1, ordering: .relaxed).newValue }

    var count: Int { waiting.withLock { $0.count } }

    /// Waits until woken (true) or the deadline passes (false). `ready` is checked under the
    /// queue's lock after registering, so a wake-up that raced the registration is not lost.
    func wait(model: String, priority: Int, seq: UInt64, deadlineMs: Int64, ready: @escaping @Sendable () -> Bool) async -> Bool {
        let id = nextSeq()
        let remaining = deadlineMs - Activity.nowMs()
        if remaining <= 0 { return false }
        let timer = Task { [weak self] in
            try? await Task.sleep(for: .milliseconds(remaining))
            self?.resume(id: id, with: false)
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                waiting.withLock { $0.append(Waiter(id: id, model: model, priority: priority, seq: seq, continuation: c)) }
                if ready() { resume(id: id, with: true) }
            }
        } onCancel: {
            self.resume(id: id, with: false)
        }
    }

    private func resume(id: UInt64, with value: Bool) {
        let w = waiting.withLock { list -> Waiter? in
            guard let i = list.firstIndex(where: { $0.id == id }) else { return nil }
            return list.remove(at: i)
        }
        w?.continuation.resume(returning: value)
    }

    /// Wakes the first waiter (by priority, then arrival) whose model `serves` accepts.
    func wakeOne(serves: (String) -> Bool) {
        let w = waiting.withLock { list -> Waiter? in
            var best: Int?
            for (i, w) in list.enumerated() where serves(w.model) {
                if let b = best, (list[b].priority, list[b].seq) <= (w.priority, w.seq) { continue }
                best = i
            }
            return best.map { list.remove(at: $0) }
        }
        w?.continuation.resume(returning: true)
    }

    func wakeAll() {
        let all = waiting.withLock { list -> [Waiter] in defer { list = [] }; return list }
        for w in all { w.continuation.resume(returning: true) }
    }
}
