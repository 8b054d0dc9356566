import Foundation
import Tenancy

/// `rollups:` in the config: how often per-minute rollups are computed and how long they are kept.
public struct RollupConfig: Sendable, Equatable {
    /// How often the rollup pass runs.
    public var intervalSeconds = 30
    /// A minute is rolled up once it ended this long ago (rows of requests still running then are
    /// counted later: a late ledger row marks its minute dirty again).
    public var lagSeconds = 5
    /// Minute rows are kept this long (then only hour rows remain).
    public var minuteRetentionHours = 48
    /// Hour rows are kept this long.
    public var retentionDays = 400

    public init() {}
}

/// `alerts:` in the config: the evaluator's period and window, the operator's webhook and the
/// configured rules.
public struct AlertsConfig: Sendable, Equatable {
    /// One evaluation per period; a rule's `for_periods` counts consecutive periods.
    public var evaluationIntervalSeconds = 60
    /// Latency, TTFT and error rate are computed over the ledger rows of the last window.
    public var windowSeconds = 60
    /// Where global rules' incidents go (the operator's own URL: not subject to the tenants'
    /// webhook destination policy), and the secret that signs them.
    public var operatorWebhookURL: String?
    public var operatorWebhookSecret: String?
    /// Delivery attempts of one webhook (backoff 1 s, 2 s, 4 s, … between them, on the platform clock).
    public var webhookAttempts = 5
    public var rules: [AlertRule] = []

    public init() {}
}

extension GatewayConfig {
    static func parseRollups(_ r: inout Reader, into config: inout GatewayConfig) throws {
        guard var m = try r.mapping("rollups") else { return }
        if let n = try m.int("interval_seconds", min: 1) { config.rollups.intervalSeconds = n }
        if let n = try m.int("lag_seconds", min: 0) { config.rollups.lagSeconds = n }
        if let n = try m.int("minute_retention_hours", min: 2) { config.rollups.minuteRetentionHours = n }
        if let n = try m.int("retention_days", min: 1) { config.rollups.retentionDays = n }
        try m.finish()
        if config.rollups.retentionDays * 24 < config.rollups.minuteRetentionHours {
            throw ConfigError(field: "rollups.retention_days", message: "must cover at least minute_retention_hours (\(config.rollups.minuteRetentionHours) h)")
        }
    }

    static func parseAlerts(_ r: inout Reader, into config: inout GatewayConfig) throws {
        guard var m = try r.mapping("alerts") else { return }
        if let n = try m.int("evaluation_interval_seconds", min: 1) { config.alerts.evaluationIntervalSeconds = n }
        if let n = try m.int("window_seconds", min: 1) { config.alerts.windowSeconds = n }
        if let n = try m.int("webhook_attempts", min: 1) { config.alerts.webhookAttempts = min(n, 20) }
        if let url = try m.string("operator_webhook_url") {
            guard let u = URLComponents(string: url), let scheme = u.scheme?.lowercased(), ["http", "https"].contains(scheme), u.host?.isEmpty == false else {
                throw ConfigError(field: "alerts.operator_webhook_url", message: "must be an http(s) URL, e.g. https://ops.example.com/llmaas")
            }
            config.alerts.operatorWebhookURL = url
        }
        if let secret = try m.string("operator_webhook_secret") {
            guard secret.utf8.count >= 16 else {
                throw ConfigError(field: "alerts.operator_webhook_secret", message: "must be at least 16 characters (receivers verify the HMAC with it)")
            }
            config.alerts.operatorWebhookSecret = secret
        }
        if config.alerts.operatorWebhookURL != nil && config.alerts.operatorWebhookSecret == nil {
            throw ConfigError(field: "alerts.operator_webhook_secret", message: "required with operator_webhook_url: every webhook is signed")
        }
        if let list = try m.list("rules") {
            var ids = Set<String>()
            for (i, item) in list.enumerated() {
                let p = "alerts.rules[\(i)]"
                guard let mm = item as? [String: Any] else { throw ConfigError(field: p, message: "must be a mapping") }
                var e = Reader(mm, path: p + ".")
                guard let name = try e.string("name"), !name.isEmpty, name.count <= 100 else {
                    throw ConfigError(field: p + ".name", message: "required: a unique name of 1-100 characters (the rule's id is cfg-<name>)")
                }
                guard ids.insert(name).inserted else { throw ConfigError(field: p + ".name", message: "'\(name)' names another rule") }
                guard let kindText = try e.string("kind") else {
                    throw ConfigError(field: p + ".kind", message: "required (one of: \(AlertRule.Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                e.used.insert("threshold"); e.used.insert("resolve_threshold")
                func number(_ key: String) throws -> Double? {
                    guard let v = mm[key], !(v is NSNull) else { return nil }
                    guard let d = (v as? Double) ?? (v as? Int).map(Double.init) else { throw ConfigError(field: p + "." + key, message: "must be a number") }
                    return d
                }
                let tenant = try e.string("tenant")
                let model = try e.string("model")
                let backend = try e.string("backend")
                let forPeriods = try e.int("for_periods", min: 1)
                let threshold = try number("threshold")
                let resolve = try number("resolve_threshold")
                try e.finish()
                do {
                    let rule = try AlertRule.make(id: "cfg-\(name)", tenantID: nil, tenantName: tenant, name: name, kindText: kindText, model: model,
                                                  backend: backend, threshold: threshold, resolveThreshold: resolve, forPeriods: forPeriods,
                                                  createdAt: 0, fromConfig: true)
                    config.alerts.rules.append(rule)
                } catch let error as AlertRule.Invalid {
                    throw ConfigError(field: p + "." + error.param, message: error.message)
                } catch { throw error }
            }
        }
        try m.finish()
    }
}
