/// Rate limits applied to one subject (a tenant or a key).
public struct Limits: Sendable, Hashable {
    public var requestsPerMinute: Int
    public var outputTokensPerHour: Int
    public var outputTokensPerDay: Int
    public var concurrentRequests: Int

    public init(requestsPerMinute: Int, outputTokensPerHour: Int, outputTokensPerDay: Int, concurrentRequests: Int) {
        self.requestsPerMinute = requestsPerMinute
        self.outputTokensPerHour = outputTokensPerHour
        self.outputTokensPerDay = outputTokensPerDay
        self.concurrentRequests = concurrentRequests
    }

    /// These limits with the fields an override sets replaced (per-key overrides).
    public func overridden(by o: LimitOverrides) -> Limits {
        Limits(requestsPerMinute: o.requestsPerMinute ?? requestsPerMinute,
               outputTokensPerHour: o.outputTokensPerHour ?? outputTokensPerHour,
               outputTokensPerDay: o.outputTokensPerDay ?? outputTokensPerDay,
               concurrentRequests: o.concurrentRequests ?? concurrentRequests)
    }
}

/// Per-key overrides: nil keeps the tier's value.
public struct LimitOverrides: Sendable, Hashable {
    public var requestsPerMinute: Int?
    public var outputTokensPerHour: Int?
    public var outputTokensPerDay: Int?
    public var concurrentRequests: Int?

    public init(requestsPerMinute: Int? = nil, outputTokensPerHour: Int? = nil,
                outputTokensPerDay: Int? = nil, concurrentRequests: Int? = nil) {
        self.requestsPerMinute = requestsPerMinute
        self.outputTokensPerHour = outputTokensPerHour
        self.outputTokensPerDay = outputTokensPerDay
        self.concurrentRequests = concurrentRequests
    }
}

/// A billing tier (SPEC S4). Config shape: `tiers: {NAME: {requests_per_minute,
/// output_tokens_per_hour, output_tokens_per_day, monthly_cap_eur, concurrent_requests,
/// upfront_credit_eur, prepaid, priority}}`. A configured tier without upfront credit is not
/// prepaid (the config refuses `prepaid: true` without a positive credit).
public struct Tier: Sendable, Hashable {
    public static let euro: Int64 = 1_000_000_000

    public var name: String
    public var requestsPerMinute: Int
    public var outputTokensPerHour: Int
    public var outputTokensPerDay: Int
    /// The month's spending cap in nano-euros; nil = unlimited (`monthly`).
    public var monthlyCapNano: Int64?
    public var concurrentRequests: Int
    /// Scheduling rank when every engine is full: the lowest is served first (0 before 1).
    /// Defaults: `monthly` 1 (SPEC S4: high priority), tier-4…tier-1 → 2…5.
    public var priority: Int
    /// Upfront credit that unlocks the tier (information; nil for `monthly`).
    public var upfrontCreditNano: Int64?
    /// True when usage is deducted from a prepaid credit balance that must stay ≥ 0;
    /// false for `monthly` (invoiced after the month).
    public var prepaid: Bool

    public init(name: String, requestsPerMinute: Int = Tier.defaultRequestsPerMinute,
                outputTokensPerHour: Int, outputTokensPerDay: Int, monthlyCapNano: Int64?,
                concurrentRequests: Int = Tier.defaultConcurrentRequests, priority: Int,
                upfrontCreditNano: Int64? = nil, prepaid: Bool = true) {
        self.name = name
        self.requestsPerMinute = requestsPerMinute
        self.outputTokensPerHour = outputTokensPerHour
        self.outputTokensPerDay = outputTokensPerDay
        self.monthlyCapNano = monthlyCapNano
        self.concurrentRequests = concurrentRequests
        self.priority = priority
        self.upfrontCreditNano = upfrontCreditNano
        self.prepaid = prepaid
    }

    /// Not in SPEC S4; configurable defaults.
    public static let defaultRequestsPerMinute = 600
    public static let defaultConcurrentRequests = 32

    public var limits: Limits {
        Limits(requestsPerMinute: requestsPerMinute, outputTokensPerHour: outputTokensPerHour,
               outputTokensPerDay: outputTokensPerDay, concurrentRequests: concurrentRequests)
    }

    public static let tier1 = Tier(name: "tier-1", outputTokensPerHour: 150_000, outputTokensPerDay: 3_600_000,
                                   monthlyCapNano: 1_000 * euro, priority: 5, upfrontCreditNano: 200 * euro)
    public static let tier2 = Tier(name: "tier-2", outputTokensPerHour: 300_000, outputTokensPerDay: 7_200_000,
                                   monthlyCapNano: 3_000 * euro, priority: 4, upfrontCreditNano: 500 * euro)
    public static let tier3 = Tier(name: "tier-3", outputTokensPerHour: 450_000, outputTokensPerDay: 10_800_000,
                                   monthlyCapNano: 5_000 * euro, priority: 3, upfrontCreditNano: 1_000 * euro)
    public static let tier4 = Tier(name: "tier-4", outputTokensPerHour: 600_000, outputTokensPerDay: 14_400_000,
                                   monthlyCapNano: 10_000 * euro, priority: 2, upfrontCreditNano: 4_000 * euro)
    /// Monthly billing: SPEC S4 says "unlimited" cap and "high priority" limits. Chosen here:
    /// 2 000 000 output tokens/h (3.3 × tier 4), 48 000 000/day (24 × the hour), 3 000 requests/min,
    /// 128 concurrent, priority 1 (served before every other default tier), no cap, not prepaid.
    public static let monthly = Tier(name: "monthly", requestsPerMinute: 3_000, outputTokensPerHour: 2_000_000,
                                     outputTokensPerDay: 48_000_000, monthlyCapNano: nil, concurrentRequests: 128,
                                     priority: 1, upfrontCreditNano: nil, prepaid: false)

    /// The SPEC S4 tiers, in order.
    public static let all: [Tier] = [tier1, tier2, tier3, tier4, monthly]
    /// The SPEC S4 tiers by name (`tier-1` … `tier-4`, `monthly`).
    public static let defaults: [String: Tier] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })
}
