import Synchronization
import Testing
@testable import Quotas

final class TestClock: Sendable {
    let ms: Mutex<Int64>
    init(_ start: Int64) { ms = Mutex(start) }
    func advance(_ d: Int64) { ms.withLock { $0 += d } }
    var now: Int64 { ms.withLock { $0 } }
}

let wide = Limits(requestsPerMinute: 1_000_000, outputTokensPerHour: 1_000_000_000,
                  outputTokensPerDay: 1_000_000_000, concurrentRequests: 1_000_000)

func limits(rpm: Int = 1_000_000, hour: Int = 1_000_000_000, day: Int = 1_000_000_000, concurrent: Int = 1_000_000) -> Limits {
    Limits(requestsPerMinute: rpm, outputTokensPerHour: hour, outputTokensPerDay: day, concurrentRequests: concurrent)
}

@Suite("rate limiter")
struct RateLimiterTests {
    let t0: Int64 = 1_764_000_000_000  // a whole second, minute and 5 minutes

    /// A limiter whose clock stands at `t0` (the tests pass their times explicitly).
    func fixedLimiter() -> RateLimiter {
        let t = t0
        return RateLimiter(now: { t })
    }

    func admitMany(_ limiter: RateLimiter, _ l: Limits, expected: Int = 0, count: Int = 200) async -> [Reservation] {
        await withTaskGroup(of: Reservation?.self) { group in
            for _ in 0..<count {
                group.addTask { try? limiter.admit(subject: "t", limits: l, expectedOutput: expected, now: t0).get() }
            }
            var out: [Reservation] = []
            for await r in group { if let r { out.append(r) } }
            return out
        }
    }

    @Test func concurrentAdmitsAdmitExactlyTheLimit() async {
        for n in [1, 37, 150] {
            #expect(await admitMany(fixedLimiter(), limits(rpm: n)).count == n)
            #expect(await admitMany(fixedLimiter(), limits(hour: n * 1_000), expected: 1_000).count == n)
            #expect(await admitMany(fixedLimiter(), limits(day: n * 10), expected: 10).count == n)
            #expect(await admitMany(fixedLimiter(), limits(concurrent: n)).count == n)
        }
        let ids = await admitMany(fixedLimiter(), wide).map(\.id)
        #expect(Set(ids).count == 200)
    }

    @Test func requestWindowRefillsOnTheInjectedClock() throws {
        let clock = TestClock(t0 + 500)
        let limiter = RateLimiter(now: { clock.now })
        let l = limits(rpm: 2)
        _ = try limiter.admit(subject: "k", limits: l, expectedOutput: 0).get()
        clock.advance(10_000)
        _ = try limiter.admit(subject: "k", limits: l, expectedOutput: 0).get()
        guard case .failure(let r) = limiter.admit(subject: "k", limits: l, expectedOutput: 0) else {
            Issue.record("third request admitted"); return
        }
        #expect(r.limit == .requestsPerMinute && r.limitValue == 2 && r.remaining == 0 && r.satisfiable)
        // the first request (bucket t0) leaves the 60 s window + its 1 s bucket at t0 + 61 s
        #expect(r.retryAfterMs == 61_000 - 10_500)
        #expect(r.retryAfterSeconds == 51)
        #expect(r.resetAfterMs == 71_000 - 10_500)
        clock.advance(r.retryAfterMs - 1)
        #expect(throws: Refusal.self) { try limiter.admit(subject: "k", limits: l, expectedOutput: 0).get() }
        clock.advance(1)
        #expect(throws: Never.self) { try limiter.admit(subject: "k", limits: l, expectedOutput: 0).get() }
        // other subjects are independent
        #expect(throws: Never.self) { try limiter.admit(subject: "other", limits: l, expectedOutput: 0).get() }
    }

    @Test func tokenWindowsRefillAndRetryAfterIsExact() throws {
        let clock = TestClock(t0)
        let limiter = RateLimiter(now: { clock.now })
        let l = limits(hour: 1_000, day: 1_500)
        let a = try limiter.admit(subject: "k", limits: l, expectedOutput: 600).get()
        limiter.settle(a, actualOutput: 600)
        clock.advance(30 * 60_000)
        let b = try limiter.admit(subject: "k", limits: l, expectedOutput: 300).get()
        limiter.settle(b, actualOutput: 300)
        // 900 used: 200 more does not fit until the first 600 leave (t0 + 61 min)
        guard case .failure(let r) = limiter.admit(subject: "k", limits: l, expectedOutput: 200) else {
            Issue.record("admitted over the hourly limit"); return
        }
        #expect(r.limit == .outputTokensPerHour && r.remaining == 100)
        #expect(r.retryAfterMs == 31 * 60_000)
        #expect(r.retryAfterSeconds == 1_860)
        clock.advance(r.retryAfterMs)
        let c = try limiter.admit(subject: "k", limits: l, expectedOutput: 200).get()
        limiter.settle(c, actualOutput: 200)
        // the day window (1500) now holds 1100; 500 more waits for the day window
        clock.advance(2 * 3_600_000)
        guard case .failure(let d) = limiter.admit(subject: "k", limits: l, expectedOutput: 500) else {
            Issue.record("admitted over the daily limit"); return
        }
        #expect(d.limit == .outputTokensPerDay && d.remaining == 400)
        // the first 600 (bucket t0) leave the day window at t0 + 24 h + 5 min
        #expect(d.retryAfterMs == 86_400_000 + 300_000 - (61 * 60_000 + 2 * 3_600_000))
    }

    @Test func settlementFreesTheUnusedReservation() throws {
        let limiter = RateLimiter(now: { 0 })
        let l = limits(hour: 1_000, concurrent: 1)
        let a = try limiter.admit(subject: "k", limits: l, expectedOutput: 1_000, now: t0).get()
        #expect(limiter.status(for: "k", limits: l, now: t0).outputTokensPerHour.remaining == 0)
        guard case .failure(let busy) = limiter.admit(subject: "k", limits: limits(concurrent: 1), expectedOutput: 0, now: t0) else {
            Issue.record("second concurrent request admitted"); return
        }
        #expect(busy.limit == .concurrentRequests && busy.retryAfterSeconds == 1)
        #expect(limiter.settle(a, actualOutput: 120, now: t0 + 5_000))
        #expect(!limiter.settle(a, actualOutput: 999, now: t0 + 5_000))  // once only
        let s = limiter.status(for: "k", limits: l, now: t0 + 5_000)
        #expect(s.outputTokensPerHour.used == 120 && s.outputTokensPerDay.used == 120 && s.concurrent == 0)
        let b = try limiter.admit(subject: "k", limits: l, expectedOutput: 880, now: t0 + 6_000).get()
        // release: a failure before any output returns every reserved token
        #expect(limiter.release(b, now: t0 + 7_000))
        #expect(!limiter.release(b, now: t0 + 7_000))
        let s2 = limiter.status(for: "k", limits: l, now: t0 + 7_000)
        #expect(s2.outputTokensPerHour.used == 120 && s2.requestsPerMinute.used == 2)
    }

    @Test func overrunIsChargedAndAnExpiredBucketOverrunGoesToNow() throws {
        let limiter = fixedLimiter()
        let l = limits(hour: 1_000)
        let a = try limiter.admit(subject: "k", limits: l, expectedOutput: 100, now: t0).get()
        limiter.settle(a, actualOutput: 400, now: t0 + 1_000)
        #expect(limiter.status(for: "k", limits: l, now: t0 + 1_000).outputTokensPerHour.used == 400)
        let b = try limiter.admit(subject: "k", limits: l, expectedOutput: 100, now: t0 + 2_000).get()
        limiter.settle(b, actualOutput: 300, now: t0 + 2 * 3_600_000)  // a two-hour stream
        let s = limiter.status(for: "k", limits: l, now: t0 + 2 * 3_600_000)
        #expect(s.outputTokensPerHour.used == 200)  // the overrun beyond the expired reservation
    }

    @Test func severalSubjectsAllOrNothing() throws {
        let limiter = fixedLimiter()
        let tenant = limits(hour: 10_000), key = limits(hour: 500)
        let r = try limiter.admit([("tenant", tenant), ("key", key)], expectedOutput: 400, now: t0).get()
        #expect(r.subjects == ["tenant", "key"])
        guard case .failure(let refusal) = limiter.admit([("tenant", tenant), ("key", key)], expectedOutput: 400, now: t0) else {
            Issue.record("key limit ignored"); return
        }
        #expect(refusal.subject == "key" && refusal.limit == .outputTokensPerHour)
        #expect(limiter.status(for: "tenant", limits: tenant, now: t0).outputTokensPerHour.used == 400)  // not charged
        limiter.settle(r, actualOutput: 50, now: t0)
        #expect(limiter.status(for: "tenant", limits: tenant, now: t0).outputTokensPerHour.used == 50)
        #expect(limiter.status(for: "key", limits: key, now: t0).outputTokensPerHour.used == 50)
    }

    @Test func refusalWithTheLongestWaitAndUnsatisfiableRequests() throws {
        let limiter = fixedLimiter()
        let l = limits(rpm: 1, hour: 100)
        _ = try limiter.admit(subject: "k", limits: l, expectedOutput: 100, now: t0).get()
        guard case .failure(let r) = limiter.admit(subject: "k", limits: l, expectedOutput: 10, now: t0) else {
            Issue.record("admitted"); return
        }
        #expect(r.limit == .outputTokensPerHour)  // 61 min beats 61 s
        #expect(r.message.hasPrefix("Rate limit exceeded. Please upgrade your tier or try again later."))
        guard case .failure(let big) = fixedLimiter().admit(subject: "k", limits: l, expectedOutput: 101, now: t0) else {
            Issue.record("admitted more than the limit"); return
        }
        #expect(!big.satisfiable && big.limit == .outputTokensPerHour)
        #expect(big.message.contains("lower max_tokens"))
    }

    /// Property: with random traffic, no interval of one hour ever holds more than the limit
    /// (what fixed windows fail at their boundary).
    @Test func noRollingHourEverExceedsTheLimit() throws {
        var rng = SystemRandomNumberGenerator()
        let limiter = fixedLimiter()
        let l = limits(hour: 5_000)
        var t = t0
        var events: [(Int64, Int)] = []
        for _ in 0..<5_000 {
            t += Int64.random(in: 0...90_000, using: &rng)
            let want = Int.random(in: 1...800, using: &rng)
            if case .success(let r) = limiter.admit(subject: "k", limits: l, expectedOutput: want, now: t) {
                let actual = Int.random(in: 0...want, using: &rng)
                limiter.settle(r, actualOutput: actual, now: t)
                events.append((t, actual))
            }
        }
        var lo = 0, inWindow = 0
        for (time, n) in events {
            inWindow += n
            while events[lo].0 <= time - 3_600_000 { inWindow -= events[lo].1; lo += 1 }
            #expect(inWindow <= 5_000)
        }
        #expect(events.count > 100)
    }

    @Test func clockGoingBackwardsStandsStill() throws {
        let limiter = fixedLimiter()
        let l = limits(rpm: 1)
        _ = try limiter.admit(subject: "k", limits: l, expectedOutput: 0, now: t0 + 120_000).get()
        #expect(throws: Refusal.self) { try limiter.admit(subject: "k", limits: l, expectedOutput: 0, now: t0).get() }
    }

    @Test func headers() throws {
        let limiter = fixedLimiter()
        let l = limits(rpm: 600, hour: 150_000, day: 3_600_000)
        let fresh = Dictionary(uniqueKeysWithValues: limiter.headers(for: "k", limits: l, now: t0))
        #expect(fresh == [
            "X-RateLimit-Limit-Requests": "600", "X-RateLimit-Remaining-Requests": "600", "X-RateLimit-Reset-Requests": "0s",
            "X-RateLimit-Limit-Tokens": "150000", "X-RateLimit-Remaining-Tokens": "150000", "X-RateLimit-Reset-Tokens": "0s",
        ])
        let r = try limiter.admit(subject: "k", limits: l, expectedOutput: 1_000, now: t0).get()
        limiter.settle(r, actualOutput: 400, now: t0)
        let h = limiter.headers(for: "k", limits: l, now: t0 + 1_000)
        #expect(h.map(\.0) == ["X-RateLimit-Limit-Requests", "X-RateLimit-Remaining-Requests", "X-RateLimit-Reset-Requests",
                               "X-RateLimit-Limit-Tokens", "X-RateLimit-Remaining-Tokens", "X-RateLimit-Reset-Tokens"])
        let d = Dictionary(uniqueKeysWithValues: h)
        #expect(d["X-RateLimit-Remaining-Requests"] == "599")
        #expect(d["X-RateLimit-Reset-Requests"] == "1m0s")     // 61 s − 1 s
        #expect(d["X-RateLimit-Remaining-Tokens"] == "149600")
        #expect(d["X-RateLimit-Reset-Tokens"] == "1h0m59s")    // 61 min − 1 s
        // the day window shows once it has less room than the hour
        let tight = limits(rpm: 600, hour: 150_000, day: 1_000)
        let dd = Dictionary(uniqueKeysWithValues: limiter.headers(for: "k", limits: tight, now: t0 + 1_000))
        #expect(dd["X-RateLimit-Limit-Tokens"] == "1000" && dd["X-RateLimit-Remaining-Tokens"] == "600")
        #expect(dd["X-RateLimit-Reset-Tokens"] == "24h4m59s")
    }

    @Test func durationFormat() {
        #expect(RateLimiter.formatDuration(ms: 0) == "0s")
        #expect(RateLimiter.formatDuration(ms: 20) == "20ms")
        #expect(RateLimiter.formatDuration(ms: 1_000) == "1s")
        #expect(RateLimiter.formatDuration(ms: 1_001) == "2s")
        #expect(RateLimiter.formatDuration(ms: 360_000) == "6m0s")
        #expect(RateLimiter.formatDuration(ms: 3_723_000) == "1h2m3s")
    }

    @Test func idleSubjectsArePurged() throws {
        let limiter = fixedLimiter()
        let r = try limiter.admit(subject: "k", limits: wide, expectedOutput: 10, now: t0).get()
        #expect(limiter.purgeIdle(now: t0 + 3 * 86_400_000) == 0)  // in flight
        limiter.settle(r, actualOutput: 10, now: t0 + 3 * 86_400_000)
        #expect(limiter.purgeIdle(now: t0 + 3 * 86_400_000) == 1)
        #expect(limiter.subjectCount == 0)
    }
}

@Suite("hot path")
struct HotPathTests {
    /// Prints the cost of admit + settle (debug build: an upper bound of the release cost).
    @Test func admitAndSettleCost() throws {
        let limiter = RateLimiter(now: { 1_764_000_000_000 })
        let l = Tier.tier1.limits.overridden(by: LimitOverrides(requestsPerMinute: .max, outputTokensPerHour: .max, outputTokensPerDay: .max))
        let n = 100_000
        let start = ContinuousClock.now
        var t: Int64 = 1_764_000_000_000
        for i in 0..<n {
            t += 7
            let r = try limiter.admit(subject: "tenant-\(i % 64)", limits: l, expectedOutput: 256, now: t).get()
            limiter.settle(r, actualOutput: 100, now: t)
        }
        let elapsed = ContinuousClock.now - start
        let ns = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        print("admit+settle: \(Int(ns / Double(n))) ns per request (64 subjects, single thread)")
    }
}
