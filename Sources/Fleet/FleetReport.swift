import Foundation
import OpenAIWire

/// What the fleet shows operators: `GET /admin/v1/backends` and the counters tests and benchmarks read.
extension Fleet {
    /// One backend's state for the metrics: whether it is up (its breaker, fed by the probes and the
    /// requests' outcomes, is not open: the router may send it traffic), its breaker (0 closed,
    /// 1 half-open, 2 open), its load.
    public struct BackendGauges: Sendable {
        public let name: String
        public let up: Bool
        public let breakerState: Int
        public let inFlight: Int
    }

    public func backendGauges() -> [BackendGauges] {
        let now = clock.now()
        return state.withLock { s in
            engines.indices.map { i in
                var b = s.backends[i]
                b.breaker.tick(nowMs: now)
                let breaker: Int
                switch b.breaker.state {
                case .closed: breaker = 0
                case .halfOpen: breaker = 1
                case .open: breaker = 2
                }
                return BackendGauges(name: engines[i].name, up: breaker != 2, breakerState: breaker, inFlight: b.inFlight)
            }
        }
    }

    /// Requests waiting in the gateway's queue, by catalog model.
    public func queueDepths() -> [String: Int] { waiters.depths() }

    /// `GET /admin/v1/backends`: each backend's state, load, models and recent errors.
    public func backendsReport() -> JSONValue {
        let now = clock.now()
        let (rows, queued) = state.withLock { s -> ([JSONValue], Int) in
            let rows: [JSONValue] = engines.indices.map { i in
                var b = s.backends[i]
                b.breaker.tick(nowMs: now)
                let e = engines[i]
                let models = Set(e.config.models.keys).union(b.discovered.keys).sorted()
                var engine: [(String, JSONValue)] = []
                if let m = b.metrics {
                    engine = [("waiting", m.waiting.map { .int($0) } ?? .null), ("running", m.running.map { .int($0) } ?? .null),
                              ("kv_cache_usage", m.kvUsage.map { .double($0) } ?? .null)]
                }
                return .object([
                    ("name", .string(e.name)), ("kind", .string(e.kind.rawValue)), ("url", .string(e.config.url)),
                    ("state", .string(b.breaker.label)),
                    ("in_flight", .int(b.inFlight)), ("capacity", .int(e.config.capacity)),
                    ("load", .double(Double(b.inFlight) / Double(e.config.capacity))),
                    ("engine_metrics", engine.isEmpty ? .null : .object(engine)),
                    ("models", .array(models.map { .string($0) })),
                    ("resident_models", b.resident.map { .array($0.sorted().map { .string($0) }) } ?? .null),
                    ("requests", .int(b.requests)), ("failures", .int(b.failures)),
                    ("last_probe_ok", b.lastProbeOK.map { .bool($0) } ?? .null),
                    ("last_probe_at", b.lastProbeAt.map { .string(Self.iso($0)) } ?? .null),
                    ("recent_errors", .array(b.recentErrors.reversed().map {
                        .object([("at", .string(Self.iso($0.at))), ("message", .string($0.message))])
                    })),
                ])
            }
            return (rows, 0)
        }
        return .object([("object", "list"), ("policy", .string(options.policy.rawValue)),
                        ("queued", .int(queued + waiters.count)), ("data", .array(rows))])
    }

    /// Requests sent to each backend so far (benchmarks and tests).
    public var requestCounts: [String: Int] {
        state.withLock { s in Dictionary(uniqueKeysWithValues: engines.indices.map { (engines[$0].name, s.backends[$0].requests) }) }
    }

    /// The breaker label of each backend.
    public var backendStates: [String: String] {
        let now = clock.now()
        return state.withLock { s in
            Dictionary(uniqueKeysWithValues: engines.indices.map { i in
                var b = s.backends[i].breaker
                b.tick(nowMs: now)
                return (engines[i].name, b.label)
            })
        }
    }

    static func iso(_ ms: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }
}
