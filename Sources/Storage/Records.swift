/// Plain rows of the schema. Times are integer milliseconds since the Unix epoch (portable
/// between SQLite and PostgreSQL, no time-zone surprises).
public struct TenantRecord: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var tier: String
    public var createdAt: Int64
    public var disabledAt: Int64?
    /// Automatic key rotation: a key's lifetime, and how long it overlaps with its successor.
    public var rotationPeriodDays: Int?
    public var gracePeriodDays: Int?
    /// Where rotation and lifecycle notices are posted (never with a secret inside).
    public var webhookURL: String?
    /// Prompt security: enforce (default), monitor, off.
    public var shieldMode: String?
    /// Served experimental models before their in-production date.
    public var experimentalOptIn: Int?
    /// Request store: 1 when the tenant opted in to keeping prompt and answer bodies (encrypted);
    /// nil or 0 = off (the default).
    public var storeBodies: Int?
    /// Request store: days a stored body is kept (nil: the configured default).
    public var storeRetentionDays: Int?

    public init(id: String, name: String, tier: String = "tier-1", createdAt: Int64, disabledAt: Int64? = nil,
                rotationPeriodDays: Int? = nil, gracePeriodDays: Int? = nil, webhookURL: String? = nil,
                shieldMode: String? = nil, experimentalOptIn: Int? = nil, storeBodies: Int? = nil, storeRetentionDays: Int? = nil) {
        self.id = id; self.name = name; self.tier = tier; self.createdAt = createdAt; self.disabledAt = disabledAt
        self.rotationPeriodDays = rotationPeriodDays; self.gracePeriodDays = gracePeriodDays; self.webhookURL = webhookURL
        self.shieldMode = shieldMode; self.experimentalOptIn = experimentalOptIn
        self.storeBodies = storeBodies; self.storeRetentionDays = storeRetentionDays
    }

    enum CodingKeys: String, CodingKey {
        case id, name, tier
        case createdAt = "created_at"
        case disabledAt = "disabled_at"
        case rotationPeriodDays = "rotation_period_days"
        case gracePeriodDays = "grace_period_days"
        case webhookURL = "webhook_url"
        case shieldMode = "shield_mode"
        case experimentalOptIn = "experimental_opt_in"
        case storeBodies = "store_bodies"
        case storeRetentionDays = "store_retention_days"
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
    /// JSON of the key's grants (models, endpoints, client IPs); nil = everything.
    public var grants: String?
    public var lastUsedAt: Int64?
    /// Rotation: the key that replaces this one, and the key this one replaced.
    public var successorID: String?
    public var predecessorID: String?
    public var rotatedAt: Int64?
    /// A successor's secret, sealed with AES-256-GCM, until the tenant's admin fetches it once.
    public var sealedSecret: String?

    public init(id: String, tenantID: String, name: String, secretHash: String, createdAt: Int64,
                expiresAt: Int64? = nil, revokedAt: Int64? = nil, grants: String? = nil, lastUsedAt: Int64? = nil,
                successorID: String? = nil, predecessorID: String? = nil, rotatedAt: Int64? = nil, sealedSecret: String? = nil) {
        self.id = id; self.tenantID = tenantID; self.name = name; self.secretHash = secretHash
        self.createdAt = createdAt; self.expiresAt = expiresAt; self.revokedAt = revokedAt
        self.grants = grants; self.lastUsedAt = lastUsedAt; self.successorID = successorID
        self.predecessorID = predecessorID; self.rotatedAt = rotatedAt; self.sealedSecret = sealedSecret
    }

    enum CodingKeys: String, CodingKey {
        case id, name, grants
        case tenantID = "tenant_id"
        case secretHash = "secret_hash"
        case createdAt = "created_at"
        case expiresAt = "expires_at"
        case revokedAt = "revoked_at"
        case lastUsedAt = "last_used_at"
        case successorID = "successor_id"
        case predecessorID = "predecessor_id"
        case rotatedAt = "rotated_at"
        case sealedSecret = "sealed_secret"
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
    /// The name the client asked for (an alias), when it differs from `model` (the model served).
    public var modelRequested: String?
    /// Part of `promptTokens` from system/developer messages.
    public var systemTokens: Int?
    /// Part of `completionTokens` spent on reasoning.
    public var reasoningTokens: Int?
    public var costNano: Int64?
    /// Energy in micro-watt-hours.
    public var energyMicroWh: Int64?
    /// 1 when the token counts are an estimate (the engine gave none).
    public var estimated: Int?
    /// 1 for a line of a batch (issue 17: billed at the batch price); nil for interactive requests.
    public var batch: Int?
    /// Tokens read by a rerank request (query and documents), billed at the rerank price (issue 17).
    public var rerankedTokens: Int?
    /// Duration of a transcribed audio file in milliseconds, billed per started minute (issue 17).
    public var audioMs: Int?

    public init(id: String, createdAt: Int64, tenantID: String?, keyID: String?, model: String, endpoint: String,
                status: Int, outcome: String, errorCode: String? = nil, promptTokens: Int = 0, completionTokens: Int = 0,
                latencyMs: Int, ttftMs: Int? = nil, backend: String? = nil, modelRequested: String? = nil,
                systemTokens: Int? = nil, reasoningTokens: Int? = nil, costNano: Int64? = nil, energyMicroWh: Int64? = nil,
                estimated: Int? = nil, batch: Int? = nil) {
        self.id = id; self.createdAt = createdAt; self.tenantID = tenantID; self.keyID = keyID; self.model = model
        self.endpoint = endpoint; self.status = status; self.outcome = outcome; self.errorCode = errorCode
        self.promptTokens = promptTokens; self.completionTokens = completionTokens; self.latencyMs = latencyMs
        self.ttftMs = ttftMs; self.backend = backend; self.modelRequested = modelRequested; self.systemTokens = systemTokens
        self.reasoningTokens = reasoningTokens; self.costNano = costNano; self.energyMicroWh = energyMicroWh; self.estimated = estimated
        self.batch = batch
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
        case modelRequested = "model_requested"
        case systemTokens = "system_tokens"
        case reasoningTokens = "reasoning_tokens"
        case costNano = "cost_nano"
        case energyMicroWh = "energy_uwh"
        case estimated, batch
        case rerankedTokens = "reranked_tokens"
        case audioMs = "audio_ms"
    }

    /// As the synthesized encoding, except that `batch` is left out when nil: a row of an
    /// interactive request has exactly the columns it had before migration 8 (code and tests that
    /// insert rows into an older schema keep working); ``Storage/insertRequests(_:)`` inserts
    /// rows with and without it in separate statements.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encodeIfPresent(tenantID, forKey: .tenantID)
        try c.encodeIfPresent(keyID, forKey: .keyID)
        try c.encode(model, forKey: .model)
        try c.encode(endpoint, forKey: .endpoint)
        try c.encode(status, forKey: .status)
        try c.encode(outcome, forKey: .outcome)
        try c.encodeIfPresent(errorCode, forKey: .errorCode)
        try c.encode(promptTokens, forKey: .promptTokens)
        try c.encode(completionTokens, forKey: .completionTokens)
        try c.encode(latencyMs, forKey: .latencyMs)
        try c.encodeIfPresent(ttftMs, forKey: .ttftMs)
        try c.encodeIfPresent(backend, forKey: .backend)
        try c.encodeIfPresent(modelRequested, forKey: .modelRequested)
        try c.encodeIfPresent(systemTokens, forKey: .systemTokens)
        try c.encodeIfPresent(reasoningTokens, forKey: .reasoningTokens)
        try c.encodeIfPresent(costNano, forKey: .costNano)
        try c.encodeIfPresent(energyMicroWh, forKey: .energyMicroWh)
        try c.encodeIfPresent(estimated, forKey: .estimated)
        if let batch { try c.encode(batch, forKey: .batch) }
        if let rerankedTokens { try c.encode(rerankedTokens, forKey: .rerankedTokens) }
        if let audioMs { try c.encode(audioMs, forKey: .audioMs) }
    }
}

/// Prepaid credit added to a tenant (the upfront credit of its tier, or a top-up).
extension RequestRecord {
    /// Billed: priced, or answered 200. The others were answered with an error before anything was
    /// billed (unknown model, refused key, rate limit …): `/v1/usage`'s `rejected_requests`.
    public var isBilled: Bool { costNano != nil || status == 200 }
}

public struct CreditRecord: Codable, Sendable, Equatable {
    public var id: String
    public var tenantID: String
    public var amountNano: Int64
    public var createdAt: Int64
    public var note: String?

    enum CodingKeys: String, CodingKey {
        case id, note
        case tenantID = "tenant_id"
        case amountNano = "amount_nano"
        case createdAt = "created_at"
    }
}

public struct AdminTokenRecord: Codable, Sendable, Equatable {
    public var id: String
    public var tokenHash: String
    public var name: String
    /// nil: operator token (all tenants); else the one tenant this token administers.
    public var tenantID: String?
    public var createdAt: Int64
    public var revokedAt: Int64?

    public init(id: String, tokenHash: String, name: String, tenantID: String?, createdAt: Int64, revokedAt: Int64? = nil) {
        self.id = id; self.tokenHash = tokenHash; self.name = name; self.tenantID = tenantID
        self.createdAt = createdAt; self.revokedAt = revokedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, name
        case tokenHash = "token_hash"
        case tenantID = "tenant_id"
        case createdAt = "created_at"
        case revokedAt = "revoked_at"
    }
}

/// One audit entry. Never prompt or completion text. `hash` covers `prevHash` and the entry's
/// canonical bytes, so any edit, deletion, insertion or reordering breaks the chain.
public struct AuditRecord: Codable, Sendable, Equatable {
    public var seq: Int64
    public var time: Int64
    /// `key:<id>`, `admin:<id>`, `system`, or `anonymous`.
    public var actor: String
    public var tenantID: String?
    public var action: String
    public var target: String?
    public var outcome: String
    public var requestID: String?
    public var clientIP: String?
    public var userAgent: String?
    public var model: String?
    public var status: Int?
    public var tokens: Int?
    public var prevHash: String
    public var hash: String

    public init(seq: Int64, time: Int64, actor: String, tenantID: String?, action: String, target: String?, outcome: String,
                requestID: String?, clientIP: String?, userAgent: String?, model: String?, status: Int?, tokens: Int?,
                prevHash: String, hash: String) {
        self.seq = seq; self.time = time; self.actor = actor; self.tenantID = tenantID; self.action = action
        self.target = target; self.outcome = outcome; self.requestID = requestID; self.clientIP = clientIP
        self.userAgent = userAgent; self.model = model; self.status = status; self.tokens = tokens
        self.prevHash = prevHash; self.hash = hash
    }

    enum CodingKeys: String, CodingKey {
        case seq, time, actor, action, target, outcome, model, status, tokens, hash
        case tenantID = "tenant_id"
        case requestID = "request_id"
        case clientIP = "client_ip"
        case userAgent = "user_agent"
        case prevHash = "prev_hash"
    }
}
