import CoreMetrics
import Prometheus
import Storage
import Synchronization

/// The platform's metrics (issue 13): swift-metrics handles made by a ``PrometheusMetricsFactory``
/// over this instance's own ``PrometheusCollectorRegistry`` (never the global `MetricsSystem`, so
/// each platform — tests build many in one process — counts alone), exposed with `emit(into:)`.
///
/// Names follow the OpenTelemetry GenAI semantic conventions translated to Prometheus, plus the
/// gateway's own `llmaas_*` series. Cardinality is bounded here, not by the callers:
/// - `model`: a catalog id (``knownModel``), anything else is `other`;
/// - `backend`: a configured backend name, `none` when no engine was reached, else `other`;
/// - `endpoint`: an endpoint id of the registry (``knownEndpoints``), else `other`;
/// - `tenant`: the first ``tenantLabelLimit`` distinct tenant ids seen get their own label, later
///   ones `other` (0: every tenant is `other`);
/// - `status_class`: `2xx`, `4xx`, `5xx`, `499` (client closed), else `other`.
///
/// Handles are looked up once per label set and kept in a cache: a request costs one dictionary
/// lookup under a lock, then the handles' own atomic updates.
public final class GatewayMetrics: Sendable {
    /// Metric names, exactly as exposed (the Grafana dashboard uses these).
    public enum Name {
        public static let requestDuration = "gen_ai_server_request_duration_seconds"
        public static let timeToFirstToken = "gen_ai_server_time_to_first_token_seconds"
        public static let timePerOutputToken = "gen_ai_server_time_per_output_token_seconds"
        public static let tokenUsage = "gen_ai_client_token_usage"
        public static let overhead = "llmaas_gateway_overhead_seconds"
        public static let queueDepth = "llmaas_queue_depth"
        public static let queueWait = "llmaas_queue_wait_seconds"
        public static let backendUp = "llmaas_backend_up"
        public static let backendBreakerState = "llmaas_backend_breaker_state"
        public static let backendInFlight = "llmaas_backend_in_flight"
        public static let refusals = "llmaas_refusals_total"
        public static let shieldVerdicts = "llmaas_shield_verdicts_total"
        public static let ledgerCommit = "llmaas_ledger_commit_seconds"
        public static let ledgerRowsWritten = "llmaas_ledger_rows_written_total"
        public static let auditEntriesWritten = "llmaas_audit_entries_written_total"
        public static let cost = "llmaas_cost_nanoeuros_total"
        public static let energy = "llmaas_energy_microwatthours_total"
        public static let batchLines = "llmaas_batch_lines_total"
        public static let batches = "llmaas_batches_total"
        /// Tokens read by rerank requests (their billed unit), per model, tenant and endpoint.
        public static let rerankedTokens = "llmaas_reranked_tokens_total"
        /// Transcribed audio (its billed unit), in milliseconds, per model, tenant and endpoint.
        public static let audio = "llmaas_audio_milliseconds_total"
    }

    /// Where a request spent its time, beyond what its ledger row says.
    public struct Timing: Sendable {
        /// From the request's arrival to its end (a stream: its last byte's commit).
        public var total: Duration
        /// Inside the fleet: queueing, connecting, the engine's answer (a stream: until its last
        /// event). nil when no engine was called.
        public var engine: Duration?
        public init(total: Duration, engine: Duration?) { self.total = total; self.engine = engine }
    }

    public let enabled: Bool
    public let registry: PrometheusCollectorRegistry
    /// The factory every handle comes from (a no-op one when disabled).
    public let factory: any MetricsFactory
    public let tenantLabelLimit: Int
    let knownModel: @Sendable (String) -> Bool
    let knownBackends: Set<String>
    let knownEndpoints: Set<String>

    struct RequestKey: Hashable {
        var model: String, tenant: String, backend: String, endpoint: String, status: StatusClass
    }

    enum StatusClass: String {
        case ok = "2xx", client = "4xx", server = "5xx", closed = "499", other = "other"
        init(_ status: Int) {
            switch status {
            case 499: self = .closed
            case 200..<300: self = .ok
            case 400..<500: self = .client
            case 500..<600: self = .server
            default: self = .other
            }
        }
    }

    /// The handles of one label set.
    struct RequestHandles {
        let duration: CoreMetrics.Timer
        let ttft: CoreMetrics.Timer
        let tpot: CoreMetrics.Timer
        let input: Recorder
        let output: Recorder
        let reasoning: Recorder
        let overhead: CoreMetrics.Timer
        let cost: CoreMetrics.Counter
        let energy: CoreMetrics.Counter
    }

    struct State {
        var requests: [RequestKey: RequestHandles] = [:]
        var tenants: Set<String> = []
        var counters: [String: CoreMetrics.Counter] = [:]
        var gauges: [String: CoreMetrics.Gauge] = [:]
        var timers: [String: CoreMetrics.Timer] = [:]
        var synced: [String: Int] = [:]
    }
    private let state = Mutex(State())

    /// Buckets (seconds, tokens) following the GenAI conventions' advice; the gateway's overhead,
    /// queue wait and ledger commit get finer ones.
    static let durationBuckets: [Double] = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
    static let ttftBuckets: [Double] = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]
    static let tpotBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5]
    static let tokenBuckets: [Double] = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304]
    static let fineBuckets: [Double] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    public init(enabled: Bool = true, tenantLabelLimit: Int = 100, knownModel: @escaping @Sendable (String) -> Bool,
                backends: [String], endpoints: [String]) {
        self.enabled = enabled
        self.tenantLabelLimit = max(0, tenantLabelLimit)
        self.knownModel = knownModel
        self.knownBackends = Set(backends)
        self.knownEndpoints = Set(endpoints)
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        if enabled {
            var f = PrometheusMetricsFactory(registry: registry)
            func seconds(_ b: [Double]) -> [Duration] { b.map { .nanoseconds(Int64(($0 * 1e9).rounded())) } }
            f.defaultDurationHistogramBuckets = seconds(Self.fineBuckets)
            f.durationHistogramBuckets = [
                Name.requestDuration: seconds(Self.durationBuckets),
                Name.timeToFirstToken: seconds(Self.ttftBuckets),
                Name.timePerOutputToken: seconds(Self.tpotBuckets),
            ]
            f.valueHistogramBuckets = [Name.tokenUsage: Self.tokenBuckets]
            self.factory = f
        } else {
            self.factory = NOOPMetricsHandler.instance
        }
    }

    // MARK: Labels

    func modelLabel(_ model: String) -> String { knownModel(model) ? model : "other" }

    func backendLabel(_ backend: String?) -> String {
        guard let backend, !backend.isEmpty, backend != "-" else { return "none" }
        return knownBackends.contains(backend) ? backend : "other"
    }

    func endpointLabel(_ endpoint: String) -> String { knownEndpoints.contains(endpoint) ? endpoint : "other" }

    /// Under the lock: the tenant's label, admitting it while there is room.
    static func tenantLabel(_ tenant: String?, limit: Int, _ s: inout State) -> String {
        guard let tenant, !tenant.isEmpty else { return "none" }
        if s.tenants.contains(tenant) { return tenant }
        guard s.tenants.count < limit else { return "other" }
        s.tenants.insert(tenant)
        return tenant
    }

    // MARK: Recording

    /// A request ended (every inference request passes here once, with its ledger row).
    public func request(_ r: RequestRecord, timing: Timing) {
        guard enabled else { return }
        let model = modelLabel(r.model), backend = backendLabel(r.backend), endpoint = endpointLabel(r.endpoint)
        let status = StatusClass(r.status)
        let (h, units) = state.withLock { s -> (RequestHandles, CoreMetrics.Counter?) in
            let tenant = Self.tenantLabel(r.tenantID, limit: tenantLabelLimit, &s)
            // The endpoints' own billed units: a series only for requests that have them (no zero series for chat).
            let unitName = (r.rerankedTokens ?? 0) > 0 ? Name.rerankedTokens : (r.audioMs ?? 0) > 0 ? Name.audio : nil
            let units = unitName.map { counter($0, [("model", model), ("tenant", tenant), ("endpoint", endpoint)], &s) }
            let key = RequestKey(model: model, tenant: tenant, backend: backend, endpoint: endpoint, status: status)
            if let h = s.requests[key] { return (h, units) }
            let h = makeHandles(key)
            s.requests[key] = h
            return (h, units)
        }
        h.duration.recordNanoseconds(Self.nanos(timing.total))
        if r.promptTokens > 0 || r.completionTokens > 0 {
            h.input.record(r.promptTokens)
            h.output.record(r.completionTokens)
            if let reasoning = r.reasoningTokens { h.reasoning.record(reasoning) }
        }
        if let engine = timing.engine {
            h.overhead.recordNanoseconds(max(0, Self.nanos(timing.total - engine)))
        }
        if status == .ok, let ttft = r.ttftMs {
            h.ttft.recordNanoseconds(Int64(ttft) * 1_000_000)
            if r.completionTokens > 1 {
                let after = Self.nanos(timing.total) - Int64(ttft) * 1_000_000
                h.tpot.recordNanoseconds(max(0, after / Int64(r.completionTokens - 1)))
            }
        }
        if let c = r.costNano, c > 0 { h.cost.increment(by: c) }
        if let e = r.energyMicroWh, e > 0 { h.energy.increment(by: e) }
        units?.increment(by: max(r.rerankedTokens ?? 0, r.audioMs ?? 0))
    }

    private func makeHandles(_ k: RequestKey) -> RequestHandles {
        let base = [("model", k.model), ("tenant", k.tenant), ("backend", k.backend), ("endpoint", k.endpoint)]
        func tokens(_ type: String) -> Recorder {
            Recorder(label: Name.tokenUsage, dimensions: base + [("token_type", type)], aggregate: true, factory: factory)
        }
        return RequestHandles(
            duration: CoreMetrics.Timer(label: Name.requestDuration, dimensions: base + [("status_class", k.status.rawValue)], factory: factory),
            ttft: CoreMetrics.Timer(label: Name.timeToFirstToken, dimensions: base, factory: factory),
            tpot: CoreMetrics.Timer(label: Name.timePerOutputToken, dimensions: base, factory: factory),
            input: tokens("input"), output: tokens("output"), reasoning: tokens("reasoning"),
            overhead: CoreMetrics.Timer(label: Name.overhead, dimensions: [("model", k.model), ("endpoint", k.endpoint)], factory: factory),
            cost: CoreMetrics.Counter(label: Name.cost, dimensions: [("model", k.model), ("tenant", k.tenant)], factory: factory),
            energy: CoreMetrics.Counter(label: Name.energy, dimensions: [("model", k.model), ("backend", k.backend)], factory: factory))
    }

    /// A request refused by a rate limit or the budget; `reason` is the limit's name
    /// (`requests_per_minute`, …) or the budget's refusal code (`monthly_budget_exceeded`, …).
    public func refusal(reason: String, tenant: String?) {
        guard enabled else { return }
        let c = state.withLock { s -> CoreMetrics.Counter in
            let t = Self.tenantLabel(tenant, limit: tenantLabelLimit, &s)
            return counter(Name.refusals, [("reason", reason), ("tenant", t)], &s)
        }
        c.increment()
    }

    /// The prompt shield flagged or blocked a request: one count per rule.
    public func shieldVerdict(blocked: Bool, rules: [String]) {
        guard enabled else { return }
        let action = blocked ? "blocked" : "flagged"
        let handles = state.withLock { s in rules.map { counter(Name.shieldVerdicts, [("action", action), ("rule", $0)], &s) } }
        for c in handles { c.increment() }
    }

    /// Batch API (issue 17): a batch line finished (`outcome` ok or error).
    public func batchLine(ok: Bool) {
        guard enabled else { return }
        state.withLock { s in counter(Name.batchLines, [("outcome", ok ? "ok" : "error")], &s) }.increment()
    }

    /// Batch API: a batch reached its end state (completed, cancelled, expired, failed).
    public func batchFinished(status: String) {
        guard enabled else { return }
        state.withLock { s in counter(Name.batches, [("status", status)], &s) }.increment()
    }

    /// A request waited in the gateway's queue for a free backend (dispatched or timed out).
    public func queueWait(model: String, waited: Duration) {
        guard enabled else { return }
        let m = modelLabel(model)
        let t = state.withLock { s in timer(Name.queueWait, [("model", m)], &s) }
        t.recordNanoseconds(Self.nanos(waited))
    }

    /// One group commit of the ledger (its rows and the audit entries queued before them).
    public func ledgerCommit(rows: Int, took: Duration) {
        guard enabled else { return }
        let t = state.withLock { s in timer(Name.ledgerCommit, [], &s) }
        t.recordNanoseconds(Self.nanos(took))
    }

    // MARK: Sampled at scrape time

    public func setQueueDepth(model: String, _ n: Int) { setGauge(Name.queueDepth, [("model", modelLabel(model))], Double(n)) }

    /// `breakerState`: 0 closed, 1 half-open, 2 open.
    public func setBackend(_ name: String, up: Bool, breakerState: Int, inFlight: Int) {
        let b = backendLabel(name)
        setGauge(Name.backendUp, [("backend", b)], up ? 1 : 0)
        setGauge(Name.backendBreakerState, [("backend", b)], Double(breakerState))
        setGauge(Name.backendInFlight, [("backend", b)], Double(inFlight))
    }

    /// Brings a monotonic count kept elsewhere (rows written by a batch writer) into its counter.
    public func syncCount(_ name: String, to total: Int) {
        guard enabled else { return }
        let (c, delta) = state.withLock { s -> (CoreMetrics.Counter, Int) in
            let c = counter(name, [], &s)
            let delta = total - s.synced[name, default: 0]
            if delta > 0 { s.synced[name] = total }
            return (c, delta)
        }
        if delta > 0 { c.increment(by: delta) }  // created at 0 on the first call, so it is exposed from the start
    }

    private func setGauge(_ name: String, _ labels: [(String, String)], _ value: Double) {
        guard enabled else { return }
        let g = state.withLock { s -> CoreMetrics.Gauge in
            let key = Self.key(name, labels)
            if let g = s.gauges[key] { return g }
            let g = CoreMetrics.Gauge(label: name, dimensions: labels, factory: factory)
            s.gauges[key] = g
            return g
        }
        g.record(value)
    }

    private func counter(_ name: String, _ labels: [(String, String)], _ s: inout State) -> CoreMetrics.Counter {
        let key = Self.key(name, labels)
        if let c = s.counters[key] { return c }
        let c = CoreMetrics.Counter(label: name, dimensions: labels, factory: factory)
        s.counters[key] = c
        return c
    }

    private func timer(_ name: String, _ labels: [(String, String)], _ s: inout State) -> CoreMetrics.Timer {
        let key = Self.key(name, labels)
        if let t = s.timers[key] { return t }
        let t = CoreMetrics.Timer(label: name, dimensions: labels, factory: factory)
        s.timers[key] = t
        return t
    }

    static func key(_ name: String, _ labels: [(String, String)]) -> String {
        labels.reduce(name) { $0 + "\u{1F}" + $1.0 + "=" + $1.1 }
    }

    static func nanos(_ d: Duration) -> Int64 {
        let c = d.components
        return c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000
    }

    /// Makes this registry the process's global `MetricsSystem` (for libraries that record
    /// through it, like Hummingbird's `MetricsMiddleware`). Once per process: only the server's
    /// `run` calls it; tests never depend on it.
    public func bootstrapGlobalSystem() {
        guard enabled else { return }
        MetricsSystem.bootstrap(factory)
    }

    // MARK: Exposition

    /// The Prometheus text exposition (format 0.0.4) of everything recorded.
    public func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        return buffer
    }

    /// The content type of ``exposition()``.
    public static let contentType = "text/plain; version=0.0.4"
}
