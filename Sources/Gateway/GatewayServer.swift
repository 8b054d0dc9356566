import Fleet
import Foundation
import Hummingbird
import HummingbirdCore
import Catalog
import Logging
import Observability
import ServiceLifecycle
import Storage
import Tenancy

/// Runs the gateway until SIGTERM/SIGINT. Shutdown order: the HTTP server drains in-flight
/// requests, then the request log flushes, then managed engines stop.
public enum GatewayServer {
    public static func run(config: GatewayConfig, logger: Logger, announce: @escaping @Sendable (String) -> Void = { print($0) }) async throws {
        let platform = try await Platform.open(config: config, logger: logger)
        do {
            try await bootstrapFirstStart(platform, announce: announce)
        } catch {
            await platform.shutdown()
            throw error
        }
        // Hummingbird's MetricsMiddleware records through the global system: here (only) it is the platform's registry.
        platform.metrics.bootstrapGlobalSystem()
        var extra: [any Service] = []
        let scheme = config.tls == nil ? "http" : "https"
        if let metricsApp = metricsApplication(platform, onRunning: { port in
            announce("Metrics on \(scheme)://\(config.metrics.listen?.host ?? ""):\(port)/metrics")
        }) { extra.append(metricsApp) }
        if let certificates = platform.tlsCertificates { extra.append(CertificateReloader(certificates: certificates, logger: platform.logger)) }
        let app = application(platform, services: [EngineSupervisor(engines: platform.managedEngines), FleetHealth(platform: platform),
                                                   Maintenance(platform: platform), CatalogReloader(platform: platform), noticeService(platform),
                                                   RollupService(platform: platform), AlertEvaluator(platform: platform),
                                                   BatchWorker(platform: platform)] + extra
                                                   + (platform.cluster.map { [ClusterService(cluster: $0, storage: platform.storage, clock: platform.now)] } ?? [])) { port in
            announce("LLMaaS listening on \(scheme)://\(config.host):\(port) (OpenAI base_url: \(scheme)://\(config.host):\(port)/v1)")
        }
        do {
            try await app.runService()
        } catch {
            await platform.shutdown()
            throw error
        }
        await platform.shutdown()
    }

    /// The HTTP application over a platform: router, connection guard, the request log and audit
    /// writers, plus `services` (the background work `run` adds; tests leave it out).
    public static func application(_ platform: Platform, services: [any Service] = [],
                                   onRunning: @escaping @Sendable (Int) -> Void = { _ in }) -> some ApplicationProtocol {
        let config = platform.config
        let counter = ConnectionCounter()  // one for the server: connections per client address
        let responder = buildRouter(platform).buildResponder()
        let serverName = "llmaas"
        // The connections are served by our own handler (HTTPConnection.swift), not Hummingbird's
        // HTTP1Channel; Hummingbird's responder closure (its Application's) is not used by it.
        let inFlight = AnswersInFlight()
        let http1 = HTTPServerBuilder { _ in
            GatewayHTTP1Channel(responder: responder, serverName: serverName, inFlight: inFlight, additionalHandlers: {
                [ConnectionGuard(limits: config.connections, counter: counter, hangUps: platform.hangUps)]
            })
        }
        return Application(
            responder: responder,
            server: platform.tlsCertificates.map { $0.serverBuilder(http1) } ?? http1,
            configuration: .init(address: .hostname(config.host, port: config.port), serverName: serverName,
                                 backlog: config.connections.listenBacklog),
            // Shut down in reverse order: the server, then the answers still running, then the writers.
            services: services + [platform.requestLog, platform.audit, platform.requestStore.writer, inFlight],
            onServerRunning: { channel in onRunning(channel.localAddress?.port ?? config.port) },
            logger: platform.logger
        )
    }

    /// With an empty database: create tenant `default` and print one key (shown once).
    static func bootstrapFirstStart(_ platform: Platform, announce: @Sendable (String) -> Void) async throws {
        guard try await platform.storage.tenantCount() == 0 else { return }
        let tenant = try await platform.administration.createTenant(name: "default")
        let (key, token) = try await platform.authority.createKey(tenantName: "default", name: "first-start")
        platform.audit.record(AuditEvent(time: platform.now(), actor: "system", tenantID: tenant.id, action: "tenant.create", target: tenant.id, outcome: "first start"))
        platform.audit.record(AuditEvent(time: platform.now(), actor: "system", tenantID: tenant.id, action: "key.create", target: key.id, outcome: "first start"))
        announce("API key (tenant default, shown once): \(token.text)")
    }
}

/// Lifecycle notices over the platform's storage and webhooks.
func noticeService(_ platform: Platform) -> LifecycleNoticeService {
    let storage = platform.storage
    let store = LifecycleNoticeService.Store(
        usageSince: { since in
            var byTenant: [String: LifecycleNoticeService.Usage] = [:]
            for row in try await storage.modelUsage(since: since) {
                byTenant[row.tenantID, default: .init(tenantID: row.tenantID, tenantName: row.tenantName, models: [])].models.insert(row.model)
            }
            return Array(byTenant.values)
        },
        claimedKeys: {
            Set(try await storage.lifecycleNoticeKeys().compactMap { row in
                NoticePhase(rawValue: row.phase).map { NoticeKey(tenant: row.tenantID, model: row.model, phase: $0) }
            })
        },
        claim: { notice, now in
            try await storage.claimLifecycleNotice(tenantID: notice.key.tenant, model: notice.key.model, phase: notice.key.phase.rawValue,
                                                   at: now, phaseStarted: notice.phaseStarted.description, retiresAt: notice.removal.description,
                                                   payload: notice.json.jsonString)
        })
    return LifecycleNoticeService(catalog: platform.catalog, store: store, clock: platform.clock, logger: platform.logger) { notice in
        Webhooks(platform: platform).send(tenantID: notice.key.tenant, event: "model.lifecycle", payload: notice.json)
    }
}

/// Active health probes of every backend (circuit breakers, load, resident models), and model
/// discovery for backends that ask for it.
struct FleetHealth: Service {
    let platform: Platform

    func run() async throws {
        await platform.fleet.discoverModels(catalogIDs: platform.catalog.current.entries.map(\.id))
        await cancelWhenGracefulShutdown { await platform.fleet.runHealthChecks() }
        // A service that returns early stops the whole group: with no backends, wait for shutdown.
        try? await gracefulShutdown()
    }
}

/// Supervises the managed local engines for the lifetime of the server.
struct EngineSupervisor: Service {
    let engines: [ManagedEngine]

    func run() async throws {
        guard !engines.isEmpty else {
            try? await gracefulShutdown()
            return
        }
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                for engine in engines { group.addTask { await engine.run() } }
            }
        } onGracefulShutdown: {
            Task { for engine in engines { await engine.stop() } }
        }
    }
}
