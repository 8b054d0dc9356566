import Foundation
import OpenAIWire

/// What the fleet knows about one backend, guarded by the fleet's lock.
struct BackendRuntime {
    var inFlight = 0
    var breaker: CircuitBreaker
    var metrics: EngineMetrics?
    /// Engine model names resident in memory; nil when the engine does not say.
    var resident: Set<String>?
    /// Catalog id → engine name, found by discovery.
    var discovered: [String: String] = [:]
    /// The last errors, with their time (ms since 1970, the platform's clock).
    var recentErrors: [(at: Int64, message: String)] = []
    var requests = 0
    var failures = 0
    var lastProbeOK: Bool?
    var lastProbeAt: Int64?

    init(breaker: CircuitBreaker) { self.breaker = breaker }

    mutating func noteError(_ message: String, at now: Int64) {
        recentErrors.append((now, String(message.prefix(300))))
        if recentErrors.count > 10 { recentErrors.removeFirst(recentErrors.count - 10) }
    }

    func isResident(_ engineModel: String) -> Bool? {
        guard let resident else { return nil }
        return resident.contains(engineModel) || resident.contains(engineModel + ":latest")
    }
}

enum Pick {
    case chosen(Int)
    case saturated
    case noneHealthy
    case noneServing
}

struct RouterState {
    var backends: [BackendRuntime]
    var prefix: PrefixIndex
    var rng: SplitMix64
    var rotation: [String: Int] = [:]

    /// Whether the model is loaded on backend `i`: engines that report it (Ollama's `/api/ps`)
    /// say so; the others serve only what they loaded at start, so a served model is resident.
    func residency(_ fleet: Fleet, _ i: Int, _ model: String) -> Bool? {
        guard fleet.engines[i].adapter.reportsResidency else { return true }
        return served(fleet, i, model).flatMap { backends[i].isResident($0) }
    }

    func served(_ fleet: Fleet, _ i: Int, _ model: String) -> String? {
        fleet.engines[i].config.models[model] ?? backends[i].discovered[model]
    }

    /// Filter (serves the model, healthy, not full), then the policy; reserves the slot.
    mutating func select(fleet: Fleet, model: String, hashes: [UInt64], exclude: Set<Int>, nowMs: Int64, waitedMs: Int64 = 0) -> Pick {
        var serving: [Int] = []
        for i in backends.indices where !exclude.contains(i) && served(fleet, i, model) != nil { serving.append(i) }
        if serving.isEmpty { return exclude.isEmpty ? .noneServing : .noneHealthy }
        let healthy = serving.filter { backends[$0].breaker.admits(nowMs: nowMs) }
        if healthy.isEmpty { return .noneHealthy }
        let matches = hashes.isEmpty ? [:] : prefix.matches(hashes)
        let candidates: [RoutingCandidate] = healthy.compactMap { i in
            let b = backends[i]
            let config = fleet.engines[i].config
            let c = RoutingCandidate(index: i, inFlight: b.inFlight, capacity: config.capacity, engineWaiting: b.metrics?.waiting,
                                     kvUsage: b.metrics?.kvUsage, resident: residency(fleet, i, model),
                                     prefixBlocks: matches[i] ?? 0, promptBlocks: hashes.count)
            return c.isFull ? nil : c
        }
        if candidates.isEmpty { return .saturated }
        if fleet.options.policy == .scored, waitedMs < fleet.options.coldLoadAfterMs,
           !candidates.contains(where: { $0.resident != false }),
           healthy.contains(where: { residency(fleet, $0, model) == true }) {
            return .saturated  // only cold backends are free: wait a little for a warm one
        }
        let rotationValue = rotation[model, default: 0]
        guard let chosen = Router.choose(candidates, policy: fleet.options.policy, weights: fleet.options.weights,
                                         rotation: rotationValue, using: &rng) else { return .saturated }
        rotation[model] = chosen + 1
        backends[chosen].inFlight += 1
        backends[chosen].requests += 1
        backends[chosen].breaker.dispatched(nowMs: nowMs)
        if !hashes.isEmpty { prefix.record(hashes, backend: chosen) }
        if backends[chosen].resident != nil, let name = served(fleet, chosen, model) {
            backends[chosen].resident!.insert(name)  // the engine loads it now
        }
        return .chosen(chosen)
    }

    /// Whether `select` would find a free backend now (without reserving).
    func hasRoom(fleet: Fleet, model: String, exclude: Set<Int>, nowMs: Int64, waitedMs: Int64) -> Bool {
        let healthy = backends.indices.filter { i in
            !exclude.contains(i) && served(fleet, i, model) != nil && backends[i].breaker.admits(nowMs: nowMs)
        }
        let free = healthy.filter { backends[$0].inFlight < fleet.engines[$0].config.capacity }
        if free.isEmpty { return false }
        if fleet.options.policy == .scored, waitedMs < fleet.options.coldLoadAfterMs,
           !free.contains(where: { residency(fleet, $0, model) != false }),
           healthy.contains(where: { residency(fleet, $0, model) == true }) {
            return false
        }
        return true
    }
}
