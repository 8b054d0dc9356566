import Foundation
import Hummingbird
import Observability
import OpenAIWire
import Storage

/// The request store as the admin API, the console and the CLI see it (SPEC S8): every ledger row,
/// filtered and paged, and one request's decrypted bodies. `scope` is the caller's tenant (nil: an
/// operator, every tenant); another tenant's rows are never returned and naming them answers 404,
/// exactly as an id that does not exist (ids do not leak).
public struct RequestBrowser: Sendable {
    public let storage: Storage
    public let store: RequestStore
    /// Retention of an opted-in tenant that chose none (`request_store.default_retention_days`).
    public let defaultRetentionDays: Int

    public init(storage: Storage, store: RequestStore, defaultRetentionDays: Int) {
        self.storage = storage
        self.store = store
        self.defaultRetentionDays = defaultRetentionDays
    }

    public static let maxLimit = 500

    /// Filters of the browser; nil narrows nothing. `status`: 200; `statusClass`: 2 for 2xx.
    public struct Query: Sendable, Equatable {
        public var tenantID: String?
        public var from: Int64?
        public var to: Int64?
        public var model: String?
        public var keyID: String?
        public var status: Int?
        public var statusClass: Int?
        public var requestID: String?
        /// `next_cursor` of the previous page.
        public var cursor: String?
        public var limit: Int

        public init(tenantID: String? = nil, from: Int64? = nil, to: Int64? = nil, model: String? = nil, keyID: String? = nil,
                    status: Int? = nil, statusClass: Int? = nil, requestID: String? = nil, cursor: String? = nil, limit: Int = 50) {
            self.tenantID = tenantID; self.from = from; self.to = to; self.model = model; self.keyID = keyID; self.status = status
            self.statusClass = statusClass; self.requestID = requestID; self.cursor = cursor; self.limit = limit
        }
    }

    public struct Page: Sendable {
        /// Newest first.
        public let rows: [RequestRecord]
        /// Ids of `rows` whose bodies are stored (encrypted).
        public let withBodies: Set<String>
        /// Pass as `Query.cursor` for the next (older) page; nil on the last page.
        public let nextCursor: String?
    }

    public struct Detail: Sendable {
        public let record: RequestRecord
        public let bodies: StoredBodies
    }

    /// One page of ledger rows. Throws `APIError` 404 when `query.tenantID` names a tenant outside
    /// `scope`, 400 for a cursor that is not one of ours or a limit outside 1…500.
    public func list(_ query: Query, scope: String?) async throws -> Page {
        if let scope, let asked = query.tenantID, asked != scope { throw APIError.notFound("Tenant '\(asked.prefix(64))' does not exist.") }
        guard (1...Self.maxLimit).contains(query.limit) else { throw APIError.invalidValue("limit", "a whole number between 1 and \(Self.maxLimit).") }
        var after: (createdAt: Int64, id: String)?
        if let c = query.cursor {
            guard let parsed = Self.parseCursor(c) else { throw APIError.invalidValue("cursor", "pass the next_cursor of the previous page unchanged.") }
            after = parsed
        }
        let filter = RequestFilter(tenantID: scope ?? query.tenantID, from: query.from, to: query.to, model: query.model, keyID: query.keyID,
                                   status: query.status, statusClass: query.statusClass, requestID: query.requestID, after: after,
                                   limit: query.limit + 1)
        var rows = try await storage.requestRows(filter)
        let more = rows.count > query.limit
        if more { rows.removeLast(rows.count - query.limit) }
        let stored = try await storage.requestIDsWithBodies(rows.map(\.id))
        return Page(rows: rows, withBodies: stored, nextCursor: more ? rows.last.map(Self.cursor) : nil)
    }

    /// One request's ledger row and its bodies (decrypted, or the state saying why not); nil when
    /// the id does not exist or belongs to a tenant outside `scope`.
    public func detail(id: String, scope: String?) async throws -> Detail? {
        guard let record = try await storage.request(id: id), scope == nil || record.tenantID == scope else { return nil }
        return Detail(record: record, bodies: try await store.bodies(of: record))
    }

    /// Crypto-shredding of a tenant: destroys all its data keys and deletes its stored bodies. The
    /// ledger rows stay (they are the bill).
    public func shred(tenantID: String) async throws -> RequestStore.ShredResult {
        try await store.shred(tenantID: tenantID)
    }

    /// Retention (the maintenance service): for every tenant holding data keys, destroys the keys
    /// of the days past its retention and deletes the bodies older than it; a tenant that no longer
    /// exists loses all of them.
    @discardableResult
    public func applyRetention() async throws -> [(tenantID: String, result: RequestStore.ShredResult)] {
        var done: [(String, RequestStore.ShredResult)] = []
        for tenantID in try await storage.tenantsWithLiveDataKeys() {
            let result: RequestStore.ShredResult
            if let t = try await storage.tenant(id: tenantID) {
                result = try await store.expire(tenantID: tenantID, retentionDays: t.storeRetentionDays ?? defaultRetentionDays)
            } else {
                result = try await store.shred(tenantID: tenantID)
            }
            if result.keysDestroyed > 0 || result.bodiesDeleted > 0 { done.append((tenantID, result)) }
        }
        return done
    }

    // MARK: Cursor

    /// Opaque to clients: base64url of `<created_at>.<id>` of the last row of a page.
    public static func cursor(_ r: RequestRecord) -> String {
        Data("\(r.createdAt).\(r.id)".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func parseCursor(_ text: String) -> (createdAt: Int64, id: String)? {
        guard text.count <= 400 else { return nil }
        var b64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64), let s = String(data: data, encoding: .utf8),
              let dot = s.firstIndex(of: "."), let t = Int64(s[..<dot]) else { return nil }
        let id = String(s[s.index(after: dot)...])
        return id.isEmpty ? nil : (t, id)
    }

    // MARK: JSON (the admin API and `llmaas requests … --json`)

    public static func rowJSON(_ r: RequestRecord, bodyStored: Bool) -> JSONValue {
        func int(_ v: Int?) -> JSONValue { v.map { .int($0) } ?? .null }
        func int64(_ v: Int64?) -> JSONValue { v.map { .int(Int($0)) } ?? .null }
        func str(_ v: String?) -> JSONValue { v.map(JSONValue.string) ?? .null }
        return .object([
            ("id", .string(r.id)), ("object", "request"), ("created_at", .int(Int(r.createdAt))),
            ("tenant_id", str(r.tenantID)), ("key_id", str(r.keyID)), ("model", .string(r.model)), ("model_requested", str(r.modelRequested)),
            ("endpoint", .string(r.endpoint)), ("status", .int(r.status)), ("outcome", .string(r.outcome)), ("error_code", str(r.errorCode)),
            ("prompt_tokens", .int(r.promptTokens)), ("completion_tokens", .int(r.completionTokens)),
            ("system_tokens", int(r.systemTokens)), ("reasoning_tokens", int(r.reasoningTokens)),
            ("latency_ms", .int(r.latencyMs)), ("ttft_ms", int(r.ttftMs)), ("backend", str(r.backend)),
            ("cost_nano_eur", int64(r.costNano)), ("energy_uwh", int64(r.energyMicroWh)), ("estimated", .bool((r.estimated ?? 0) != 0)),
            ("reranked_tokens", int(r.rerankedTokens)), ("audio_ms", int(r.audioMs)),
            ("body_stored", .bool(bodyStored)),
        ])
    }

    public static func pageJSON(_ page: Page) -> JSONValue {
        .object([
            ("object", "list"),
            ("data", .array(page.rows.map { rowJSON($0, bodyStored: page.withBodies.contains($0.id)) })),
            ("has_more", .bool(page.nextCursor != nil)),
            ("next_cursor", page.nextCursor.map(JSONValue.string) ?? .null),
        ])
    }

    public static func bodiesJSON(_ b: StoredBodies) -> JSONValue {
        .object([
            ("state", .string(b.state.rawValue)),
            ("prompt", b.prompt.map(JSONValue.string) ?? .null),
            ("response", b.response.map(JSONValue.string) ?? .null),
            ("response_format", b.responseFormat.map(JSONValue.string) ?? .null),
            ("prompt_bytes", b.promptBytes.map { .int($0) } ?? .null),
            ("response_bytes", b.responseBytes.map { .int($0) } ?? .null),
            ("prompt_truncated", .bool(b.promptTruncated)),
            ("response_truncated", .bool(b.responseTruncated)),
        ])
    }

    public static func detailJSON(_ d: Detail) -> JSONValue {
        var out = rowJSON(d.record, bodyStored: d.bodies.state != .notStored && d.bodies.state != .shredded)
        out.set("bodies", bodiesJSON(d.bodies))
        return out
    }
}

extension Platform {
    /// The request store's browser, scoped per call (the console's entry point).
    public var requestBrowser: RequestBrowser {
        RequestBrowser(storage: storage, store: requestStore, defaultRetentionDays: config.requestStore.defaultRetentionDays)
    }
}

/// `/admin/v1/requests` (browse, filter, one request with its bodies) and the per-tenant shred.
func addRequestStoreRoutes(to router: Hummingbird.Router<GatewayContext>, platform: Platform) {
    let api = AdminAPI(platform: platform)
    let admin = router.group("/admin/v1")
    let known = ["tenant", "from", "to", "model", "key", "status", "request_id", "cursor", "limit"]

    admin.get("/requests") { request, context in
        let p = try await api.admin(request, context)
        let q = request.uri.queryParameters
        for (name, _) in q where !known.contains(String(name)) {
            throw APIError.invalidRequest("Unknown query parameter '\(name.prefix(64))' (known: \(known.joined(separator: ", "))).",
                                          param: String(name.prefix(64)), code: "unknown_parameter")
        }
        func millis(_ name: String) throws(APIError) -> Int64? {
            guard let text = q.get(name) else { return nil }
            guard let v = Int64(text), v >= 0 else { throw APIError.invalidValue(name, "milliseconds since the epoch (a non-negative integer).") }
            return v
        }
        func text(_ name: String) throws(APIError) -> String? {
            guard let v = q.get(name) else { return nil }
            guard (1...200).contains(v.unicodeScalars.count) else { throw APIError.invalidValue(name, "a non-empty string of at most 200 characters.") }
            return v
        }
        var query = RequestBrowser.Query(tenantID: try text("tenant"), from: try millis("from"), to: try millis("to"), model: try text("model"),
                                         keyID: try text("key"), requestID: try text("request_id"), cursor: try text("cursor"))
        if let s = q.get("status") {
            let u = Array(s.utf8)
            let digit = { (b: UInt8) in (0x30...0x39).contains(b) }
            guard u.count == 3, (0x31...0x35).contains(u[0]) else { throw APIError.invalidValue("status", "a status code (200) or a class (2xx, 4xx, 5xx).") }
            if u[1] == 0x78 && u[2] == 0x78 { query.statusClass = Int(u[0] - 0x30) }
            else if digit(u[1]) && digit(u[2]) { query.status = Int(s) }
            else { throw APIError.invalidValue("status", "a status code (200) or a class (2xx, 4xx, 5xx).") }
        }
        if let l = q.get("limit") {
            guard let n = Int(l), (1...RequestBrowser.maxLimit).contains(n) else {
                throw APIError.invalidValue("limit", "a whole number between 1 and \(RequestBrowser.maxLimit).")
            }
            query.limit = n
        }
        if let scope = p.tenantID, let asked = query.tenantID, asked != scope {
            api.audit(p, context, "admin.not_found", tenant: scope, target: "tenant \(asked.prefix(64))", outcome: "not found", status: 404)
        }
        await platform.requestLog.flush()  // a request just answered is browsable at once
        let page = try await platform.requestBrowser.list(query, scope: p.tenantID)
        return jsonResponse(RequestBrowser.pageJSON(page))
    }

    admin.get("/requests/{id}") { request, context in
        let p = try await api.admin(request, context)
        let id = context.parameters.get("id") ?? ""
        await platform.requestLog.flush()
        await platform.requestStore.flush()
        guard let detail = try await platform.requestBrowser.detail(id: id, scope: p.tenantID) else {
            api.audit(p, context, "admin.not_found", tenant: p.tenantID, target: "request \(id.prefix(64))", outcome: "not found", status: 404)
            throw APIError.notFound("Request '\(id.prefix(64))' does not exist.")
        }
        // Reading a stored prompt is itself audited (who read which request; never the text).
        if detail.bodies.state == .available {
            api.audit(p, context, "request.body.read", tenant: detail.record.tenantID, target: detail.record.id)
        }
        return jsonResponse(RequestBrowser.detailJSON(detail))
    }

    admin.post("/tenants/{id}/request-store/shred") { request, context in
        let p = try await api.admin(request, context)
        let t = try await api.tenant(context.parameters.get("id") ?? "", for: p, context)
        _ = try await api.body(request, context, allowed: [])
        let result = try await platform.requestBrowser.shred(tenantID: t.id)
        api.audit(p, context, "request_store.shred", tenant: t.id, target: t.id,
                  outcome: "keys=\(result.keysDestroyed) bodies=\(result.bodiesDeleted)")
        return jsonResponse(.object([("tenant_id", .string(t.id)), ("keys_destroyed", .int(result.keysDestroyed)),
                                     ("bodies_deleted", .int(result.bodiesDeleted))]))
    }
}
