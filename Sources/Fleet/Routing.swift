/// How the fleet picks a backend (DESIGN §5). Pure code: no I/O, no clocks, no global random,
/// so every decision can be unit-tested from plain values.

/// Weights of the scoring policy. They are configuration; the defaults follow llm-d's scheduler
/// (queue 2, kv-cache 2, prefix 3) with a residency term that dominates everything else, because a
/// cold model load costs seconds while the other terms are worth milliseconds.
public struct RoutingWeights: Sendable, Equatable {
    /// Bonus when the model is already in the backend's GPU memory (Ollama `/api/ps`).
    public var resident: Double
    /// Bonus × fraction of the prompt's leading blocks this backend served last.
    public var prefix: Double
    /// Penalty × gateway-counted in-flight requests / capacity.
    public var load: Double
    /// Penalty × engine-reported waiting requests / capacity.
    public var queue: Double
    /// Penalty × engine-reported KV-cache use (0…1).
    public var kvCache: Double
    /// Prefix affinity counts only while the backend's load is below this fraction of capacity
    /// (SGLang's cache-aware router: follow the cache unless it unbalances the fleet).
    public var affinityMaxLoad: Double

    public init(resident: Double = 100, prefix: Double = 3, load: Double = 2, queue: Double = 2, kvCache: Double = 2,
                affinityMaxLoad: Double = 0.75) {
        self.resident = resident; self.prefix = prefix; self.load = load; self.queue = queue
        self.kvCache = kvCache; self.affinityMaxLoad = affinityMaxLoad
    }
}

/// The policies the fleet can run. Only `scored` is meant for production; the others are the
/// baselines of `bench/routing`.
public enum RoutingPolicy: String, Sendable, CaseIterable {
    case roundRobin = "round_robin"
    case leastInFlight = "least_in_flight"
    case scored
}

/// What the router knows about one eligible backend at the moment of a decision.
public struct RoutingCandidate: Sendable, Equatable {
    /// Position in the fleet (stable: round robin rotates over it).
    public var index: Int
    public var inFlight: Int
    public var capacity: Int
    /// Engine-reported queue (vLLM `num_requests_waiting`), nil when the engine has no metrics.
    public var engineWaiting: Int?
    /// Engine-reported KV-cache use 0…1, nil when unknown.
    public var kvUsage: Double?
    /// Whether the model is loaded; nil when the engine does not say (it is then neither
    /// rewarded nor punished).
    public var resident: Bool?
    /// Leading prompt blocks this backend served last, and the prompt's total blocks.
    public var prefixBlocks: Int
    public var promptBlocks: Int

    public init(index: Int, inFlight: Int, capacity: Int, engineWaiting: Int? = nil, kvUsage: Double? = nil,
                resident: Bool? = nil, prefixBlocks: Int = 0, promptBlocks: Int = 0) {
        self.index = index; self.inFlight = inFlight; self.capacity = max(1, capacity)
        self.engineWaiting = engineWaiting; self.kvUsage = kvUsage; self.resident = resident
        self.prefixBlocks = prefixBlocks; self.promptBlocks = promptBlocks
    }

    /// Gateway-counted load, 0…1+.
    public var load: Double { Double(inFlight) / Double(capacity) }
    /// True when the gateway must not send more to it.
    public var isFull: Bool { inFlight >= capacity }
}

/// A deterministic random source (SplitMix64) so tie-breaks are reproducible in tests and benchmarks.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}

public enum Router {
    /// The score of one candidate under the `scored` policy: higher is better.
    public static func score(_ c: RoutingCandidate, weights w: RoutingWeights) -> Double {
        var s = 0.0
        if c.resident == true { s += w.resident }
        if c.promptBlocks > 0, c.prefixBlocks > 0, c.load < w.affinityMaxLoad {
            s += w.prefix * Double(c.prefixBlocks) / Double(c.promptBlocks)
        }
        s -= w.load * c.load
        if let waiting = c.engineWaiting { s -= w.queue * Double(waiting) / Double(c.capacity) }
        if let kv = c.kvUsage { s -= w.kvCache * min(1, max(0, kv)) }
        return s
    }

    /// Picks one of `candidates` (already filtered: serving the model, healthy, not full).
    /// Returns the chosen candidate's `index`, or nil when there is none.
    /// - Parameter rotation: the round-robin counter; the caller increments it after each pick.
    public static func choose<G: RandomNumberGenerator>(_ candidates: [RoutingCandidate], policy: RoutingPolicy,
                                                        weights: RoutingWeights, rotation: Int, using rng: inout G) -> Int? {
        guard !candidates.isEmpty else { return nil }
        switch policy {
        case .roundRobin:
            // The next index at or after the rotation point, in fleet order.
            let sorted = candidates.map(\.index).sorted()
            let maxIndex = (sorted.last ?? 0) + 1
            let start = ((rotation % maxIndex) + maxIndex) % maxIndex
            return sorted.first { $0 >= start } ?? sorted[0]
        case .leastInFlight:
            return best(candidates, using: &rng) { -Double($0.inFlight) / Double($0.capacity) }
        case .scored:
            return best(candidates, using: &rng) { score($0, weights: weights) }
        }
    }

    /// The highest-valued candidate; equal values (within 1e-9) are broken at random.
    static func best<G: RandomNumberGenerator>(_ candidates: [RoutingCandidate], using rng: inout G,
                                               _ value: (RoutingCandidate) -> Double) -> Int? {
        var top: [Int] = []
        var topValue = -Double.infinity
        for c in candidates {
            let v = value(c)
            if v > topValue + 1e-9 {
                top = [c.index]
                topValue = v
            } else if abs(v - topValue) <= 1e-9 {
                top.append(c.index)
            }
        }
        return top.randomElement(using: &rng)
    }
}
