import Foundation
import Logging
import Observability
import Quotas
import OpenAIWire
import ServiceLifecycle
import Storage
import Synchronization
import Tenancy

/// An alert rule (SPEC S1.4 "notifications at performance thresholds"), from the config
/// (`alerts.rules`, id `cfg-<name>`) or the admin API (id `alr_…`). Global (no tenant: the
/// operator's, notified on `alerts.operator_webhook_url`) or for one tenant (notified on the
/// tenant's webhook).
public struct AlertRule: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// p95 of the request latency of a model over the window, in ms.
        case latencyP95 = "latency_p95"
        /// p95 of the time to first token of a model over the window, in ms.
        case ttftP95 = "ttft_p95"
        /// Share of requests answered 5xx over the window, in percent.
        case errorRate = "error_rate"
        /// A backend's circuit breaker is open or half-open (operator only).
        case backendDown = "backend_down"
        /// Requests waiting for a free backend, at least `threshold` (operator only).
        case queueSaturated = "queue_saturated"
        /// A tenant's month spend reached `threshold` % of its tier's monthly cap.
        case budget
        /// A prepaid tenant's credit balance is below `threshold` euros.
        case creditLow = "credit_low"

        public var unit: String {
            switch self {
            case .latencyP95, .ttftP95: return "ms"
            case .errorRate, .budget: return "%"
            case .backendDown: return "down"
            case .queueSaturated: return "requests"
            case .creditLow: return "EUR"
            }
        }

        /// About the fleet, not a tenant: only the operator's rules watch them.
        public var operatorOnly: Bool { self == .backendDown || self == .queueSaturated }
        /// About one tenant's account: never shown on the public status page.
        public var isTenantAccount: Bool { self == .budget || self == .creditLow }
        /// Consecutive periods before firing (and before resolving) when a rule sets none.
        var defaultPeriods: Int {
            switch self {
            case .latencyP95, .ttftP95, .errorRate, .queueSaturated: return 3
            case .backendDown: return 2
            case .budget, .creditLow: return 1
            }
        }
    }

    public var id: String
    /// The tenant the rule watches (nil: global).
    public var tenantID: String?
    /// A config rule names its tenant; the id is looked up when rules are listed.
    public var tenantName: String?
    public var name: String?
    public var kind: Kind
    /// latency/TTFT/error rate: one model, or nil for every model (one incident per model).
    public var model: String?
    /// backend_down: one backend, or nil for every backend.
    public var backend: String?
    /// Fires above it (below it for credit_low); unit by kind.
    public var threshold: Double
    /// Resolves at or below it (at or above for credit_low); nil: the threshold itself.
    public var resolveThreshold: Double?
    /// Consecutive evaluation periods over the threshold before firing, and under the resolve
    /// threshold before resolving (hysteresis).
    public var forPeriods: Int
    public var createdAt: Int64
    public var fromConfig: Bool

    public var isGlobal: Bool { tenantID == nil && tenantName == nil }

    /// A refused rule: which field and why.
    public struct Invalid: Error, Equatable {
        public let param: String
        public let message: String
    }

    /// Checks and builds a rule (config and admin API share it).
    public static func make(id: String, tenantID: String?, tenantName: String? = nil, name: String?, kindText: String, model: String?,
                            backend: String?, threshold: Double?, resolveThreshold: Double?, forPeriods: Int?, createdAt: Int64,
                            fromConfig: Bool = false) throws -> AlertRule {
        guard let kind = Kind(rawValue: kindText) else {
            throw Invalid(param: "kind", message: "'\(kindText.prefix(64))' is not an alert kind (use one of: \(Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        if let name, name.isEmpty || name.unicodeScalars.count > 100 { throw Invalid(param: "name", message: "a name of 1-100 characters") }
        if kind.operatorOnly && (tenantID != nil || tenantName != nil) {
            throw Invalid(param: "tenant", message: "\(kind.rawValue) watches the fleet: only global (operator) rules may use it")
        }
        if let model {
            guard [.latencyP95, .ttftP95, .errorRate].contains(kind) else { throw Invalid(param: "model", message: "only latency_p95, ttft_p95 and error_rate rules name a model") }
            guard !model.isEmpty, model.unicodeScalars.count <= 200 else { throw Invalid(param: "model", message: "a model id of 1-200 characters") }
        }
        if let backend {
            guard kind == .backendDown else { throw Invalid(param: "backend", message: "only backend_down rules name a backend") }
            guard !backend.isEmpty, backend.unicodeScalars.count <= 200 else { throw Invalid(param: "backend", message: "a backend name of 1-200 characters") }
        }
        let t: Double
        switch kind {
        case .backendDown:
            if threshold != nil || resolveThreshold != nil {
                throw Invalid(param: threshold != nil ? "threshold" : "resolve_threshold", message: "backend_down takes no threshold (it fires while the backend's breaker is open)")
            }
            t = 1
        default:
            guard let threshold else { throw Invalid(param: "threshold", message: "required: \(Self.thresholdHelp(kind))") }
            guard threshold.isFinite, Self.thresholdRange(kind).contains(threshold) else { throw Invalid(param: "threshold", message: Self.thresholdHelp(kind)) }
            t = threshold
        }
        if let r = resolveThreshold {
            guard r.isFinite, Self.thresholdRange(kind).contains(r) || (kind == .errorRate && r == 0) else {
                throw Invalid(param: "resolve_threshold", message: Self.thresholdHelp(kind))
            }
            if kind == .creditLow ? r < t : r > t {
                throw Invalid(param: "resolve_threshold", message: kind == .creditLow
                              ? "must be at least the threshold (\(AlertRule.number(t)))" : "must be at most the threshold (\(AlertRule.number(t)))")
            }
        }
        let periods = forPeriods ?? kind.defaultPeriods
        guard (1...1440).contains(periods) else { throw Invalid(param: "for_periods", message: "a whole number of evaluation periods between 1 and 1440") }
        return AlertRule(id: id, tenantID: tenantID, tenantName: tenantName, name: name, kind: kind, model: model, backend: backend, threshold: t,
                         resolveThreshold: kind == .backendDown ? 0 : resolveThreshold, forPeriods: periods, createdAt: createdAt, fromConfig: fromConfig)
    }

    static func thresholdRange(_ kind: Kind) -> ClosedRange<Double> {
        switch kind {
        case .latencyP95, .ttftP95: return 1...3_600_000
        case .errorRate: return 0...99.999
        case .backendDown: return 0...1
        case .queueSaturated: return 1...1_000_000
        case .budget: return 1...1000
        case .creditLow: return 0...1_000_000_000
        }
    }

    static func thresholdHelp(_ kind: Kind) -> String {
        switch kind {
        case .latencyP95, .ttftP95: return "a number of milliseconds between 1 and 3600000"
        case .errorRate: return "a percentage of 5xx answers between 0 and 99.999 (fires above it)"
        case .backendDown: return "no threshold"
        case .queueSaturated: return "a number of queued requests between 1 and 1000000"
        case .budget: return "a percentage of the tier's monthly cap between 1 and 1000 (e.g. 80 or 100)"
        case .creditLow: return "a number of euros of remaining credit (fires below it), at least 0"
        }
    }

    /// Over the threshold (at or over it for budget and backend_down; under it for credit_low).
    public func isBad(_ v: Double) -> Bool {
        switch kind {
        case .creditLow: return v < threshold
        case .budget, .backendDown, .queueSaturated: return v >= threshold
        default: return v > threshold
        }
    }

    /// Back under the resolve threshold. A value neither bad nor good (between the two
    /// thresholds) keeps the current state.
    public func isGood(_ v: Double) -> Bool {
        let r = resolveThreshold ?? threshold
        switch kind {
        case .creditLow: return v >= r
        case .budget, .backendDown, .queueSaturated: return resolveThreshold == nil ? v < r : v <= r
        default: return v <= r
        }
    }

    /// A number as people write it: 900, 12.5.
    static func number(_ d: Double) -> String {
        d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
    }

    /// A readable sentence about a subject's value.
    func describe(_ subject: String, value: Double?) -> String {
        let v = value.map { AlertRule.number(($0 * 100).rounded() / 100) } ?? "no data"
        let t = AlertRule.number(threshold)
        switch kind {
        case .latencyP95: return "p95 latency of \(subject) is \(v) ms (threshold \(t) ms)"
        case .ttftP95: return "p95 time to first token of \(subject) is \(v) ms (threshold \(t) ms)"
        case .errorRate: return "5xx error rate of \(subject) is \(v) % (threshold \(t) %)"
        case .backendDown: return "backend \(subject) is down (circuit breaker open)"
        case .queueSaturated: return "\(v) requests wait for a backend (threshold \(t))"
        case .budget: return "month spend of \(subject) is \(v) % of its cap (threshold \(t) %)"
        case .creditLow: return "credit of \(subject) is \(v) EUR (threshold \(t) EUR)"
        }
    }

    var record: AlertRuleRecord {
        AlertRuleRecord(id: id, tenantID: tenantID, name: name, kind: kind.rawValue, model: model, backend: backend, threshold: threshold,
                        resolveThreshold: resolveThreshold, forPeriods: forPeriods, createdAt: createdAt)
    }

    init(id: String, tenantID: String?, tenantName: String?, name: String?, kind: Kind, model: String?, backend: String?, threshold: Double,
         resolveThreshold: Double?, forPeriods: Int, createdAt: Int64, fromConfig: Bool) {
        self.id = id; self.tenantID = tenantID; self.tenantName = tenantName; self.name = name; self.kind = kind; self.model = model
        self.backend = backend; self.threshold = threshold; self.resolveThreshold = resolveThreshold; self.forPeriods = forPeriods
        self.createdAt = createdAt; self.fromConfig = fromConfig
    }

    init?(record r: AlertRuleRecord) {
        guard let kind = Kind(rawValue: r.kind) else { return nil }
        self.init(id: r.id, tenantID: r.tenantID, tenantName: nil, name: r.name, kind: kind, model: r.model, backend: r.backend,
                  threshold: r.threshold, resolveThreshold: r.resolveThreshold, forPeriods: r.forPeriods, createdAt: r.createdAt, fromConfig: false)
    }
}

/// Consecutive bad and good periods per (rule, subject): the hysteresis that makes an incident
/// fire once and resolve once. Pure state, no I/O (unit-tested on its own).
public struct AlertTracker: Sendable {
    public struct Key: Hashable, Sendable {
        public let rule: String
        public let subject: String
        public init(rule: String, subject: String) { self.rule = rule; self.subject = subject }
    }

    public enum Observation: Sendable, Equatable { case bad, good, neutral }
    public enum Transition: Sendable, Equatable { case fire, resolve }

    struct Counter { var bad = 0; var good = 0 }
    private var counters: [Key: Counter] = [:]
    /// Keys with an active incident.
    public private(set) var active: Set<Key> = []

    public init(active: Set<Key> = []) { self.active = active }

    /// One period's observation of a key: fires after `periods` bad periods in a row while not
    /// active, resolves after `periods` good ones in a row while active; a neutral period (between
    /// the thresholds) restarts both counts.
    public mutating func observe(_ key: Key, _ o: Observation, periods: Int) -> Transition? {
        var c = counters[key] ?? Counter()
        defer { if c.bad == 0 && c.good == 0 { counters.removeValue(forKey: key) } else { counters[key] = c } }
        switch o {
        case .bad:
            c.good = 0
            c.bad += 1
            if !active.contains(key) && c.bad >= periods {
                active.insert(key)
                c.bad = 0
                return .fire
            }
        case .good:
            c.bad = 0
            c.good += 1
            if active.contains(key) && c.good >= periods {
                active.remove(key)
                c.good = 0
                return .resolve
            }
            if !active.contains(key) { c.good = 0 }
        case .neutral:
            c = Counter()
        }
        return nil
    }

    /// Keys being counted or active (a key not observed in a period counts as "no data").
    public var tracked: Set<Key> { active.union(counters.keys) }

    /// The database is the truth about which incidents are active (another evaluator, a failed
    /// step): counters stay, the active set follows it.
    public mutating func reconcile(active keys: Set<Key>) { active = keys }

    /// Forget a key (its rule is gone).
    public mutating func drop(_ key: Key) {
        counters.removeValue(forKey: key)
        active.remove(key)
    }
}

/// What an incident's webhook says: fired or resolved.
public struct AlertNotification: Sendable, Equatable {
    public enum Event: String, Sendable { case fired = "alert.fired", resolved = "alert.resolved" }
    public let event: Event
    public let incident: IncidentRecord
}

/// The platform's alerts, for the admin API and the console: rules (config + API), incidents.
public struct Alerting: Sendable {
    public let platform: Platform

    public init(platform: Platform) { self.platform = platform }

    /// Rules a caller may see: all (`tenantID` nil: the operator), or one tenant's own (its API
    /// rules and config rules naming it). Config rules naming a tenant get its id here.
    public func rules(tenantID: String? = nil) async throws -> [AlertRule] {
        var out: [AlertRule] = []
        for var rule in platform.config.alerts.rules {
            if let name = rule.tenantName {
                guard let t = try await platform.storage.tenant(named: name) else { continue }  // not created yet
                rule.tenantID = t.id
            }
            if tenantID == nil || rule.tenantID == tenantID { out.append(rule) }
        }
        out += try await platform.storage.alertRules(tenantID: tenantID).compactMap(AlertRule.init(record:))
        return out
    }

    /// Rules a tenant may create through the API (each is evaluated every period).
    public static let maxRulesPerTenant = 100
    /// Global rules the operator may create through the API.
    public static let maxGlobalRules = 1000

    /// Stores a rule made with ``AlertRule/make``; refuses one over the limits with `TenancyError.exists`.
    public func create(_ rule: AlertRule) async throws {
        let existing = try await platform.storage.alertRules(tenantID: rule.tenantID).filter { $0.tenantID == rule.tenantID }.count
        let limit = rule.tenantID == nil ? Self.maxGlobalRules : Self.maxRulesPerTenant
        guard existing < limit else {
            throw TenancyError.exists("\(rule.tenantID == nil ? "there are" : "this tenant has") \(existing) alert rules already (at most \(limit)); delete one first")
        }
        try await platform.storage.insertAlertRule(rule.record)
    }

    /// Deletes an API rule (config rules are changed in the config). Its active incidents resolve
    /// at the next evaluation.
    public func delete(id: String) async throws {
        try await platform.storage.deleteAlertRule(id: id)
    }

    /// Active incidents: all (nil), or one tenant's.
    public func activeIncidents(tenantID: String? = nil) async throws -> [IncidentRecord] {
        try await platform.storage.activeIncidents(tenantID.map { .tenant($0) } ?? .all)
    }

    /// Incidents newest first, active and resolved.
    public func history(tenantID: String? = nil, limit: Int = 200) async throws -> [IncidentRecord] {
        try await platform.storage.incidentHistory(tenantID.map { .tenant($0) } ?? .all, limit: limit)
    }

    /// What the public status page shows: active global incidents about the fleet and models,
    /// never about a tenant's account.
    public func publicIncidents() async throws -> [IncidentRecord] {
        try await platform.storage.activeIncidents(.global).filter { AlertRule.Kind(rawValue: $0.kind).map { !$0.isTenantAccount } ?? false }
    }

    public static func ruleJSON(_ r: AlertRule) -> JSONValue {
        .object([
            ("id", .string(r.id)), ("object", "alert_rule"), ("name", r.name.map { .string($0) } ?? .null), ("kind", .string(r.kind.rawValue)),
            ("tenant_id", r.tenantID.map { .string($0) } ?? .null), ("model", r.model.map { .string($0) } ?? .null),
            ("backend", r.backend.map { .string($0) } ?? .null), ("threshold", .double(r.threshold)),
            ("resolve_threshold", r.resolveThreshold.map { .double($0) } ?? .null), ("for_periods", .int(r.forPeriods)),
            ("unit", .string(r.kind.unit)), ("source", .string(r.fromConfig ? "config" : "api")), ("created_at", .int(Int(r.createdAt))),
        ])
    }

    public static func incidentJSON(_ i: IncidentRecord) -> JSONValue {
        func num(_ d: Double?) -> JSONValue { d.map { .double(($0 * 1000).rounded() / 1000) } ?? .null }
        return .object([
            ("id", .string(i.id)), ("object", "incident"), ("rule_id", .string(i.ruleID)), ("tenant_id", i.tenantID.map { .string($0) } ?? .null),
            ("kind", .string(i.kind)), ("subject", .string(i.subject)), ("model", i.model.map { .string($0) } ?? .null),
            ("backend", i.backend.map { .string($0) } ?? .null), ("state", .string(i.isActive ? "active" : "resolved")),
            ("threshold", num(i.threshold)), ("value", num(i.value)), ("peak", num(i.peak)), ("message", .string(i.message)),
            ("started_at", .int(Int(i.startedAt))), ("resolved_at", i.resolvedAt.map { .int(Int($0)) } ?? .null),
            ("resolved_value", num(i.resolvedValue)),
        ])
    }
}

/// Evaluates every rule once per period on the platform's clock (`alerts.evaluation_interval_seconds`):
/// latency, TTFT and error rate from the ledger rows of the last `alerts.window_seconds`, backends
/// and the queue from the fleet, budgets and credit from billing. Incidents are persisted (an
/// active one survives a restart and is not fired again), written to the audit log and notified
/// (signed webhooks). Tests call ``step()`` on a ``ManualClock``.
public final class AlertEvaluator: Service, Sendable {
    let platform: Platform
    let notify: @Sendable (AlertNotification) async -> Void
    private let tracker = Mutex<AlertTracker?>(nil)

    /// `notify` defaults to the signed webhooks (tenant's or operator's).
    public init(platform: Platform, notify: (@Sendable (AlertNotification) async -> Void)? = nil) {
        self.platform = platform
        self.notify = notify ?? { n in Webhooks(platform: platform).alert(n) }
    }

    public func run() async throws {
        let period = Int64(platform.config.alerts.evaluationIntervalSeconds) * 1000
        await withGracefulShutdownHandler {
            var next = platform.now() + period
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                let deadline = next
                do { try await cancelWhenGracefulShutdown { try await self.platform.clock.sleep(untilMs: deadline) } } catch { break }
                _ = await step()
                next = max(next + period, platform.now())
            }
        } onGracefulShutdown: {}
    }

    /// One evaluation at the clock's now; returns the notifications it sent (tests).
    @discardableResult
    public func step() async -> [AlertNotification] {
        do { return try await evaluate() } catch {
            platform.logger.error("alert evaluation failed", metadata: ["error": "\(error)"])
            return []
        }
    }

    struct Observed {
        var value: Double?
        var model: String?
        var backend: String?
    }

    func evaluate() async throws -> [AlertNotification] {
        let now = platform.now()
        let storage = platform.storage
        let rules = try await Alerting(platform: platform).rules()
        let open = try await storage.activeIncidents(.all)
        var openByKey: [AlertTracker.Key: IncidentRecord] = [:]
        for i in open { openByKey[AlertTracker.Key(rule: i.ruleID, subject: i.subject)] = i }
        var t = tracker.withLock { $0 } ?? AlertTracker()
        t.reconcile(active: Set(openByKey.keys))

        let windowMs = Int64(platform.config.alerts.windowSeconds) * 1000
        let needsLedger = rules.contains { [.latencyP95, .ttftP95, .errorRate].contains($0.kind) }
        let window = needsLedger ? try await storage.ledger(tenantID: nil, from: now - windowMs, to: now) : []
        let tenants = rules.contains { $0.kind.isTenantAccount } ? try await storage.tenants() : []

        var sent: [AlertNotification] = []
        var seen = Set<AlertTracker.Key>()
        for rule in rules {
            let observed = try await observe(rule, window: window, tenants: tenants, now: now)
            var keys = Set(observed.keys.map { AlertTracker.Key(rule: rule.id, subject: $0) })
            keys.formUnion(t.tracked.filter { $0.rule == rule.id })
            for key in keys.sorted(by: { $0.subject < $1.subject }) {
                seen.insert(key)
                let o = observed[key.subject] ?? Observed(value: nil)
                // No data (no request in the window, a tenant gone) counts as good.
                let obs: AlertTracker.Observation = o.value.map { rule.isBad($0) ? .bad : rule.isGood($0) ? .good : .neutral } ?? .good
                let transition = t.observe(key, obs, periods: rule.forPeriods)
                if transition == .fire {
                    let incident = IncidentRecord(
                        id: "inc_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20), ruleID: rule.id,
                        tenantID: rule.tenantID, kind: rule.kind.rawValue, subject: key.subject, model: o.model, backend: o.backend,
                        threshold: rule.threshold, value: o.value, peak: o.value, message: rule.describe(Self.label(key.subject), value: o.value),
                        startedAt: now)
                    try await storage.insertIncident(incident)
                    openByKey[key] = incident
                    sent.append(AlertNotification(event: .fired, incident: incident))
                } else if let current = openByKey[key] {
                    var incident = current
                    if transition == .resolve {
                        incident.resolvedAt = now
                        incident.resolvedValue = o.value
                        try await storage.updateIncident(incident)
                        openByKey[key] = nil
                        sent.append(AlertNotification(event: .resolved, incident: incident))
                    } else if let v = o.value, rule.isBad(v), incident.peak.map({ rule.kind == .creditLow ? v < $0 : v > $0 }) ?? true {
                        incident.peak = v
                        try await storage.updateIncident(incident)
                        openByKey[key] = incident
                    }
                }
            }
        }
        // Incidents of deleted rules resolve now (nothing watches them any more).
        for (key, incident) in openByKey where !seen.contains(key) && !rules.contains(where: { $0.id == key.rule }) {
            var resolved = incident
            resolved.resolvedAt = now
            try await storage.updateIncident(resolved)
            t.drop(key)
            sent.append(AlertNotification(event: .resolved, incident: resolved))
        }
        tracker.withLock { $0 = t }
        for n in sent {
            let i = n.incident
            platform.audit.record(AuditEvent(time: now, actor: "system", tenantID: i.tenantID, action: n.event.rawValue, target: i.id,
                                             outcome: n.event == .fired ? i.message : "resolved: \(i.message)"))
            platform.logger.notice("\(n.event.rawValue): \(i.message)", metadata: ["incident": "\(i.id)", "rule": "\(i.ruleID)"])
            await notify(n)
        }
        return sent
    }

    /// `model:x` → `model x` in messages.
    static func label(_ subject: String) -> String {
        guard let colon = subject.firstIndex(of: ":") else { return subject }
        return subject[..<colon] + " " + subject[subject.index(after: colon)...]
    }

    /// The value of each subject a rule watches, now.
    func observe(_ rule: AlertRule, window: [RequestRecord], tenants: [TenantRecord], now: Int64) async throws -> [String: Observed] {
        switch rule.kind {
        case .latencyP95, .ttftP95, .errorRate:
            var byModel: [String: [RequestRecord]] = [:]
            for r in window where (rule.tenantID == nil || r.tenantID == rule.tenantID) && (rule.model == nil || r.model == rule.model) && r.model != "-" {
                byModel[r.model, default: []].append(r)
            }
            var out: [String: Observed] = [:]
            for (model, rows) in byModel {
                let value: Double?
                switch rule.kind {
                case .latencyP95: value = Self.percentile(rows.map { Double($0.latencyMs) }, 0.95)
                case .ttftP95: value = Self.percentile(rows.compactMap { $0.ttftMs.map(Double.init) }, 0.95)
                default: value = Double(rows.filter { $0.status >= 500 }.count) * 100 / Double(rows.count)
                }
                if let value { out["model:\(model)"] = Observed(value: value, model: model) }
            }
            return out
        case .backendDown:
            var out: [String: Observed] = [:]
            for (name, state) in platform.fleet.backendStates where rule.backend == nil || rule.backend == name {
                // Half-open is still down (a cooldown passed, no probe succeeded yet): only a closed
                // breaker (healthy or degraded) counts as up, so a dead backend's open/half-open
                // cycle does not break the count.
                out["backend:\(name)"] = Observed(value: state == "open" || state == "half_open" ? 1 : 0, backend: name)
            }
            return out
        case .queueSaturated:
            let queued = platform.fleet.backendsReport()["queued"]?.intValue ?? 0
            return ["queue": Observed(value: Double(queued))]
        case .budget, .creditLow:
            var out: [String: Observed] = [:]
            let monthStart = UTCMonth.monthStartMs(containing: now)
            for t in tenants where (rule.tenantID == nil || t.id == rule.tenantID) && t.disabledAt == nil {
                let tier = platform.billing.tier(t.tier)
                if rule.kind == .budget {
                    guard let cap = tier.monthlyCapNano, cap > 0 else { continue }
                    let spent = try await platform.storage.spend(tenantID: t.id, from: monthStart, to: Int64.max)
                    out["tenant:\(t.id)"] = Observed(value: Double(spent) * 100 / Double(cap))
                } else {
                    guard tier.prepaid else { continue }
                    let balance = try await platform.administration.balance(tenantID: t.id)
                    out["tenant:\(t.id)"] = Observed(value: Double(balance) / 1e9)
                }
            }
            return out
        }
    }

    /// Nearest-rank percentile of raw values (nil when empty).
    static func percentile(_ values: [Double], _ q: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let rank = max(1, Int((q * Double(sorted.count)).rounded(.up)))
        return sorted[min(rank, sorted.count) - 1]
    }
}
