import Foundation
import Hummingbird
import OpenAIWire
import Storage
import Tenancy

/// The admin API of alerts (under `/admin/v1`): rules (config rules are listed, not changed
/// here), incidents (active and history), and a tenant's webhook signing secret. A tenant-scoped
/// token sees and changes only its tenant's rules and incidents; other ids answer 404.
func addAlertRoutes(to router: Hummingbird.Router<GatewayContext>, platform: Platform) {
    let api = AdminAPI(platform: platform)
    let alerting = Alerting(platform: platform)
    let admin = router.group("/admin/v1")

    @Sendable func refuseUnknownQuery(_ request: Request, known: [String]) throws {
        for (name, _) in request.uri.queryParameters where !known.contains(String(name)) {
            throw APIError.invalidRequest("Unknown query parameter '\(name.prefix(64))' (known: \(known.joined(separator: ", "))).",
                                          param: String(name.prefix(64)), code: "unknown_parameter")
        }
    }

    /// The tenant a list is about: a tenant token's own; for the operator, `?tenant=` or all (nil).
    @Sendable func scope(_ request: Request, _ p: AdminPrincipal, _ context: GatewayContext) async throws -> String? {
        let asked = request.uri.queryParameters.get("tenant", as: String.self)
        if let own = p.tenantID {
            if let asked, asked != own { throw APIError.notFound("Tenant '\(asked.prefix(64))' does not exist.") }
            return own
        }
        if let asked { return try await api.tenant(asked, for: p, context).id }
        return nil
    }

    @Sendable func visibleRule(_ id: String, _ p: AdminPrincipal, _ context: GatewayContext) async throws -> AlertRule {
        guard let rule = try await alerting.rules(tenantID: p.tenantID).first(where: { $0.id == id }) else {
            api.audit(p, context, "admin.not_found", tenant: p.tenantID, target: "alert rule \(id.prefix(64))", outcome: "not found", status: 404)
            throw APIError.notFound("Alert rule '\(id.prefix(64))' does not exist.")
        }
        return rule
    }

    admin.get("/alerts/rules") { request, context in
        let p = try await api.admin(request, context)
        try refuseUnknownQuery(request, known: ["tenant"])
        let tenant = try await scope(request, p, context)
        let rules = try await alerting.rules(tenantID: tenant)
        return jsonResponse(.object([("object", "list"), ("data", .array(rules.map(Alerting.ruleJSON)))]))
    }
    admin.post("/alerts/rules") { request, context in
        let p = try await api.admin(request, context)
        let json = try await api.body(request, context, allowed: ["name", "kind", "tenant_id", "model", "backend", "threshold", "resolve_threshold", "for_periods"])
        func string(_ key: String) throws -> String? {
            guard let v = json[key], !v.isNull else { return nil }
            guard let s = v.stringValue else { throw APIError.invalidType(key, expected: "a string", got: v) }
            return s
        }
        func number(_ key: String) throws -> Double? {
            guard let v = json[key], !v.isNull else { return nil }
            guard let d = v.doubleValue, d.isFinite else { throw APIError.invalidType(key, expected: "a number", got: v) }
            return d
        }
        guard let kind = try string("kind") else { throw APIError.missingParameter("kind") }
        var periods: Int?
        if let v = json["for_periods"], !v.isNull {
            guard let n = v.intValue else { throw APIError.invalidType("for_periods", expected: "an integer", got: v) }
            periods = n
        }
        var tenantID = try string("tenant_id")
        if let own = p.tenantID {
            if let asked = tenantID, asked != own { throw APIError.notFound("Tenant '\(asked.prefix(64))' does not exist.") }
            tenantID = own
            if AlertRule.Kind(rawValue: kind)?.operatorOnly == true { try api.operatorOnly(p, "create \(kind) rules (they watch the fleet)") }
        } else if let asked = tenantID {
            tenantID = try await api.tenant(asked, for: p, context).id
        }
        let (name, model, backend) = (try string("name"), try string("model"), try string("backend"))
        let (threshold, resolve) = (try number("threshold"), try number("resolve_threshold"))
        let rule: AlertRule
        do {
            rule = try AlertRule.make(id: "alr_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20), tenantID: tenantID,
                                      name: name, kindText: kind, model: model, backend: backend, threshold: threshold, resolveThreshold: resolve,
                                      forPeriods: periods, createdAt: platform.now())
        } catch let error as AlertRule.Invalid {
            throw APIError.invalidRequest("Invalid '\(error.param == "tenant" ? "tenant_id" : error.param)': \(error.message).",
                                          param: error.param == "tenant" ? "tenant_id" : error.param, code: "invalid_value")
        }
        do { try await alerting.create(rule) } catch { throw mapTenancy(error) }
        api.audit(p, context, "alert.rule.create", tenant: rule.tenantID, target: rule.id, status: 201)
        return jsonResponse(Alerting.ruleJSON(rule), status: .created)
    }
    admin.get("/alerts/rules/{id}") { request, context in
        let p = try await api.admin(request, context)
        return jsonResponse(Alerting.ruleJSON(try await visibleRule(context.parameters.get("id") ?? "", p, context)))
    }
    admin.delete("/alerts/rules/{id}") { request, context in
        let p = try await api.admin(request, context)
        let rule = try await visibleRule(context.parameters.get("id") ?? "", p, context)
        guard !rule.fromConfig else {
            throw APIError(status: 409, message: "Alert rule '\(rule.id)' comes from the configuration (alerts.rules); change it there.",
                           type: "invalid_request_error", code: "conflict")
        }
        try await alerting.delete(id: rule.id)
        api.audit(p, context, "alert.rule.delete", tenant: rule.tenantID, target: rule.id)
        return jsonResponse(.object([("id", .string(rule.id)), ("object", "alert_rule"), ("deleted", true)]))
    }
    admin.get("/alerts/incidents") { request, context in
        let p = try await api.admin(request, context)
        try refuseUnknownQuery(request, known: ["tenant", "state", "limit"])
        let q = request.uri.queryParameters
        let state = q.get("state", as: String.self) ?? "all"
        guard ["active", "all"].contains(state) else { throw APIError.invalidValue("state", "use active or all.") }
        var limit = 200
        if let text = q.get("limit", as: String.self) {
            guard let n = Int(text), (1...1000).contains(n) else { throw APIError.invalidValue("limit", "a whole number between 1 and 1000.") }
            limit = n
        }
        let tenant = try await scope(request, p, context)
        let list = state == "active" ? try await alerting.activeIncidents(tenantID: tenant) : try await alerting.history(tenantID: tenant, limit: limit)
        return jsonResponse(.object([("object", "list"), ("data", .array(list.prefix(limit).map(Alerting.incidentJSON)))]))
    }
    admin.post("/tenants/{id}/webhook-secret") { request, context in
        let p = try await api.admin(request, context)
        let t = try await api.tenant(context.parameters.get("id") ?? "", for: p, context)
        let secret = try await Webhooks.rotateTenantSecret(platform, tenantID: t.id)
        api.audit(p, context, "webhook.secret.rotate", tenant: t.id, target: t.id)
        return jsonResponse(.object([("tenant_id", .string(t.id)), ("secret", .string(secret)), ("header", .string(WebhookSignature.header)),
                                     ("created_at", .int(Int(platform.now())))]))
    }
}
