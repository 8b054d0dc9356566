import SQLKit
import SQLiteKit
import Synchronization

/// The write path's inserts (ledger rows, audit entries, rollup marks) without SQLKit's builders:
/// each runs once per group commit, and building them with `insert(into:).models(…)` cost a Codable
/// encoding per row plus SQLKit's serialisation of every value (≈ 5 % of a request's CPU in the
/// issue 16 profile). Here the values go straight into binds and the statement's text is built once
/// per (table, columns, rows, driver) and reused. On SQLite the statement goes straight to the
/// connection (`SQLiteConnection.query`); on PostgreSQL through the portable database (which still
/// replaces NUL in text). Same columns, same values, same SQL semantics as the builders wrote.

/// One bound value of such an insert. A NULL keeps its column's type: PostgreSQL is sent a typed
/// NULL (an `int8` NULL does not fit a text column, nor a text NULL a `bigint` one).
enum Cell: Sendable {
    case int(Int64)
    case text(String)
    case nullInt
    case nullText

    init(_ v: Int) { self = .int(Int64(v)) }
    init(_ v: Int64) { self = .int(v) }
    init(_ v: String) { self = .text(v) }
    init(_ v: Int?) { self = v.map { .int(Int64($0)) } ?? .nullInt }
    init(_ v: Int64?) { self = v.map { .int($0) } ?? .nullInt }
    init(_ v: String?) { self = v.map { .text($0) } ?? .nullText }

    var sqlite: SQLiteData {
        switch self {
        case .int(let v): return .integer(Int(v))
        case .text(let v): return .text(v)
        case .nullInt, .nullText: return .null
        }
    }

    var encodable: any Encodable & Sendable {
        switch self {
        case .int(let v): return v
        case .text(let v): return v
        case .nullInt: return Int64?.none
        case .nullText: return String?.none
        }
    }
}

/// Statement texts already built, by shape. Batches of up to `maxCachedRows` rows are kept (a
/// group commit's size varies with the load, so the few sizes seen are reused); larger ones are
/// rare and built each time.
final class StatementTexts: Sendable {
    struct Key: Hashable {
        var kind: String
        var columns: [String]
        var rows: Int
    }

    static let maxCachedRows = 256
    private let texts = Mutex<[Key: String]>([:])

    func text(_ key: Key, build: () -> String) -> String {
        guard key.rows <= Self.maxCachedRows else { return build() }
        if let t = texts.withLock({ $0[key] }) { return t }
        let t = build()
        texts.withLock { $0[key] = t }
        return t
    }
}

/// A statement whose text and binds are ready (placeholders already in the driver's syntax).
struct ReadyStatement: SQLExpression {
    let sql: String
    let binds: [any Encodable & Sendable]

    func serialize(to serializer: inout SQLSerializer) {
        serializer.write(sql)
        serializer.binds.append(contentsOf: binds)
    }
}

extension Storage {
    /// `"a", "b", "c"`
    static func columnList(_ columns: [String]) -> String {
        columns.map { "\"\($0)\"" }.joined(separator: ", ")
    }

    /// `(?, ?), (?, ?)` on SQLite, `($1, $2), ($3, $4)` on PostgreSQL.
    func valueRows(columns: Int, rows: Int) -> String {
        var out = ""
        out.reserveCapacity(rows * columns * 5)
        var n = 0
        for r in 0..<rows {
            out += r == 0 ? "(" : ", ("
            for c in 0..<columns {
                if c > 0 { out += ", " }
                n += 1
                if driver == .sqlite { out += "?" } else { out += "$"; out += String(n) }
            }
            out += ")"
        }
        return out
    }

    /// Runs a ready statement on `db` (the storage's own database or a PostgreSQL session);
    /// returns how many rows it returned (RETURNING).
    @discardableResult
    func runReady(_ sql: String, _ cells: [Cell], on db: any SQLDatabase) async throws -> Int {
        let count = Atomic<Int>(0)
        if driver == .sqlite, let sqliteConnection {
            try await gate.run { try await sqliteConnection.query(sql, cells.map(\.sqlite)) { _ in count.add(1, ordering: .relaxed) } }
        } else {
            try await db.execute(sql: ReadyStatement(sql: sql, binds: cells.map(\.encodable))) { _ in count.add(1, ordering: .relaxed) }
        }
        return count.load(ordering: .relaxed)
    }

    /// `INSERT INTO table (columns) VALUES (…), (…)` for `rows` rows of `cells` (row after row).
    func insertRows(into table: String, columns: [String], rows: Int, cells: [Cell], on db: any SQLDatabase) async throws {
        let sql = statementTexts.text(.init(kind: "insert " + table, columns: columns, rows: rows)) {
            "INSERT INTO \"\(table)\" (\(Self.columnList(columns))) VALUES " + valueRows(columns: columns.count, rows: rows)
        }
        try await runReady(sql, cells, on: db)
    }

    // MARK: Ledger rows

    /// The columns every ledger row has (the later optional ones are added per shape).
    static let requestBaseColumns = [
        "id", "created_at", "tenant_id", "key_id", "model", "endpoint", "status", "outcome", "error_code", "prompt_tokens",
        "completion_tokens", "latency_ms", "ttft_ms", "backend", "model_requested", "system_tokens", "reasoning_tokens",
        "cost_nano", "energy_uwh", "estimated",
    ]

    /// Columns of a shape: base, then `batch`, `reranked_tokens`, `audio_ms` when the shape has them
    /// (rows without them insert into a schema older than migrations 8 and 9 too).
    static func requestColumns(batch: Bool, reranked: Bool, audio: Bool) -> [String] {
        var c = requestBaseColumns
        if batch { c.append("batch") }
        if reranked { c.append("reranked_tokens") }
        if audio { c.append("audio_ms") }
        return c
    }

    static func appendCells(of r: RequestRecord, to cells: inout [Cell]) {
        cells.append(Cell(r.id)); cells.append(Cell(r.createdAt)); cells.append(Cell(r.tenantID)); cells.append(Cell(r.keyID))
        cells.append(Cell(r.model)); cells.append(Cell(r.endpoint)); cells.append(Cell(r.status)); cells.append(Cell(r.outcome))
        cells.append(Cell(r.errorCode)); cells.append(Cell(r.promptTokens)); cells.append(Cell(r.completionTokens))
        cells.append(Cell(r.latencyMs)); cells.append(Cell(r.ttftMs)); cells.append(Cell(r.backend)); cells.append(Cell(r.modelRequested))
        cells.append(Cell(r.systemTokens)); cells.append(Cell(r.reasoningTokens)); cells.append(Cell(r.costNano))
        cells.append(Cell(r.energyMicroWh)); cells.append(Cell(r.estimated))
        if let batch = r.batch { cells.append(Cell(batch)) }
        if let reranked = r.rerankedTokens { cells.append(Cell(reranked)) }
        if let audio = r.audioMs { cells.append(Cell(audio)) }
    }

    /// Inserts ledger rows of one shape (same optional columns), up to 1 000 per statement
    /// (SQLite allows 32 766 binds; a row has at most 23).
    func insertRequestRows(_ rows: ArraySlice<RequestRecord>, on db: any SQLDatabase) async throws {
        guard let first = rows.first else { return }
        let columns = Self.requestColumns(batch: first.batch != nil, reranked: first.rerankedTokens != nil, audio: first.audioMs != nil)
        var start = rows.startIndex
        while start < rows.endIndex {
            let chunk = rows[start..<min(start + 1000, rows.endIndex)]
            var cells: [Cell] = []
            cells.reserveCapacity(chunk.count * columns.count)
            for r in chunk { Self.appendCells(of: r, to: &cells) }
            try await insertRows(into: "requests", columns: columns, rows: chunk.count, cells: cells, on: db)
            start = chunk.endIndex
        }
    }

    // MARK: Rollup marks

    /// Marks the minutes of `minutes` (ascending, distinct) dirty in one statement: inserted with
    /// version 1, or their version incremented.
    func markMinutesDirty(_ minutes: [Int64], on db: any SQLDatabase) async throws {
        for start in stride(from: 0, to: minutes.count, by: 1000) {
            try await markMinutesDirty(minutes[start..<min(start + 1000, minutes.count)], on: db)
        }
    }

    private func markMinutesDirty(_ minutes: ArraySlice<Int64>, on db: any SQLDatabase) async throws {
        let sql = statementTexts.text(.init(kind: "rollup_dirty", columns: [], rows: minutes.count)) {
            // `version` bound as the literal 1 in every row; one placeholder per row for the minute.
            var values = ""
            for i in 0..<minutes.count {
                if i > 0 { values += ", " }
                values += driver == .sqlite ? "(?, 1)" : "($\(i + 1), 1)"
            }
            return "INSERT INTO \"rollup_dirty\" (\"bucket_start\", \"version\") VALUES \(values) ON CONFLICT (\"bucket_start\") DO UPDATE SET \"version\" = \"rollup_dirty\".\"version\" + 1"
        }
        try await runReady(sql, minutes.map { Cell.int($0) }, on: db)
    }

    // MARK: Audit entries

    static let auditColumns = [
        "seq", "time", "actor", "tenant_id", "action", "target", "outcome", "request_id", "client_ip", "user_agent", "model",
        "status", "tokens", "prev_hash", "hash",
    ]

    static func auditCells(_ records: ArraySlice<AuditRecord>) -> [Cell] {
        var cells: [Cell] = []
        cells.reserveCapacity(records.count * auditColumns.count)
        for r in records {
            cells.append(Cell(r.seq)); cells.append(Cell(r.time)); cells.append(Cell(r.actor)); cells.append(Cell(r.tenantID))
            cells.append(Cell(r.action)); cells.append(Cell(r.target)); cells.append(Cell(r.outcome)); cells.append(Cell(r.requestID))
            cells.append(Cell(r.clientIP)); cells.append(Cell(r.userAgent)); cells.append(Cell(r.model)); cells.append(Cell(r.status))
            cells.append(Cell(r.tokens)); cells.append(Cell(r.prevHash)); cells.append(Cell(r.hash))
        }
        return cells
    }

    /// Inserts audit entries, up to 1 000 per statement.
    func insertAuditRows(_ records: [AuditRecord], on db: any SQLDatabase) async throws {
        for start in stride(from: 0, to: records.count, by: 1000) {
            let chunk = records[start..<min(start + 1000, records.count)]
            try await insertRows(into: "audit_log", columns: Self.auditColumns, rows: chunk.count, cells: Self.auditCells(chunk), on: db)
        }
    }

    /// SQLite: inserts `records` only if the chain's tip in the database is still `tip` — the last
    /// entry's `seq:hash`, else the retention anchor's, else none (`tip` nil: an empty chain) —
    /// checked and inserted in one statement (a statement is atomic in SQLite). Returns false,
    /// having inserted nothing, when the database's tip is another one.
    func insertAuditRowsIfTip(is tip: (seq: Int64, hash: String)?, _ records: [AuditRecord]) async throws -> Bool {
        let sql = statementTexts.text(.init(kind: "audit if tip", columns: Self.auditColumns, rows: records.count)) {
            "INSERT INTO \"audit_log\" (\(Self.columnList(Self.auditColumns))) SELECT * FROM (VALUES "
                + valueRows(columns: Self.auditColumns.count, rows: records.count) + ") WHERE COALESCE("
                + "(SELECT \"seq\" || ':' || \"hash\" FROM \"audit_log\" ORDER BY \"seq\" DESC LIMIT 1), "
                + "(SELECT \"seq\" || ':' || \"hash\" FROM \"audit_anchor\" WHERE \"id\" = 1), '') = ? RETURNING \"seq\""
        }
        var cells = Self.auditCells(records[...])
        cells.append(Cell(tip.map { String($0.seq) + ":" + $0.hash } ?? ""))
        return try await runReady(sql, cells, on: db) == records.count
    }
}
