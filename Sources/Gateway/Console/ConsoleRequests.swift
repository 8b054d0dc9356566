import Foundation
import HTTPTypes
import Hummingbird
import Observability
import OpenAIWire
import Storage
import Tenancy

/// The console's request store (issue 13 item 4, SPEC S8): the ledger browsed and filtered (time,
/// model, key, status, request id) with cursor paging, one request with its decrypted prompt and
/// answer when they are stored, the tenant's storage settings (opt-in, retention) and the shred
/// button. All of it through ``RequestBrowser`` (the admin API's code): another tenant's rows,
/// ids and filters are a 404 and show nothing. Bodies go through the templates' HTML escaping.
extension ConsolePages {
    static let pageSize = 50

    /// `2026-12-05T13:45` (what `<input type=datetime-local>` sends, read as UTC), a date, or ms since the epoch.
    static func parseTime(_ name: String, _ text: String?) throws -> Int64? {
        guard let text = text?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
        if let ms = Int64(text), ms >= 0 { return ms }
        let f = DateFormatter()
        f.timeZone = TimeZone(identifier: "UTC")
        f.locale = Locale(identifier: "en_US_POSIX")
        for format in ["yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd HH:mm", "yyyy-MM-dd"] {
            f.dateFormat = format
            if let d = f.date(from: text) { return Int64(d.timeIntervalSince1970 * 1000) }
        }
        throw APIError.invalidValue(name, "a UTC time such as 2026-12-05T13:45 (or milliseconds since the epoch).")
    }

    /// The page's filters as the browser's query (the admin API's rules for each value).
    static func requestQuery(_ q: [String: String], tenantID: String?) throws -> RequestBrowser.Query {
        func text(_ name: String) throws -> String? {
            guard let v = q[name]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            guard v.unicodeScalars.count <= 200 else { throw APIError.invalidValue(name, "a string of at most 200 characters.") }
            return v
        }
        var query = RequestBrowser.Query(tenantID: tenantID, from: try parseTime("from", q["from"]), to: try parseTime("to", q["to"]),
                                         model: try text("model"), keyID: try text("key"), requestID: try text("request_id"),
                                         cursor: try text("cursor"), limit: pageSize)
        if let l = try text("limit") {
            guard let n = Int(l), (1...RequestBrowser.maxLimit).contains(n) else {
                throw APIError.invalidValue("limit", "a whole number between 1 and \(RequestBrowser.maxLimit).")
            }
            query.limit = n
        }
        if let s = try text("status") {
            let u = Array(s.lowercased().utf8)
            if u.count == 3, (0x31...0x35).contains(u[0]), u[1] == 0x78, u[2] == 0x78 { query.statusClass = Int(u[0] - 0x30) }
            else if let n = Int(s), (100...599).contains(n) { query.status = n }
            else { throw APIError.invalidValue("status", "a status code (200) or a class (2xx, 4xx, 5xx).") }
        }
        return query
    }

    static func requestRow(_ r: RequestRecord, stored: Bool, names: [String: String]) -> [String: Any] {
        var row: [String: Any] = ["id": r.id, "time": ConsoleFormat.time(r.createdAt), "created_at": r.createdAt, "model": r.model,
                                  "endpoint": r.endpoint, "status": r.status, "ok": r.status < 400, "outcome": r.outcome,
                                  "key": r.keyID ?? "–", "tenant": r.tenantID.map { names[$0] ?? $0 } ?? "–",
                                  "input": r.promptTokens, "output": r.completionTokens, "latency": r.latencyMs,
                                  "ttft": r.ttftMs.map(String.init) ?? "–", "backend": r.backend ?? "–",
                                  "cost_eur": ConsoleFormat.euros(r.costNano ?? 0), "body_stored": stored ? "stored" : "–"]
        if let c = r.errorCode { row["error_code"] = c }
        if r.ttftMs != nil { row["has_ttft"] = true }
        return row
    }

    static let requests = ConsolePage(id: "requests", path: "/console/requests", title: "Requests", template: "requests", live: false) { r in
        let (all, tenantID) = alertScope(r)
        if !all && tenantID == nil { return ["no_tenant": true] }
        let query = try requestQuery(r.query, tenantID: tenantID)
        // A request just answered is listed at once, with its body column right.
        await r.platform.requestLog.flush()
        await r.platform.requestStore.flush()
        let page = try await r.platform.requestBrowser.list(query, scope: r.session.tenantID)
        let tenants = try await r.platform.storage.tenants().sorted { $0.name < $1.name }
        let names = Dictionary(tenants.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        // The filters again (and the next page's link keeps them).
        var kept: [(String, String)] = []
        for name in ["tenant", "from", "to", "model", "key", "status", "request_id", "limit"] {
            if let v = r.query[name], !v.isEmpty { kept.append((name, v)) }
        }
        func link(_ extra: [(String, String)]) -> String {
            "/console/requests?" + (kept + extra).map { k, v in
                "\(k)=\(v.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
            }.joined(separator: "&")
        }
        var out: [String: Any] = [
            "all": all,
            "rows": page.rows.map { requestRow($0, stored: page.withBodies.contains($0.id), names: names) },
            "filters": ["from": r.query["from"] ?? "", "to": r.query["to"] ?? "", "model": r.query["model"] ?? "",
                        "key": r.query["key"] ?? "", "status": r.query["status"] ?? "", "request_id": r.query["request_id"] ?? ""],
            "model_choices": r.platform.catalog.current.entries.map { ["id": $0.id] },
            "page_size": query.limit,
        ]
        if let c = page.nextCursor { out["next_link"] = link([("cursor", c)]) }
        if r.query["cursor"] != nil { out["first_link"] = link([]) }
        if !all, let t = r.tenant {
            let keys = try await r.platform.administration.keys(tenantID: t.id)
            out["key_select"] = true
            out["key_choices"] = keys.map { ["id": $0.id, "name": $0.name, "selected": $0.id == r.query["key"]] as [String: Any] }
            out["settings"] = ["store_bodies": (t.storeBodies ?? 0) != 0, "retention_days": t.storeRetentionDays.map(String.init) ?? "",
                               "default_retention_days": r.platform.config.requestStore.defaultRetentionDays] as [String: Any]
        }
        for (k, v) in allTenantsPicker(r, all: all, tenants: tenants) { out[k] = v }
        return out
    }

    /// One request (`/console/requests/{id}`), its bodies decrypted when stored.
    static let requestDetail = ConsolePage(id: "requests", path: "/console/requests/detail", title: "Request", template: "request") { r in
        let id = r.query["request_id"] ?? ""
        guard let d = try await r.platform.requestBrowser.detail(id: id, scope: r.session.tenantID) else {
            throw APIError.notFound("Request '\(id.prefix(64))' does not exist.")
        }
        let names = Dictionary(try await r.platform.storage.tenants().map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        let b = d.bodies
        var bodies: [String: Any] = ["state": b.state.rawValue]
        switch b.state {
        case .available:
            bodies["available"] = true
            bodies["prompt"] = b.prompt ?? ""
            bodies["response"] = b.response ?? ""
            bodies["response_format"] = b.responseFormat ?? "text"
            bodies["prompt_bytes"] = b.promptBytes ?? 0
            bodies["response_bytes"] = b.responseBytes ?? 0
            if b.promptTruncated { bodies["prompt_truncated"] = true }
            if b.responseTruncated { bodies["response_truncated"] = true }
            bodies["explain"] = "Decrypted with the tenant's data key. Reading it is recorded in the audit log."
        case .notStored:
            bodies["explain"] = "Not stored: the tenant had not opted in to body storage when this request ran (or it never reached the engine). The ledger row above is all there is."
        case .shredded:
            bodies["explain"] = "Shredded: the tenant's data key for this request was destroyed (retention passed, or an explicit shred). The prompt and answer can never be read again."
        case .unreadable:
            bodies["explain"] = "Unreadable: the stored ciphertext does not open with the tenant's data key (tampered with, or the master key changed)."
        }
        return ["request": requestRow(d.record, stored: b.state == .available, names: names), "bodies": bodies]
    }
}

/// The request store's routes: the detail page, the settings form and the shred form (two steps:
/// the button asks for a confirmation, the confirmation shreds). POSTs are CSRF- and Origin-checked;
/// another tenant's id is a 404 and changes nothing.
func addConsoleRequestRoutes(to router: Hummingbird.Router<GatewayContext>, console: Console) {
    let platform = console.platform

    router.get("/console/requests/{id}") { request, context in
        guard let session = await console.session(request)?.session else { return console.redirect("/console/login") }
        return try await console.guarded(session: session) {
            let id = context.parameters.get("id") ?? ""
            await platform.requestLog.flush()
            await platform.requestStore.flush()
            guard let d = try await platform.requestBrowser.detail(id: id, scope: session.tenantID) else {
                console.audit(session, context, "admin.not_found", tenant: session.tenantID, target: "request \(id.prefix(64))", status: 404)
                throw APIError.notFound("Request '\(id.prefix(64))' does not exist.")
            }
            // Reading a stored prompt is itself audited (who read which request; never the text), as in the admin API.
            if d.bodies.state == .available {
                console.audit(session, context, "request.body.read", tenant: d.record.tenantID, target: d.record.id)
            }
            let tenant = try await console.tenant(d.record.tenantID ?? session.tenantID, session, context)
            return try await console.render(ConsolePages.requestDetail, session, tenant: tenant, query: ["request_id": id])
        }
    }

    /// The form's tenant: the session's own, or the operator's pick; another tenant → 404.
    @Sendable func formTenant(_ form: [String: [String]], _ session: ConsoleSession, _ context: GatewayContext) async throws -> TenantRecord {
        guard let t = try await console.tenant(form["tenant"]?.first ?? session.tenantID, session, context) else {
            throw APIError.notFound("There is no tenant.")
        }
        return t
    }

    console.postForm(router, "/console/requests/settings") { request, context, session, form in
        let found = try await formTenant(form, session, context)
        let query = ["tenant": found.id]
        let store = form["store_bodies"]?.contains("on") ?? false
        let days = (form["retention_days"]?.first ?? "").trimmingCharacters(in: .whitespaces)
        var retention: JSONValue = .null
        if !days.isEmpty {
            // A non-number reaches the API's own check as a string: the same message.
            retention = Int(days).map { .int($0) } ?? .string(days)
        }
        let updated: TenantRecord
        do {
            // The admin API's PATCH /tenants/{id} rules, by the same code.
            updated = try console.api.applied(.object([("settings", .object([("store_bodies", .bool(store)), ("store_retention_days", retention)]))]),
                                              to: found, by: session.principal)
        } catch let e as APIError {
            return try await console.render(ConsolePages.requests, session, tenant: found, query: query,
                                            extra: ["form_error": e.message], status: HTTPResponse.Status(code: e.status))
        }
        try await platform.administration.updateTenant(updated)
        console.audit(session, context, "tenant.update", tenant: updated.id, target: updated.id)
        let retentionText = updated.storeRetentionDays.map { "\($0) days" } ?? "the default (\(platform.config.requestStore.defaultRetentionDays) days)"
        return try await console.render(ConsolePages.requests, session, tenant: updated, query: query, extra: [
            "notice": store ? "Prompts and answers of \(updated.name) are stored from now on (encrypted), kept \(retentionText)."
                            : "Prompts and answers of \(updated.name) are no longer stored (ledger rows stay). Retention: \(retentionText).",
        ])
    }

    console.postForm(router, "/console/requests/shred") { request, context, session, form in
        let t = try await formTenant(form, session, context)
        guard form["confirm"]?.first == "yes" else {
            // Step one: say what will happen, and ask again.
            var values = try await console.common(nil, session, tenant: t, query: ["tenant": t.id])
            values["title"] = "Shred stored requests"
            values["shred_tenant"] = ["id": t.id, "name": t.name]
            return console.html("shred-confirm", values)
        }
        let result = try await platform.requestBrowser.shred(tenantID: t.id)
        console.audit(session, context, "request_store.shred", tenant: t.id, target: t.id)
        return try await console.render(ConsolePages.requests, session, tenant: t, query: ["tenant": t.id], extra: [
            "notice": "Shredded \(t.name): \(result.keysDestroyed) data keys destroyed, \(result.bodiesDeleted) stored bodies deleted. The ledger rows stay.",
        ])
    }
}
