import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresKit
import SQLKit

/// Which database a ``Storage`` runs on.
public enum StorageDriver: String, Sendable {
    /// The embedded default: one file in the data directory, one connection.
    case sqlite
    /// A PostgreSQL server, through a connection pool: what several gateway replicas share.
    case postgres
}

/// Where the PostgreSQL database is and how many connections this process may open to it.
public struct PostgresSettings: Sendable, Equatable {
    /// `postgres://user:password@host:port/database` (`?tlsmode=disable|prefer|require`).
    public var url: String
    /// The most connections this process opens (rounded up to a multiple of the event-loop
    /// threads, at least one per thread).
    public var poolSize: Int
    /// A schema to work in (created if missing) instead of the user's default (`public`): how
    /// tests give each storage a fresh namespace inside one database.
    public var schema: String?
    /// Drop `schema` with everything in it at shutdown (tests' scratch schemas).
    public var dropSchemaAtShutdown: Bool

    public init(url: String, poolSize: Int = 10, schema: String? = nil, dropSchemaAtShutdown: Bool = false) {
        self.url = url; self.poolSize = poolSize; self.schema = schema; self.dropSchemaAtShutdown = dropSchemaAtShutdown
    }

    /// Checks the URL's shape without connecting; the message says what to fix (never echoes the
    /// password).
    public static func validate(url: String) throws(StorageError) {
        let example = "e.g. postgres://llmaas:secret@127.0.0.1:5432/llmaas"
        guard let comp = URLComponents(string: url), let scheme = comp.scheme else {
            throw .badURL("is not a URL (\(example))")
        }
        guard ["postgres", "postgresql", "postgres+tcp", "postgresql+tcp"].contains(scheme) else {
            throw .badURL("must start with postgres:// (\(example)); got scheme '\(scheme)'")
        }
        guard let host = comp.host, !host.isEmpty else { throw .badURL("names no host (\(example))") }
        guard let user = comp.user, !user.isEmpty else { throw .badURL("names no user (\(example))") }
        let path = comp.path.hasPrefix("/") ? String(comp.path.dropFirst()) : comp.path
        guard !path.isEmpty, !path.contains("/") else { throw .badURL("must name one database after the host, \(example)") }
        if let port = comp.port, !(1...65535).contains(port) { throw .badURL("port \(port) is not between 1 and 65535") }
        for item in comp.queryItems ?? [] {
            guard ["tlsmode", "sslmode", "ssl", "tls"].contains(item.name.lowercased()) else {
                throw .badURL("unknown parameter '\(item.name)' (only tlsmode=disable|prefer|require)")
            }
            guard ["disable", "false", "prefer", "allow", "true", "require", "verify-ca", "verify-full"].contains(item.value ?? "") else {
                throw .badURL("\(item.name) must be disable, prefer or require")
            }
        }
        do { _ = try SQLPostgresConfiguration(url: url) } catch { throw .badURL("cannot be read as a PostgreSQL URL (\(example))") }
    }

    /// The URL with its password replaced by `***` (for messages and logs).
    public static func redacted(_ url: String) -> String {
        guard var comp = URLComponents(string: url) else { return "(unreadable URL)" }
        if comp.password != nil { comp.password = "***" }
        return comp.string ?? "(unreadable URL)"
    }
}

/// Why a database could not be opened: what the configuration check reports (exit code 2).
public enum StorageError: Error, Equatable, CustomStringConvertible {
    /// The PostgreSQL URL is malformed.
    case badURL(String)
    /// The server could not be reached, refused the login, or has no such database.
    case unreachable(String)

    public var description: String {
        switch self {
        case .badURL(let m): return m
        case .unreachable(let m): return m
        }
    }
}

/// Advisory locks (PostgreSQL) that serialize work across every process on one database. Keys
/// are fixed 64-bit numbers; add a case for a new use, never reuse one.
public enum AdvisoryLock: Int64, Sendable {
    /// Held while migrations run: replicas starting together migrate once.
    case migrations = 0x6C6C_6D61_6173_0001
    /// Held while a batch is appended to the audit chain: one chain across replicas.
    case auditChain = 0x6C6C_6D61_6173_0002
}

extension Storage {
    /// Connects to PostgreSQL (`settings.url`) with a pool of `settings.poolSize` connections and
    /// checks the server answers. Throws ``StorageError`` with a message that names what failed.
    public static func openPostgres(_ settings: PostgresSettings, logger: Logger = Logger(label: "llmaas.storage")) async throws -> Storage {
        try PostgresSettings.validate(url: settings.url)
        var config: SQLPostgresConfiguration
        do { config = try SQLPostgresConfiguration(url: settings.url) } catch { throw StorageError.badURL("cannot be read as a PostgreSQL URL") }
        config.coreConfiguration.options.connectTimeout = .seconds(5)
        if let schema = settings.schema { config.searchPath = [schema] }
        let group = MultiThreadedEventLoopGroup.singleton
        let loops = Array(group.makeIterator()).count
        let perLoop = max(1, (settings.poolSize + loops - 1) / loops)
        var poolLogger = logger
        poolLogger.logLevel = max(logger.logLevel, .notice)  // the pool logs every connection at info
        let pool = EventLoopGroupConnectionPool(source: PostgresConnectionSource(sqlConfiguration: config),
                                                maxConnectionsPerEventLoop: perLoop, requestTimeout: .seconds(10),
                                                logger: poolLogger, on: group)
        // Binds are never logged (they hold key hashes and sealed secrets).
        let db = PortablePostgresDatabase(pool.database(logger: logger).sql(queryLogLevel: nil))
        do {
            if let schema = settings.schema {
                // The schema must exist before a connection's search_path can use it.
                try await db.raw("CREATE SCHEMA IF NOT EXISTS \(ident: schema)").run()
            }
            _ = try await db.raw("SELECT 1 AS one").first()
        } catch {
            try? await pool.shutdownAsync()
            let target = "\(config.coreConfiguration.host ?? "?"):\(config.coreConfiguration.port ?? 5432)/\(config.coreConfiguration.database ?? "?")"
            throw StorageError.unreachable("cannot connect to PostgreSQL at \(target) as \(config.coreConfiguration.username): \(Self.reason(error))")
        }
        let dropSchema = settings.dropSchemaAtShutdown ? settings.schema : nil
        return Storage(db: db, driver: .postgres, close: {
            if let dropSchema { try? await db.raw("DROP SCHEMA IF EXISTS \(ident: dropSchema) CASCADE").run() }
            try await pool.shutdownAsync()
        })
    }

    /// What went wrong, in words, without the generic text PostgresNIO puts in `description`.
    static func reason(_ error: any Error) -> String {
        if let e = error as? PSQLError {
            if let message = e.serverInfo?[.message] {
                return message + (e.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? "")
            }
            if let underlying = e.underlying { return "\(underlying)" }
            return "\(e.code)"
        }
        return "\(error)"
    }

    /// Runs `body` in one transaction on one connection (PostgreSQL: one commit, so one WAL flush,
    /// for several statements); on SQLite `body` runs as is.
    func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        guard driver == .postgres else { return try await body(db) }
        return try await db.withSession { session in
            try await session.raw("BEGIN").run()
            do {
                let result = try await body(session)
                try await session.raw("COMMIT").run()
                return result
            } catch {
                try? await session.raw("ROLLBACK").run()
                throw error
            }
        }
    }

    /// Runs `body` in one transaction on one connection, holding `lock` until it commits (PostgreSQL).
    /// On SQLite (one connection shared by every caller) `body` runs as is, without a transaction.
    func serialized<T: Sendable>(_ lock: AdvisoryLock, _ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        guard driver == .postgres else { return try await body(db) }
        return try await db.withSession { session in
            try await session.raw("BEGIN").run()
            do {
                try await session.raw("SELECT pg_advisory_xact_lock(\(bind: lock.rawValue))").run()
                let result = try await body(session)
                try await session.raw("COMMIT").run()
                return result
            } catch {
                try? await session.raw("ROLLBACK").run()
                throw error
            }
        }
    }
}

// MARK: - Dialect portability

/// The PostgreSQL side of "one schema, two drivers". Migrations and queries are written once with
/// SQLKit's builders; this database serializes them with PostgreSQL's dialect except for the types,
/// which it maps so that both drivers store the same values the same way:
/// - `.int` → `BIGINT` (SQLite's INTEGER is 64-bit; PostgreSQL's is 32),
/// - `.real` → `DOUBLE PRECISION` (SQLite's REAL is 64-bit; PostgreSQL's is 32),
/// - `.text` → `TEXT COLLATE "C"` (byte order, as SQLite's BINARY collation: `<`, ORDER BY and
///   keyset cursors compare text the same on both, whatever the server's locale),
/// and it replaces the NUL character in bound text (PostgreSQL text cannot hold it) with U+FFFD.
struct PortablePostgresDatabase: SQLDatabase {
    let inner: any SQLDatabase

    init(_ inner: any SQLDatabase) { self.inner = inner }

    var logger: Logger { inner.logger }
    var eventLoop: any EventLoop { inner.eventLoop }
    var version: (any SQLDatabaseReportedVersion)? { inner.version }
    var dialect: any SQLDialect { PortablePostgresDialect() }
    var queryLogLevel: Logger.Level? { inner.queryLogLevel }

    /// Serializes with the portable dialect, then hands the finished text and binds to PostgresKit.
    private func prepared(_ query: any SQLExpression) -> Preserialized {
        var serializer = SQLSerializer(database: self)
        query.serialize(to: &serializer)
        return Preserialized(sql: serializer.sql, binds: serializer.binds.map(Self.storable))
    }

    static func storable(_ bind: any Encodable & Sendable) -> any Encodable & Sendable {
        if let s = bind as? String, s.utf8.contains(0) { return s.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") }
        return bind
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> ()) -> EventLoopFuture<Void> {
        inner.execute(sql: prepared(query), onRow)
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> ()) async throws {
        try await inner.execute(sql: prepared(query), onRow)
    }

    func withSession<R>(_ closure: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await inner.withSession { try await closure(PortablePostgresDatabase($0)) }
    }
}

/// A statement already serialized (same `$n` placeholders as PostgreSQL's dialect).
private struct Preserialized: SQLExpression {
    let sql: String
    let binds: [any Encodable & Sendable]

    func serialize(to serializer: inout SQLSerializer) {
        serializer.write(sql)
        serializer.binds.append(contentsOf: binds)
    }
}

struct PortablePostgresDialect: SQLDialect {
    let base = PostgresDialect()

    var name: String { base.name }
    var identifierQuote: any SQLExpression { base.identifierQuote }
    var literalStringQuote: any SQLExpression { base.literalStringQuote }
    var supportsAutoIncrement: Bool { base.supportsAutoIncrement }
    var autoIncrementClause: any SQLExpression { base.autoIncrementClause }
    var autoIncrementFunction: (any SQLExpression)? { base.autoIncrementFunction }
    func bindPlaceholder(at position: Int) -> any SQLExpression { base.bindPlaceholder(at: position) }
    func literalBoolean(_ value: Bool) -> any SQLExpression { base.literalBoolean(value) }
    var literalDefault: any SQLExpression { base.literalDefault }
    var supportsIfExists: Bool { base.supportsIfExists }
    var enumSyntax: SQLEnumSyntax { base.enumSyntax }
    var supportsDropBehavior: Bool { base.supportsDropBehavior }
    var supportsReturning: Bool { base.supportsReturning }
    var triggerSyntax: SQLTriggerSyntax { base.triggerSyntax }
    var alterTableSyntax: SQLAlterTableSyntax { base.alterTableSyntax }
    func normalizeSQLConstraint(identifier: any SQLExpression) -> any SQLExpression { base.normalizeSQLConstraint(identifier: identifier) }
    var upsertSyntax: SQLUpsertSyntax { base.upsertSyntax }
    var unionFeatures: SQLUnionFeatures { base.unionFeatures }
    var sharedSelectLockExpression: (any SQLExpression)? { base.sharedSelectLockExpression }
    var exclusiveSelectLockExpression: (any SQLExpression)? { base.exclusiveSelectLockExpression }
    func nestedSubpathExpression(in column: any SQLExpression, for path: [String]) -> (any SQLExpression)? {
        base.nestedSubpathExpression(in: column, for: path)
    }

    func customDataType(for dataType: SQLDataType) -> (any SQLExpression)? {
        switch dataType {
        case .int: return SQLRaw("BIGINT")
        case .real: return SQLRaw("DOUBLE PRECISION")
        case .text: return SQLRaw(#"TEXT COLLATE "C""#)
        default: return base.customDataType(for: dataType)
        }
    }
}

/// Expressions whose SQL differs between the drivers. Use these in Storage queries instead of the
/// plain function where the difference matters.
enum PortableSQL {
    /// `COALESCE(SUM(column), 0)` as a 64-bit integer on both drivers (PostgreSQL's SUM of a
    /// BIGINT is a NUMERIC, which does not decode as an integer).
    static func integerSum(_ column: String) -> any SQLExpression {
        PostgresCast(SQLFunction("COALESCE", args: SQLFunction("SUM", args: SQLColumn(column)), SQLLiteral.numeric("0")), type: "BIGINT")
    }
}

/// `CAST(expr AS type)` on PostgreSQL; `expr` unchanged on SQLite (whose SQL stays as it was).
struct PostgresCast: SQLExpression {
    let expression: any SQLExpression
    let type: String

    init(_ expression: any SQLExpression, type: String) { self.expression = expression; self.type = type }

    func serialize(to serializer: inout SQLSerializer) {
        guard serializer.dialect.name == "postgresql" else { return expression.serialize(to: &serializer) }
        serializer.write("CAST(")
        expression.serialize(to: &serializer)
        serializer.write(" AS \(type))")
    }
}
