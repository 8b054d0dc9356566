import Testing
@testable import Quotas

/// Batch lines (issue 17) count in the daily output budget only, never in the windows that pace
/// interactive traffic (requests per minute, output per hour, concurrency).
@Suite struct BatchAdmissionTests {
    static let limits = Limits(requestsPerMinute: 2, outputTokensPerHour: 100, outputTokensPerDay: 300, concurrentRequests: 1)

    @Test func batchChargesTheDayWindowOnly() throws {
        let t0: Int64 = 1_800_000_000_000
        let limiter = RateLimiter(now: { t0 })
        // Many batch lines at once: no per-minute or concurrency refusal, and the hour window is untouched.
        var held: [Reservation] = []
        for _ in 0..<5 {
            guard case .success(let r) = limiter.admitBatch([("t", Self.limits)], expectedOutput: 50, now: t0) else {
                Issue.record("a batch line within the day budget was refused"); return
            }
            #expect(r.batch)
            held.append(r)
        }
        var s = limiter.status(for: "t", limits: Self.limits, now: t0)
        #expect(s.requestsPerMinute.used == 0 && s.outputTokensPerHour.used == 0 && s.concurrent == 0)
        #expect(s.outputTokensPerDay.used == 250)
        // Interactive traffic still has its whole minute, hour and concurrency.
        guard case .success(let interactive) = limiter.admit(subject: "t", limits: Self.limits, expectedOutput: 40, now: t0) else {
            Issue.record("batch work took interactive capacity"); return
        }
        // The day budget is shared: the next batch line that does not fit waits.
        guard case .failure(let refusal) = limiter.admitBatch([("t", Self.limits)], expectedOutput: 50, now: t0) else {
            Issue.record("the day budget was exceeded"); return
        }
        #expect(refusal.limit == .outputTokensPerDay && refusal.satisfiable)
        // Settling a batch line replaces its reservation by the real count, in the day window only.
        #expect(limiter.settle(held[0], actualOutput: 10, now: t0))
        #expect(!limiter.settle(held[0], actualOutput: 10, now: t0), "settled once")
        s = limiter.status(for: "t", limits: Self.limits, now: t0)
        #expect(s.outputTokensPerDay.used == 250 - 40 + 40 && s.outputTokensPerHour.used == 40 && s.concurrent == 1)
        limiter.settle(interactive, actualOutput: 40, now: t0)
        #expect(limiter.status(for: "t", limits: Self.limits, now: t0).concurrent == 0)
    }

    @Test func aLineAboveTheWholeDayBudgetCannotWait() {
        let limiter = RateLimiter(now: { 0 })
        guard case .failure(let r) = limiter.admitBatch([("t", Self.limits)], expectedOutput: 301, now: 0) else {
            Issue.record("admitted above the day limit"); return
        }
        #expect(!r.satisfiable)
    }
}
