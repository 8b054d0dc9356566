import Catalog

/// A refusal by the monthly cap or the prepaid credit (HTTP 429).
public struct BudgetRefusal: Error, Sendable, Hashable {
    public enum Code: String, Sendable, Hashable {
        /// The month's spend reached the tier's cap; lifts on the 1st (UTC).
        case monthlyBudgetExceeded = "monthly_budget_exceeded"
        /// The prepaid balance is used up; lifts when the operator adds credit.
        case insufficientCredit = "insufficient_credit"
    }

    public var code: Code
    /// Unix ms of the first instant of next month (UTC) for the cap; nil for credit.
    public var resetsAtMs: Int64?
    public var message: String
}

public enum BudgetDecision: Sendable, Hashable {
    case ok
    case refused(BudgetRefusal)
}

/// Monthly cap and prepaid credit (SPEC S4, issue 4 §5). Pure: the caller gives the month's
/// spend and the balance; months are UTC calendar months.
public enum BudgetGuard {
    /// Decides whether a tenant may start a request.
    ///
    /// - Parameters:
    ///   - spentThisMonthNano: the spend since the first instant of the month of `nowMs` (UTC).
    ///   - creditBalanceNano: the prepaid balance *after* every deduction so far (credit added −
    ///     all usage), i.e. "credit − spend"; ignored for tiers that are not `prepaid`.
    ///   - tier: its `monthlyCapNano` (nil = unlimited) and `prepaid`.
    /// - Returns: `.ok`, or a refusal: `monthly_budget_exceeded` once spend ≥ cap (checked first),
    ///   `insufficient_credit` once the balance ≤ 0. Requests already admitted may overrun by their
    ///   own cost: the check is at admission.
    public static func check(spentThisMonthNano: Int64, creditBalanceNano: Int64, tier: Tier, nowMs: Int64) -> BudgetDecision {
        if let cap = tier.monthlyCapNano, spentThisMonthNano >= cap {
            let reset = UTCMonth.nextMonthStartMs(after: nowMs)
            return .refused(BudgetRefusal(
                code: .monthlyBudgetExceeded, resetsAtMs: reset,
                message: "The monthly budget of \(euros(cap)) € of tier \(tier.name) is reached "
                    + "(spent \(euros(spentThisMonthNano)) €). It resets on \(UTCMonth.dayString(ms: reset)) 00:00 UTC; "
                    + "to continue now, ask the operator to raise the cap or change tier."))
        }
        if tier.prepaid, creditBalanceNano <= 0 {
            return .refused(BudgetRefusal(
                code: .insufficientCredit, resetsAtMs: nil,
                message: "The prepaid credit is used up (balance \(euros(creditBalanceNano)) €). "
                    + "Ask the operator to add credit."))
        }
        return .ok
    }

    /// With replicas: a request whose worst-case cost `need` does not fit in what the shared
    /// store saw left (`creditLeft`, `capLeft`: nil when not applying; `held`: money held for
    /// requests of any replica not yet in the ledger). The same codes as ``check``; its very
    /// refusal when the cap or the balance is already used up by committed spend.
    public static func reservationRefused(creditLeft: Int64?, capLeft: Int64?, held: Int64, need: Int64, tier: Tier, nowMs: Int64) -> BudgetRefusal {
        if let cap = tier.monthlyCapNano, let capLeft,
           case .refused(let r) = check(spentThisMonthNano: cap - capLeft, creditBalanceNano: creditLeft ?? 1, tier: tier, nowMs: nowMs) {
            return r
        }
        var uncapped = tier
        uncapped.monthlyCapNano = nil
        if tier.prepaid, let creditLeft,
           case .refused(let r) = check(spentThisMonthNano: 0, creditBalanceNano: creditLeft, tier: uncapped, nowMs: nowMs) {
            return r
        }
        if let cap = tier.monthlyCapNano, let capLeft, capLeft - held <= 0 {
            let reset = UTCMonth.nextMonthStartMs(after: nowMs)
            return BudgetRefusal(
                code: .monthlyBudgetExceeded, resetsAtMs: reset,
                message: "The monthly budget of \(euros(cap)) € of tier \(tier.name) is held in full by requests in flight "
                    + "on this tenant's gateways (spent \(euros(cap - capLeft)) €). Retry shortly; "
                    + "the budget resets on \(UTCMonth.dayString(ms: reset)) 00:00 UTC.")
        }
        let left = (creditLeft ?? 0) - held
        return BudgetRefusal(
            code: .insufficientCredit, resetsAtMs: nil,
            message: "The prepaid credit left (\(euros(max(0, left))) € after the requests in flight) does not cover this "
                + "request's worst-case cost of \(euros(need)) € (max_tokens at the model's output price plus the prompt). "
                + "Lower max_tokens, retry shortly, or ask the operator to add credit.")
    }

    /// Webhook thresholds, in percent of the cap.
    public static let thresholds = [80, 100]

    /// The thresholds (80, 100) that spend crossed going from `before` to `after`: t is crossed
    /// when before < t % of cap ≤ after. Empty for an unlimited cap. The caller reports each at
    /// most once per month.
    public static func crossed(before: Int64, after: Int64, cap: Int64?) -> [Int] {
        guard let cap, cap > 0 else { return [] }
        return thresholds.filter { t in
            let mark = threshold(cap: cap, percent: t)
            return before < mark && mark <= after
        }
    }

    /// t % of `cap` rounded up to the nano-euro, without overflow.
    public static func threshold(cap: Int64, percent t: Int) -> Int64 {
        let t = Int64(t)
        return cap / 100 * t + (cap % 100 * t + 99) / 100
    }

    static func euros(_ nano: Int64) -> String {
        let m = nano.magnitude, e = UInt64(Tier.euro)
        let sign = nano < 0 ? "-" : ""
        if m % e == 0 { return sign + String(m / e) }
        var f = String(m % e)
        f = String(repeating: "0", count: 9 - f.count) + f
        while f.last == "0" { f.removeLast() }
        return sign + String(m / e) + "." + f
    }
}

/// UTC calendar months over Unix milliseconds, without Foundation calendars.
public enum UTCMonth {
    static let msPerDay: Int64 = 86_400_000

    /// The UTC day containing `ms` (Catalog's `Day` does the calendar arithmetic).
    public static func day(ms: Int64) -> Day {
        let days = ms >= 0 ? ms / msPerDay : (ms - msPerDay + 1) / msPerDay
        return Day(daysSinceEpoch: Int(days))
    }

    /// Unix ms of the first instant of the month containing `ms`.
    public static func monthStartMs(containing ms: Int64) -> Int64 {
        let d = day(ms: ms)
        return Int64(Day(year: d.year, month: d.month, day: 1).unixTime) * 1_000
    }

    /// Unix ms of the first instant of the month after the one containing `ms`.
    public static func nextMonthStartMs(after ms: Int64) -> Int64 {
        let d = day(ms: ms)
        let next = d.month == 12 ? Day(year: d.year + 1, month: 1, day: 1) : Day(year: d.year, month: d.month + 1, day: 1)
        return Int64(next.unixTime) * 1_000
    }

    /// "2026-12-01" for an instant.
    public static func dayString(ms: Int64) -> String { day(ms: ms).description }

    /// "2026-11" for an instant (the month key for "reported once per month").
    public static func monthKey(ms: Int64) -> String {
        let d = day(ms: ms)
        return Day.padded(d.year, 4) + "-" + Day.padded(d.month, 2)
    }
}
