import Foundation
import SQLKit

/// An alert rule created through the admin API (rules from the configuration are not stored).
public struct AlertRuleRecord: Codable, Sendable, Equatable {
    public var id: String
    /// nil: a global rule (the operator's); else the tenant it watches and notifies.
    public var tenantID: String?
    public var name: String?
    public var kind: String
    public var model: String?
    public var backend: String?
    public var threshold: Double
    public var resolveThreshold: Double?
    public var forPeriods: Int
    public var createdAt: Int64

    public init(id: String, tenantID: String?, name: String?, kind: String, model: String?, backend: String?, threshold: Double,
                resolveThreshold: Double?, forPeriods: Int, createdAt: Int64) {
        self.id = id; self.tenantID = tenantID; self.name = name; self.kind = kind; self.model = model; self.backend = backend
        self.threshold = threshold; self.resolveThreshold = resolveThreshold; self.forPeriods = forPeriods; self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id, name, kind, model, backend, threshold
        case tenantID = "tenant_id"
        case resolveThreshold = "resolve_threshold"
        case forPeriods = "for_periods"
        case createdAt = "created_at"
    }
}

/// One incident: a rule's subject (a model, a backend, a tenant's budget…) went bad at
/// `startedAt` and, once resolved, came back at `resolvedAt`.
public struct IncidentRecord: Codable, Sendable, Equatable {
    public var id: String
    public var ruleID: String
    public var tenantID: String?
    public var kind: String
    /// What the rule watched: `model:<id>`, `backend:<name>`, `tenant:<id>`, `queue`.
    public var subject: String
    public var model: String?
    public var backend: String?
    public var threshold: Double
    /// The value that fired it, and the worst value seen while it was active.
    public var value: Double?
    public var peak: Double?
    public var message: String
    public var startedAt: Int64
    public var resolvedAt: Int64?
    public var resolvedValue: Double?

    public init(id: String, ruleID: String, tenantID: String?, kind: String, subject: String, model: String?, backend: String?,
                threshold: Double, value: Double?, peak: Double?, message: String, startedAt: Int64, resolvedAt: Int64? = nil,
                resolvedValue: Double? = nil) {
        self.id = id; self.ruleID = ruleID; self.tenantID = tenantID; self.kind = kind; self.subject = subject; self.model = model
        self.backend = backend; self.threshold = threshold; self.value = value; self.peak = peak; self.message = message
        self.startedAt = startedAt; self.resolvedAt = resolvedAt; self.resolvedValue = resolvedValue
    }

    public var isActive: Bool { resolvedAt == nil }

    enum CodingKeys: String, CodingKey {
        case id, kind, subject, model, backend, threshold, value, peak, message
        case ruleID = "rule_id"
        case tenantID = "tenant_id"
        case startedAt = "started_at"
        case resolvedAt = "resolved_at"
        case resolvedValue = "resolved_value"
    }
}

/// Which incidents a query returns.
public enum IncidentScope: Sendable, Equatable {
    /// Every incident (the operator).
    case all
    /// Global incidents only (tenant_id is null): the public status page.
    case global
    /// One tenant's incidents.
    case tenant(String)
}

extension Storage {
    // MARK: Alert rules

    public func insertAlertRule(_ rule: AlertRuleRecord) async throws {
        try await db.insert(into: "alert_rules").model(rule, nilEncodingStrategy: .asNil).run()
    }

    /// Rules of one tenant, or all when nil, oldest first.
    public func alertRules(tenantID: String? = nil) async throws -> [AlertRuleRecord] {
        var q = db.select().columns("*").from("alert_rules")
        if let tenantID { q = q.where("tenant_id", .equal, SQLBind(tenantID)) }
        return try await q.orderBy("created_at").orderBy("id").all(decoding: AlertRuleRecord.self)
    }

    public func alertRule(id: String) async throws -> AlertRuleRecord? {
        try await db.select().columns("*").from("alert_rules").where("id", .equal, SQLBind(id)).first(decoding: AlertRuleRecord.self)
    }

    public func deleteAlertRule(id: String) async throws {
        try await db.delete(from: "alert_rules").where("id", .equal, SQLBind(id)).run()
    }

    // MARK: Incidents

    public func insertIncident(_ incident: IncidentRecord) async throws {
        try await db.insert(into: "incidents").model(incident, nilEncodingStrategy: .asNil).run()
    }

    public func updateIncident(_ incident: IncidentRecord) async throws {
        try await db.update("incidents").set(model: incident, nilEncodingStrategy: .asNil).where("id", .equal, SQLBind(incident.id)).run()
    }

    public func incident(id: String) async throws -> IncidentRecord? {
        try await db.select().columns("*").from("incidents").where("id", .equal, SQLBind(id)).first(decoding: IncidentRecord.self)
    }

    /// Active incidents (not resolved), oldest first.
    public func activeIncidents(_ scope: IncidentScope = .all) async throws -> [IncidentRecord] {
        try await incidents(scope, activeOnly: true, limit: 10_000)
    }

    /// Incidents newest first (active and resolved), at most `limit`.
    public func incidentHistory(_ scope: IncidentScope = .all, limit: Int = 200) async throws -> [IncidentRecord] {
        try await incidents(scope, activeOnly: false, limit: limit)
    }

    func incidents(_ scope: IncidentScope, activeOnly: Bool, limit: Int) async throws -> [IncidentRecord] {
        var q = db.select().columns("*").from("incidents")
        switch scope {
        case .all: break
        case .global: q = q.where("tenant_id", .is, SQLLiteral.null)
        case .tenant(let id): q = q.where("tenant_id", .equal, SQLBind(id))
        }
        if activeOnly { q = q.where("resolved_at", .is, SQLLiteral.null).orderBy("started_at") } else { q = q.orderBy("started_at", .descending) }
        return try await q.limit(limit).all(decoding: IncidentRecord.self)
    }

    // MARK: Webhook signing secrets

    /// A tenant's sealed webhook signing secret.
    public func webhookSecret(tenantID: String) async throws -> String? {
        try await db.select().column("sealed").from("webhook_secrets").where("tenant_id", .equal, SQLBind(tenantID))
            .first(decodingColumn: "sealed", as: String.self)
    }

    /// Sets (or replaces) a tenant's sealed webhook signing secret.
    public func setWebhookSecret(tenantID: String, sealed: String, at time: Int64) async throws {
        try await db.insert(into: "webhook_secrets").columns("tenant_id", "sealed", "created_at")
            .values(SQLBind(tenantID), SQLBind(sealed), SQLBind(time))
            .onConflict(with: ["tenant_id"]) { $0.set(excludedValueOf: "sealed").set(excludedValueOf: "created_at") }
            .run()
    }

    /// Sets the secret only when the tenant has none yet; returns the one in force.
    public func setWebhookSecretIfAbsent(tenantID: String, sealed: String, at time: Int64) async throws -> String {
        try await db.insert(into: "webhook_secrets").columns("tenant_id", "sealed", "created_at")
            .values(SQLBind(tenantID), SQLBind(sealed), SQLBind(time)).ignoringConflicts().run()
        return try await webhookSecret(tenantID: tenantID) ?? sealed
    }
}
