import Fleet
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import Observability
import OpenAIWire
import Tenancy

/// The `metrics:` section of the configuration.
public struct MetricsConfig: Sendable {
    /// Off: nothing is recorded (a no-op factory) and `/metrics` is empty; for overhead measurements.
    public var enabled = true
    /// `GET /metrics` on the main listener requires `Authorization: Bearer <scrape_token>`; without
    /// one configured it answers 401 (use `listen`, or `/admin/v1/metrics` with an operator token).
    public var scrapeToken: String?
    /// A separate listener (host, port) serving only `GET /metrics`, without a token: bind it to
    /// loopback or a monitoring network.
    public var listen: Listen?
    public struct Listen: Sendable, Equatable {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) { self.host = host; self.port = port }
    }
    /// Distinct tenants that get their own `tenant` label; later ones are `other` (0: all `other`).
    public var tenantLabelLimit = 100

    public init() {}

    static func checkToken(_ token: String, field: String) throws -> String {
        guard token.count >= 16, token.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
            throw ConfigError(field: field, message: "must be at least 16 printable ASCII characters without spaces (e.g. from 'openssl rand -hex 24')")
        }
        return token
    }

    mutating func read(_ r: inout Reader, mainPort: Int) throws {
        if let b = try r.bool("enabled") { enabled = b }
        if let t = try r.string("scrape_token") { scrapeToken = try Self.checkToken(t, field: "metrics.scrape_token") }
        if let l = try r.string("listen") {
            let (host, port) = try GatewayConfig.parseListen(l, field: "metrics.listen")
            if port != 0 && port == mainPort {
                throw ConfigError(field: "metrics.listen", message: "port \(port) is the gateway's own (listen); choose another port, e.g. 127.0.0.1:9464")
            }
            listen = Listen(host: host, port: port)
        }
        if let n = try r.int("tenant_label_limit", min: 0) { tenantLabelLimit = n }
        try r.finish()
    }
}

extension Platform {
    /// Samples what is read at scrape time (queue depth, backends, rows written), then the
    /// Prometheus exposition of the platform's registry.
    public func metricsExposition() -> [UInt8] {
        guard metrics.enabled else { return [] }
        let depths = fleet.queueDepths()
        for model in fleet.servedModels.sorted() { metrics.setQueueDepth(model: model, depths[model] ?? 0) }
        for b in fleet.backendGauges() { metrics.setBackend(b.name, up: b.up, breakerState: b.breakerState, inFlight: b.inFlight) }
        metrics.syncCount(GatewayMetrics.Name.ledgerRowsWritten, to: requestLog.writtenCount)
        metrics.syncCount(GatewayMetrics.Name.auditEntriesWritten, to: audit.writtenCount)
        return metrics.exposition()
    }

    func metricsResponse() -> Response {
        Response(status: .ok, headers: [.contentType: GatewayMetrics.contentType, .cacheControl: "no-store"],
                 body: ResponseBody(byteBuffer: ByteBuffer(bytes: metricsExposition())))
    }
}

/// `GET /metrics` on the main listener, behind the scrape token (compared in constant time; a wrong
/// one counts as a failed authentication of the client's address, like a wrong API key).
func addMetricsRoute(to router: Hummingbird.Router<GatewayContext>, platform: Platform) {
    router.get("/metrics") { request, context in
        let ip = context.clientIP ?? "-"
        if let wait = platform.throttle.retryAfter(ip, now: platform.now()) {
            throw APIError.rateLimited("Too many failed authentications from your address. Retry after \(wait) s.", retryAfter: wait,
                                       code: "too_many_authentication_failures")
        }
        guard let expected = platform.config.metrics.scrapeToken else {
            throw APIError(status: 401, message: "No scrape token is configured for /metrics on this address. Set metrics.scrape_token in the configuration (then send 'Authorization: Bearer <token>'), scrape metrics.listen, or read /admin/v1/metrics with an operator token.",
                           type: "authentication_error", code: "invalid_scrape_token")
        }
        let header = request.headers.value(of: .authorization) ?? ""
        let given = header.hasPrefix("Bearer ") ? String(header.dropFirst(7)) : ""
        guard constantTimeEquals(given, expected) else {
            platform.throttle.recordFailure(ip, now: platform.now())
            throw APIError(status: 401, message: "Missing or wrong scrape token. Send 'Authorization: Bearer <metrics.scrape_token>'.",
                           type: "authentication_error", code: "invalid_scrape_token")
        }
        return platform.metricsResponse()
    }
}

extension GatewayServer {
    /// The separate metrics listener (`metrics.listen`): `GET /metrics` only, no token.
    public static func metricsApplication(_ platform: Platform, onRunning: @escaping @Sendable (Int) -> Void = { _ in }) -> (some ApplicationProtocol)? {
        guard let listen = platform.config.metrics.listen else { return nil as Application<RouterResponder<BasicRequestContext>>? }
        let router = Hummingbird.Router(context: BasicRequestContext.self)
        router.get("/metrics") { _, _ in platform.metricsResponse() }
        return Application(router: router, server: platform.tlsCertificates.map { $0.serverBuilder(.http1()) } ?? .http1(),
                           configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "llmaas-metrics"),
                           onServerRunning: { channel in onRunning(channel.localAddress?.port ?? listen.port) },
                           logger: Logger(label: "llmaas.metrics"))
    }
}
