import Foundation
import SQLKit

/// A file of the batch API (issue 17): its metadata; the content is ciphertext on disk, sealed
/// under the tenant's data key `dataKeyID`.
public struct FileRecord: Codable, Sendable, Equatable {
    public var id: String
    public var tenantID: String
    /// `batch` (uploaded input), `batch_output`, `batch_error` (generated).
    public var purpose: String
    public var filename: String
    public var bytes: Int64
    public var createdAt: Int64
    /// When retention deletes it (generated files); nil: kept until deleted.
    public var expiresAt: Int64?
    public var dataKeyID: String
    /// Input files: the number of requests and the one endpoint path they all use.
    public var lineCount: Int?
    public var endpoint: String?

    public init(id: String, tenantID: String, purpose: String, filename: String, bytes: Int64, createdAt: Int64, expiresAt: Int64?,
                dataKeyID: String, lineCount: Int? = nil, endpoint: String? = nil) {
        self.id = id; self.tenantID = tenantID; self.purpose = purpose; self.filename = filename; self.bytes = bytes
        self.createdAt = createdAt; self.expiresAt = expiresAt; self.dataKeyID = dataKeyID; self.lineCount = lineCount; self.endpoint = endpoint
    }

    enum CodingKeys: String, CodingKey {
        case id, purpose, filename, bytes, endpoint
        case tenantID = "tenant_id"
        case createdAt = "created_at"
        case expiresAt = "expires_at"
        case dataKeyID = "data_key_id"
        case lineCount = "line_count"
    }
}

/// One batch (OpenAI's Batch object, minus what is computed).
public struct BatchRecord: Codable, Sendable, Equatable {
    public var id: String
    public var tenantID: String
    /// The key that created it: its lines run with this key's grants.
    public var keyID: String
    /// The endpoint path (`/v1/chat/completions`).
    public var endpoint: String
    public var inputFileID: String
    public var completionWindow: String
    public var status: String
    public var createdAt: Int64
    public var expiresAt: Int64
    public var inProgressAt: Int64?
    public var finalizingAt: Int64?
    public var completedAt: Int64?
    public var failedAt: Int64?
    public var expiredAt: Int64?
    public var cancellingAt: Int64?
    public var cancelledAt: Int64?
    public var outputFileID: String?
    public var errorFileID: String?
    public var total: Int
    public var completed: Int
    public var failed: Int
    /// JSON object of the client's metadata.
    public var metadata: String?
    /// JSON array of `{code, message, line, param}` (a batch that failed validation).
    public var errors: String?

    public init(id: String, tenantID: String, keyID: String, endpoint: String, inputFileID: String, completionWindow: String,
                status: String, createdAt: Int64, expiresAt: Int64, total: Int, metadata: String?) {
        self.id = id; self.tenantID = tenantID; self.keyID = keyID; self.endpoint = endpoint; self.inputFileID = inputFileID
        self.completionWindow = completionWindow; self.status = status; self.createdAt = createdAt; self.expiresAt = expiresAt
        self.total = total; self.completed = 0; self.failed = 0; self.metadata = metadata
    }

    enum CodingKeys: String, CodingKey {
        case id, endpoint, status, total, completed, failed, metadata, errors
        case tenantID = "tenant_id"
        case keyID = "key_id"
        case inputFileID = "input_file_id"
        case completionWindow = "completion_window"
        case createdAt = "created_at"
        case expiresAt = "expires_at"
        case inProgressAt = "in_progress_at"
        case finalizingAt = "finalizing_at"
        case completedAt = "completed_at"
        case failedAt = "failed_at"
        case expiredAt = "expired_at"
        case cancellingAt = "cancelling_at"
        case cancelledAt = "cancelled_at"
        case outputFileID = "output_file_id"
        case errorFileID = "error_file_id"
    }
}

/// One input line of a batch. `state`: `pending` → `running` (recorded before the request is
/// sent) → `done` (its result and its ledger row recorded in one statement).
public struct BatchLineRecord: Codable, Sendable, Equatable {
    public var batchID: String
    public var line: Int
    public var customID: String
    public var state: String
    public var attempts: Int
    public var requestID: String?
    /// 1: the result goes to the error file.
    public var isError: Int?
    /// The sealed output line (base64 AES-GCM), under `dataKeyID`.
    public var result: String?
    public var dataKeyID: String?
    /// The ledger row (JSON of ``RequestRecord``, never prompt text), for recovery.
    public var ledger: String?
    public var finishedAt: Int64?

    public init(batchID: String, line: Int, customID: String) {
        self.batchID = batchID; self.line = line; self.customID = customID; self.state = "pending"; self.attempts = 0
    }

    enum CodingKeys: String, CodingKey {
        case line, state, attempts, result, ledger
        case batchID = "batch_id"
        case customID = "custom_id"
        case requestID = "request_id"
        case isError = "is_error"
        case dataKeyID = "data_key_id"
        case finishedAt = "finished_at"
    }
}

extension Storage {
    // MARK: Files

    public func insertFile(_ f: FileRecord) async throws {
        try await db.insert(into: "files").model(f, nilEncodingStrategy: .asNil).run()
    }

    /// A tenant's file; nil when it does not exist or is another tenant's.
    public func file(id: String, tenantID: String) async throws -> FileRecord? {
        try await db.select().columns("*").from("files").where("id", .equal, id).where("tenant_id", .equal, tenantID)
            .first(decoding: FileRecord.self)
    }

    /// A tenant's files, newest first, `limit` after the file `after` (exclusive), optionally of one purpose.
    public func files(tenantID: String, purpose: String?, after: String?, limit: Int) async throws -> [FileRecord] {
        var q = db.select().columns("*").from("files").where("tenant_id", .equal, tenantID)
        if let purpose { q = q.where("purpose", .equal, purpose) }
        if let after, let a = try await file(id: after, tenantID: tenantID) {
            q = q.where { $0.where("created_at", .lessThan, a.createdAt).orWhere { $0.where("created_at", .equal, a.createdAt).where("id", .lessThan, a.id) } }
        }
        return try await q.orderBy("created_at", .descending).orderBy("id", .descending).limit(limit).all(decoding: FileRecord.self)
    }

    public func deleteFile(id: String) async throws {
        try await db.delete(from: "files").where("id", .equal, id).run()
    }

    /// Files whose retention ended at `now`.
    public func expiredFiles(now: Int64) async throws -> [FileRecord] {
        try await db.select().columns("*").from("files").where("expires_at", .isNot, SQLLiteral.null).where("expires_at", .lessThanOrEqual, now)
            .all(decoding: FileRecord.self)
    }

    // MARK: Batches

    /// The batch and its lines (all `pending`), in one transaction-free sequence: the batch row is
    /// inserted last, so a crash in between leaves only orphan lines no worker looks at.
    public func insertBatch(_ b: BatchRecord, lines: [BatchLineRecord]) async throws {
        for start in stride(from: 0, to: lines.count, by: 500) {
            try await db.insert(into: "batch_lines").models(Array(lines[start..<min(start + 500, lines.count)]), nilEncodingStrategy: .asNil).run()
        }
        try await db.insert(into: "batches").model(b, nilEncodingStrategy: .asNil).run()
    }

    public func batch(id: String) async throws -> BatchRecord? {
        try await db.select().columns("*").from("batches").where("id", .equal, id).first(decoding: BatchRecord.self)
    }

    /// A tenant's batches, newest first, `limit` after the batch `after`.
    public func batches(tenantID: String, after: String?, limit: Int) async throws -> [BatchRecord] {
        var q = db.select().columns("*").from("batches").where("tenant_id", .equal, tenantID)
        if let after, let a = try await batch(id: after), a.tenantID == tenantID {
            q = q.where { $0.where("created_at", .lessThan, a.createdAt).orWhere { $0.where("created_at", .equal, a.createdAt).where("id", .lessThan, a.id) } }
        }
        return try await q.orderBy("created_at", .descending).orderBy("id", .descending).limit(limit).all(decoding: BatchRecord.self)
    }

    /// Batches in one of `statuses`, oldest first (the worker's queue).
    public func batches(inStatus statuses: [String]) async throws -> [BatchRecord] {
        try await db.select().columns("*").from("batches").where("status", .in, statuses).orderBy("created_at").orderBy("id")
            .all(decoding: BatchRecord.self)
    }

    public func updateBatch(_ b: BatchRecord) async throws {
        try await db.update("batches").set(model: b, nilEncodingStrategy: .asNil).where("id", .equal, b.id).run()
    }

    /// Moves a batch from `from` to `to` only if it is still in `from` (one statement): a cancel
    /// racing the worker's own transition is never overwritten. True when it moved.
    public func transitionBatch(id: String, from: [String], to: String, timeColumn: String?, at time: Int64) async throws -> Bool {
        var q = db.update("batches").set("status", to: SQLBind(to))
        if let timeColumn { q = q.set(SQLIdentifier(timeColumn), to: SQLBind(time)) }
        try await q.where("id", .equal, id).where("status", .in, from).run()
        return try await batch(id: id)?.status == to
    }

    // MARK: Lines

    public func batchLines(batchID: String) async throws -> [BatchLineRecord] {
        try await db.select().columns("*").from("batch_lines").where("batch_id", .equal, batchID).orderBy("line")
            .all(decoding: BatchLineRecord.self)
    }

    /// The next `limit` pending lines of a batch, in input order.
    public func pendingBatchLines(batchID: String, limit: Int) async throws -> [BatchLineRecord] {
        try await db.select().columns("*").from("batch_lines").where("batch_id", .equal, batchID).where("state", .equal, "pending")
            .orderBy("line").limit(limit).all(decoding: BatchLineRecord.self)
    }

    /// Records that a line is about to be sent (before any engine sees it). True when this call
    /// claimed it (it was still pending).
    public func startBatchLine(batchID: String, line: Int, requestID: String) async throws -> Bool {
        try await db.update("batch_lines").set("state", to: SQLBind("running"))
            .set("attempts", to: SQLBinaryExpression(SQLColumn("attempts"), .add, SQLLiteral.numeric("1")))
            .set("request_id", to: SQLBind(requestID))
            .where("batch_id", .equal, batchID).where("line", .equal, line).where("state", .equal, "pending").run()
        let row = try await db.select().column("state").column("request_id").from("batch_lines")
            .where("batch_id", .equal, batchID).where("line", .equal, line).first()
        return try row?.decode(column: "state", as: String.self) == "running" && row?.decode(column: "request_id", as: String?.self) == requestID
    }

    /// Records a line's result and its ledger row in ONE statement (atomic): a line is either
    /// not done (and has no ledger row of its own yet) or done with both.
    public func finishBatchLine(batchID: String, line: Int, isError: Bool, result: String, dataKeyID: String, ledger: String?,
                                at time: Int64) async throws {
        try await db.update("batch_lines").set("state", to: SQLBind("done")).set("is_error", to: SQLBind(isError ? 1 : 0))
            .set("result", to: SQLBind(result)).set("data_key_id", to: SQLBind(dataKeyID)).set("ledger", to: SQLBind(ledger))
            .set("finished_at", to: SQLBind(time))
            .where("batch_id", .equal, batchID).where("line", .equal, line).where("state", .equal, "running").run()
    }

    /// A claimed line that was not sent after all (retry later): back to pending.
    public func releaseBatchLine(batchID: String, line: Int) async throws {
        try await db.update("batch_lines").set("state", to: SQLBind("pending")).set("request_id", to: SQLLiteral.null)
            .where("batch_id", .equal, batchID).where("line", .equal, line).where("state", .equal, "running").run()
    }

    /// Recovery after a restart: lines that were sent but whose result was never recorded go back
    /// to `pending`. Returns how many.
    @discardableResult
    public func resetRunningBatchLines(batchID: String) async throws -> Int {
        let n = try await db.select().column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n").from("batch_lines")
            .where("batch_id", .equal, batchID).where("state", .equal, "running").first(decodingColumn: "n", as: Int.self) ?? 0
        if n > 0 {
            try await db.update("batch_lines").set("state", to: SQLBind("pending"))
                .where("batch_id", .equal, batchID).where("state", .equal, "running").run()
        }
        return n
    }

    /// Ends a line that never ran (cancel, expiry) with an error result; only while it is
    /// `pending` (a line the worker holds finishes on its own).
    public func failPendingBatchLine(batchID: String, line: Int, result: String, dataKeyID: String, at time: Int64) async throws {
        try await db.update("batch_lines").set("state", to: SQLBind("done")).set("is_error", to: SQLBind(1))
            .set("result", to: SQLBind(result)).set("data_key_id", to: SQLBind(dataKeyID)).set("finished_at", to: SQLBind(time))
            .where("batch_id", .equal, batchID).where("line", .equal, line).where("state", .equal, "pending").run()
    }

    public func batchLines(batchID: String, state: String) async throws -> [BatchLineRecord] {
        try await db.select().columns("*").from("batch_lines").where("batch_id", .equal, batchID).where("state", .equal, state)
            .orderBy("line").all(decoding: BatchLineRecord.self)
    }

    /// (done without error, done with error, not done) of a batch.
    public func batchLineCounts(batchID: String) async throws -> (completed: Int, failed: Int, open: Int) {
        let rows = try await db.select().column("state").column("is_error").column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n")
            .from("batch_lines").where("batch_id", .equal, batchID).groupBy("state").groupBy("is_error").all()
        var c = 0, f = 0, o = 0
        for r in rows {
            let n = try r.decode(column: "n", as: Int.self)
            if try r.decode(column: "state", as: String.self) != "done" { o += n } else if (try r.decode(column: "is_error", as: Int?.self)) == 1 { f += n } else { c += n }
        }
        return (c, f, o)
    }

    /// Retention: drops the lines (sealed results) of a batch.
    public func deleteBatchLines(batchID: String) async throws {
        try await db.delete(from: "batch_lines").where("batch_id", .equal, batchID).run()
    }

    /// Batches whose results' retention ended (ended before `before`) and still have lines.
    public func batchesWithLinesEndedBefore(_ before: Int64) async throws -> [String] {
        let ended = try await db.select().column("id").from("batches")
            .where("status", .in, ["completed", "failed", "expired", "cancelled"])
            .where(SQLFunction("COALESCE", args: SQLColumn("completed_at"), SQLColumn("failed_at"), SQLColumn("expired_at"), SQLColumn("cancelled_at")),
                   .lessThan, SQLBind(before))
            .all(decodingColumn: "id", as: String.self)
        var out: [String] = []
        for id in ended where try await db.select().column("line").from("batch_lines").where("batch_id", .equal, id).limit(1).first() != nil {
            out.append(id)
        }
        return out
    }

    /// Ledger rows of these request ids that exist (recovery checks which done lines lack theirs).
    public func existingRequestIDs(_ ids: [String]) async throws -> Set<String> {
        var found = Set<String>()
        for start in stride(from: 0, to: ids.count, by: 500) {
            let chunk = Array(ids[start..<min(start + 500, ids.count)])
            found.formUnion(try await db.select().column("id").from("requests").where("id", .in, chunk).all(decodingColumn: "id", as: String.self))
        }
        return found
    }
}
