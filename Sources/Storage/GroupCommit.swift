import SQLKit

/// The request path's group commit on SQLite files: ledger rows, their rollup marks and a batch of
/// the audit chain in one transaction, run on the dedicated writer (SQLiteWriter.swift) in one trip
/// to its thread. PostgreSQL and the in-memory SQLite of tests keep their path (the rows through
/// ``Storage/insertRequests(_:)``, then the audit batch through
/// ``Storage/appendAuditChain(continuingFrom:_:)``).
extension Storage {
    /// The end of the audit chain: the last entry's sequence number and hash.
    public typealias AuditTip = (seq: Int64, hash: String)

    /// An audit batch to append in a group commit: `prebuilt` was numbered and hashed from
    /// `assumed` (what the writer believes the tip is); when the database's tip is another one (a
    /// second writer appended), the batch is built again with `build` from the tip read inside the
    /// transaction. `prebuilt` nil: always built from the tip read.
    struct ChainAppend: Sendable {
        var assumed: AuditTip?
        var prebuilt: [AuditRecord]?
        var build: @Sendable (AuditTip?) -> [AuditRecord]
    }

    /// The ledger rows `rows` with their rollup marks, and the audit batch `build` makes, in one
    /// group commit. The batch is built first from `known` (where this writer's chain ended, nil for
    /// an empty chain) and appended only if the database's tip is still `known`; otherwise it is
    /// built again from the database's tip, read under the write lock (the chain is never forked).
    ///
    /// Throws when the ledger rows were not committed (nothing of the group was). The audit part's
    /// own failure does not undo the rows: it is returned, and the entries can be appended later.
    /// On a SQLite file it is one transaction on the dedicated writer (an audit part of more than
    /// one entry in a savepoint); elsewhere ``insertRequests(_:)`` then ``appendAuditChain(continuingFrom:_:)``.
    public func commitGroup(requests rows: [RequestRecord], auditContinuingFrom known: AuditTip?,
                            _ build: @escaping @Sendable (_ tip: AuditTip?) -> [AuditRecord]) async throws -> Result<[AuditRecord], any Error> {
        if let writer {
            let prebuilt = build(known)
            let append = prebuilt.isEmpty ? nil : ChainAppend(assumed: known, prebuilt: prebuilt, build: build)
            let audit = try await commitOnWriter(writer, rows: rows, audit: append)
            return (audit ?? .success([])).mapError { $0 }
        }
        try await insertRequests(rows)
        do { return .success(try await appendAuditChain(continuingFrom: known, build)) } catch { return .failure(error) }
    }

    /// A group commit on the writer. One ledger row or none (a gateway not under load: nothing else
    /// came while the last commit ran) on the calling thread when it can start without waiting;
    /// several, or when it would wait, on the writer's thread (SQLiteWriter.swift): under load the
    /// event loops keep serving while it commits, and the rows that arrive meanwhile make the next
    /// batch larger (issue 16: committing batches on the event loop too cost CPU per request at 32
    /// connections).
    func commitOnWriter(_ writer: SQLiteWriter, rows: [RequestRecord], audit: ChainAppend?) async throws -> Result<[AuditRecord], SQLiteWriteError>? {
        try await gate.run {
            if rows.count <= 1, let done = try writer.runHere({ c in try Self.groupCommit(on: c, rows: rows, audit: audit, begun: true) }) { return done }
            return try await writer.run { c in try Self.groupCommit(on: c, rows: rows, audit: audit) }
        }
    }

    /// The writer's side: one transaction (`BEGIN IMMEDIATE`: the write lock is taken first, so
    /// another connection's write is waited for, up to the busy timeout, rather than failing
    /// half-way; `begun`: the caller began it). Throws, having rolled back, when the rows fail; the
    /// audit result otherwise (nil without an audit batch). Runs under the writer's lock.
    static func groupCommit(on c: WriterConnection, rows: [RequestRecord], audit: ChainAppend?, begun: Bool = false) throws -> Result<[AuditRecord], SQLiteWriteError>? {
        if !begun { try c.execute(.begin, "BEGIN IMMEDIATE") }
        var auditResult: Result<[AuditRecord], SQLiteWriteError>?
        do {
            if !rows.isEmpty {
                try insertRequestRows(rows, on: c)
                try markMinutesDirty(rows, on: c)
            }
            if let audit {
                if rows.isEmpty {
                    auditResult = .success(try appendAudit(audit, on: c))  // alone: its failure is the commit's
                } else {
                    // With ledger rows, a failure of the audit part must not undo them (as when the
                    // two were separate writes). Several entries run in a savepoint rolled back on its
                    // own; one entry (every lone request's) needs none: its INSERT is atomic by itself,
                    // and SQLite undoes a failed statement alone.
                    let savepoint = audit.prebuilt?.count != 1
                    if savepoint { try c.execute(.savepoint, "SAVEPOINT audit_batch") }
                    do {
                        auditResult = .success(try appendAudit(audit, on: c))
                        if savepoint { try c.execute(.release, "RELEASE audit_batch") }
                    } catch let e as SQLiteWriteError {
                        if savepoint {
                            try c.execute(.rollbackToSavepoint, "ROLLBACK TO audit_batch")
                            try c.execute(.release, "RELEASE audit_batch")
                        } else if !c.inTransaction {
                            throw e  // an I/O error or a full disk ended the whole transaction: nothing is committed
                        }
                        auditResult = .failure(e)
                    }
                }
            }
            try c.execute(.commit, "COMMIT")
        } catch {
            if c.inTransaction { try? c.execute(.rollback, "ROLLBACK") }
            throw error
        }
        return auditResult
    }

    /// `INSERT INTO "table" ("a", "b") VALUES (?, ?)`: the writer's statements insert one row and
    /// are kept prepared.
    static func oneRowInsert(into table: String, _ columns: [String]) -> String {
        "INSERT INTO \"\(table)\" (\(columnList(columns))) VALUES (" + Array(repeating: "?", count: columns.count).joined(separator: ", ") + ")"
    }

    /// Ledger rows, one kept statement per shape, in the batch's order.
    static func insertRequestRows(_ rows: [RequestRecord], on c: WriterConnection) throws {
        var cells: [Cell] = []
        cells.reserveCapacity(requestBaseColumns.count + 3)
        for r in rows {
            let batch = r.batch != nil, reranked = r.rerankedTokens != nil, audio = r.audioMs != nil
            let shape = (batch ? 1 : 0) | (reranked ? 2 : 0) | (audio ? 4 : 0)
            let s = try c.statement(.request(shape: shape),
                                    oneRowInsert(into: "requests", requestColumns(batch: batch, reranked: reranked, audio: audio)))
            cells.removeAll(keepingCapacity: true)
            appendCells(of: r, to: &cells)
            defer { s.reset() }
            try s.bind(cells[...])
            try s.run()
        }
    }

    /// Each distinct minute of the rows marked dirty once: inserted with version 1, or its version
    /// incremented (as ``markMinutesDirty(_:on:)`` does in one statement).
    static func markMinutesDirty(_ rows: [RequestRecord], on c: WriterConnection) throws {
        // Sorted, each once (a commit's rows are nearly always of one minute: a set and a sorted
        // copy of it were three allocations per commit).
        var minutes = rows.map { RollupResolution.minute.bucket($0.createdAt) }
        minutes.sort()
        let s = try c.statement(.markMinute,
            "INSERT INTO \"rollup_dirty\" (\"bucket_start\", \"version\") VALUES (?, 1) ON CONFLICT (\"bucket_start\") DO UPDATE SET \"version\" = \"rollup_dirty\".\"version\" + 1")
        var previous: Int64?
        for m in minutes where m != previous {
            previous = m
            defer { s.reset() }
            try s.bind(m, at: 1)
            try s.run()
        }
    }

    /// The chain's tip in the database: the last entry, else the retention anchor, else nil.
    static func auditTip(on c: WriterConnection) throws -> AuditTip? {
        try readAuditTip(on: c) { tip in tip.map { ($0.int64(0), $0.text(1)) } }
    }

    /// Whether the chain's tip in the database is `assumed` (nil: there is none), compared in place:
    /// the tip's hash read as a string was an allocation per commit.
    static func auditTip(on c: WriterConnection, is assumed: AuditTip?) throws -> Bool {
        try readAuditTip(on: c) { tip in
            guard let tip, let assumed else { return tip == nil && assumed == nil }
            return tip.int64(0) == assumed.seq && tip.text(1, equals: assumed.hash)
        }
    }

    /// `read` on the statement stepped onto the chain's tip (`seq`, `hash`): the last entry, else the
    /// retention anchor; nil when there is neither.
    private static func readAuditTip<R>(on c: WriterConnection, _ read: (PreparedStatement?) -> R) throws -> R {
        let last = try c.statement(.auditTip, "SELECT \"seq\", \"hash\" FROM \"audit_log\" ORDER BY \"seq\" DESC LIMIT 1")
        defer { last.reset() }
        if try last.step() { return read(last) }
        let anchor = try c.statement(.auditAnchor, "SELECT \"seq\", \"hash\" FROM \"audit_anchor\" WHERE \"id\" = 1")
        defer { anchor.reset() }
        if try anchor.step() { return read(anchor) }
        return read(nil)
    }

    /// Appends an audit batch at the database's tip (read here, under the transaction's write lock:
    /// no other writer can move it before the commit). Returns the records inserted.
    static func appendAudit(_ append: ChainAppend, on c: WriterConnection) throws -> [AuditRecord] {
        let records: [AuditRecord]
        if let prebuilt = append.prebuilt, try auditTip(on: c, is: append.assumed) {
            records = prebuilt
        } else {
            records = append.build(try auditTip(on: c))
        }
        let s = try c.statement(.auditInsert, oneRowInsert(into: "audit_log", auditColumns))
        for i in records.indices {
            defer { s.reset() }
            try s.bind(auditCells(records[i...i])[...])
            try s.run()
        }
        return records
    }

    /// Audit entries alone (no ledger rows) on the writer: the same tip check, in one transaction.
    func writerAppendAudit(_ append: ChainAppend, writer: SQLiteWriter) async throws -> [AuditRecord] {
        switch try await commitOnWriter(writer, rows: [], audit: append) {
        case .success(let records): return records
        case .failure(let e): throw e
        case nil: return []
        }
    }
}
