import Catalog
import Testing
@testable import Quotas

@Suite("tiers and budget")
struct BudgetTests {
    let euro = Tier.euro
    let nov30 = Int64(Day(year: 2026, month: 11, day: 30).unixTime) * 1_000 + 23 * 3_600_000
    let dec1 = Int64(Day(year: 2026, month: 12, day: 1).unixTime) * 1_000

    @Test func specTiers() {
        #expect(Tier.all.map(\.name) == ["tier-1", "tier-2", "tier-3", "tier-4", "monthly"])
        #expect(Tier.all.map(\.outputTokensPerHour) == [150_000, 300_000, 450_000, 600_000, 2_000_000])
        #expect(Tier.all.map(\.outputTokensPerDay) == [3_600_000, 7_200_000, 10_800_000, 14_400_000, 48_000_000])
        #expect(Tier.all.map(\.monthlyCapNano) == [1_000 * euro, 3_000 * euro, 5_000 * euro, 10_000 * euro, nil])
        #expect(Tier.all.map(\.upfrontCreditNano) == [200 * euro, 500 * euro, 1_000 * euro, 4_000 * euro, nil])
        #expect(Tier.tier1.requestsPerMinute == 600 && Tier.tier1.concurrentRequests == 32)
        #expect(Tier.monthly.priority < Tier.tier4.priority && !Tier.monthly.prepaid)  // served first
        #expect(Tier.defaults["tier-3"] == Tier.tier3)
        let key = Tier.tier1.limits.overridden(by: LimitOverrides(outputTokensPerHour: 10_000))
        #expect(key.outputTokensPerHour == 10_000 && key.outputTokensPerDay == 3_600_000)
    }

    @Test func monthlyCapTripsAtTheCapAndResetsOnTheFirst() {
        // a ledger: (instant, cost); the month's spend is what the caller sums from it
        let ledger: [(Int64, Int64)] = [(nov30 - 10 * 86_400_000, 600 * euro), (nov30 - 3_600_000, 399 * euro)]
        func spent(at now: Int64) -> Int64 {
            let start = UTCMonth.monthStartMs(containing: now)
            return ledger.filter { $0.0 >= start && $0.0 <= now }.map(\.1).reduce(0, +)
        }
        let credit = 5_000 * euro
        #expect(BudgetGuard.check(spentThisMonthNano: spent(at: nov30), creditBalanceNano: credit, tier: .tier1, nowMs: nov30) == .ok)
        #expect(BudgetGuard.check(spentThisMonthNano: 1_000 * euro - 1, creditBalanceNano: credit, tier: .tier1, nowMs: nov30) == .ok)
        guard case .refused(let r) = BudgetGuard.check(spentThisMonthNano: 1_000 * euro, creditBalanceNano: credit, tier: .tier1, nowMs: nov30) else {
            Issue.record("cap did not trip"); return
        }
        #expect(r.code == .monthlyBudgetExceeded && r.code.rawValue == "monthly_budget_exceeded")
        #expect(r.resetsAtMs == dec1)
        #expect(r.message.contains("2026-12-01") && r.message.contains("1000 €"))
        // the 1st: a new month, nothing spent yet
        #expect(spent(at: dec1) == 0)
        #expect(BudgetGuard.check(spentThisMonthNano: spent(at: dec1), creditBalanceNano: credit, tier: .tier1, nowMs: dec1) == .ok)
        // monthly billing has no cap and no credit
        #expect(BudgetGuard.check(spentThisMonthNano: 1_000_000 * euro, creditBalanceNano: -5, tier: .monthly, nowMs: nov30) == .ok)
    }

    @Test func creditMustStayPositive() {
        guard case .refused(let r) = BudgetGuard.check(spentThisMonthNano: 10, creditBalanceNano: 0, tier: .tier2, nowMs: nov30) else {
            Issue.record("no credit admitted"); return
        }
        #expect(r.code.rawValue == "insufficient_credit" && r.resetsAtMs == nil)
        #expect(BudgetGuard.check(spentThisMonthNano: 10, creditBalanceNano: 1, tier: .tier2, nowMs: nov30) == .ok)
    }

    @Test func thresholdCrossings() {
        let cap = 1_000 * euro
        #expect(BudgetGuard.crossed(before: 0, after: 799 * euro, cap: cap) == [])
        #expect(BudgetGuard.crossed(before: 799 * euro, after: 800 * euro, cap: cap) == [80])
        #expect(BudgetGuard.crossed(before: 800 * euro, after: 999 * euro, cap: cap) == [])
        #expect(BudgetGuard.crossed(before: 700 * euro, after: 1_200 * euro, cap: cap) == [80, 100])
        #expect(BudgetGuard.crossed(before: 999 * euro, after: 1_000 * euro, cap: cap) == [100])
        #expect(BudgetGuard.crossed(before: 0, after: .max, cap: nil) == [])
        #expect(BudgetGuard.threshold(cap: 101, percent: 80) == 81)  // rounded up
        #expect(BudgetGuard.threshold(cap: .max, percent: 100) == .max)
    }

    @Test func utcMonths() {
        #expect(UTCMonth.nextMonthStartMs(after: nov30) == dec1)
        #expect(UTCMonth.monthStartMs(containing: dec1) == dec1)
        #expect(UTCMonth.monthStartMs(containing: dec1 - 1) == Int64(Day(year: 2026, month: 11, day: 1).unixTime) * 1_000)
        let dec31 = Int64(Day(year: 2026, month: 12, day: 31).unixTime) * 1_000
        #expect(UTCMonth.nextMonthStartMs(after: dec31) == Int64(Day(year: 2027, month: 1, day: 1).unixTime) * 1_000)
        #expect(UTCMonth.day(ms: Int64(Day(year: 2028, month: 2, day: 29).unixTime) * 1_000 + 1) == Day(year: 2028, month: 2, day: 29))
        #expect(UTCMonth.day(ms: 0) == Day(year: 1970, month: 1, day: 1))
        #expect(UTCMonth.day(ms: -1) == Day(year: 1969, month: 12, day: 31))
        // Month keys and day strings are zero-padded (written without String(format:)).
        #expect(UTCMonth.monthKey(ms: nov30) == "2026-11")
        #expect(UTCMonth.monthKey(ms: Int64(Day(year: 812, month: 3, day: 4).unixTime) * 1_000) == "0812-03")
        #expect(UTCMonth.dayString(ms: dec1) == "2026-12-01")
        #expect(Day(year: 7, month: 1, day: 9).description == "0007-01-09")
        #expect(Day.padded(-5, 4) == "-005")
        #expect(UTCMonth.monthKey(ms: nov30) == "2026-11")
        // every day from 1970 to 2100 round-trips
        for days in stride(from: 0, to: 47_482, by: 1) {
            let d = UTCMonth.day(ms: Int64(days) * 86_400_000)
            if d.daysSinceEpoch != days { Issue.record("day \(days) → \(d)"); break }
        }
    }
}
