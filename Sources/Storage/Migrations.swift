import SQLKit

/// One versioned schema change. Written with SQLKit's builders only, so the same list runs on
/// SQLite and PostgreSQL.
struct Migration: Sendable {
    let version: Int
    let name: String
    let run: @Sendable (any SQLDatabase) async throws -> Void
}

enum Schema {
    /// Marks every minute of the ledger (and only those) for the next rollup pass.
    static func markLedgerForRollup(_ db: any SQLDatabase) async throws {
        try await db.delete(from: "rollup_dirty").run()
        try await db.insert(into: "rollup_dirty").columns("bucket_start", "version")
            .select { $0.distinct()
                .column(SQLBinaryExpression(SQLBinaryExpression(SQLColumn("created_at"), .divide, SQLLiteral.numeric("60000")),
                                            .multiply, SQLLiteral.numeric("60000")))
                .column(SQLLiteral.numeric("1"))
                .from("requests")
            }
            .run()
    }

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
        Migration(version: 2, name: "tenant settings, key grants and rotation, admin tokens, audit log") { db in
            // SQLite adds one column per ALTER statement.
            let tenantColumns: [(String, SQLDataType)] = [
                ("rotation_period_days", .int), ("grace_period_days", .int), ("webhook_url", .text),
                ("shield_mode", .text), ("experimental_opt_in", .int),
            ]
            for (name, type) in tenantColumns { try await db.alter(table: "tenants").column(name, type: type).run() }
            let keyColumns: [(String, SQLDataType)] = [
                ("grants", .text), ("last_used_at", .bigint), ("successor_id", .text), ("predecessor_id", .text),
                ("rotated_at", .bigint), ("sealed_secret", .text),
            ]
            for (name, type) in keyColumns { try await db.alter(table: "api_keys").column(name, type: type).run() }
            try await db.create(table: "admin_tokens")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("token_hash", type: .text, .notNull)
                .column("name", type: .text, .notNull)
                .column("tenant_id", type: .text)
                .column("created_at", type: .bigint, .notNull)
                .column("revoked_at", type: .bigint)
                .run()
            try await db.create(table: "audit_log")
                .column("seq", type: .bigint, .primaryKey(autoIncrement: false))
                .column("time", type: .bigint, .notNull)
                .column("actor", type: .text, .notNull)
                .column("tenant_id", type: .text)
                .column("action", type: .text, .notNull)
                .column("target", type: .text)
                .column("outcome", type: .text, .notNull)
                .column("request_id", type: .text)
                .column("client_ip", type: .text)
                .column("user_agent", type: .text)
                .column("model", type: .text)
                .column("status", type: .int)
                .column("tokens", type: .bigint)
                .column("prev_hash", type: .text, .notNull)
                .column("hash", type: .text, .notNull)
                .run()
            try await db.create(index: "audit_tenant_time").on("audit_log").column("tenant_id").column("time").run()
            // Retention: the last purged entry's seq and hash, so the rest of the chain still verifies.
            try await db.create(table: "audit_anchor")
                .column("id", type: .int, .primaryKey(autoIncrement: false))
                .column("seq", type: .bigint, .notNull)
                .column("hash", type: .text, .notNull)
                .run()
        },
        Migration(version: 3, name: "usage ledger columns, credits, budget notices") { db in
            // The requests table is the usage ledger: one row per request.
            let ledgerColumns: [(String, SQLDataType)] = [
                ("model_requested", .text), ("system_tokens", .bigint), ("reasoning_tokens", .bigint),
                ("cost_nano", .bigint), ("energy_uwh", .bigint), ("estimated", .int),
            ]
            for (name, type) in ledgerColumns { try await db.alter(table: "requests").column(name, type: type).run() }
            try await db.create(table: "credits")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("tenant_id", type: .text, .notNull, .references("tenants", "id"))
                .column("amount_nano", type: .bigint, .notNull)
                .column("created_at", type: .bigint, .notNull)
                .column("note", type: .text)
                .run()
            try await db.create(index: "credits_tenant").on("credits").column("tenant_id").run()
            try await db.create(table: "budget_notices")
                .column("tenant_id", type: .text, .notNull)
                .column("month", type: .text, .notNull)
                .column("threshold", type: .int, .notNull)
                .column("sent_at", type: .bigint, .notNull)
                .primaryKey("tenant_id", "month", "threshold")
                .run()
            // Lifecycle notices: claimed (inserted) before they are sent, so each is sent once.
            try await db.create(table: "lifecycle_notices")
                .column("tenant_id", type: .text, .notNull, .references("tenants", "id"))
                .column("model", type: .text, .notNull)
                .column("phase", type: .text, .notNull)
                .column("created_at", type: .bigint, .notNull)
                .column("phase_started", type: .text, .notNull)
                .column("retires_at", type: .text, .notNull)
                .column("payload", type: .text, .notNull)
                .column("delivered_at", type: .bigint)
                .column("attempts", type: .int, .notNull, .default(0))
                .column("last_error", type: .text)
                .primaryKey("tenant_id", "model", "phase")
                .run()
        },
        Migration(version: 4, name: "rollups, alert rules, incidents, webhook signing secrets") { db in
            // Per minute and per hour, per (tenant, model, key, backend); "" where the ledger has none.
            try await db.create(table: "rollups")
                .column("resolution", type: .bigint, .notNull)
                .column("bucket_start", type: .bigint, .notNull)
                .column("tenant_id", type: .text, .notNull)
                .column("model", type: .text, .notNull)
                .column("key_id", type: .text, .notNull)
                .column("backend", type: .text, .notNull)
                .column("requests", type: .bigint, .notNull)
                .column("errors_4xx", type: .bigint, .notNull)
                .column("errors_5xx", type: .bigint, .notNull)
                .column("input_tokens", type: .bigint, .notNull)
                .column("output_tokens", type: .bigint, .notNull)
                .column("reasoning_tokens", type: .bigint, .notNull)
                .column("system_tokens", type: .bigint, .notNull)
                .column("cost_nano", type: .bigint, .notNull)
                .column("energy_uwh", type: .bigint, .notNull)
                .column("latency_sum_ms", type: .bigint, .notNull)
                .column("ttft_count", type: .bigint, .notNull)
                .column("ttft_sum_ms", type: .bigint, .notNull)
                .column("gen_tokens", type: .bigint, .notNull)
                .column("gen_ms", type: .bigint, .notNull)
                .column("latency_p50", type: .real)
                .column("latency_p95", type: .real)
                .column("latency_p99", type: .real)
                .column("ttft_p50", type: .real)
                .column("ttft_p95", type: .real)
                .column("ttft_p99", type: .real)
                .column("tokens_per_second", type: .real)
                .column("latency_hist", type: .text, .notNull)
                .column("ttft_hist", type: .text, .notNull)
                .primaryKey("resolution", "bucket_start", "tenant_id", "model", "key_id", "backend")
                .run()
            // Minutes whose ledger rows changed since they were rolled up (the version detects a
            // row written while the minute was being recomputed).
            try await db.create(table: "rollup_dirty")
                .column("bucket_start", type: .bigint, .primaryKey(autoIncrement: false))
                .column("version", type: .bigint, .notNull)
                .run()
            // The ledger written before this migration is rolled up by the first pass.
            try await markLedgerForRollup(db)
            // Time-range scans of the whole ledger (rollups, global alert windows).
            try await db.create(index: "requests_time").on("requests").column("created_at").run()
            try await db.create(table: "alert_rules")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("tenant_id", type: .text, .references("tenants", "id"))
                .column("name", type: .text)
                .column("kind", type: .text, .notNull)
                .column("model", type: .text)
                .column("backend", type: .text)
                .column("threshold", type: .real, .notNull)
                .column("resolve_threshold", type: .real)
                .column("for_periods", type: .int, .notNull)
                .column("created_at", type: .bigint, .notNull)
                .run()
            try await db.create(table: "incidents")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("rule_id", type: .text, .notNull)
                .column("tenant_id", type: .text)
                .column("kind", type: .text, .notNull)
                .column("subject", type: .text, .notNull)
                .column("model", type: .text)
                .column("backend", type: .text)
                .column("threshold", type: .real, .notNull)
                .column("value", type: .real)
                .column("peak", type: .real)
                .column("message", type: .text, .notNull)
                .column("started_at", type: .bigint, .notNull)
                .column("resolved_at", type: .bigint)
                .column("resolved_value", type: .real)
                .run()
            try await db.create(index: "incidents_open").on("incidents").column("resolved_at").column("rule_id").run()
            try await db.create(index: "incidents_tenant").on("incidents").column("tenant_id").column("started_at").run()
            // A tenant's webhook signing secret, sealed with the server secret (it must be read back to sign).
            try await db.create(table: "webhook_secrets")
                .column("tenant_id", type: .text, .primaryKey(autoIncrement: false), .references("tenants", "id"))
                .column("sealed", type: .text, .notNull)
                .column("created_at", type: .bigint, .notNull)
                .run()
        },
        Migration(version: 5, name: "request store: tenant opt-in, encrypted bodies, wrapped data keys") { db in
            for (name, type) in [("store_bodies", SQLDataType.int), ("store_retention_days", .int)] {
                try await db.alter(table: "tenants").column(name, type: type).run()
            }
            // Data keys, one per tenant and UTC day, stored only wrapped by the master key (which is
            // never in the database). Shredding sets wrapped_key to NULL and keeps the row as a
            // tombstone (so a reader can tell "shredded" from "never stored").
            try await db.create(table: "request_data_keys")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("tenant_id", type: .text, .notNull)
                .column("period", type: .text, .notNull)
                .column("wrapped_key", type: .text)
                .column("created_at", type: .bigint, .notNull)
                .column("shredded_at", type: .bigint)
                .run()
            try await db.create(index: "request_data_keys_tenant_period").on("request_data_keys").column("tenant_id").column("period").run()
            // One row per stored request: prompt and answer, each AES-256-GCM ciphertext (base64).
            try await db.create(table: "request_bodies")
                .column("request_id", type: .text, .primaryKey(autoIncrement: false))
                .column("tenant_id", type: .text, .notNull)
                .column("key_id", type: .text, .notNull)
                .column("period", type: .text, .notNull)
                .column("created_at", type: .bigint, .notNull)
                .column("prompt", type: .text)
                .column("response", type: .text)
                .column("response_format", type: .text, .notNull)
                .column("prompt_bytes", type: .bigint, .notNull)
                .column("response_bytes", type: .bigint, .notNull)
                .column("truncated", type: .int, .notNull)
                .run()
            try await db.create(index: "request_bodies_tenant_time").on("request_bodies").column("tenant_id").column("created_at").run()
        },
        Migration(version: 6, name: "rollups count rejected requests") { db in
            try await db.alter(table: "rollups").column("rejected", type: .bigint, .notNull, .default(0)).run()
            // Rows rolled up before this migration lack the count: every minute of the ledger is rolled up again.
            try await markLedgerForRollup(db)
        },
        Migration(version: 7, name: "replicas: shared limit slices, replica heartbeats, shared repetition counts") { db in
            // Per subject, kind, bucket and replica: the units charged to a window (slices granted
            // minus units returned) or the slots leased (counted while expires_at is ahead).
            try await db.create(table: "cluster_slices")
                .column("subject", type: .text, .notNull)
                .column("kind", type: .text, .notNull)
                .column("bucket", type: .bigint, .notNull)
                .column("replica", type: .text, .notNull)
                .column("amount", type: .bigint, .notNull)
                .column("expires_at", type: .bigint, .notNull)
                .primaryKey("subject", "kind", "bucket", "replica")
                .run()
            try await db.create(index: "cluster_slices_expiry").on("cluster_slices").column("expires_at").run()
            try await db.create(table: "cluster_replicas")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("started_at", type: .bigint, .notNull)
                .column("seen_at", type: .bigint, .notNull)
                .column("expires_at", type: .bigint, .notNull)
                .column("state", type: .text, .notNull)
                .run()
            // The behavior window's repetition rule across replicas: a digest of the key's last
            // prompt (never its text) and how many times in a row it came.
            try await db.create(table: "behavior_repeats")
                .column("key_id", type: .text, .primaryKey(autoIncrement: false))
                .column("digest", type: .text, .notNull)
                .column("count", type: .bigint, .notNull)
                .column("last_seen", type: .bigint, .notNull)
                .run()
        },
        Migration(version: 8, name: "batch API: files, batches, batch lines, ledger batch flag") { db in
            // 1 on the ledger rows of batch lines (billed at the batch price); NULL otherwise.
            try await db.alter(table: "requests").column("batch", type: .int).run()
            // Uploaded and generated files; the content is AES-256-GCM ciphertext in data_dir/files.
            try await db.create(table: "files")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("tenant_id", type: .text, .notNull)
                .column("purpose", type: .text, .notNull)
                .column("filename", type: .text, .notNull)
                .column("bytes", type: .bigint, .notNull)
                .column("created_at", type: .bigint, .notNull)
                .column("expires_at", type: .bigint)
                .column("data_key_id", type: .text, .notNull)
                .column("line_count", type: .int)
                .column("endpoint", type: .text)
                .run()
            try await db.create(index: "files_tenant").on("files").column("tenant_id").column("created_at").run()
            try await db.create(table: "batches")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("tenant_id", type: .text, .notNull)
                .column("key_id", type: .text, .notNull)
                .column("endpoint", type: .text, .notNull)
                .column("input_file_id", type: .text, .notNull)
                .column("completion_window", type: .text, .notNull)
                .column("status", type: .text, .notNull)
                .column("created_at", type: .bigint, .notNull)
                .column("expires_at", type: .bigint, .notNull)
                .column("in_progress_at", type: .bigint)
                .column("finalizing_at", type: .bigint)
                .column("completed_at", type: .bigint)
                .column("failed_at", type: .bigint)
                .column("expired_at", type: .bigint)
                .column("cancelling_at", type: .bigint)
                .column("cancelled_at", type: .bigint)
                .column("output_file_id", type: .text)
                .column("error_file_id", type: .text)
                .column("total", type: .int, .notNull)
                .column("completed", type: .int, .notNull)
                .column("failed", type: .int, .notNull)
                .column("metadata", type: .text)
                .column("errors", type: .text)
                .run()
            try await db.create(index: "batches_tenant").on("batches").column("tenant_id").column("created_at").run()
            // One row per input line: its state and, once done, its sealed result and ledger row.
            try await db.create(table: "batch_lines")
                .column("batch_id", type: .text, .notNull)
                .column("line", type: .int, .notNull)
                .column("custom_id", type: .text, .notNull)
                .column("state", type: .text, .notNull)
                .column("attempts", type: .int, .notNull)
                .column("request_id", type: .text)
                .column("is_error", type: .int)
                .column("result", type: .text)
                .column("data_key_id", type: .text)
                .column("ledger", type: .text)
                .column("finished_at", type: .bigint)
                .primaryKey("batch_id", "line")
                .run()
            try await db.create(index: "batch_lines_state").on("batch_lines").column("batch_id").column("state").run()
        },
        Migration(version: 9, name: "ledger units of rerank and audio transcription") { db in
            // Their own units (issue 17): tokens read by a rerank, milliseconds of transcribed audio.
            try await db.alter(table: "requests").column("reranked_tokens", type: .bigint).run()
            try await db.alter(table: "requests").column("audio_ms", type: .bigint).run()
        },
        Migration(version: 10, name: "one key hierarchy: data keys get a purpose and the id of their master key") { db in
            // request_data_keys becomes the table of every data key (request bodies, sealed secrets,
            // batch files), each wrapped by the master key. Existing rows are the request store's.
            // Values sealed the old way (with the server secret) are re-sealed at start-up, where the
            // keys are (a migration has none); until then they still open.
            try await db.alter(table: "request_data_keys").column("purpose", type: .text, .notNull, .default(SQLLiteral.string("request_body"))).run()
            try await db.alter(table: "request_data_keys").column("master_id", type: .text).run()
            try await db.create(index: "request_data_keys_purpose_owner").on("request_data_keys").column("purpose").column("tenant_id").column("period").run()
        },
    ]
}
