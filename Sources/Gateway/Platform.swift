import AsyncHTTPClient
import Catalog
import Fleet
import Foundation
import Hummingbird
import Logging
import Observability
import OpenAIWire
import Storage
import Synchronization
import Tenancy

/// The current catalog; a reload swaps it whole.
public final class CatalogStore: Sendable {
    private let value: Mutex<Catalog>
    public init(_ catalog: Catalog) { value = Mutex(catalog) }
    public var current: Catalog { value.withLock { $0 } }
    public func replace(_ catalog: Catalog) { value.withLock { $0 = catalog } }
}

/// Everything a request needs, built once at start from the configuration.
public final class Platform: Sendable {
    public let config: GatewayConfig
    public let storage: Storage
    public let authority: KeyAuthority
    public let catalog: CatalogStore
    public let fleet: Fleet
    public let requestLog: BatchWriter<RequestRecord>
    public let managedEngines: [ManagedEngine]
    public let http: HTTPClient
    public let logger: Logger

    public init(config: GatewayConfig, storage: Storage, logger: Logger) throws {
        self.config = config
        self.storage = storage
        self.logger = logger
        let secret = try ServerSecret.loadOrCreate(path: config.secretPath)
        self.authority = KeyAuthority(storage: storage, secret: secret)
        let catalog = try CatalogFile.load(path: config.catalogPath)
        for b in config.backends {
            for model in b.models.keys where catalog.resolve(model) == nil {
                throw ConfigError(field: "backends[\(b.name)].models.\(model)", message: "'\(model)' is not in the catalog \(config.catalogPath)")
            }
        }
        self.catalog = CatalogStore(catalog)
        self.http = Fleet.makeHTTPClient(connectTimeoutMs: config.backends.map(\.timeouts.connectMs).max() ?? 2000)
        self.fleet = Fleet(configs: config.backends, http: http, logger: logger)
        self.requestLog = BatchWriter(name: "requests", logger: logger) { [storage] rows in try await storage.insertRequests(rows) }
        self.managedEngines = config.backends.compactMap { b in
            b.managed.map {
                ManagedEngine(backend: b, managed: $0, logFile: (config.dataDir as NSString).appendingPathComponent("engine-\(b.name).log"), logger: logger)
            }
        }
    }

    /// Opens the database, runs pending migrations and builds the platform.
    public static func open(config: GatewayConfig, logger: Logger) async throws -> Platform {
        try FileManager.default.createDirectory(atPath: config.dataDir, withIntermediateDirectories: true)
        let storage = try await Storage.openSQLite(path: config.databasePath, logger: logger)
        try await storage.migrate()
        do {
            return try Platform(config: config, storage: storage, logger: logger)
        } catch {
            await storage.shutdown()
            throw error
        }
    }

    public func shutdown() async {
        await requestLog.flush()
        try? await http.shutdown()
        await storage.shutdown()
    }

    /// Authenticates the `Authorization` header; failures are OpenAI 401s.
    func authenticate(_ request: Request) async throws(APIError) -> Principal {
        do {
            return try await authority.authenticate(authorization: request.headers[.authorization])
        } catch {
            switch error {
            case .missing: throw .missingAPIKey
            case .revoked:
                var e = APIError.invalidAPIKey
                e.message = "This API key has been revoked. Use another key or ask your administrator for a new one."
                e.code = "api_key_revoked"
                throw e
            case .expired:
                var e = APIError.invalidAPIKey
                e.message = "This API key has expired. Use its successor or ask your administrator for a new one."
                e.code = "api_key_expired"
                throw e
            case .tenantDisabled:
                var e = APIError.invalidAPIKey
                e.message = "The account of this API key is disabled. Contact your administrator."
                e.code = "account_disabled"
                throw e
            default: throw .invalidAPIKey
            }
        }
    }
}
