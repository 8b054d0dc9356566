import Foundation
import Logging
import NIOCore
import NIOPosix
import SQLKit
import SQLiteKit

/// The one place that writes SQL. It owns the connection, runs migrations and offers typed
/// operations on plain records; callers never see a query.
public final class Storage: Sendable {
    let db: any SQLDatabase
    /// SQLite (embedded, the default) or PostgreSQL (shared by replicas): see Postgres.swift for
    /// how one set of queries and migrations runs on both.
    public let driver: StorageDriver
    /// SQLite: the connection under `db`, for the write path's inserts that skip SQLKit
    /// (RowInserts.swift). Nil on PostgreSQL.
    let sqliteConnection: SQLiteConnection?
    /// SQLite file: the group commit's own connection and thread (SQLiteWriter.swift, GroupCommit.swift).
    /// Nil in memory (a second connection could not share the database) and on PostgreSQL.
    let writer: SQLiteWriter?
    /// The write path's statement texts, built once per shape (RowInserts.swift).
    let statementTexts = StatementTexts()
    private let close: @Sendable () async throws -> Void
    /// Every operation on `db` and `sqliteConnection` passes it: ``shutdown()`` waits for the
    /// running ones and refuses later ones (QueryGate.swift).
    let gate: QueryGate

    init(db: any SQLDatabase, driver: StorageDriver = .sqlite, sqliteConnection: SQLiteConnection? = nil, writer: SQLiteWriter? = nil,
         close: @escaping @Sendable () async throws -> Void) {
        let gate = QueryGate()
        self.gate = gate
        self.db = GatedDatabase(base: db, gate: gate)
        self.driver = driver
        self.sqliteConnection = sqliteConnection
        self.writer = writer
        self.close = close
    }

    /// Where a gateway keeps its data.
    public enum Location: Sendable, Equatable {
        case sqlite(path: String)
        case postgres(PostgresSettings)
    }

    /// Opens the database at `location` (not migrated yet).
    public static func open(_ location: Location, logger: Logger = Logger(label: "llmaas.storage")) async throws -> Storage {
        switch location {
        case .sqlite(let path): return try await openSQLite(path: path, logger: logger)
        case .postgres(let settings): return try await openPostgres(settings, logger: logger)
        }
    }

    /// The page size of a new SQLite database: 1 KB, not SQLite's 4 KB. Each commit of the
    /// ledger writes every page it touched (a request row, its indexes, the rollup mark, the
    /// audit entry: ~7 pages) whole into the WAL; at one row per commit, 4 KB pages spent more
    /// on copying and checksumming frames than on the rows (issue 16: at one connection 375–387
    /// → 360–373 µs of CPU per request, p99 3.5–3.8 → 1.9–2.0 ms). Rows are well under a 1 KB
    /// page's ~990-byte local limit; an existing database keeps the size it was made with.
    public static let sqlitePageSize = 1024

    /// Opens (creating if needed) the embedded SQLite database at `path`. WAL journal with
    /// `synchronous=NORMAL`: a committed write survives a crash of this process.
    /// `dedicatedWriter` (the default): the group commit (``commitGroup(requests:auditContinuingFrom:_:)``,
    /// ``insertRequests(_:)``, the audit chain's appends) runs on a second connection of its own, one
    /// transaction per commit with its statements kept prepared (SQLiteWriter.swift); false: on the
    /// one connection like every other query (what benchmarks compare against).
    /// `deleteAtShutdown`: remove the file (and its WAL) at ``shutdown()`` (tests' scratch databases).
    public static func openSQLite(path: String, logger: Logger = Logger(label: "llmaas.storage"), dedicatedWriter: Bool = true,
                                  deleteAtShutdown: Bool = false) async throws -> Storage {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        WALWriteBuffer.install()
        let (connection, pool) = try await openSerialConnection(.file(path: path), logger: logger)
        let db = connection.sql()
        do {
            // Before the WAL mode, so a new database file takes it (an existing one keeps its own).
            try await db.raw(SQLQueryString("PRAGMA page_size=\(unsafeRaw: String(sqlitePageSize))")).run()
            try await db.raw("PRAGMA journal_mode=WAL").run()
            try await db.raw("PRAGMA synchronous=NORMAL").run()
            try await configure(db)
        } catch {
            await close(connection, pool)
            throw error
        }
        var writer: SQLiteWriter?
        if dedicatedWriter {
            do { writer = try await SQLiteWriter.open(path: path) } catch {
                await close(connection, pool)
                throw error
            }
        }
        return Storage(db: db, sqliteConnection: connection, writer: writer, close: { [writer] in
            await writer?.close()
            await close(connection, pool)
            if deleteAtShutdown {
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            }
        })
    }

    /// An in-memory SQLite database, for tests.
    public static func inMemory() async throws -> Storage {
        let (connection, pool) = try await openSerialConnection(.memory, logger: Logger(label: "llmaas.storage"))
        do { try await configure(connection.sql()) } catch {
            await close(connection, pool)
            throw error
        }
        return Storage(db: connection.sql(), sqliteConnection: connection, close: { await close(connection, pool) })
    }

    /// The main SQLite connection runs its statements one at a time, on a thread of its own.
    /// SQLiteNIO's shared pool has a thread per core, so two statements of one connection could
    /// interleave their steps: a write starting while a read of the same connection was still
    /// stepping joined that read's snapshot, and if the group commit's writer had committed since,
    /// SQLite refused the write at once (`SQLITE_BUSY_SNAPSHOT`, which the busy timeout does not
    /// wait out) — a failed tenant, key or credit write under load. One thread: each statement
    /// starts its own snapshot, and waits for the writer's lock instead of failing.
    private static func openSerialConnection(_ storage: SQLiteConnection.Storage, logger: Logger) async throws -> (SQLiteConnection, NIOThreadPool) {
        let (pool, connection) = try await NIOThreadPool.ownThread { pool in
            try await SQLiteConnection.open(storage: storage, threadPool: pool, logger: logger, on: MultiThreadedEventLoopGroup.singleton.any()).get()
        }
        return (connection, pool)
    }

    private static func close(_ connection: SQLiteConnection, _ pool: NIOThreadPool) async {
        try? await connection.close().get()
        try? await pool.shutdownGracefully()
    }

    /// Settings every SQLite connection needs, file or memory.
    private static func configure(_ db: any SQLDatabase) async throws {
        try await db.raw("PRAGMA foreign_keys=ON").run()
        try await db.raw("PRAGMA busy_timeout=5000").run()
    }

    public func shutdown() async {
        await gate.closeAndDrain()
        try? await close()
    }

    // MARK: Migrations

    /// Applies every migration not yet applied, in order, recording each at `now` (ms since 1970,
    /// the caller's clock). Returns the versions applied now.
    /// On PostgreSQL all pending migrations run in one transaction under an advisory lock, so
    /// replicas starting together migrate once and a failed migration leaves nothing half-done.
    @discardableResult
    public func migrate(at now: Int64) async throws -> [Int] {
        try await serialized(.migrations) { db in try await Self.migrate(db, at: now) }
    }

    static func migrate(_ db: any SQLDatabase, at now: Int64) async throws -> [Int] {
        try await db.create(table: "schema_migrations")
            .ifNotExists()
            .column("version", type: .int, .primaryKey(autoIncrement: false))
            .column("name", type: .text, .notNull)
            .column("applied_at", type: .bigint, .notNull)
            .run()
        let done = Set(try await db.select().column("version").from("schema_migrations").all(decodingColumn: "version", as: Int.self))
        var applied: [Int] = []
        for m in Schema.migrations where !done.contains(m.version) {
            try await m.run(db)
            try await db.insert(into: "schema_migrations")
                .columns("version", "name", "applied_at")
                .values(SQLBind(m.version), SQLBind(m.name), SQLBind(now))
                .run()
            applied.append(m.version)
        }
        return applied
    }

    public func schemaVersion() async throws -> Int {
        try await db.select().column(SQLFunction("MAX", args: SQLColumn("version")), as: "v").from("schema_migrations")
            .first(decodingColumn: "v", as: Int?.self).flatMap { $0 } ?? 0
    }

    // MARK: Tenants

    public func insertTenant(_ tenant: TenantRecord) async throws {
        try await db.insert(into: "tenants").model(tenant, nilEncodingStrategy: .asNil).run()
    }

    public func tenant(named name: String) async throws -> TenantRecord? {
        try await db.select().columns("*").from("tenants").where("name", .equal, name).first(decoding: TenantRecord.self)
    }

    public func tenant(id: String) async throws -> TenantRecord? {
        try await db.select().columns("*").from("tenants").where("id", .equal, id).first(decoding: TenantRecord.self)
    }

    public func tenantCount() async throws -> Int {
        try await db.select().column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n").from("tenants")
            .first(decodingColumn: "n", as: Int.self) ?? 0
    }

    public func tenants() async throws -> [TenantRecord] {
        try await db.select().columns("*").from("tenants").orderBy("created_at").all(decoding: TenantRecord.self)
    }

    public func updateTenant(_ tenant: TenantRecord) async throws {
        try await db.update("tenants").set(model: tenant, nilEncodingStrategy: .asNil).where("id", .equal, tenant.id).run()
    }

    // MARK: API keys

    public func insertKey(_ key: APIKeyRecord) async throws {
        try await db.insert(into: "api_keys").model(key, nilEncodingStrategy: .asNil).run()
    }

    public func key(id: String) async throws -> APIKeyRecord? {
        try await db.select().columns("*").from("api_keys").where("id", .equal, id).first(decoding: APIKeyRecord.self)
    }

    public func keys(tenantID: String) async throws -> [APIKeyRecord] {
        try await db.select().columns("*").from("api_keys").where("tenant_id", .equal, tenantID).orderBy("created_at")
            .all(decoding: APIKeyRecord.self)
    }

    public func updateKey(_ key: APIKeyRecord) async throws {
        try await db.update("api_keys").set(model: key, nilEncodingStrategy: .asNil).where("id", .equal, key.id).run()
    }

    /// Keys that may be due for rotation: live, no successor yet, of tenants with a rotation policy.
    public func rotationCandidates() async throws -> [APIKeyRecord] {
        try await db.select().columns(SQLColumn(SQLLiteral.all, table: SQLIdentifier("api_keys"))).from("api_keys")
            .join("tenants", on: SQLColumn("tenant_id", table: "api_keys"), .equal, SQLColumn("id", table: "tenants"))
            .where(SQLColumn("rotation_period_days", table: "tenants"), .isNot, SQLLiteral.null)
            .where(SQLColumn("successor_id", table: "api_keys"), .is, SQLLiteral.null)
            .where(SQLColumn("revoked_at", table: "api_keys"), .is, SQLLiteral.null)
            .all(decoding: APIKeyRecord.self)
    }

    /// Records when keys were last used (one statement per key, batched by the caller).
    public func touchKeys(_ lastUsed: [String: Int64]) async throws {
        for (id, time) in lastUsed {
            try await db.update("api_keys").set("last_used_at", to: SQLBind(time)).where("id", .equal, id).run()
        }
    }

    // MARK: Admin tokens

    public func insertAdminToken(_ token: AdminTokenRecord) async throws {
        try await db.insert(into: "admin_tokens").model(token, nilEncodingStrategy: .asNil).run()
    }

    public func adminToken(id: String) async throws -> AdminTokenRecord? {
        try await db.select().columns("*").from("admin_tokens").where("id", .equal, id).first(decoding: AdminTokenRecord.self)
    }

    // MARK: Audit log

    public func appendAudit(_ entries: [AuditRecord]) async throws {
        guard !entries.isEmpty else { return }
        for start in stride(from: 0, to: entries.count, by: 1000) {
            try await db.insert(into: "audit_log").models(Array(entries[start..<min(start + 1000, entries.count)]), nilEncodingStrategy: .asNil).run()
        }
    }

    /// Appends a batch to the one audit chain of this database. Inside the database's
    /// serialization — on PostgreSQL one transaction holding ``AdvisoryLock/auditChain``, so that
    /// every replica appending to the same database extends one chain — it reads the chain's tip
    /// (the last entry, else the retention anchor, else nil), lets `build` number and hash the batch
    /// from it, and inserts what `build` returns. Returns those records.
    @discardableResult
    public func appendAuditChain(_ build: @escaping @Sendable (_ tip: (seq: Int64, hash: String)?) -> [AuditRecord]) async throws -> [AuditRecord] {
        // SQLite file: the tip is read and the batch inserted in one transaction on the writer.
        if let writer { return try await writerAppendAudit(ChainAppend(assumed: nil, prebuilt: nil, build: build), writer: writer) }
        return try await serialized(.auditChain) { db in
            var tip: (seq: Int64, hash: String)?
            if let row = try await db.select().columns("seq", "hash").from("audit_log").orderBy("seq", .descending).limit(1).first() {
                tip = (try row.decode(column: "seq", as: Int64.self), try row.decode(column: "hash", as: String.self))
            } else if let row = try await db.select().columns("seq", "hash").from("audit_anchor").where("id", .equal, 1).first() {
                tip = (try row.decode(column: "seq", as: Int64.self), try row.decode(column: "hash", as: String.self))
            }
            let records = build(tip)
            try await self.insertAuditRows(records, on: db)
            return records
        }
    }

    /// As ``appendAuditChain(_:)``, for a writer that knows where the chain ended after its last
    /// append (`known`, nil for an empty chain). On SQLite the batch is built from `known` and
    /// inserted by one statement that first checks the database's tip is still `known` (no read of
    /// the tip beforehand: one statement, one trip to SQLite's thread, per batch); if another
    /// writer (the CLI, another process on the same file) moved the tip, nothing was inserted and
    /// the batch is built again from the tip read as in ``appendAuditChain(_:)``. On PostgreSQL
    /// (several replicas) always ``appendAuditChain(_:)``: the tip is read under the advisory lock.
    /// On a SQLite file with the dedicated writer: the batch built from `known` is inserted in one
    /// transaction that first reads the tip under the write lock, and is built again from that tip
    /// if it is not `known` (one trip to the writer's thread either way).
    @discardableResult
    public func appendAuditChain(continuingFrom known: (seq: Int64, hash: String)?,
                                 _ build: @escaping @Sendable (_ tip: (seq: Int64, hash: String)?) -> [AuditRecord]) async throws -> [AuditRecord] {
        if let writer {
            let records = build(known)
            if records.isEmpty { return records }
            return try await writerAppendAudit(ChainAppend(assumed: known, prebuilt: records, build: build), writer: writer)
        }
        if driver == .sqlite, sqliteConnection != nil {
            let records = build(known)
            if records.isEmpty { return records }
            if records.count <= 1000, try await insertAuditRowsIfTip(is: known, records) { return records }
        }
        return try await appendAuditChain(build)
    }

    /// The newest entry (where a new writer continues the chain).
    public func lastAudit() async throws -> AuditRecord? {
        try await db.select().columns("*").from("audit_log").orderBy("seq", .descending).limit(1).first(decoding: AuditRecord.self)
    }

    /// Entries in chain order, `limit` at a time after `afterSeq`.
    public func auditPage(afterSeq: Int64, limit: Int) async throws -> [AuditRecord] {
        try await db.select().columns("*").from("audit_log").where("seq", .greaterThan, afterSeq).orderBy("seq").limit(limit)
            .all(decoding: AuditRecord.self)
    }

    /// Entries of one tenant (or all) in a time range, in chain order.
    public func auditEntries(tenantID: String?, from: Int64, to: Int64) async throws -> [AuditRecord] {
        var q = db.select().columns("*").from("audit_log").where("time", .greaterThanOrEqual, from).where("time", .lessThan, to)
        if let tenantID { q = q.where("tenant_id", .equal, tenantID) }
        return try await q.orderBy("seq").all(decoding: AuditRecord.self)
    }

    public func auditAnchor() async throws -> (seq: Int64, hash: String)? {
        guard let row = try await db.select().columns("seq", "hash").from("audit_anchor").where("id", .equal, 1).first() else { return nil }
        return (try row.decode(column: "seq", as: Int64.self), try row.decode(column: "hash", as: String.self))
    }

    /// Retention: deletes entries up to `seq` (inclusive) and records that entry's hash as the
    /// anchor the remaining chain starts from.
    public func purgeAudit(throughSeq seq: Int64, anchorHash: String) async throws {
        // Anchor first, in one statement: a crash between the two steps leaves a chain that still
        // verifies (entries at or before the anchor are simply ignored).
        try await db.insert(into: "audit_anchor").columns("id", "seq", "hash").values(SQLBind(1), SQLBind(seq), SQLBind(anchorHash))
            .onConflict(with: ["id"]) { $0.set(excludedValueOf: "seq").set(excludedValueOf: "hash") }
            .run()
        try await db.delete(from: "audit_log").where("seq", .lessThanOrEqual, seq).run()
    }

    /// The last entry at or before `time` (retention boundary).
    public func lastAudit(before time: Int64) async throws -> AuditRecord? {
        try await db.select().columns("*").from("audit_log").where("time", .lessThan, time).orderBy("seq", .descending).limit(1)
            .first(decoding: AuditRecord.self)
    }

    // MARK: Requests

    /// Inserts a batch of request rows in one statement (one commit for the whole batch).
    public func insertRequests(_ rows: [RequestRecord]) async throws {
        guard !rows.isEmpty else { return }
        // SQLite file: rows and marks in one transaction on the dedicated writer (GroupCommit.swift).
        if let writer {
            _ = try await commitOnWriter(writer, rows: rows, audit: nil)
            return
        }
        // PostgreSQL: the rows and their dirty minutes in one transaction (one commit per batch).
        try await transaction { db in
            // SQLite allows 32766 bound variables per statement; ≤ 23 columns per row.
            // Rows leave out the later optional columns they do not use (`batch`, `reranked_tokens`,
            // `audio_ms`, issue 17; see RequestRecord.encode): one statement per shape.
            // Statements built without SQLKit's builders, their text reused (RowInserts.swift).
            if rows.allSatisfy({ $0.batch == nil && $0.rerankedTokens == nil && $0.audioMs == nil }) {
                try await self.insertRequestRows(rows[...], on: db)  // interactive requests: one shape
            } else {
                let shapes = Dictionary(grouping: rows) { [$0.batch != nil, $0.rerankedTokens != nil, $0.audioMs != nil] }
                for shape in shapes.keys.sorted(by: { $0.map { $0 ? "1" : "0" }.joined() < $1.map { $0 ? "1" : "0" }.joined() }).compactMap({ shapes[$0] }) {
                    try await self.insertRequestRows(shape[...], on: db)
                }
            }
            try await self.markMinutesDirty(Set(rows.map { RollupResolution.minute.bucket($0.createdAt) }).sorted(), on: db)
        }
    }

    /// Ledger rows of a tenant in a time range (all tenants when nil), oldest first.
    public func ledger(tenantID: String?, from: Int64, to: Int64) async throws -> [RequestRecord] {
        var q = db.select().columns("*").from("requests").where("created_at", .greaterThanOrEqual, from).where("created_at", .lessThan, to)
        if let tenantID { q = q.where("tenant_id", .equal, tenantID) }
        return try await q.orderBy("created_at").all(decoding: RequestRecord.self)
    }

    /// A tenant's spend (n€) since `from`.
    public func spend(tenantID: String, from: Int64, to: Int64) async throws -> Int64 {
        try await db.select().column(PortableSQL.integerSum("cost_nano"), as: "s")
            .from("requests").where("tenant_id", .equal, tenantID).where("created_at", .greaterThanOrEqual, from).where("created_at", .lessThan, to)
            .first(decodingColumn: "s", as: Int64.self) ?? 0
    }

    // MARK: Lifecycle notices

    /// Distinct (tenant id, tenant name, model) used since `since` (ms).
    public func modelUsage(since: Int64) async throws -> [(tenantID: String, tenantName: String, model: String)] {
        let rows = try await db.select().distinct()
            .column(SQLColumn("tenant_id", table: "requests"), as: "tid")
            .column(SQLColumn("name", table: "tenants"), as: "tname")
            .column(SQLColumn("model", table: "requests"), as: "model")
            .from("requests")
            .join("tenants", on: SQLColumn("tenant_id", table: "requests"), .equal, SQLColumn("id", table: "tenants"))
            .where(SQLColumn("created_at", table: "requests"), .greaterThanOrEqual, SQLBind(since))
            .where(SQLColumn("model", table: "requests"), .notEqual, SQLBind("-"))
            .all()
        return try rows.map { (try $0.decode(column: "tid", as: String.self), try $0.decode(column: "tname", as: String.self),
                               try $0.decode(column: "model", as: String.self)) }
    }

    public func lifecycleNoticeKeys() async throws -> [(tenantID: String, model: String, phase: String)] {
        try await db.select().columns("tenant_id", "model", "phase").from("lifecycle_notices").all().map {
            (try $0.decode(column: "tenant_id", as: String.self), try $0.decode(column: "model", as: String.self),
             try $0.decode(column: "phase", as: String.self))
        }
    }

    /// Inserts a notice; false when (tenant, model, phase) was already claimed.
    public func claimLifecycleNotice(tenantID: String, model: String, phase: String, at time: Int64, phaseStarted: String,
                                     retiresAt: String, payload: String) async throws -> Bool {
        let before = try await db.select().column("phase").from("lifecycle_notices").where("tenant_id", .equal, tenantID)
            .where("model", .equal, model).where("phase", .equal, phase).first()
        if before != nil { return false }
        do {
            try await db.insert(into: "lifecycle_notices")
                .columns("tenant_id", "model", "phase", "created_at", "phase_started", "retires_at", "payload", "attempts")
                .values(SQLBind(tenantID), SQLBind(model), SQLBind(phase), SQLBind(time), SQLBind(phaseStarted), SQLBind(retiresAt),
                        SQLBind(payload), SQLBind(0))
                .run()
            return true
        } catch {
            return false  // a concurrent claimer won the primary key
        }
    }

    // MARK: Credits and budget notices

    public func addCredit(id: String, tenantID: String, amountNano: Int64, at time: Int64, note: String?) async throws {
        try await db.insert(into: "credits").columns("id", "tenant_id", "amount_nano", "created_at", "note")
            .values(SQLBind(id), SQLBind(tenantID), SQLBind(amountNano), SQLBind(time), SQLBind(note)).run()
    }

    public func credits(tenantID: String) async throws -> [CreditRecord] {
        try await db.select().columns("*").from("credits").where("tenant_id", .equal, tenantID).orderBy("created_at")
            .all(decoding: CreditRecord.self)
    }

    public func creditTotal(tenantID: String) async throws -> Int64 {
        try await db.select().column(PortableSQL.integerSum("amount_nano"), as: "s")
            .from("credits").where("tenant_id", .equal, tenantID).first(decodingColumn: "s", as: Int64.self) ?? 0
    }

    /// Records a budget notice; false when it was already sent (each threshold once a month).
    public func recordBudgetNotice(tenantID: String, month: String, threshold: Int, at time: Int64) async throws -> Bool {
        let exists = try await db.select().column("threshold").from("budget_notices").where("tenant_id", .equal, tenantID)
            .where("month", .equal, month).where("threshold", .equal, threshold).first() != nil
        if exists { return false }
        // RETURNING yields the row only when this insert made it: of several writers (replicas, or
        // two tasks between the check and the insert) exactly one is told to send the notice.
        return try await db.insert(into: "budget_notices").columns("tenant_id", "month", "threshold", "sent_at")
            .values(SQLBind(tenantID), SQLBind(month), SQLBind(threshold), SQLBind(time)).ignoringConflicts()
            .returning("threshold").first() != nil
    }

    public func request(id: String) async throws -> RequestRecord? {
        try await db.select().columns("*").from("requests").where("id", .equal, id).first(decoding: RequestRecord.self)
    }

    public func recentRequests(limit: Int) async throws -> [RequestRecord] {
        try await db.select().columns("*").from("requests").orderBy("created_at", .descending).limit(limit)
            .all(decoding: RequestRecord.self)
    }
}
