import SQLKit

/// A data key of the request store: random per tenant and UTC day, kept only wrapped (sealed with
/// AES-256-GCM by the master key, which is never in the database). `wrappedKey == nil`: shredded.
public struct DataKeyRecord: Codable, Sendable, Equatable {
    public var id: String
    public var tenantID: String
    /// The UTC day the key encrypts, `YYYY-MM-DD`.
    public var period: String
    /// Base64 of the AES-GCM combined box (nonce, ciphertext, tag) of the 32 key bytes.
    public var wrappedKey: String?
    public var createdAt: Int64
    public var shreddedAt: Int64?
    /// What the key encrypts (`request_body`, `api_key_secret`, `webhook_secret`, `batch_file`, …);
    /// `tenantID` is then the owner of the scope (a tenant id, or `platform`).
    public var purpose: String
    /// The identifier of the master key that wrapped it (nil: wrapped before migration 10).
    public var masterID: String?

    public init(id: String, tenantID: String, period: String, wrappedKey: String?, createdAt: Int64, shreddedAt: Int64? = nil,
                purpose: String = DataKeyRecord.requestBody, masterID: String? = nil) {
        self.id = id; self.tenantID = tenantID; self.period = period; self.wrappedKey = wrappedKey
        self.createdAt = createdAt; self.shreddedAt = shreddedAt; self.purpose = purpose; self.masterID = masterID
    }

    /// The purpose of the request store's keys (every key made before migration 10).
    public static let requestBody = "request_body"

    enum CodingKeys: String, CodingKey {
        case id, period, purpose
        case masterID = "master_id"
        case tenantID = "tenant_id"
        case wrappedKey = "wrapped_key"
        case createdAt = "created_at"
        case shreddedAt = "shredded_at"
    }
}

/// The stored bodies of one request: ciphertext only (base64 of AES-GCM combined boxes).
public struct RequestBodyRecord: Codable, Sendable, Equatable {
    public var requestID: String
    public var tenantID: String
    public var keyID: String
    public var period: String
    public var createdAt: Int64
    public var prompt: String?
    public var response: String?
    /// `json` (a non-streamed answer) or `text` (a stream's assembled text).
    public var responseFormat: String
    /// Sizes before truncation.
    public var promptBytes: Int
    public var responseBytes: Int
    /// Bit 1: the prompt was cut at the size bound; bit 2: the answer was.
    public var truncated: Int

    public init(requestID: String, tenantID: String, keyID: String, period: String, createdAt: Int64, prompt: String?, response: String?,
                responseFormat: String, promptBytes: Int, responseBytes: Int, truncated: Int) {
        self.requestID = requestID; self.tenantID = tenantID; self.keyID = keyID; self.period = period; self.createdAt = createdAt
        self.prompt = prompt; self.response = response; self.responseFormat = responseFormat
        self.promptBytes = promptBytes; self.responseBytes = responseBytes; self.truncated = truncated
    }

    enum CodingKeys: String, CodingKey {
        case period, prompt, response, truncated
        case requestID = "request_id"
        case tenantID = "tenant_id"
        case keyID = "key_id"
        case createdAt = "created_at"
        case responseFormat = "response_format"
        case promptBytes = "prompt_bytes"
        case responseBytes = "response_bytes"
    }
}

/// Filters of the request browser; every field narrows (nil: no condition). Rows come newest
/// first; `after` continues below a (created_at, id) position (the cursor).
public struct RequestFilter: Sendable, Equatable {
    public var tenantID: String?
    public var from: Int64?
    public var to: Int64?
    public var model: String?
    public var keyID: String?
    public var status: Int?
    /// 2 for 2xx, 4 for 4xx, 5 for 5xx …
    public var statusClass: Int?
    public var requestID: String?
    public var outcome: String?
    public var after: (createdAt: Int64, id: String)?
    public var limit: Int

    public init(tenantID: String? = nil, from: Int64? = nil, to: Int64? = nil, model: String? = nil, keyID: String? = nil,
                status: Int? = nil, statusClass: Int? = nil, requestID: String? = nil, outcome: String? = nil,
                after: (createdAt: Int64, id: String)? = nil, limit: Int = 50) {
        self.tenantID = tenantID; self.from = from; self.to = to; self.model = model; self.keyID = keyID; self.status = status
        self.statusClass = statusClass; self.requestID = requestID; self.outcome = outcome; self.after = after; self.limit = limit
    }

    public static func == (a: RequestFilter, b: RequestFilter) -> Bool {
        a.tenantID == b.tenantID && a.from == b.from && a.to == b.to && a.model == b.model && a.keyID == b.keyID && a.status == b.status
            && a.statusClass == b.statusClass && a.requestID == b.requestID && a.outcome == b.outcome && a.limit == b.limit
            && a.after?.createdAt == b.after?.createdAt && a.after?.id == b.after?.id
    }
}

extension Storage {
    // MARK: Request browser

    /// Ledger rows matching `filter`, newest first, at most `filter.limit`.
    public func requestRows(_ filter: RequestFilter) async throws -> [RequestRecord] {
        var q = db.select().columns("*").from("requests")
        if let t = filter.tenantID { q = q.where("tenant_id", .equal, t) }
        if let from = filter.from { q = q.where("created_at", .greaterThanOrEqual, from) }
        if let to = filter.to { q = q.where("created_at", .lessThan, to) }
        if let m = filter.model { q = q.where("model", .equal, m) }
        if let k = filter.keyID { q = q.where("key_id", .equal, k) }
        if let s = filter.status { q = q.where("status", .equal, s) }
        if let c = filter.statusClass {
            q = q.where("status", .greaterThanOrEqual, c * 100).where("status", .lessThan, c * 100 + 100)
        }
        if let id = filter.requestID { q = q.where("id", .equal, id) }
        if let o = filter.outcome { q = q.where("outcome", .equal, o) }
        if let after = filter.after {
            q = q.where { g in
                g.where("created_at", .lessThan, after.createdAt)
                    .orWhere { $0.where("created_at", .equal, after.createdAt).where("id", .lessThan, after.id) }
            }
        }
        return try await q.orderBy("created_at", .descending).orderBy("id", .descending).limit(max(0, filter.limit))
            .all(decoding: RequestRecord.self)
    }

    // MARK: Request bodies

    /// Inserts encrypted bodies (a request's bodies are written once; a repeat is ignored).
    public func insertRequestBodies(_ rows: [RequestBodyRecord]) async throws {
        guard !rows.isEmpty else { return }
        for start in stride(from: 0, to: rows.count, by: 500) {
            try await db.insert(into: "request_bodies").models(Array(rows[start..<min(start + 500, rows.count)]), nilEncodingStrategy: .asNil)
                .ignoringConflicts().run()
        }
    }

    public func requestBody(requestID: String) async throws -> RequestBodyRecord? {
        try await db.select().columns("*").from("request_bodies").where("request_id", .equal, requestID).first(decoding: RequestBodyRecord.self)
    }

    /// Which of `requestIDs` have stored bodies.
    public func requestIDsWithBodies(_ requestIDs: [String]) async throws -> Set<String> {
        guard !requestIDs.isEmpty else { return [] }
        let ids = try await db.select().column("request_id").from("request_bodies").where("request_id", .in, requestIDs)
            .all(decodingColumn: "request_id", as: String.self)
        return Set(ids)
    }

    /// Deletes a tenant's bodies created before `before` (all of them when nil); returns how many.
    @discardableResult
    public func deleteRequestBodies(tenantID: String, before: Int64?) async throws -> Int {
        var count = db.select().column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n").from("request_bodies").where("tenant_id", .equal, tenantID)
        if let before { count = count.where("created_at", .lessThan, before) }
        let n = try await count.first(decodingColumn: "n", as: Int.self) ?? 0
        var q = db.delete(from: "request_bodies").where("tenant_id", .equal, tenantID)
        if let before { q = q.where("created_at", .lessThan, before) }
        try await q.run()
        return n
    }

    // MARK: Data keys

    public func insertDataKey(_ key: DataKeyRecord) async throws {
        try await db.insert(into: "request_data_keys").model(key, nilEncodingStrategy: .asNil).run()
    }

    public func dataKey(id: String) async throws -> DataKeyRecord? {
        try await db.select().columns("*").from("request_data_keys").where("id", .equal, id).first(decoding: DataKeyRecord.self)
    }

    /// The oldest live (not shredded) key of a tenant's period: every writer picks the same one.
    public func liveDataKey(tenantID: String, period: String, purpose: String = DataKeyRecord.requestBody) async throws -> DataKeyRecord? {
        try await db.select().columns("*").from("request_data_keys").where("tenant_id", .equal, tenantID).where("period", .equal, period)
            .where("purpose", .equal, purpose)
            .where("wrapped_key", .isNot, SQLLiteral.null).orderBy("created_at").orderBy("id").limit(1).first(decoding: DataKeyRecord.self)
    }

    /// Whether a key of the tenant's period was shredded at or after `since` (a request made after
    /// a shred was not shredded by it).
    public func shreddedDataKeyExists(tenantID: String, period: String, since: Int64, purpose: String = DataKeyRecord.requestBody) async throws -> Bool {
        try await db.select().column("id").from("request_data_keys").where("tenant_id", .equal, tenantID).where("period", .equal, period)
            .where("purpose", .equal, purpose)
            .where("wrapped_key", .is, SQLLiteral.null).where("shredded_at", .greaterThanOrEqual, since).limit(1).first() != nil
    }

    /// Tenants holding at least one live data key (what retention looks at).
    public func tenantsWithLiveDataKeys(purpose: String = DataKeyRecord.requestBody) async throws -> [String] {
        try await db.select().distinct().column("tenant_id").from("request_data_keys").where("wrapped_key", .isNot, SQLLiteral.null)
            .where("purpose", .equal, purpose)
            .all(decodingColumn: "tenant_id", as: String.self)
    }

    /// Crypto-shredding: forgets the wrapped key of a tenant's periods before `beforePeriod` (all
    /// periods when nil). The row stays as a tombstone. Returns the ids of the keys destroyed.
    @discardableResult
    public func shredDataKeys(tenantID: String, beforePeriod: String?, at time: Int64, purpose: String = DataKeyRecord.requestBody) async throws -> [String] {
        var select = db.select().column("id").from("request_data_keys").where("tenant_id", .equal, tenantID)
            .where("wrapped_key", .isNot, SQLLiteral.null).where("purpose", .equal, purpose)
        if let beforePeriod { select = select.where("period", .lessThan, beforePeriod) }
        let ids = try await select.all(decodingColumn: "id", as: String.self)
        guard !ids.isEmpty else { return [] }
        try await db.update("request_data_keys").set("wrapped_key", to: SQLLiteral.null).set("shredded_at", to: SQLBind(time))
            .where("id", .in, ids).run()
        return ids
    }

    // MARK: Data keys: master key rotation

    /// The master key ids live data keys are wrapped under (nil: wrapped before ids were kept).
    public func liveDataKeyMasterIDs() async throws -> [String?] {
        try await db.select().distinct().column("master_id").from("request_data_keys").where("wrapped_key", .isNot, SQLLiteral.null)
            .all(decodingColumn: "master_id", as: String?.self)
    }

    /// Live data keys not wrapped under `masterID`, oldest first, at most `limit`.
    public func liveDataKeys(notWrappedUnder masterID: String, limit: Int) async throws -> [DataKeyRecord] {
        try await db.select().columns("*").from("request_data_keys").where("wrapped_key", .isNot, SQLLiteral.null)
            .where { $0.where("master_id", .is, SQLLiteral.null).orWhere("master_id", .notEqual, masterID) }
            .orderBy("created_at").orderBy("id").limit(limit).all(decoding: DataKeyRecord.self)
    }

    /// Replaces a key's wrapping only if it is still `expected` (a key shredded or re-wrapped
    /// meanwhile is left alone: a rotation never brings a shredded key back). Whether it changed.
    public func rewrapDataKey(id: String, expected: String, wrapped: String, masterID: String) async throws -> Bool {
        let before = try await db.select().column("id").from("request_data_keys").where("id", .equal, id)
            .where("wrapped_key", .equal, expected).first()
        guard before != nil else { return false }
        try await db.update("request_data_keys").set("wrapped_key", to: SQLBind(wrapped)).set("master_id", to: SQLBind(masterID))
            .where("id", .equal, id).where("wrapped_key", .equal, expected).run()
        return true
    }

    // MARK: Sealed values (encryption at rest)

    /// Keys holding a sealed successor secret (not fetched yet).
    public func keysWithSealedSecret() async throws -> [APIKeyRecord] {
        try await db.select().columns("*").from("api_keys").where("sealed_secret", .isNot, SQLLiteral.null).all(decoding: APIKeyRecord.self)
    }

    /// Replaces a key's sealed secret if it is still `expected` (not fetched or replaced meanwhile).
    public func replaceSealedSecret(keyID: String, expected: String, sealed: String) async throws {
        try await db.update("api_keys").set("sealed_secret", to: SQLBind(sealed)).where("id", .equal, keyID)
            .where("sealed_secret", .equal, expected).run()
    }

    /// Every tenant's sealed webhook signing secret.
    public func allWebhookSecrets() async throws -> [(tenantID: String, sealed: String)] {
        try await db.select().columns("tenant_id", "sealed").from("webhook_secrets").all().map {
            (try $0.decode(column: "tenant_id", as: String.self), try $0.decode(column: "sealed", as: String.self))
        }
    }

    /// Replaces a tenant's sealed webhook secret if it is still `expected` (not rotated meanwhile).
    public func replaceWebhookSecret(tenantID: String, expected: String, sealed: String) async throws {
        try await db.update("webhook_secrets").set("sealed", to: SQLBind(sealed)).where("tenant_id", .equal, tenantID)
            .where("sealed", .equal, expected).run()
    }
}
