import Foundation
import Storage

/// The drivers a Storage-backed test runs on: SQLite always (in memory, and a file with the
/// gateway's dedicated write connection), PostgreSQL too when `LLMAAS_TEST_POSTGRES_URL` is set
/// (scripts/setup-postgres.sh starts one and scripts/test.sh exports it). Use as
/// `@Test(arguments: TestDatabase.all) func x(_ db: TestDatabase)` and open a fresh, empty database
/// with `db.open()`: in-memory SQLite, a SQLite file in a temporary directory deleted at
/// `shutdown()`, or a new PostgreSQL schema dropped at `shutdown()`, so every test is independent
/// of the others.
public enum TestDatabase: String, Sendable, CustomStringConvertible {
    case sqlite
    /// A SQLite file, as the gateway opens it: the group commit (ledger rows, rollup marks, audit
    /// appends) goes through its dedicated writer connection (Storage/SQLiteWriter.swift).
    case sqliteFile
    case postgres

    public var description: String { rawValue }

    /// The PostgreSQL server of the tests, if any.
    public static var postgresURL: String? {
        guard let url = ProcessInfo.processInfo.environment["LLMAAS_TEST_POSTGRES_URL"], !url.isEmpty else { return nil }
        return url
    }

    /// In CI (`CI=true`) PostgreSQL must be there: its absence is a failure, not a skip.
    public static var postgresRequired: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    public static var all: [TestDatabase] { postgresURL == nil ? [.sqlite, .sqliteFile] : [.sqlite, .sqliteFile, .postgres] }

    /// A fresh, empty database (not migrated).
    public func open() async throws -> Storage {
        switch self {
        case .sqlite:
            return try await Storage.inMemory()
        case .sqliteFile:
            return try await Storage.openSQLite(path: Self.scratchFile(), deleteAtShutdown: true)
        case .postgres:
            guard let url = Self.postgresURL else { throw MissingPostgres() }
            return try await Storage.openPostgres(Self.scratch(url))
        }
    }

    /// A path for a new SQLite file in the temporary directory (the file does not exist yet).
    public static func scratchFile() -> String {
        (NSTemporaryDirectory() as NSString).appendingPathComponent("llmaas-test-\(UUID().uuidString).sqlite")
    }

    /// Settings for a new scratch schema on the test server (dropped at shutdown).
    public static func scratch(_ url: String, poolSize: Int = 4) -> PostgresSettings {
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        return PostgresSettings(url: url, poolSize: poolSize, schema: name, dropSchemaAtShutdown: true)
    }

    public struct MissingPostgres: Error, CustomStringConvertible {
        public var description: String { "LLMAAS_TEST_POSTGRES_URL is not set: run scripts/setup-postgres.sh and source its env file" }
    }
}
