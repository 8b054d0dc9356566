import Foundation
import Storage

/// The drivers a Storage-backed test runs on: SQLite always, PostgreSQL too when
/// `LLMAAS_TEST_POSTGRES_URL` is set (scripts/setup-postgres.sh starts one and scripts/test.sh
/// exports it). Use as `@Test(arguments: TestDatabase.all) func x(_ db: TestDatabase)` and open a
/// fresh, empty database with `db.open()`: in-memory SQLite, or a new PostgreSQL schema dropped at
/// `shutdown()`, so every test is independent of the others.
public enum TestDatabase: String, Sendable, CustomStringConvertible {
    case sqlite
    case postgres

    public var description: String { rawValue }

    /// The PostgreSQL server of the tests, if any.
    public static var postgresURL: String? {
        guard let url = ProcessInfo.processInfo.environment["LLMAAS_TEST_POSTGRES_URL"], !url.isEmpty else { return nil }
        return url
    }

    /// In CI (`CI=true`) PostgreSQL must be there: its absence is a failure, not a skip.
    public static var postgresRequired: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    public static var all: [TestDatabase] { postgresURL == nil ? [.sqlite] : [.sqlite, .postgres] }

    /// A fresh, empty database (not migrated).
    public func open() async throws -> Storage {
        switch self {
        case .sqlite:
            return try await Storage.inMemory()
        case .postgres:
            guard let url = Self.postgresURL else { throw MissingPostgres() }
            return try await Storage.openPostgres(Self.scratch(url))
        }
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
