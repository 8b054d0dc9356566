import SQLKit

/// One versioned schema change. Written with SQLKit's builders only, so the same list runs on
/// SQLite and PostgreSQL.
struct Migration: Sendable {
    let version: Int
    let name: String
    let run: @Sendable (any SQLDatabase) async throws -> Void
}

enum Schema {
    static let migrations: [Migration] = [
        Migration(version: 1, name: "tenants, api keys, requests") { db in
            try await db.create(table: "tenants")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("name", type: .text, .notNull, .unique)
                .column("tier", type: .text, .notNull)
                .column("created_at", type: .bigint, .notNull)
                .column("disabled_at", type: .bigint)
                .run()
            try await db.create(table: "api_keys")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("tenant_id", type: .text, .notNull, .references("tenants", "id"))
                .column("name", type: .text, .notNull)
                .column("secret_hash", type: .text, .notNull)
                .column("created_at", type: .bigint, .notNull)
                .column("expires_at", type: .bigint)
                .column("revoked_at", type: .bigint)
                .run()
            try await db.create(index: "api_keys_tenant").on("api_keys").column("tenant_id").run()
            try await db.create(table: "requests")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("created_at", type: .bigint, .notNull)
                .column("tenant_id", type: .text)
                .column("key_id", type: .text)
                .column("model", type: .text, .notNull)
                .column("endpoint", type: .text, .notNull)
                .column("status", type: .int, .notNull)
                .column("outcome", type: .text, .notNull)
                .column("error_code", type: .text)
                .column("prompt_tokens", type: .bigint, .notNull)
                .column("completion_tokens", type: .bigint, .notNull)
                .column("latency_ms", type: .bigint, .notNull)
                .column("ttft_ms", type: .bigint)
                .column("backend", type: .text)
                .run()
            try await db.create(index: "requests_tenant_time").on("requests").column("tenant_id").column("created_at").run()
        },
    ]
}
