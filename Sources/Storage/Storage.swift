import Foundation
import Logging
import SQLKit
import SQLiteKit

/// The one place that writes SQL. It owns the connection, runs migrations and offers typed
/// operations on plain records; callers never see a query.
public final class Storage: Sendable {
    let db: any SQLDatabase
    private let close: @Sendable () async throws -> Void

    init(db: any SQLDatabase, close: @escaping @Sendable () async throws -> Void) {
        self.db = db
        self.close = close
    }

    /// Opens (creating if needed) the embedded SQLite database at `path`. WAL journal with
    /// `synchronous=NORMAL`: a committed write survives a crash of this process.
    public static func openSQLite(path: String, logger: Logger = Logger(label: "llmaas.storage")) async throws -> Storage {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        let connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        let db = connection.sql()
        do {
            try await db.raw("PRAGMA journal_mode=WAL").run()
            try await db.raw("PRAGMA synchronous=NORMAL").run()
            try await configure(db)
        } catch {
            try? await connection.close()
            throw error
        }
        return Storage(db: db, close: { try await connection.close() })
    }

    /// An in-memory SQLite database, for tests.
    public static func inMemory() async throws -> Storage {
        let connection = try await SQLiteConnection.open(storage: .memory)
        try await configure(connection.sql())
        return Storage(db: connection.sql(), close: { try await connection.close() })
    }

    /// Settings every SQLite connection needs, file or memory.
    private static func configure(_ db: any SQLDatabase) async throws {
        try await db.raw("PRAGMA foreign_keys=ON").run()
        try await db.raw("PRAGMA busy_timeout=5000").run()
    }

    public func shutdown() async {
        try? await close()
    }

    // MARK: Migrations

    /// Applies every migration not yet applied, in order. Returns the versions applied now.
    @discardableResult
    public func migrate() async throws -> [Int] {
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
                .values(SQLBind(m.version), SQLBind(m.name), SQLBind(Int64(Date().timeIntervalSince1970 * 1000)))
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

    // MARK: API keys

    public func insertKey(_ key: APIKeyRecord) async throws {
        try await db.insert(into: "api_keys").model(key, nilEncodingStrategy: .asNil).run()
    }

    public func key(id: String) async throws -> APIKeyRecord? {
        try await db.select().columns("*").from("api_keys").where("id", .equal, id).first(decoding: APIKeyRecord.self)
    }

    // MARK: Requests

    /// Inserts a batch of request rows in one statement (one commit for the whole batch).
    public func insertRequests(_ rows: [RequestRecord]) async throws {
        guard !rows.isEmpty else { return }
        // SQLite allows 32766 bound variables per statement; 14 columns per row.
        for chunk in stride(from: 0, to: rows.count, by: 1000).map({ Array(rows[$0..<min($0 + 1000, rows.count)]) }) {
            try await db.insert(into: "requests").models(chunk, nilEncodingStrategy: .asNil).run()
        }
    }

    public func request(id: String) async throws -> RequestRecord? {
        try await db.select().columns("*").from("requests").where("id", .equal, id).first(decoding: RequestRecord.self)
    }

    public func recentRequests(limit: Int) async throws -> [RequestRecord] {
        try await db.select().columns("*").from("requests").orderBy("created_at", .descending).limit(limit)
            .all(decoding: RequestRecord.self)
    }
}
