import Foundation
import HTTPTypes
import Hummingbird
import OpenAIWire
import Storage
import Tenancy

/// The console's alerts page (issue 13 item 3): active incidents, their history and the rules of
/// the session's scope, and the forms that create and delete a rule. Everything goes through
/// ``Alerting`` and the same checks as the admin API (`AlertRoutes.swift`): a tenant admin sees and
/// changes only its tenant's rules and incidents (never the global ones), and creates only the
/// kinds the API lets it create.
extension ConsolePages {
    /// An operator without a picked tenant sees everything (global and every tenant); with one,
    /// that tenant's. A tenant admin: its own.
    static func alertScope(_ r: ConsoleRequest) -> (all: Bool, tenantID: String?) {
        if r.isOperator && (r.query["tenant"] ?? "").isEmpty { return (true, nil) }
        return (false, r.tenant?.id)
    }

    /// The picker's "every tenant" choice (pages that can show all tenants at once).
    static func allTenantsPicker(_ r: ConsoleRequest, all: Bool, tenants: [TenantRecord]) -> [String: Any] {
        guard r.isOperator else { return [:] }
        var out: [String: Any] = ["picker_all": true]
        if all {
            out["picker_all_selected"] = true
            out["heading_tenant"] = "all tenants"
            out["tenants"] = tenants.map { ["id": $0.id, "name": $0.name, "selected": false] as [String: Any] }
        }
        return out
    }

    static func number(_ d: Double?) -> String { d.map { AlertRule.number(($0 * 100).rounded() / 100) } ?? "–" }

    static func incidentRow(_ i: IncidentRecord, names: [String: String]) -> [String: Any] {
        ["id": i.id, "rule_id": i.ruleID, "kind": i.kind, "subject": AlertEvaluator.label(i.subject), "message": i.message,
         "tenant": i.tenantID.map { names[$0] ?? $0 } ?? "global", "state": i.isActive ? "active" : "resolved", "active": i.isActive,
         "started": ConsoleFormat.time(i.startedAt), "resolved": ConsoleFormat.time(i.resolvedAt), "threshold": number(i.threshold),
         "value": number(i.value), "peak": number(i.peak), "resolved_value": number(i.resolvedValue),
         "unit": AlertRule.Kind(rawValue: i.kind)?.unit ?? ""]
    }

    static let alerts = ConsolePage(id: "alerts", path: "/console/alerts", title: "Alerts", template: "alerts", live: true) { r in
        let (all, tenantID) = alertScope(r)
        let alerting = Alerting(platform: r.platform)
        let tenants = try await r.platform.storage.tenants().sorted { $0.name < $1.name }
        let names = Dictionary(tenants.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        if !all && tenantID == nil { return ["no_tenant": true] }
        let active = try await alerting.activeIncidents(tenantID: tenantID)
        let history = try await alerting.history(tenantID: tenantID, limit: 100)
        let rules = try await alerting.rules(tenantID: tenantID)
        let kinds = AlertRule.Kind.allCases.filter { r.isOperator || !$0.operatorOnly }
        var out: [String: Any] = [
            "all": all,
            "active": active.map { incidentRow($0, names: names) },
            "history": history.map { incidentRow($0, names: names) },
            "rules": rules.map { rule -> [String: Any] in
                var row: [String: Any] = [
                    "id": rule.id, "name": rule.name ?? "–", "kind": rule.kind.rawValue,
                    "scope": rule.tenantID.map { names[$0] ?? $0 } ?? "global",
                    "subject": rule.model.map { "model \($0)" } ?? rule.backend.map { "backend \($0)" } ?? "every subject",
                    "threshold": rule.kind == .backendDown ? "down" : "\(AlertRule.number(rule.threshold)) \(rule.kind.unit)",
                    "resolve": rule.resolveThreshold.map { AlertRule.number($0) } ?? "= threshold",
                    "for_periods": rule.forPeriods, "source": rule.fromConfig ? "config" : "api",
                ]
                if !rule.fromConfig { row["deletable"] = true }
                return row
            },
            "kinds": kinds.map { ["id": $0.rawValue, "unit": $0.unit] },
            "model_choices": r.platform.catalog.current.entries.map { ["id": $0.id] },
        ]
        if r.isOperator {
            out["rule_tenants"] = tenants.map { ["id": $0.id, "name": $0.name, "selected": $0.id == tenantID] as [String: Any] }
            out["global_selected"] = all
        }
        for (k, v) in allTenantsPicker(r, all: all, tenants: tenants) { out[k] = v }
        return out
    }

    /// One incident (`/console/alerts/incidents/{id}`): another tenant's id is a 404.
    static let incident = ConsolePage(id: "alerts", path: "/console/alerts/incidents", title: "Incident", template: "incident") { r in
        let id = r.query["incident_id"] ?? ""
        guard let i = try await r.platform.storage.incident(id: id), r.isOperator || (i.tenantID != nil && i.tenantID == r.session.tenantID) else {
            throw APIError.notFound("Incident '\(id.prefix(64))' does not exist.")
        }
        let names = Dictionary(try await r.platform.storage.tenants().map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        return ["incident": incidentRow(i, names: names)]
    }
}

/// The alert forms: create (`POST /console/alerts/rules`) and delete
/// (`POST /console/alerts/rules/{id}/delete`), CSRF- and Origin-checked. A refused rule re-renders
/// the page with the API's message (status 400/403/409); another tenant's rule or tenant is a 404.
func addConsoleAlertRoutes(to router: Hummingbird.Router<GatewayContext>, console: Console) {
    let platform = console.platform
    let alerting = Alerting(platform: platform)

    router.get("/console/alerts/incidents/{id}") { request, context in
        guard let session = await console.session(request)?.session else { return console.redirect("/console/login") }
        return try await console.guarded(session: session) {
            let id = context.parameters.get("id") ?? ""
            guard let i = try await platform.storage.incident(id: id), session.tenantID == nil || i.tenantID == session.tenantID,
                  session.tenantID == nil || i.tenantID != nil else {
                console.audit(session, context, "admin.not_found", tenant: session.tenantID, target: "incident \(id.prefix(64))", status: 404)
                throw APIError.notFound("Incident '\(id.prefix(64))' does not exist.")
            }
            let tenant = try await console.tenant(i.tenantID ?? session.tenantID, session, context)
            return try await console.render(ConsolePages.incident, session, tenant: tenant, query: ["incident_id": id])
        }
    }

    console.postForm(router, "/console/alerts/rules") { request, context, session, form in
        func field(_ name: String) -> String? {
            guard let v = form[name]?.first?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else { return nil }
            return v
        }
        // The tenant: a tenant admin's own (another id → 404); the operator's pick, or none (global).
        var tenantID = field("tenant")
        if let own = session.tenantID {
            if let asked = tenantID, asked != own {
                console.audit(session, context, "admin.not_found", tenant: own, target: "tenant \(asked.prefix(64))", status: 404)
                throw APIError.notFound("Tenant '\(asked.prefix(64))' does not exist.")
            }
            tenantID = own
        } else if let asked = tenantID {
            tenantID = try await console.api.tenant(asked, for: session.principal, context).id
        }
        let pageTenant = try await console.tenant(tenantID ?? session.tenantID, session, context)
        let pageQuery = tenantID.map { ["tenant": $0] } ?? [:]
        do {
            let kind = field("kind") ?? ""
            guard !kind.isEmpty else { throw APIError.missingParameter("kind") }
            if session.tenantID != nil, AlertRule.Kind(rawValue: kind)?.operatorOnly == true {
                try console.api.operatorOnly(session.principal, "create \(kind) rules (they watch the fleet)")
            }
            func number(_ name: String) throws -> Double? {
                guard let text = field(name) else { return nil }
                guard let d = Double(text), d.isFinite else { throw APIError.invalidValue(name, "a number.") }
                return d
            }
            var periods: Int?
            if let p = field("for_periods") {
                guard let n = Int(p) else { throw APIError.invalidValue("for_periods", "a whole number of evaluation periods.") }
                periods = n
            }
            let rule: AlertRule
            do {
                rule = try AlertRule.make(id: "alr_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20),
                                          tenantID: tenantID, name: field("name"), kindText: kind, model: field("model"), backend: field("backend"),
                                          threshold: try number("threshold"), resolveThreshold: try number("resolve_threshold"),
                                          forPeriods: periods, createdAt: platform.now())
            } catch let error as AlertRule.Invalid {
                throw APIError.invalidRequest("Invalid '\(error.param == "tenant" ? "tenant_id" : error.param)': \(error.message).",
                                              param: error.param == "tenant" ? "tenant_id" : error.param, code: "invalid_value")
            }
            do { try await alerting.create(rule) } catch { throw mapTenancy(error) }
            console.audit(session, context, "alert.rule.create", tenant: rule.tenantID, target: rule.id, status: 201)
            return try await console.render(ConsolePages.alerts, session, tenant: pageTenant, query: pageQuery,
                                            extra: ["notice": "Alert rule \(rule.id) (\(rule.kind.rawValue)) is created."], status: .created)
        } catch let e as APIError where e.status != 404 {
            // The page again, with what to fix (the admin API's message).
            return try await console.render(ConsolePages.alerts, session, tenant: pageTenant, query: pageQuery,
                                            extra: ["form_error": e.message], status: HTTPResponse.Status(code: e.status))
        }
    }

    console.postForm(router, "/console/alerts/rules/{id}/delete") { request, context, session, _ in
        let id = context.parameters.get("id") ?? ""
        guard let rule = try await alerting.rules(tenantID: session.tenantID).first(where: { $0.id == id }) else {
            console.audit(session, context, "admin.not_found", tenant: session.tenantID, target: "alert rule \(id.prefix(64))", status: 404)
            throw APIError.notFound("Alert rule '\(id.prefix(64))' does not exist.")
        }
        guard !rule.fromConfig else {
            throw APIError(status: 409, message: "Alert rule '\(rule.id)' comes from the configuration (alerts.rules); change it there.",
                           type: "invalid_request_error", code: "conflict")
        }
        try await alerting.delete(id: rule.id)
        console.audit(session, context, "alert.rule.delete", tenant: rule.tenantID, target: rule.id)
        let tenant = try await console.tenant(rule.tenantID ?? session.tenantID, session, context)
        return try await console.render(ConsolePages.alerts, session, tenant: tenant, query: rule.tenantID.map { ["tenant": $0] } ?? [:],
                                        extra: ["notice": "Alert rule \(rule.id) is deleted; its active incidents resolve at the next evaluation."])
    }
}
