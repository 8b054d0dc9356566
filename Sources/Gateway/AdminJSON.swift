import OpenAIWire
import Storage
import Tenancy

/// The JSON of tenants and API keys, one shape for the admin API and the CLI's `--json`. A key's
/// secret and its hash are never part of it.
public enum AdminJSON {
    public static func tenant(_ t: TenantRecord) -> JSONValue {
        .object([
            ("id", .string(t.id)), ("name", .string(t.name)), ("tier", .string(t.tier)),
            ("created_at", .int(Int(t.createdAt))), ("disabled", .bool(t.disabledAt != nil)),
            ("settings", .object([
                ("rotation_period_days", t.rotationPeriodDays.map { .int($0) } ?? .null),
                ("grace_period_days", t.gracePeriodDays.map { .int($0) } ?? .null),
                ("webhook_url", t.webhookURL.map(JSONValue.string) ?? .null),
                ("shield_mode", .string(t.shieldMode ?? "enforce")),
                ("experimental_opt_in", .bool((t.experimentalOptIn ?? 0) != 0)),
                ("store_bodies", .bool((t.storeBodies ?? 0) != 0)),
                ("store_retention_days", t.storeRetentionDays.map { .int($0) } ?? .null),
            ])),
        ])
    }

    /// `revoked`, `rotated` (it has a successor; it works until `expires_at`), `expired`, or `active`.
    public static func keyState(_ k: APIKeyRecord, now: Int64) -> String {
        if k.revokedAt != nil { return "revoked" }
        if k.successorID != nil { return "rotated" }
        if let e = k.expiresAt, e <= now { return "expired" }
        return "active"
    }

    public static func key(_ k: APIKeyRecord, now: Int64) -> JSONValue {
        .object([
            ("id", .string(k.id)), ("tenant_id", .string(k.tenantID)), ("name", .string(k.name)),
            ("prefix", .string(APIKeyToken.prefix + k.id)), ("state", .string(keyState(k, now: now))),
            ("created_at", .int(Int(k.createdAt))), ("expires_at", k.expiresAt.map { .int(Int($0)) } ?? .null),
            ("revoked", .bool(k.revokedAt != nil)), ("last_used_at", k.lastUsedAt.map { .int(Int($0)) } ?? .null),
            ("successor_id", k.successorID.map(JSONValue.string) ?? .null),
            ("predecessor_id", k.predecessorID.map(JSONValue.string) ?? .null),
            ("grants", grants(Grants.decode(k.grants))),
        ])
    }

    public static func keys(_ keys: [APIKeyRecord], now: Int64) -> JSONValue {
        .object([("object", "list"), ("data", .array(keys.map { key($0, now: now) }))])
    }

    public static func grants(_ g: Grants) -> JSONValue {
        .object([
            ("models", .array(g.models.map(JSONValue.string))), ("deny_models", .array(g.denyModels.map(JSONValue.string))),
            ("endpoints", .array(g.endpoints.map(JSONValue.string))), ("client_ips", .array(g.clientIPs.map(JSONValue.string))),
            ("limits", g.limits.map { l in .object([
                ("requests_per_minute", l.requestsPerMinute.map { .int($0) } ?? .null),
                ("output_tokens_per_hour", l.outputTokensPerHour.map { .int($0) } ?? .null),
                ("output_tokens_per_day", l.outputTokensPerDay.map { .int($0) } ?? .null),
                ("concurrent_requests", l.concurrentRequests.map { .int($0) } ?? .null),
            ]) } ?? .null),
        ])
    }
}
