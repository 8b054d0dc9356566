import Catalog
import Fleet
import Foundation
import Metering
import OpenAIWire
import Quotas
import Shield
import Storage
import Tenancy
import Yams

/// The whole configuration, parsed once into typed values (YAML file + `LLMAAS_*` overrides)
/// and handed down. No other module reads the environment or the file.
public struct GatewayConfig: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 8080
    public var dataDir: String = "./data"
    public var catalogPath: String = "./deploy/catalog.yaml"
    public var maxBodyBytes: Int = 20 << 20
    /// Work one request may ask for (inputs, messages, characters).
    public var requestLimits = RequestLimits()
    /// Listener timeouts and the per-address connection cap.
    public var connections = ConnectionLimits()
    /// Webhook destinations: which schemes and which private networks the operator allows.
    public var webhooks = WebhookPolicy()
    /// Fields only EngineSim understands (`sim_fault`) pass from clients only when this is on
    /// (test set-ups); otherwise such a request gets 400.
    public var allowSimulatorFields = false
    public var backends: [BackendConfig] = []
    /// Routing across the fleet (policy, weights, retries, breakers, queue).
    public var fleet = FleetOptions()
    /// Audit log: on by default; off only for overhead measurements.
    public var auditEnabled = true
    /// Audit entries older than this are purged (the chain stays verifiable).
    public var auditRetentionDays = 400
    /// Failed authentications per client address per minute before 429.
    public var authFailuresPerMinute = 10
    /// Billing tiers (SPEC S4 by default), by name.
    public var tiers: [String: Tier] = Tier.defaults
    /// Price changes with their effective dates (never applied to usage before them).
    public var priceChanges: [PriceBook.Entry] = []
    /// Output reserved at admission when a request sets no max_tokens.
    public var defaultMaxTokens = 1024
    /// Commit a request's ledger row before its last bytes go out (a crash never loses a delivered answer's bill).
    public var durableLedger = true
    /// Prompt security: behavior window and repetition threshold.
    public var shield = ShieldConfig()
    /// How often the rotation job and the maintenance tasks run.
    public var maintenanceIntervalSeconds = 30
    /// Request store (SPEC S8): where the master key comes from, the size bound, the default retention.
    public var requestStore = RequestStoreConfig()
    /// Per-minute and per-hour rollups of the ledger (`rollups:`).
    public var rollups = RollupConfig()
    /// Alert rules, their evaluation and the operator's webhook (`alerts:`).
    public var alerts = AlertsConfig()
    /// The web console at /console.
    public var console = ConsoleConfig()
    /// Metrics: recording on/off, how `/metrics` is protected or where it listens, the tenant label cap.
    public var metrics = MetricsConfig()
    /// Several replicas on one database (`cluster:`): shared limits, leases, heartbeats. Nil: one gateway.
    public var cluster: ClusterConfig?
    /// `database:` — PostgreSQL (url, pool size) instead of the embedded SQLite; nil: SQLite in
    /// `dataDir` (DatabaseConfig.swift).
    public var database: PostgresSettings?
    /// The URL came from `LLMAAS_DATABASE_URL` (errors name that variable).
    public var databaseURLFromEnvironment = false
    /// HTTPS on the listener (`tls:`); nil: plain HTTP.
    public var tls: ListenerTLSConfig?
    /// Encryption at rest: the master key file and the previous ones during a rotation (`encryption:`).
    public var encryption = EncryptionConfig()
    /// The batch API (issue 17): file limits, results retention, the worker (`batch:`).
    public var batch = BatchConfig()

    public init() {}

    public var databasePath: String { (dataDir as NSString).appendingPathComponent("llmaas.sqlite") }
    public var secretPath: String { (dataDir as NSString).appendingPathComponent("server.secret") }
    /// The request store's master key file (`request_store.master_key_file`, else in the data dir).
    public var masterKeyPath: String {
        encryption.masterKeyFile ?? requestStore.masterKeyFile ?? (dataDir as NSString).appendingPathComponent("request-store.key")
    }

    /// Loads `path` (relative paths inside it are relative to the file's folder) and applies the
    /// environment overrides.
    public static func load(path: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> GatewayConfig {
        var config = GatewayConfig()
        if let path {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ConfigError(field: "--config", message: "cannot read '\(path)'")
            }
            let base = ((path as NSString).deletingLastPathComponent as NSString).standardizingPath
            config = try parse(String(decoding: data, as: UTF8.self), baseDir: base.isEmpty ? "." : base)
        }
        if let listen = environment["LLMAAS_LISTEN"], !listen.isEmpty {
            (config.host, config.port) = try parseListen(listen, field: "LLMAAS_LISTEN")
        }
        if let dir = environment["LLMAAS_DATA_DIR"], !dir.isEmpty { config.dataDir = dir }
        if let key = environment["LLMAAS_MASTER_KEY"], !key.isEmpty {
            guard let data = Data(base64Encoded: key.trimmingCharacters(in: .whitespacesAndNewlines)), data.count == 32 else {
                throw ConfigError(field: "LLMAAS_MASTER_KEY", message: "must be base64 of exactly 32 bytes (make one with: head -c 32 /dev/urandom | base64)")
            }
            config.requestStore.masterKey = Array(data)
        }
        if let url = environment["LLMAAS_DATABASE_URL"], !url.isEmpty {
            var settings = config.database ?? PostgresSettings(url: url)
            settings.url = try checkDatabaseURL(url, field: "LLMAAS_DATABASE_URL")
            config.database = settings
            config.databaseURLFromEnvironment = true
        }
        if let id = environment["LLMAAS_REPLICA_ID"], !id.isEmpty {
            guard config.cluster != nil else {
                throw ConfigError(field: "LLMAAS_REPLICA_ID", message: "names a replica, but the config has no 'cluster:' section")
            }
            config.cluster?.replicaID = String(id.prefix(100))
        }
        if config.cluster != nil && config.database == nil {
            throw ConfigError(field: "cluster", message: "replicas share their limits through PostgreSQL: set database.url (or LLMAAS_DATABASE_URL), or remove the cluster section for a single gateway")
        }
        if let keys = environment["LLMAAS_PREVIOUS_MASTER_KEYS"], !keys.isEmpty {
            config.encryption.previousMasterKeys = try EncryptionConfig.parsePreviousKeys(keys)
        }
        if let token = environment["LLMAAS_METRICS_SCRAPE_TOKEN"], !token.isEmpty {
            config.metrics.scrapeToken = try MetricsConfig.checkToken(token, field: "LLMAAS_METRICS_SCRAPE_TOKEN")
        }
        return config
    }

    public static func parse(_ yaml: String, baseDir: String = ".") throws -> GatewayConfig {
        let root: Any?
        do { root = try Yams.load(yaml: yaml, Resolver.default.removing(.timestamp)) } catch {
            throw ConfigError(field: "(file)", message: "not valid YAML: \(error)")
        }
        guard let top = root as? [String: Any] else { throw ConfigError(field: "(file)", message: "the top level must be a mapping") }
        var r = Reader(top, path: "")
        var config = GatewayConfig()
        func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : ((baseDir as NSString).appendingPathComponent(p) as NSString).standardizingPath }

        if let listen = try r.string("listen") { (config.host, config.port) = try parseListen(listen, field: "listen") }
        if let dir = try r.string("data_dir") { config.dataDir = resolve(dir) }
        if let catalog = try r.string("catalog") { config.catalogPath = resolve(catalog) }
        if var limits = try r.mapping("limits") {
            if let n = try limits.int("max_body_bytes", min: 1024) { config.maxBodyBytes = n }
            if let n = try limits.int("max_embedding_inputs", min: 1) { config.requestLimits.maxEmbeddingInputs = n }
            if let n = try limits.int("max_messages", min: 1) { config.requestLimits.maxMessages = n }
            if let n = try limits.int("max_input_characters", min: 1) { config.requestLimits.maxInputCharacters = n }
            try limits.finish()
        }
        if var server = try r.mapping("server") {
            if let n = try server.int("header_timeout_ms", min: 1) { config.connections.headerTimeoutMs = Int64(n) }
            if let n = try server.int("idle_timeout_ms", min: 1) { config.connections.idleTimeoutMs = Int64(n) }
            if let n = try server.int("body_timeout_ms", min: 1) { config.connections.bodyTimeoutMs = Int64(n) }
            if let n = try server.int("linger_timeout_ms", min: 1) { config.connections.lingerTimeoutMs = Int64(n) }
            if let n = try server.int("linger_time_ms", min: 1) { config.connections.lingerTimeMs = Int64(n) }
            if let n = try server.int("max_connections_per_client", min: 0) { config.connections.maxConnectionsPerClient = n }
            if let n = try server.int("listen_backlog", min: 1) {
                guard n <= 65_535 else { throw ConfigError(field: "server.listen_backlog", message: "must be at most 65535") }
                config.connections.listenBacklog = n
            }
            try server.finish()
        }
        if var console = try r.mapping("console") {
            if let b = try console.bool("enabled") { config.console.enabled = b }
            if let n = try console.int("idle_minutes", min: 1) {
                guard n <= 7 * 24 * 60 else { throw ConfigError(field: "console.idle_minutes", message: "must be at most 10080 (7 days)") }
                config.console.idleMinutes = n
            }
            if let b = try console.bool("secure_cookies") { config.console.secureCookies = b }
            if let n = try console.int("refresh_seconds", min: 1) {
                guard n <= 3600 else { throw ConfigError(field: "console.refresh_seconds", message: "must be at most 3600") }
                config.console.refreshSeconds = n
            }
            try console.finish()
        }
        if var testing = try r.mapping("testing") {
            if let b = try testing.bool("allow_simulator_fields") { config.allowSimulatorFields = b }
            try testing.finish()
        }
        if var audit = try r.mapping("audit") {
            if let b = try audit.bool("enabled") { config.auditEnabled = b }
            if let n = try audit.int("retention_days", min: 1) { config.auditRetentionDays = n }
            try audit.finish()
        }
        if var security = try r.mapping("security") {
            if let n = try security.int("auth_failures_per_minute", min: 1) { config.authFailuresPerMinute = n }
            if let b = try security.bool("webhook_allow_http") { config.webhooks.allowHTTP = b }
            if let list = try security.list("webhook_allowed_networks") {
                config.webhooks.allowedNetworks = try list.enumerated().map { i, item in
                    guard let text = item as? String, let cidr = CIDR(text) else {
                        throw ConfigError(field: "security.webhook_allowed_networks[\(i)]", message: "must be a CIDR block, e.g. 10.1.2.0/24 or 127.0.0.1/32")
                    }
                    return cidr
                }
            }
            try security.finish()
        }
        if var routing = try r.mapping("routing") {
            if let p = try routing.string("policy") {
                guard let policy = RoutingPolicy(rawValue: p) else {
                    throw ConfigError(field: "routing.policy", message: "use one of: \(RoutingPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                config.fleet.policy = policy
            }
            if var w = try routing.mapping("weights") {
                func number(_ key: String) throws -> Double? {
                    guard let v = w.values[key] else { return nil }
                    guard let d = (v as? Double) ?? (v as? Int).map(Double.init), d >= 0 else {
                        throw ConfigError(field: "routing.weights.\(key)", message: "must be a non-negative number")
                    }
                    return d
                }
                for key in ["resident", "prefix", "load", "queue", "kv_cache", "affinity_max_load"] { w.used.insert(key) }
                if let d = try number("resident") { config.fleet.weights.resident = d }
                if let d = try number("prefix") { config.fleet.weights.prefix = d }
                if let d = try number("load") { config.fleet.weights.load = d }
                if let d = try number("queue") { config.fleet.weights.queue = d }
                if let d = try number("kv_cache") { config.fleet.weights.kvCache = d }
                if let d = try number("affinity_max_load") { config.fleet.weights.affinityMaxLoad = d }
                try w.finish()
            }
            if let n = try routing.int("max_attempts", min: 1) { config.fleet.maxAttempts = n }
            if let n = try routing.int("breaker_threshold", min: 1) { config.fleet.breakerThreshold = n }
            if let n = try routing.int("breaker_cooldown_ms", min: 1) { config.fleet.breakerCooldownMs = n }
            if let n = try routing.int("queue_deadline_ms", min: 0) { config.fleet.queueDeadlineMs = n }
            if let n = try routing.int("prefix_block_chars", min: 16) { config.fleet.prefixBlockChars = n }
            if let n = try routing.int("cold_load_after_ms", min: 0) { config.fleet.coldLoadAfterMs = n }
            try routing.finish()
        }
        if let tiers = try r.mapping("tiers") {
            for (name, raw) in tiers.values {
                guard let m = raw as? [String: Any] else { throw ConfigError(field: "tiers.\(name)", message: "must be a mapping") }
                var t = Reader(m, path: "tiers.\(name).")
                var tier = config.tiers[name] ?? Tier(name: name, outputTokensPerHour: 150_000, outputTokensPerDay: 3_600_000, monthlyCapNano: nil, priority: Tier.tier1.priority)
                if let n = try t.int("requests_per_minute", min: 1) { tier.requestsPerMinute = n }
                if let n = try t.int("output_tokens_per_hour", min: 1) { tier.outputTokensPerHour = n }
                if let n = try t.int("output_tokens_per_day", min: 1) { tier.outputTokensPerDay = n }
                if let n = try t.int("concurrent_requests", min: 1) { tier.concurrentRequests = n }
                if let n = try t.int("priority", min: 0) { tier.priority = n }
                if let cap = try t.string("monthly_cap_eur") {
                    guard let c = Metering.Cost(euroString: cap) else { throw ConfigError(field: "tiers.\(name).monthly_cap_eur", message: "must be a decimal number of euros, e.g. 1000 or 0.5") }
                    tier.monthlyCapNano = c.nanoEuros
                }
                if let credit = try t.string("upfront_credit_eur") {
                    guard let c = Metering.Cost(euroString: credit) else { throw ConfigError(field: "tiers.\(name).upfront_credit_eur", message: "must be a decimal number of euros") }
                    tier.upfrontCreditNano = c.nanoEuros
                }
                let prepaid = try t.bool("prepaid")
                if let prepaid { tier.prepaid = prepaid }
                try t.finish()
                // Without credit a tier is invoiced: a prepaid 0 € balance would refuse every request.
                // Said prepaid, it needs the credit its balance starts from.
                if (tier.upfrontCreditNano ?? 0) <= 0 {
                    if prepaid == true {
                        throw ConfigError(field: "tiers.\(name).upfront_credit_eur",
                                          message: "required when prepaid is true: a positive decimal number of euros (a prepaid tier without credit refuses every request); or leave prepaid out")
                    }
                    tier.prepaid = false
                }
                config.tiers[name] = tier
            }
        }
        if let changes = try r.list("prices") {
            for (i, raw) in changes.enumerated() {
                let p = "prices[\(i)]"
                guard let m = raw as? [String: Any] else { throw ConfigError(field: p, message: "must be a mapping") }
                var e = Reader(m, path: p + ".")
                guard let model = try e.string("model") else { throw ConfigError(field: p + ".model", message: "required: a catalog model id") }
                guard let from = try e.string("effective_from"), let day = Day(from) else {
                    throw ConfigError(field: p + ".effective_from", message: "required: a date YYYY-MM-DD (UTC) from which the prices apply")
                }
                var prices = Prices.reference
                for (key, path) in [("input_eur_per_mtok", \Prices.inputNanoPerToken), ("output_eur_per_mtok", \Prices.outputNanoPerToken),
                                    ("reasoning_eur_per_mtok", \Prices.reasoningNanoPerToken), ("rerank_eur_per_mtok", \Prices.rerankNanoPerToken)] {
                    guard let text = try e.string(key) else { continue }
                    guard let nano = CatalogFile.nanoPerToken(fromEurPerMTok: text) else {
                        throw ConfigError(field: p + "." + key, message: "a non-negative decimal of €/M tokens, at most 3 decimals")
                    }
                    prices[keyPath: path] = nano
                }
                if let text = try e.string("audio_eur_per_minute") {
                    guard let nano = CatalogFile.nanoEuros(fromEuros: text) else {
                        throw ConfigError(field: p + ".audio_eur_per_minute", message: "a non-negative decimal of euros per started minute of audio, at most 9 decimals")
                    }
                    prices.audioNanoPerMinute = nano
                }
                try e.finish()
                config.priceChanges.append(PriceBook.Entry(model: model, effectiveFromMs: Int64(day.unixTime) * 1000, prices: prices))
            }
        }
        if var billing = try r.mapping("billing") {
            if let n = try billing.int("default_max_tokens", min: 1) { config.defaultMaxTokens = n }
            if let b = try billing.bool("durable_ledger") { config.durableLedger = b }
            try billing.finish()
        }
        if var shield = try r.mapping("shield") {
            if let n = try shield.int("window_size", min: 1) { config.shield.windowSize = n }
            if let n = try shield.int("window_max_age_seconds", min: 1) { config.shield.windowMaxAge = TimeInterval(n) }
            if let n = try shield.int("repetition_threshold", min: 2) { config.shield.repetitionThreshold = n }
            if let b = try shield.bool("semantic") { config.shield.semanticEnabled = b }
            if let t = try shield.string("threshold") {
                guard let x = Double(t), x > 0, x <= 1 else {
                    throw ConfigError(field: "shield.threshold", message: "must be a probability in (0, 1] (the score at which a prompt is blocked; leave it out for the model's own)")
                }
                config.shield.threshold = x
            }
            if let file = try shield.string("semantic_model") {
                let path = resolve(file)
                do { _ = try SemanticModel.load(path: path) } catch {
                    throw ConfigError(field: "shield.semantic_model", message: "\(error) (leave it out for the bundled model)")
                }
                config.shield.semanticModelPath = path
            }
            try shield.finish()
        }
        if var store = try r.mapping("request_store") {
            if let file = try store.string("master_key_file") {
                guard !file.isEmpty else { throw ConfigError(field: "request_store.master_key_file", message: "must be a file path (or leave it out: data_dir/request-store.key)") }
                config.requestStore.masterKeyFile = resolve(file)
            }
            if let n = try store.int("max_body_bytes", min: 1024) {
                guard n <= 16 << 20 else { throw ConfigError(field: "request_store.max_body_bytes", message: "must be at most 16777216 (16 MiB)") }
                config.requestStore.maxBodyBytes = n
            }
            if let n = try store.int("default_retention_days", min: 1) {
                guard n <= 3650 else { throw ConfigError(field: "request_store.default_retention_days", message: "must be between 1 and 3650") }
                config.requestStore.defaultRetentionDays = n
            }
            try store.finish()
        }
        if var batch = try r.mapping("batch") {
            try config.batch.read(&batch, resolve: resolve)
        }
        if var maintenance = try r.mapping("maintenance") {
            if let n = try maintenance.int("interval_seconds", min: 1) { config.maintenanceIntervalSeconds = n }
            try maintenance.finish()
        }
        try parseRollups(&r, into: &config)
        try parseAlerts(&r, into: &config)
        try parseCluster(&r, into: &config)
        if var metrics = try r.mapping("metrics") {
            try config.metrics.read(&metrics, mainPort: config.port)
        }
        try parseDatabase(&r, into: &config)
        if var encryption = try r.mapping("encryption") {
            try config.encryption.read(&encryption, resolve: resolve)
            if let a = config.encryption.masterKeyFile, let b = config.requestStore.masterKeyFile, a != b {
                throw ConfigError(field: "encryption.master_key_file", message: "differs from request_store.master_key_file; the gateway has one master key: keep only encryption.master_key_file")
            }
        }
        if var tls = try r.mapping("tls") {
            let cert = try tls.string("cert").map(resolve), key = try tls.string("key").map(resolve)
            let minText = try tls.string("min_version")
            try tls.finish()
            guard let cert, !cert.isEmpty else { throw ConfigError(field: "tls.cert", message: "required with tls: the PEM file of the server certificate (and its intermediates)") }
            guard let key, !key.isEmpty else { throw ConfigError(field: "tls.key", message: "required with tls: the PEM file of the certificate's private key") }
            var listener = ListenerTLSConfig(certPath: cert, keyPath: key)
            if let minText {
                guard let v = ListenerTLSConfig.MinVersion(rawValue: minText) else {
                    throw ConfigError(field: "tls.min_version", message: "'\(minText)' is not supported: use 1.3 (the default) or 1.2")
                }
                listener.minVersion = v
            }
            config.tls = listener
            // The console's session cookie is Secure whenever the listener speaks TLS.
            config.console.secureCookies = true
        }
        if let list = try r.list("backends") {
            var names = Set<String>()
            for (i, item) in list.enumerated() {
                let p = "backends[\(i)]"
                guard let m = item as? [String: Any] else { throw ConfigError(field: p, message: "each backend must be a mapping") }
                var b = Reader(m, path: p + ".")
                guard let name = try b.string("name"), !name.isEmpty else { throw ConfigError(field: p + ".name", message: "required") }
                guard names.insert(name).inserted else { throw ConfigError(field: p + ".name", message: "'\(name)' is used by another backend") }
                guard let kindText = try b.string("kind") else { throw ConfigError(field: p + ".kind", message: "required (one of: \(EngineKind.allCases.map(\.rawValue).joined(separator: ", ")))") }
                guard let kind = EngineKind(rawValue: kindText) else {
                    throw ConfigError(field: p + ".kind", message: "'\(kindText)' is not an engine kind (use one of: \(EngineKind.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                guard let url = try b.string("url"), let u = URL(string: url), u.scheme == "http" || u.scheme == "https", u.host != nil else {
                    throw ConfigError(field: p + ".url", message: "required: the engine's base URL, e.g. http://127.0.0.1:8081")
                }
                let discover = try b.bool("discover_models") ?? false
                let models = try b.mapping("models")
                if models == nil && !discover {
                    throw ConfigError(field: p + ".models", message: "required: a mapping of catalog model → engine model name (or discover_models: true)")
                }
                var served: [String: String] = [:]
                for (k, v) in models?.values ?? [:] {
                    guard let s = v as? String, !s.isEmpty else { throw ConfigError(field: "\(p).models.\(k)", message: "must be the engine's model name (a string)") }
                    served[k] = s
                }
                if served.isEmpty && !discover { throw ConfigError(field: p + ".models", message: "must name at least one model (or set discover_models: true)") }
                let capacity = try b.int("capacity", min: 1) ?? 8
                let maxConnections = try b.int("max_connections", min: 1)
                if let maxConnections, maxConnections < capacity {
                    throw ConfigError(field: p + ".max_connections", message: "\(maxConnections) is below capacity (\(capacity)): every request in flight holds a connection; set it to at least \(capacity), or leave it out (default \(BackendConfig.defaultMaxConnections(capacity: capacity)))")
                }
                let probeInterval = try b.int("probe_interval_ms", min: 50) ?? 2000
                var timeouts = Timeouts()
                if var t = try b.mapping("timeouts") {
                    if let n = try t.int("connect_ms", min: 1) { timeouts.connectMs = n }
                    if let n = try t.int("first_byte_ms", min: 1) { timeouts.firstByteMs = n }
                    if let n = try t.int("idle_ms", min: 1) { timeouts.idleMs = n }
                    try t.finish()
                }
                var managed: ManagedEngineConfig?
                if var mg = try b.mapping("managed") {
                    guard kind.canBeManaged else { throw ConfigError(field: p + ".managed", message: "only a llamacpp backend can be managed") }
                    guard let file = try mg.string("model_file") else { throw ConfigError(field: p + ".managed.model_file", message: "required: path of the GGUF model file") }
                    let modelFile = resolve(file)
                    guard FileManager.default.fileExists(atPath: modelFile) else {
                        throw ConfigError(field: p + ".managed.model_file", message: "'\(modelFile)' does not exist; run scripts/setup-engine.sh to fetch it")
                    }
                    let venv = resolve(".venv/bin/python")
                    let python = try mg.string("python").map(resolve)
                        ?? (FileManager.default.isExecutableFile(atPath: venv) ? venv : "/usr/bin/python3")
                    let extra = try mg.list("extra_args")?.map { "\($0)" } ?? []
                    try mg.finish()
                    managed = ManagedEngineConfig(modelFile: modelFile, python: python, extraArgs: extra)
                }
                var backendTLS: BackendTLS?
                if var t = try b.mapping("tls") {
                    let tls = BackendTLS(ca: try t.string("ca").map(resolve), cert: try t.string("cert").map(resolve), key: try t.string("key").map(resolve))
                    try t.finish()
                    guard url.hasPrefix("https://") else { throw ConfigError(field: p + ".tls", message: "only for an https:// url (this backend's url is \(url))") }
                    if tls.cert != nil && tls.key == nil { throw ConfigError(field: p + ".tls.key", message: "required with tls.cert: the client certificate's private key (PEM)") }
                    if tls.key != nil && tls.cert == nil { throw ConfigError(field: p + ".tls.cert", message: "required with tls.key: the client certificate (PEM)") }
                    backendTLS = tls
                }
                try b.finish()
                var backend = BackendConfig(name: name, kind: kind, url: url, models: served, timeouts: timeouts, managed: managed,
                                            capacity: capacity, probeIntervalMs: probeInterval, discoverModels: discover,
                                            maxConnections: maxConnections)
                backend.tls = backendTLS
                config.backends.append(backend)
            }
        }
        try r.finish()
        return config
    }

    static func parseListen(_ text: String, field: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ConfigError(field: field, message: "'\(text)' must be HOST:PORT, e.g. 127.0.0.1:8080")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "127.0.0.1" : host, port)
    }
}

/// `request_store:` — the bodies of opted-in tenants (the ledger rows are always kept).
public struct RequestStoreConfig: Sendable {
    /// Key file of the master key (nil: `data_dir/request-store.key`); created 0600 when absent.
    public var masterKeyFile: String?
    /// The master key from `LLMAAS_MASTER_KEY` (base64 of 32 bytes): takes precedence over the file.
    public var masterKey: [UInt8]?
    /// Each stored part (prompt, answer) is cut to this many bytes, and marked truncated.
    public var maxBodyBytes = 256 << 10
    /// Retention of a tenant that opted in without choosing one.
    public var defaultRetentionDays = 30

    public init() {}
}

/// A configuration problem: which field and what is wrong with it.
public struct ConfigError: Error, CustomStringConvertible {
    public let field: String
    public let message: String
    public var description: String { "config error: \(field): \(message)" }
}

/// Reads typed fields from a YAML mapping and refuses unknown ones (a typo must not be ignored).
struct Reader {
    let values: [String: Any]
    let path: String
    var used = Set<String>()

    init(_ values: [String: Any], path: String) { self.values = values; self.path = path }

    mutating func string(_ key: String) throws -> String? {
        used.insert(key)
        guard let v = values[key], !(v is NSNull) else { return nil }
        if let s = v as? String { return s }
        if v is Int || v is Double { return "\(v)" }
        throw ConfigError(field: path + key, message: "must be a string")
    }

    mutating func int(_ key: String, min: Int) throws -> Int? {
        used.insert(key)
        guard let v = values[key], !(v is NSNull) else { return nil }
        guard let n = v as? Int, n >= min else { throw ConfigError(field: path + key, message: "must be an integer ≥ \(min)") }
        return n
    }

    mutating func bool(_ key: String) throws -> Bool? {
        used.insert(key)
        guard let v = values[key], !(v is NSNull) else { return nil }
        guard let b = v as? Bool else { throw ConfigError(field: path + key, message: "must be true or false") }
        return b
    }

    mutating func mapping(_ key: String) throws -> Reader? {
        used.insert(key)
        guard let v = values[key], !(v is NSNull) else { return nil }
        guard let m = v as? [String: Any] else { throw ConfigError(field: path + key, message: "must be a mapping") }
        return Reader(m, path: path + key + ".")
    }

    mutating func list(_ key: String) throws -> [Any]? {
        used.insert(key)
        guard let v = values[key], !(v is NSNull) else { return nil }
        guard let l = v as? [Any] else { throw ConfigError(field: path + key, message: "must be a list") }
        return l
    }

    func finish() throws {
        if let unknown = values.keys.sorted().first(where: { !used.contains($0) }) {
            throw ConfigError(field: path + unknown, message: "unknown field (known here: \(used.sorted().joined(separator: ", ")))")
        }
    }
}

/// `console:` — the web console at `/console`.
public struct ConsoleConfig: Sendable, Equatable {
    /// Off: no `/console` route at all.
    public var enabled = true
    /// A session unused for this long is over (the platform's clock).
    public var idleMinutes = 30
    /// Mark the session cookie `Secure` even when the request did not arrive over TLS (a TLS
    /// proxy that sends no `X-Forwarded-Proto`).
    public var secureCookies = false
    /// How often the live parts of a page are refreshed by its script.
    public var refreshSeconds = 5

    public init() {}
}

/// `batch:` (issue 17). Every field optional; defaults are the reference platform's limits.
public struct BatchConfig: Sendable {
    /// Largest input file, bytes (`max_file_bytes`, default 100 MiB, at most 1 GiB).
    public var maxFileBytes = 100 << 20
    /// Most requests in one input file (`max_requests`, default 50 000).
    public var maxRequests = 50_000
    /// Days output and error files (and the lines' results) are kept after a batch ends (`retention_days`, default 7).
    public var retentionDays = 7
    /// Batch lines in flight at once, across all batches (`worker_concurrency`, default 2).
    public var workerConcurrency = 2
    /// How often the worker looks for work when idle (`poll_interval_ms`, default 500).
    public var pollIntervalMs = 500
    /// Where the encrypted file contents live (`files_dir`, default data_dir/files).
    public var filesDir: String?

    public init() {}

    mutating func read(_ b: inout Reader, resolve: (String) -> String) throws {
        if let n = try b.int("max_file_bytes", min: 1) {
            guard n <= 1 << 30 else { throw ConfigError(field: "batch.max_file_bytes", message: "must be at most 1073741824 (1 GiB)") }
            maxFileBytes = n
        }
        if let n = try b.int("max_requests", min: 1) {
            guard n <= 1_000_000 else { throw ConfigError(field: "batch.max_requests", message: "must be between 1 and 1000000") }
            maxRequests = n
        }
        if let n = try b.int("retention_days", min: 1) {
            guard n <= 3650 else { throw ConfigError(field: "batch.retention_days", message: "must be between 1 and 3650") }
            retentionDays = n
        }
        if let n = try b.int("worker_concurrency", min: 1) {
            guard n <= 256 else { throw ConfigError(field: "batch.worker_concurrency", message: "must be between 1 and 256") }
            workerConcurrency = n
        }
        if let n = try b.int("poll_interval_ms", min: 10) {
            guard n <= 60_000 else { throw ConfigError(field: "batch.poll_interval_ms", message: "must be between 10 and 60000") }
            pollIntervalMs = n
        }
        if let dir = try b.string("files_dir") {
            guard !dir.isEmpty else { throw ConfigError(field: "batch.files_dir", message: "must be a directory path (or leave it out: data_dir/files)") }
            filesDir = resolve(dir)
        }
        try b.finish()
    }
}
