import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import OpenAIWire
import Synchronization

/// The engines behind the gateway. Picks an engine for a model and fails over to the next one
/// when an engine cannot be reached before anything was sent to the client.
public final class Fleet: Sendable {
    public let engines: [Engine]
    let logger: Logger
    /// Engines that failed to connect recently (name → monotonic ms), skipped while others remain.
    private let recentFailures = Mutex<[String: Int64]>([:])
    static let failureCooldownMs: Int64 = 2000

    /// The one pooled HTTP client for all engines. A refused connection fails at once (no silent
    /// retry loop), so failover to another engine is immediate.
    public static func makeHTTPClient(connectTimeoutMs: Int) -> HTTPClient {
        var config = HTTPClient.Configuration()
        config.timeout.connect = .milliseconds(Int64(connectTimeoutMs))
        config.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 512
        config.connectionPool.retryConnectionEstablishment = false
        config.decompression = .disabled
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    public init(configs: [BackendConfig], http: HTTPClient, logger: Logger) {
        self.engines = configs.map { Engine(config: $0, http: http, logger: logger) }
        self.logger = logger
    }

    /// Catalog ids served by at least one engine.
    public var servedModels: Set<String> { Set(engines.flatMap { $0.config.models.keys }) }

    public func engines(serving model: String) -> [Engine] {
        let serving = engines.filter { $0.config.models[model] != nil }
        let now = Activity.nowMs()
        let failed = recentFailures.withLock { f in serving.filter { f[$0.name].map { now - $0 < Self.failureCooldownMs } ?? false } }
        let healthy = serving.filter { e in !failed.contains { $0 === e } }
        return healthy + failed
    }

    /// Sends a request for catalog model `model`, trying each engine that serves it (at most once)
    /// while the failure happened before the engine sent anything.
    public func send(model: String, endpoint: Endpoint, body: JSONValue, stream: Bool) async throws(EngineError) -> (Engine, UpstreamResponse) {
        let candidates = engines(serving: model)
        guard !candidates.isEmpty else {
            throw .rejected(backend: "-", error: .unavailable("No engine is configured to serve '\(model)'. The operator must add a backend for it."))
        }
        var lastError: EngineError?
        for engine in candidates {
            var upstreamBody = body
            upstreamBody.set("model", .string(engine.config.models[model]!))
            do {
                let response = try await engine.send(UpstreamRequest(endpoint: endpoint, body: upstreamBody, stream: stream))
                recentFailures.withLock { _ = $0.removeValue(forKey: engine.name) }
                return (engine, response)
            } catch {
                switch error {
                case .unreachable:
                    recentFailures.withLock { $0[engine.name] = Activity.nowMs() }
                    logger.warning("engine unreachable, trying the next one", metadata: ["backend": "\(engine.name)"])
                    lastError = error
                default:
                    throw error
                }
            }
        }
        throw lastError!
    }

    /// True when the engine answers `GET /v1/models`.
    public func probe(_ engine: Engine, timeoutMs: Int = 2000) async -> Bool {
        let request = HTTPClientRequest(url: engine.config.url + "/v1/models")
        do {
            let response = try await engine.withTimeout(timeoutMs) { [http = engine.http] in
                try await http.execute(request, deadline: .distantFuture)
            }
            _ = try? await response.body.collect(upTo: 1 << 20)
            return response.status.code == 200
        } catch {
            return false
        }
    }

    /// True when at least one engine answers.
    public func anyReady() async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            for engine in engines { group.addTask { await self.probe(engine) } }
            for await ok in group where ok {
                group.cancelAll()
                return true
            }
            return false
        }
    }
}
