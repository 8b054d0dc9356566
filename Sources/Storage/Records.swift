/// Plain rows of the schema. Times are integer milliseconds since the Unix epoch (portable
/// between SQLite and PostgreSQL, no time-zone surprises).
public struct TenantRecord: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var tier: String
    public var createdAt: Int64
    public var disabledAt: Int64?

    public init(id: String, name: String, tier: String = "tier-1", createdAt: Int64, disabledAt: Int64? = nil) {
        self.id = id; self.name = name; self.tier = tier; self.createdAt = createdAt; self.disabledAt = disabledAt
    }

    enum CodingKeys: String, CodingKey {
        case id, name, tier
        case createdAt = "created_at"
        case disabledAt = "disabled_at"
    }
}

public struct APIKeyRecord: Codable, Sendable, Equatable {
    public var id: String
    public var tenantID: String
    public var name: String
    /// Hex HMAC-SHA256(server secret, key secret). The secret itself is never stored.
    public var secretHash: String
    public var createdAt: Int64
    public var expiresAt: Int64?
    public var revokedAt: Int64?

    public init(id: String, tenantID: String, name: String, secretHash: String, createdAt: Int64,
                expiresAt: Int64? = nil, revokedAt: Int64? = nil) {
        self.id = id; self.tenantID = tenantID; self.name = name; self.secretHash = secretHash
        self.createdAt = createdAt; self.expiresAt = expiresAt; self.revokedAt = revokedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, name
        case tenantID = "tenant_id"
        case secretHash = "secret_hash"
        case createdAt = "created_at"
        case expiresAt = "expires_at"
        case revokedAt = "revoked_at"
    }
}

/// One row per inference request: who, what, how it ended, how long it took. Never prompt text.
public struct RequestRecord: Codable, Sendable, Equatable {
    public var id: String
    public var createdAt: Int64
    public var tenantID: String?
    public var keyID: String?
    public var model: String
    public var endpoint: String
    public var status: Int
    /// `ok`, `client_closed`, `upstream_error`, `engine_timeout`, `rejected`.
    public var outcome: String
    public var errorCode: String?
    public var promptTokens: Int
    public var completionTokens: Int
    public var latencyMs: Int
    public var ttftMs: Int?
    public var backend: String?

    public init(id: String, createdAt: Int64, tenantID: String?, keyID: String?, model: String, endpoint: String,
                status: Int, outcome: String, errorCode: String? = nil, promptTokens: Int = 0, completionTokens: Int = 0,
                latencyMs: Int, ttftMs: Int? = nil, backend: String? = nil) {
        self.id = id; self.createdAt = createdAt; self.tenantID = tenantID; self.keyID = keyID; self.model = model
        self.endpoint = endpoint; self.status = status; self.outcome = outcome; self.errorCode = errorCode
        self.promptTokens = promptTokens; self.completionTokens = completionTokens; self.latencyMs = latencyMs
        self.ttftMs = ttftMs; self.backend = backend
    }

    enum CodingKeys: String, CodingKey {
        case id, model, endpoint, status, outcome, backend
        case createdAt = "created_at"
        case tenantID = "tenant_id"
        case keyID = "key_id"
        case errorCode = "error_code"
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case latencyMs = "latency_ms"
        case ttftMs = "ttft_ms"
    }
}
