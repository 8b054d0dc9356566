import Foundation
import HTTPTypes
import Hummingbird
import Observability
import OpenAIWire
import Storage
import Tenancy

/// The admin API under `/admin/v1` (documented in `deploy/admin-openapi.yaml`, served at
/// `/admin/v1/openapi.yaml`). Admin tokens are separate from API keys; a tenant-scoped token sees
/// and changes only its own tenant (other tenants' ids answer 404, as if they did not exist).
struct AdminAPI: Sendable {
    let platform: Platform

    var authority: KeyAuthority { platform.authority }
    var storage: Storage { platform.storage }
    /// Every change goes through the service the CLI uses too.
    var administration: Administration { platform.administration }

    /// The same throttle as API keys, checked before the token is: while an address is blocked, a
    /// valid token gets the same 429 as a wrong one (the answer tells nothing about the token).
    func admin(_ request: Request, _ context: GatewayContext) async throws -> AdminPrincipal {
        let ip = context.clientIP ?? "-"
        if let wait = platform.throttle.retryAfter(ip, now: platform.now()) {
            throw APIError.rateLimited("Too many failed authentications from your address. Retry after \(wait) s.", retryAfter: wait,
                                       code: "too_many_authentication_failures")
        }
        guard let p = await authority.authenticateAdmin(authorization: request.headers.value(of: .authorization)) else {
            let t = platform.now()
            platform.throttle.recordFailure(ip, now: t)
            platform.authFailures.record(AuditEvent(time: t, actor: "anonymous", action: "admin.auth.failure", target: request.uri.path,
                                                    outcome: "invalid admin token", requestID: context.requestID, clientIP: context.clientIP,
                                                    userAgent: request.headers[.userAgent], status: 401))
            throw APIError(status: 401, message: "Invalid admin token. Create one with 'llmaas admin token create' and send it as 'Authorization: Bearer adm-…'.",
                           type: "authentication_error", code: "invalid_admin_token")
        }
        return p
    }

    func audit(_ p: AdminPrincipal, _ context: GatewayContext, _ action: String, tenant: String?, target: String?, outcome: String = "ok", status: Int = 200) {
        platform.audit.record(AuditEvent(time: platform.now(), actor: "admin:\(p.tokenID)", tenantID: tenant, action: action, target: target,
                                         outcome: outcome, requestID: context.requestID, clientIP: context.clientIP, status: status))
    }

    /// The tenant a path names, if this token may see it.
    func tenant(_ id: String, for p: AdminPrincipal, _ context: GatewayContext) async throws -> TenantRecord {
        guard p.tenantID == nil || p.tenantID == id, let t = try await storage.tenant(id: id) else {
            audit(p, context, "admin.not_found", tenant: p.tenantID, target: "tenant \(id.prefix(64))", outcome: "not found", status: 404)
            throw APIError.notFound("Tenant '\(id.prefix(64))' does not exist.")
        }
        return t
    }

    func key(_ id: String, for p: AdminPrincipal, _ context: GatewayContext) async throws -> APIKeyRecord {
        guard let k = try await storage.key(id: id), p.tenantID == nil || p.tenantID == k.tenantID else {
            audit(p, context, "admin.not_found", tenant: p.tenantID, target: "key \(id.prefix(64))", outcome: "not found", status: 404)
            throw APIError.notFound("API key '\(id.prefix(64))' does not exist.")
        }
        return k
    }

    func operatorOnly(_ p: AdminPrincipal, _ what: String) throws {
        guard p.tenantID == nil else { throw APIError.permissionDenied("Only an operator token may \(what).") }
    }

    /// The JSON object a request sends; a field not in `allowed` is a 400 naming it (a typo must
    /// not be ignored silently).
    func body(_ request: Request, _ context: GatewayContext, allowed: Set<String>) async throws -> JSONValue {
        let json = try await body(request, context)
        try Self.refuseUnknown(json, allowed: allowed, path: "")
        return json
    }

    static func refuseUnknown(_ json: JSONValue, allowed: Set<String>, path: String) throws(APIError) {
        guard case .object(let members) = json else { return }
        if let unknown = members.first(where: { !allowed.contains($0.0) })?.0 {
            throw APIError.invalidRequest("Unknown field '\(path)\(unknown.prefix(64))' (known here: \(allowed.sorted().joined(separator: ", "))).",
                                          param: path + String(unknown.prefix(64)), code: "unknown_parameter")
        }
    }

    func body(_ request: Request, _ context: GatewayContext) async throws -> JSONValue {
        let bytes = try await readBody(request, limit: 1 << 20)
        if bytes.isEmpty { return .object([]) }
        let json: JSONValue
        do { json = try JSONValue.parse(bytes) } catch { throw APIError.invalidJSON("\(error)") }
        guard case .object = json else { throw APIError.invalidJSON("the body must be a JSON object, not \(json.typeName)") }
        return json
    }

    static func tenantJSON(_ t: TenantRecord) -> JSONValue { AdminJSON.tenant(t) }

    /// A key as the admin API and `llmaas key list --json` show it (state as of the platform's clock).
    func keyJSON(_ k: APIKeyRecord) -> JSONValue { administration.keyJSON(k) }

    static func grants(from json: JSONValue?) throws -> Grants {
        guard let json, !json.isNull else { return .all }
        guard case .object = json else { throw APIError.invalidType("grants", expected: "an object", got: json) }
        try refuseUnknown(json, allowed: ["models", "deny_models", "endpoints", "client_ips", "limits"], path: "grants.")
        func list(_ key: String) throws -> [String] {
            guard let v = json[key], !v.isNull else { return [] }
            guard let items = v.arrayValue, let strings = items.map(\.stringValue) as? [String] else {
                throw APIError.invalidType("grants.\(key)", expected: "an array of strings", got: v)
            }
            return strings
        }
        var limits: KeyLimits?
        if let l = json["limits"], !l.isNull {
            guard case .object = l else { throw APIError.invalidType("grants.limits", expected: "an object", got: l) }
            try refuseUnknown(l, allowed: ["requests_per_minute", "output_tokens_per_hour", "output_tokens_per_day", "concurrent_requests"], path: "grants.limits.")
            func n(_ k: String) throws(APIError) -> Int? {
                guard let v = l[k], !v.isNull else { return nil }
                guard let i = v.intValue, i >= 1 else { throw APIError.invalidValue("grants.limits.\(k)", "a positive whole number.") }
                return i
            }
            limits = KeyLimits(requestsPerMinute: try n("requests_per_minute"), outputTokensPerHour: try n("output_tokens_per_hour"),
                               outputTokensPerDay: try n("output_tokens_per_day"), concurrentRequests: try n("concurrent_requests"))
        }
        let g = Grants(models: try list("models"), denyModels: try list("deny_models"), endpoints: try list("endpoints"), clientIPs: try list("client_ips"),
                       limits: limits)
        do { try g.validate() } catch { throw APIError.invalidRequest(error.description, param: "grants", code: "invalid_value") }
        return g
    }

    /// Applies `settings` and `tier`/`disabled` from a PATCH body.
    /// `apply` on a copy (keeps `inout` out of the async route handlers).
    func applied(_ json: JSONValue, to tenant: TenantRecord, by p: AdminPrincipal) throws -> TenantRecord {
        var t = tenant
        try apply(json, to: &t, by: p)
        return t
    }

    func apply(_ json: JSONValue, to t: inout TenantRecord, by p: AdminPrincipal) throws {
        if let tier = json["tier"], !tier.isNull {
            try operatorOnly(p, "change a tenant's tier")
            guard let s = tier.stringValue, administration.isTier(s) else {
                throw APIError.invalidValue("tier", "use one of the configured tiers: \(administration.tierNames.joined(separator: ", ")).")
            }
            t.tier = s
        }
        if let disabled = json["disabled"], !disabled.isNull {
            try operatorOnly(p, "disable or enable a tenant")
            guard let b = disabled.boolValue else { throw APIError.invalidType("disabled", expected: "a boolean", got: disabled) }
            t.disabledAt = b ? (t.disabledAt ?? platform.now()) : nil
        }
        guard let settings = json["settings"], !settings.isNull else { return }
        guard case .object(let members) = settings else { throw APIError.invalidType("settings", expected: "an object", got: settings) }
        for (key, value) in members {
            let param = "settings.\(key)"
            switch key {
            case "rotation_period_days", "grace_period_days":
                if value.isNull { if key == "rotation_period_days" { t.rotationPeriodDays = nil } else { t.gracePeriodDays = nil }; continue }
                guard let n = value.intValue, n >= 0, n <= 3650 else { throw APIError.invalidValue(param, "a whole number of days between 0 and 3650.") }
                if key == "rotation_period_days" { t.rotationPeriodDays = n == 0 ? nil : n } else { t.gracePeriodDays = n }
            case "webhook_url":
                if value.isNull { t.webhookURL = nil; continue }
                guard let s = value.stringValue else { throw APIError.invalidType(param, expected: "a string (an https URL)", got: value) }
                do { _ = try platform.config.webhooks.validate(s) } catch {
                    throw APIError.invalidRequest("Invalid 'settings.webhook_url': \(error.description).", param: param, code: "invalid_value")
                }
                t.webhookURL = s
            case "shield_mode":
                if value.isNull { continue }  // keeps the current mode
                guard let s = value.stringValue, ["enforce", "monitor", "off"].contains(s) else {
                    throw APIError.invalidValue(param, "use enforce, monitor or off.")
                }
                if s == "off" { try operatorOnly(p, "switch prompt security off") }
                t.shieldMode = s
            case "experimental_opt_in":
                if value.isNull { continue }
                guard let b = value.boolValue else { throw APIError.invalidType(param, expected: "a boolean", got: value) }
                t.experimentalOptIn = b ? 1 : 0
            case "store_bodies":
                // Request store: keep this tenant's prompts and answers (encrypted). Off by default.
                if value.isNull { continue }
                guard let b = value.boolValue else { throw APIError.invalidType(param, expected: "a boolean", got: value) }
                t.storeBodies = b ? 1 : 0
            case "store_retention_days":
                if value.isNull { t.storeRetentionDays = nil; continue }  // the configured default
                guard let n = value.intValue, n >= 1, n <= 3650 else { throw APIError.invalidValue(param, "a whole number of days between 1 and 3650.") }
                t.storeRetentionDays = n
            default:
                throw APIError.invalidValue(param, "unknown setting (rotation_period_days, grace_period_days, webhook_url, shield_mode, experimental_opt_in, store_bodies, store_retention_days).")
            }
        }
        if let period = t.rotationPeriodDays, let grace = t.gracePeriodDays, grace >= period {
            throw APIError.invalidValue("settings.grace_period_days", "it must be shorter than rotation_period_days (\(period)).")
        }
    }
}

func mapTenancy(_ error: any Error) -> any Error {
    guard let e = error as? TenancyError else { return error }
    switch e {
    case .invalid(let m): return APIError.invalidRequest(m, code: "invalid_value")
    case .exists(let m): return APIError(status: 409, message: m, type: "invalid_request_error", code: "conflict")
    case .notFound(let m): return APIError.notFound(m)
    }
}

func addAdminRoutes(to router: Hummingbird.Router<GatewayContext>, platform: Platform) {
    let api = AdminAPI(platform: platform)
    let admin = router.group("/admin/v1")
    // Hummingbird's HTTP metrics for the admin API (swift-metrics' global system: `GatewayServer.run`
    // bootstraps it with the platform's factory; elsewhere a no-op). Not on the inference routes and
    // /health: it turns every response body into a closure, so the head and the body leave in
    // separate writes, on the hot path; inference has the GenAI metrics instead.
    if platform.config.metrics.enabled { admin.add(middleware: MetricsMiddleware()) }

    // The document names the tiers this gateway is configured with (PATCH accepts exactly those).
    let openAPI: String? = Bundle.module.url(forResource: "admin-openapi", withExtension: "yaml")
        .flatMap { FileManager.default.contents(atPath: $0.path) }
        .map { String(decoding: $0, as: UTF8.self)
            .replacingOccurrences(of: "__CONFIGURED_TIERS__", with: platform.administration.tierNames.map { JSONValue.string($0).jsonString }.joined(separator: ", ")) }
    admin.get("/openapi.yaml") { _, _ in
        guard let openAPI else { throw APIError.server("The OpenAPI document is missing from this build.") }
        return Response(status: .ok, headers: [.contentType: "application/yaml"], body: ResponseBody(byteBuffer: ByteBuffer(string: openAPI)))
    }

    admin.post("/tenants") { request, context in
        let p = try await api.admin(request, context)
        try api.operatorOnly(p, "create tenants")
        let json = try await api.body(request, context, allowed: ["name", "tier", "settings"])
        guard let nameValue = json["name"], !nameValue.isNull else { throw APIError.missingParameter("name") }
        guard let name = nameValue.stringValue else { throw APIError.invalidType("name", expected: "a string", got: nameValue) }
        // Every setting is checked before the tenant exists: a 400 never leaves half a tenant behind.
        _ = try api.applied(json, to: TenantRecord(id: "", name: name, createdAt: 0), by: p)
        do {
            // The service gives the upfront credit of the tier the settings chose.
            let t = try await platform.administration.createTenant(name: name) { try api.apply(json, to: &$0, by: p) }
            api.audit(p, context, "tenant.create", tenant: t.id, target: t.id, status: 201)
            return jsonResponse(AdminAPI.tenantJSON(t), status: .created)
        } catch { throw mapTenancy(error) }
    }
    admin.get("/tenants") { request, context in
        let p = try await api.admin(request, context)
        let all = try await platform.storage.tenants().filter { p.tenantID == nil || $0.id == p.tenantID }
        return jsonResponse(.object([("object", "list"), ("data", .array(all.map(AdminAPI.tenantJSON)))]))
    }
    admin.get("/tenants/{id}") { request, context in
        let p = try await api.admin(request, context)
        let t = try await api.tenant(context.parameters.get("id") ?? "", for: p, context)
        return jsonResponse(AdminAPI.tenantJSON(t))
    }
    admin.patch("/tenants/{id}") { request, context in
        let p = try await api.admin(request, context)
        let found = try await api.tenant(context.parameters.get("id") ?? "", for: p, context)
        let json = try await api.body(request, context, allowed: ["tier", "disabled", "settings"])
        let t = try api.applied(json, to: found, by: p)
        try await platform.administration.updateTenant(t)  // a disabled tenant's keys stop at once
        api.audit(p, context, "tenant.update", tenant: t.id, target: t.id)
        return jsonResponse(AdminAPI.tenantJSON(t))
    }
    admin.post("/tenants/{id}/keys") { request, context in
        let p = try await api.admin(request, context)
        let t = try await api.tenant(context.parameters.get("id") ?? "", for: p, context)
        let json = try await api.body(request, context, allowed: ["name", "grants", "expires_at"])
        let grants = try AdminAPI.grants(from: json["grants"])
        var expires: Int64?
        if let e = json["expires_at"], !e.isNull {
            guard let ms = e.intValue, ms > 0 else { throw APIError.invalidValue("expires_at", "milliseconds since the epoch (a positive integer).") }
            expires = Int64(ms)
        }
        var name = "default"
        if let n = json["name"], !n.isNull {
            guard let text = n.stringValue, !text.isEmpty, text.count <= 200 else { throw APIError.invalidValue("name", "a non-empty string of at most 200 characters.") }
            name = text
        }
        do {
            let (record, token) = try await platform.administration.createKey(tenant: t, name: name, grants: grants, expiresAt: expires)
            api.audit(p, context, "key.create", tenant: t.id, target: record.id, status: 201)
            var out = api.keyJSON(record)
            out.set("key", .string(token.text))
            return jsonResponse(out, status: .created)
        } catch { throw mapTenancy(error) }
    }
    admin.get("/tenants/{id}/keys") { request, context in
        let p = try await api.admin(request, context)
        let t = try await api.tenant(context.parameters.get("id") ?? "", for: p, context)
        return jsonResponse(platform.administration.keysJSON(try await platform.administration.keys(tenantID: t.id)))
    }
    admin.post("/keys/{id}/rotate") { request, context in
        let p = try await api.admin(request, context)
        let k = try await api.key(context.parameters.get("id") ?? "", for: p, context)
        let json = try await api.body(request, context, allowed: ["grace_days"])
        var graceMs: Int64?
        if let g = json["grace_days"], !g.isNull {
            guard let d = g.doubleValue, d >= 0, d <= 365 else { throw APIError.invalidValue("grace_days", "a number of days between 0 and 365.") }
            graceMs = Int64(d * 86_400_000)
        }
        do {
            let event = try await platform.administration.rotate(keyID: k.id, graceMs: graceMs)
            api.audit(p, context, "key.rotate", tenant: k.tenantID, target: k.id)
            Webhooks(platform: platform).rotated(event)
            return jsonResponse(.object([("key_id", .string(event.keyID)), ("successor_id", .string(event.successorID)),
                                         ("old_key_expires_at", .int(Int(event.oldKeyExpiresAt)))]))
        } catch { throw mapTenancy(error) }
    }
    admin.post("/keys/{id}/revoke") { request, context in
        let p = try await api.admin(request, context)
        let k = try await api.key(context.parameters.get("id") ?? "", for: p, context)
        let revoked = try await platform.administration.revoke(keyID: k.id)
        api.audit(p, context, "key.revoke", tenant: k.tenantID, target: k.id)
        return jsonResponse(api.keyJSON(revoked))
    }
    admin.post("/keys/{id}/successor") { request, context in
        let p = try await api.admin(request, context)
        let k = try await api.key(context.parameters.get("id") ?? "", for: p, context)
        do {
            let (successor, secret) = try await platform.administration.takeSuccessorSecret(keyID: k.id)
            api.audit(p, context, "key.successor.fetch", tenant: k.tenantID, target: successor.id)
            var out = api.keyJSON(successor)
            out.set("key", .string(secret))
            return jsonResponse(out)
        } catch { throw mapTenancy(error) }
    }
    admin.put("/keys/{id}/grants") { request, context in
        let p = try await api.admin(request, context)
        let k = try await api.key(context.parameters.get("id") ?? "", for: p, context)
        let grants = try AdminAPI.grants(from: try await api.body(request, context))
        let updated = try await platform.administration.updateGrants(keyID: k.id, grants: grants)
        api.audit(p, context, "key.grants.update", tenant: k.tenantID, target: k.id)
        return jsonResponse(api.keyJSON(updated))
    }
    // The platform's metrics in Prometheus' text format (operator token): the same registry as
    // `GET /metrics`, for an operator without the scrape token.
    admin.get("/metrics") { request, context in
        let p = try await api.admin(request, context)
        try api.operatorOnly(p, "read the platform's metrics")
        return platform.metricsResponse()
    }
    admin.get("/audit") { request, context in
        let p = try await api.admin(request, context)
        let q = request.uri.queryParameters
        for (name, _) in q where !["tenant", "from", "to", "format"].contains(String(name)) {
            throw APIError.invalidRequest("Unknown query parameter '\(name.prefix(64))' (known: tenant, from, to, format).", param: String(name.prefix(64)), code: "unknown_parameter")
        }
        func millis(_ name: String) throws(APIError) -> Int64? {
            guard let text = q.get(name) else { return nil }
            guard let v = Int64(text), v >= 0 else { throw APIError.invalidValue(name, "milliseconds since the epoch (a non-negative integer).") }
            return v
        }
        var tenantID = q.get("tenant", as: String.self)
        if let scope = p.tenantID {
            if let asked = tenantID, asked != scope { throw APIError.notFound("Tenant '\(asked)' does not exist.") }
            tenantID = scope
        }
        let from = try millis("from") ?? 0
        let to = try millis("to") ?? Int64.max
        let format = q.get("format", as: String.self) ?? "jsonl"
        guard let export = AuditExport.Format(rawValue: format) else { throw APIError.invalidValue("format", "use jsonl or csv.") }
        await platform.audit.flush()
        let entries = try await platform.storage.auditEntries(tenantID: tenantID, from: from, to: to)
        api.audit(p, context, "audit.export", tenant: tenantID, target: format)
        return Response(status: .ok, headers: [.contentType: export == .csv ? "text/csv" : "application/x-ndjson"],
                        body: ResponseBody(byteBuffer: ByteBuffer(string: AuditExport.render(entries, export))))
    }
}
