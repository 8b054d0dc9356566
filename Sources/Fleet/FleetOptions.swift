/// Fleet-wide routing settings (configuration; the defaults are the production choice).
public struct FleetOptions: Sendable, Equatable {
    public var policy: RoutingPolicy
    public var weights: RoutingWeights
    /// Backends tried for one request (a different one each time), before the first byte only.
    public var maxAttempts: Int
    /// Consecutive failures that open a backend's circuit breaker.
    public var breakerThreshold: Int
    /// How long an open breaker keeps a backend out before a half-open trial.
    public var breakerCooldownMs: Int
    /// How long a request may wait in the gateway queue when every eligible backend is full.
    public var queueDeadlineMs: Int
    /// Characters per prefix block for prefix affinity.
    public var prefixBlockChars: Int
    /// Seed of the tie-break generator (nil: a random seed).
    public var seed: UInt64?
    /// `scored` policy: while a backend holding the model is merely full, wait for it this long
    /// before sending the request to one that must load the model cold (a load costs seconds,
    /// a slot frees in a fraction of that).
    public var coldLoadAfterMs: Int

    public init(policy: RoutingPolicy = .scored, weights: RoutingWeights = RoutingWeights(), maxAttempts: Int = 3,
                breakerThreshold: Int = 3, breakerCooldownMs: Int = 1000, queueDeadlineMs: Int = 10_000,
                prefixBlockChars: Int = 256, seed: UInt64? = nil, coldLoadAfterMs: Int = 500) {
        self.coldLoadAfterMs = coldLoadAfterMs
        self.policy = policy; self.weights = weights; self.maxAttempts = max(1, maxAttempts)
        self.breakerThreshold = breakerThreshold; self.breakerCooldownMs = breakerCooldownMs
        self.queueDeadlineMs = max(0, queueDeadlineMs); self.prefixBlockChars = prefixBlockChars; self.seed = seed
    }
}
