import AsyncHTTPClient
import Catalog
import Clocks
import Fleet
import Foundation
import Hummingbird
import Logging
import Observability
import OpenAIWire
import Sealing
import Storage
import Shield
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
    /// The fleet's engine clients, one per backend, each pooled to its `max_connections`.
    public let engineHTTP: [HTTPClient]
    /// For tenants' webhooks only: never follows a redirect (it could lead inside the network).
    public let webhookHTTP: HTTPClient
    public let logger: Logger
    public let audit: AuditLog
    public let throttle: AuthThrottle
    let authFailures: AuthFailureAudit
    public let shield: PromptShield
    public let billing: Billing
    /// Tenants, credit and keys: the service the admin API and the CLI share.
    public let administration: Administration
    /// Web console logins (in memory: a restart logs everyone out; replicas do not share them).
    public let consoleSessions: ConsoleSessions
    /// Metrics (issue 13): this platform's own registry, exposed at `/metrics`.
    public let metrics: GatewayMetrics
    /// Per connection: what to cancel when its client goes away (set by the connection guard).
    public let hangUps = HangUpRegistry()
    /// The one clock of the platform (issue 12): every module gets its time from here.
    public let clock: any PlatformClock
    /// Request store (SPEC S8): the encrypted bodies of opted-in tenants, and their data keys.
    public let requestStore: RequestStore
    /// Milliseconds since the epoch, from ``clock``.
    public let now: @Sendable () -> Int64
    /// With `cluster:`: this replica's side of the limits shared with the others. Nil: one gateway.
    public let cluster: ClusterCoordinator?
    /// Encryption at rest: the data keys under the master key, for every store that seals values.
    public let keys: KeyHierarchy
    /// The listener's certificate when `tls:` is set (reloaded on SIGHUP).
    public let tlsCertificates: ListenerCertificates?

    /// Builds the platform from values: its configuration, stores, clock, catalog (nil: loaded from
    /// `config.catalogPath`) and server secret (nil: loaded, or created, at `config.secretPath`).
    public init(config: GatewayConfig, storage: Storage, logger: Logger, clock: any PlatformClock = SystemClock(),
                catalog givenCatalog: Catalog? = nil, secret givenSecret: ServerSecret? = nil) throws {
        self.config = config
        self.storage = storage
        self.logger = logger
        self.clock = clock
        self.tlsCertificates = try config.tls.map { try ListenerCertificates(config: $0) }
        for (i, b) in config.backends.enumerated() {
            do { _ = try b.tls?.clientConfiguration() } catch {
                throw ConfigError(field: "backends[\(i)].tls.\(error.field)", message: error.message)
            }
        }
        let now: @Sendable () -> Int64 = { clock.now() }
        self.now = now
        let secret = try givenSecret ?? ServerSecret.loadOrCreate(path: config.secretPath)
        let keys = KeyHierarchy(storage: storage, masters: try config.masterKeyRing(), now: now)
        self.keys = keys
        self.authority = KeyAuthority(storage: storage, secret: secret, cacheTTLms: config.cluster.map { Int64($0.keyCacheMs) } ?? 1000,
                                      now: now, sealer: keys)
        let cluster = config.cluster.map { ClusterCoordinator(config: $0, storage: storage, now: now, logger: logger) }
        self.cluster = cluster
        self.requestStore = RequestStore(keys: keys, maxBodyBytes: config.requestStore.maxBodyBytes, now: now, logger: logger)
        self.audit = AuditLog(storage: storage, logger: logger, enabled: config.auditEnabled,
                              headPath: (config.dataDir as NSString).appendingPathComponent("audit.head"))
        self.throttle = AuthThrottle(limit: config.authFailuresPerMinute, windowMs: 60_000)
        self.authFailures = AuthFailureAudit(audit: audit)
        self.consoleSessions = ConsoleSessions(idleMs: Int64(config.console.idleMinutes) * 60_000, now: now)
        self.shield = PromptShield(config: config.shield)
        let catalog = try givenCatalog ?? CatalogFile.load(path: config.catalogPath)
        let catalogStore = CatalogStore(catalog)
        let metrics = GatewayMetrics(enabled: config.metrics.enabled, tenantLabelLimit: config.metrics.tenantLabelLimit,
                                     knownModel: { catalogStore.current.resolve($0)?.id == $0 },
                                     backends: config.backends.map(\.name), endpoints: Endpoint.all.map(\.id))
        self.metrics = metrics
        for b in config.backends {
            for model in b.models.keys where catalog.resolve(model) == nil {
                throw ConfigError(field: "backends[\(b.name)].models.\(model)", message: "'\(model)' is not in the catalog \(config.catalogPath)")
            }
        }
        self.catalog = catalogStore
        let billing = Billing(config: config, catalog: catalog, storage: storage, now: now, cluster: cluster,
                              onRefusal: { metrics.refusal(reason: $0, tenant: $1) })
        self.billing = billing
        self.administration = Administration(config: config, storage: storage, authority: authority, now: now,
                                             budgetChanged: { billing.invalidate(tenantID: $0) })
        self.http = Fleet.makeHTTPClient(connectTimeoutMs: config.backends.map(\.timeouts.connectMs).max() ?? 2000)
        var webhookConfig = HTTPClient.Configuration(redirectConfiguration: .disallow)
        webhookConfig.timeout.connect = .seconds(3)
        self.webhookHTTP = HTTPClient(eventLoopGroupProvider: .singleton, configuration: webhookConfig)
        self.engineHTTP = Fleet.makeHTTPClients(for: config.backends)
        self.fleet = Fleet(configs: config.backends, clients: engineHTTP, logger: logger, options: config.fleet, clock: clock,
                           onQueueWait: { metrics.queueWait(model: $0, waited: $1) })
        // One group commit for both: every audit entry queued before a ledger batch is written with
        // it, before the requests waiting on that batch are answered.
        self.requestLog = BatchWriter(name: "requests", logger: logger,
                                      onCommit: { metrics.ledgerCommit(rows: $0, took: $1) }) { [audit, billing] rows in
            // On a SQLite file rows, rollup marks and audit entries are one transaction on the storage's
            // dedicated writer (Storage.commitGroup); elsewhere the rows, then the entries.
            try await audit.flush(committingLedger: rows)
            billing.ledgerCommitted(rows.map(\.id))  // replicas: the money held for them is released
        }
        self.managedEngines = config.backends.compactMap { b in
            b.managed.map {
                ManagedEngine(backend: b, managed: $0, logFile: (config.dataDir as NSString).appendingPathComponent("engine-\(b.name).log"), logger: logger, clock: clock)
            }
        }
    }

    /// Opens the database, runs pending migrations and builds the platform.
    public static func open(config: GatewayConfig, logger: Logger, clock: any PlatformClock = SystemClock(),
                            catalog: Catalog? = nil, secret: ServerSecret? = nil) async throws -> Platform {
        try FileManager.default.createDirectory(atPath: config.dataDir, withIntermediateDirectories: true)
        let storage = try await config.openStorage(logger: logger)
        try await storage.migrate(at: clock.now())
        do {
            // A master key that does not open the data keys in the database stops start-up (before
            // anything else is built).
            do { try await KeyHierarchy(storage: storage, masters: try config.masterKeyRing(), now: { clock.now() }).checkMasters() } catch let e as SealingError {
                throw ConfigError(field: config.masterKeyField, message: e.description)
            }
            let platform = try Platform(config: config, storage: storage, logger: logger, clock: clock, catalog: catalog, secret: secret)
            try await platform.audit.resume()
            do {
                // Values sealed before the key hierarchy covered them move under it (idempotent); a
                // failure is not fatal: they still open the old way and the next start tries again.
                try await platform.authority.resealLegacySecrets()
            } catch {
                logger.error("could not re-seal older sealed secrets under the key hierarchy", metadata: ["error": "\(error)"])
            }
            return platform
        } catch {
            await storage.shutdown()
            throw error
        }
    }

    public func shutdown() async {
        await requestLog.flush()
        await requestStore.flush()
        await audit.flush()
        await cluster?.leave()
        try? await storage.touchKeys(authority.drainLastUsed())
        try? await http.shutdown()
        fleet.closeEngineConnections()
        for client in engineHTTP { try? await client.shutdown() }
        try? await webhookHTTP.shutdown()
        await storage.shutdown()
    }

    /// Authenticates the `Authorization` header from the client's address; failures are OpenAI
    /// 401s (403 for an address outside the key's allowlist), audited, and counted per address.
    func authenticate(_ request: Request, _ context: GatewayContext) async throws(APIError) -> Principal {
        let ip = context.clientIP ?? "-"
        let t = now()
        if let wait = throttle.retryAfter(ip, now: t) {
            throw .rateLimited("Too many failed authentications from your address. Check your API key, then retry after \(wait) s.",
                               retryAfter: wait, code: "too_many_authentication_failures")
        }
        do {
            return try await authority.authenticate(authorization: request.headers.value(of: .authorization), clientIP: context.clientIP)
        } catch {
            // Only what looks like guessing counts (a revoked or rotated real key is not a guess).
            if [.missing, .malformed, .unknownKey, .wrongSecret].contains(error) { throttle.recordFailure(ip, now: t) }
            let header = request.headers.value(of: .authorization) ?? ""
            let keyID = APIKeyToken(parsing: Substring(header.split(separator: " ").last ?? "")).map(\.keyID)
            authFailures.record(AuditEvent(time: t, actor: keyID.map { "key:\($0)" } ?? "anonymous", action: "auth.failure",
                                    target: request.uri.path, outcome: "\(error)", requestID: context.requestID, clientIP: context.clientIP,
                                    userAgent: request.headers[.userAgent], status: { if case .ipNotAllowed = error { return 403 }; return 401 }()))
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
            case .rotated(let successor):
                var e = APIError.invalidAPIKey
                e.message = "This API key was rotated and its grace period is over; use its successor (key id \(successor)). Your administrator can fetch it."
                e.code = "api_key_rotated"
                throw e
            case .ipNotAllowed(let keyID):
                throw .permissionDenied("API key \(keyID) may not be used from your address (\(ip)). Ask your administrator to add it to the key's client IP allowlist.",
                                        code: "ip_not_allowed")
            default: throw .invalidAPIKey
            }
        }
    }
}
