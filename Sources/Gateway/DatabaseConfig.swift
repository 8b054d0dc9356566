import Foundation
import Logging
import Storage

/// The `database:` section: PostgreSQL instead of the embedded SQLite.
///
///     database:
///       url: postgres://llmaas:secret@127.0.0.1:5432/llmaas   # or LLMAAS_DATABASE_URL
///       pool_size: 10
///
/// Absent: SQLite at `<data_dir>/llmaas.sqlite` (the default).
extension GatewayConfig {
    /// Where this gateway's data lives.
    public var storageLocation: Storage.Location {
        database.map { .postgres($0) } ?? .sqlite(path: databasePath)
    }

    /// Opens (not migrating) the configured database. A database that cannot be used is a
    /// configuration error (exit code 2) naming `database.url`.
    public func openStorage(logger: Logger) async throws -> Storage {
        if database == nil { try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true) }
        do {
            return try await Storage.open(storageLocation, logger: logger)
        } catch let e as StorageError {
            throw ConfigError(field: databaseURLField, message: e.description)
        }
    }

    /// The field a database error names: the environment override when it set the URL.
    var databaseURLField: String { databaseURLFromEnvironment ? "LLMAAS_DATABASE_URL" : "database.url" }

    static let maxPoolSize = 1000

    static func parseDatabase(_ r: inout Reader, into config: inout GatewayConfig) throws {
        guard var d = try r.mapping("database") else { return }
        guard let url = try d.string("url"), !url.isEmpty else {
            throw ConfigError(field: "database.url", message: "required: the PostgreSQL URL, e.g. postgres://llmaas:secret@127.0.0.1:5432/llmaas (leave out the database section for the embedded SQLite)")
        }
        var settings = PostgresSettings(url: try checkDatabaseURL(url, field: "database.url"))
        if let n = try d.int("pool_size", min: 1) {
            guard n <= maxPoolSize else {
                throw ConfigError(field: "database.pool_size", message: "must be at most \(maxPoolSize) (connections this gateway opens; the server's max_connections bounds the sum over replicas)")
            }
            settings.poolSize = n
        }
        try d.finish()
        config.database = settings
    }

    static func checkDatabaseURL(_ url: String, field: String) throws -> String {
        do { try PostgresSettings.validate(url: url) } catch {
            throw ConfigError(field: field, message: error.description)
        }
        return url
    }
}
