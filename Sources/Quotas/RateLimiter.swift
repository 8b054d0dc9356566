import Foundation
import Synchronization

/// Which limit refused a request.
public enum LimitKind: String, Sendable, Hashable, CaseIterable {
    case requestsPerMinute = "requests_per_minute"
    case outputTokensPerHour = "output_tokens_per_hour"
    case outputTokensPerDay = "output_tokens_per_day"
    case concurrentRequests = "concurrent_requests"

    var phrase: String {
        switch self {
        case .requestsPerMinute: return "requests per minute"
        case .outputTokensPerHour: return "output tokens per hour"
        case .outputTokensPerDay: return "output tokens per day"
        case .concurrentRequests: return "concurrent requests"
        }
    }
}

/// Capacity held by one admitted request until `settle` or `release`.
public struct Reservation: Sendable, Hashable {
    public let id: UInt64
    /// The subjects charged (e.g. the tenant and the key), all-or-nothing.
    public let subjects: [String]
    /// Output tokens reserved in the hour and day windows.
    public let reservedOutput: Int
    /// Per subject, the (monotonic) instant of admission, which fixes the buckets charged.
    let admittedAtMs: [Int64]
    /// A batch line's reservation (``RateLimiter/admitBatch(_:expectedOutput:now:)``): charged to
    /// the day window only.
    public var batch: Bool = false
}

/// Why a request was not admitted; enough for a 429 with `Retry-After` and `X-RateLimit-*`.
public struct Refusal: Error, Sendable, Hashable {
    public var subject: String
    public var limit: LimitKind
    /// The configured limit (`X-RateLimit-Limit-*`).
    public var limitValue: Int
    /// What is left in the window now (`X-RateLimit-Remaining-*`).
    public var remaining: Int
    /// Until the window is back to its initial state (`X-RateLimit-Reset-*`).
    public var resetAfterMs: Int64
    /// Until this request would fit, to the millisecond.
    public var retryAfterMs: Int64
    /// `Retry-After` in whole seconds, rounded up, at least 1.
    public var retryAfterSeconds: Int { Int(max(1, (retryAfterMs + 999) / 1000)) }
    /// False when the request alone exceeds the limit (e.g. `max_tokens` above the hourly
    /// limit): waiting will not help, a lower `max_tokens` will.
    public var satisfiable: Bool

    /// SPEC S4's message, then what was exceeded and when to retry.
    public var message: String {
        let base = "Rate limit exceeded. Please upgrade your tier or try again later."
        if !satisfiable {
            return base + " This request alone asks for more than the limit of \(limitValue) \(limit.phrase); lower max_tokens."
        }
        return base + " Limit: \(limitValue) \(limit.phrase); retry after \(retryAfterSeconds) s."
    }
}

/// Counts requests per minute, output tokens per hour and per day, and concurrent requests,
/// per subject (a tenant, a key: any string), in memory, thread-safe.
///
/// **Windows**: sliding windows made of buckets (minute: 1 s buckets; hour: 1 min buckets;
/// day: 5 min buckets). A window of n buckets counts the current bucket and the n before it,
/// so usage leaves the window between W and W + one bucket after it happened. The guarantee is
/// exact and conservative: *no interval of length W ever holds more than the limit* (fixed
/// windows let 2× through across a boundary), at the price of waiting up to one bucket longer.
///
/// **Reservation**: `admit` charges 1 request and the expected output (max_tokens or a model
/// default) in every window of every subject at once, or nothing; `settle` replaces the
/// reserved output by the real count in the buckets charged at admission (an overrun whose
/// bucket has left the window is charged to the current bucket) and frees the concurrency slot;
/// `release` returns the reserved output (failure before any output). Settling or releasing a
/// reservation twice does nothing: every token is counted once.
///
/// The clock is injected (Unix ms); a clock going backwards is treated as standing still.
public final class RateLimiter: Sendable {
    static let minuteSpec = WindowSpec(lengthMs: 60_000, bucketMs: 1_000)
    static let hourSpec = WindowSpec(lengthMs: 3_600_000, bucketMs: 60_000)
    static let daySpec = WindowSpec(lengthMs: 86_400_000, bucketMs: 300_000)

    private let clock: @Sendable () -> Int64
    private let state = Mutex(State())

    struct State {
        var subjects: [String: SubjectState] = [:]
        var open: Set<UInt64> = []
        var nextID: UInt64 = 1
    }

    /// A subject's windows, held by reference in ``State/subjects`` and only touched under the
    /// limiter's lock: changed in place through the dictionary's subscript, a value type took a
    /// heap-allocated accessor frame per access — six allocations per request (issue 16).
    final class SubjectState {
        var minute = Window(RateLimiter.minuteSpec)
        var hour = Window(RateLimiter.hourSpec)
        var day = Window(RateLimiter.daySpec)
        var concurrent = 0
        var lastNowMs = Int64.min

        /// Moves every window to `now` (never backwards) and returns the instant used.
        func advance(_ now: Int64) -> Int64 {
            lastNowMs = max(lastNowMs, now)
            minute.advance(to: lastNowMs); hour.advance(to: lastNowMs); day.advance(to: lastNowMs)
            return lastNowMs
        }

        var idle: Bool { concurrent == 0 && minute.total == 0 && hour.total == 0 && day.total == 0 }

        /// Charges one admitted request at `t` (an instant ``advance(_:)`` returned).
        func admit(_ expected: Int64, at t: Int64) {
            _ = advance(t)
            minute.add(1, at: t)
            hour.add(expected, at: t)
            day.add(expected, at: t)
            concurrent += 1
        }

        /// Charges one admitted batch line at `t`: the day window only.
        func admitBatch(_ expected: Int64, at t: Int64) {
            _ = advance(t)
            day.add(expected, at: t)
        }

        /// Settles or releases one reservation charged at `chargedAt`.
        func finish(_ delta: Int64, chargedAt: Int64, batch: Bool, refundRequest: Bool, now: Int64) {
            let t = advance(now)
            if batch {  // day window only (admitBatch)
                day.adjust(delta, chargedAt: chargedAt, now: t)
                return
            }
            hour.adjust(delta, chargedAt: chargedAt, now: t)
            day.adjust(delta, chargedAt: chargedAt, now: t)
            if refundRequest { minute.adjust(-1, chargedAt: chargedAt, now: t) }
            concurrent = max(0, concurrent - 1)
        }
    }

    /// A subject's state advanced to `now`: the stored one when it is known, else a fresh one, not
    /// stored. Returns the instant used and the state (read it under the lock only).
    private static func advanced(_ subjects: [String: SubjectState], _ subject: String, _ now: Int64) -> (Int64, SubjectState) {
        let s = subjects[subject] ?? SubjectState()
        return (s.advance(now), s)
    }

    /// The stored state of `subject`, stored fresh when it is not known.
    private static func stored(_ subjects: inout [String: SubjectState], _ subject: String) -> SubjectState {
        if let s = subjects[subject] { return s }
        let s = SubjectState()
        subjects[subject] = s
        return s
    }

    /// - Parameter now: Unix milliseconds, the platform's clock (a domain module never reads one).
    public init(now: @escaping @Sendable () -> Int64) {
        self.clock = now
    }

    // MARK: admission

    /// Admits one request for `subject` if every limit has room, reserving 1 request,
    /// `expectedOutput` tokens in the hour and day windows, and a concurrency slot.
    public func admit(subject: String, limits: Limits, expectedOutput: Int, now: Int64? = nil) -> Result<Reservation, Refusal> {
        admit([(subject, limits)], expectedOutput: expectedOutput, now: now)
    }

    /// As `admit(subject:…)` for several subjects at once (e.g. the tenant's tier limits and a
    /// key's overrides): all are charged or none. When several limits refuse, the refusal is the
    /// one with the longest wait (the request fits only once all have room).
    public func admit(_ subjects: [(subject: String, limits: Limits)], expectedOutput: Int, now: Int64? = nil) -> Result<Reservation, Refusal> {
        let now = now ?? clock()
        let expected = Int64(max(0, expectedOutput))
        return state.withLock { st in
            var worst: Refusal?
            var times: [Int64] = []
            times.reserveCapacity(subjects.count)
            for (subject, limits) in subjects {
                let (t, s) = Self.advanced(st.subjects, subject, now)
                times.append(t)
                for r in Self.refusals(s, subject: subject, limits: limits, expected: expected, now: t) {
                    guard let w = worst else { worst = r; continue }
                    if !r.satisfiable && w.satisfiable || r.satisfiable == w.satisfiable && r.retryAfterMs > w.retryAfterMs {
                        worst = r
                    }
                }
            }
            if let worst { return .failure(worst) }
            for (i, (subject, _)) in subjects.enumerated() {
                Self.stored(&st.subjects, subject).admit(expected, at: times[i])
            }
            let id = st.nextID
            st.nextID += 1
            st.open.insert(id)
            return .success(Reservation(id: id, subjects: subjects.map(\.subject),
                                        reservedOutput: Int(expected), admittedAtMs: times))
        }
    }

    /// Admission of a batch line (issue 17): batch work counts in the daily output budget only —
    /// not in requests per minute, output per hour or concurrent requests, which stay for the
    /// tenant's interactive traffic (the batch worker has its own concurrency). Reserves
    /// `expectedOutput` in the day window of every subject, or nothing.
    public func admitBatch(_ subjects: [(subject: String, limits: Limits)], expectedOutput: Int, now: Int64? = nil) -> Result<Reservation, Refusal> {
        let now = now ?? clock()
        let expected = Int64(max(0, expectedOutput))
        return state.withLock { st in
            var worst: Refusal?
            var times: [Int64] = []
            times.reserveCapacity(subjects.count)
            for (subject, limits) in subjects {
                let (t, s) = Self.advanced(st.subjects, subject, now)
                times.append(t)
                let limit = Int64(limits.outputTokensPerDay)
                if s.day.total + expected > limit {
                    let retry = s.day.retryAfterMs(need: expected, limit: limit, now: t)
                    let r = Refusal(subject: subject, limit: .outputTokensPerDay, limitValue: limits.outputTokensPerDay,
                                    remaining: Int(max(0, limit - s.day.total)), resetAfterMs: s.day.resetAfterMs(now: t),
                                    retryAfterMs: retry ?? s.day.resetAfterMs(now: t), satisfiable: retry != nil)
                    if worst == nil || !r.satisfiable || r.retryAfterMs > worst!.retryAfterMs { worst = r }
                }
            }
            if let worst { return .failure(worst) }
            for (i, (subject, _)) in subjects.enumerated() {
                Self.stored(&st.subjects, subject).admitBatch(expected, at: times[i])
            }
            let id = st.nextID
            st.nextID += 1
            st.open.insert(id)
            return .success(Reservation(id: id, subjects: subjects.map(\.subject), reservedOutput: Int(expected),
                                        admittedAtMs: times, batch: true))
        }
    }

    private static func refusals(_ s: SubjectState, subject: String, limits: Limits, expected: Int64, now: Int64) -> [Refusal] {
        var out: [Refusal] = []
        if s.concurrent >= limits.concurrentRequests {
            out.append(Refusal(subject: subject, limit: .concurrentRequests, limitValue: limits.concurrentRequests,
                               remaining: 0, resetAfterMs: 1_000, retryAfterMs: 1_000,
                               satisfiable: limits.concurrentRequests > 0))
        }
        let checks: [(LimitKind, Window, Int, Int64)] = [
            (.requestsPerMinute, s.minute, limits.requestsPerMinute, 1),
            (.outputTokensPerHour, s.hour, limits.outputTokensPerHour, expected),
            (.outputTokensPerDay, s.day, limits.outputTokensPerDay, expected),
        ]
        for (kind, w, limit, need) in checks where w.total + need > Int64(limit) {
            let retry = w.retryAfterMs(need: need, limit: Int64(limit), now: now)
            out.append(Refusal(subject: subject, limit: kind, limitValue: limit,
                               remaining: Int(max(0, Int64(limit) - w.total)),
                               resetAfterMs: w.resetAfterMs(now: now),
                               retryAfterMs: retry ?? w.resetAfterMs(now: now), satisfiable: retry != nil))
        }
        return out
    }

    // MARK: settlement

    /// Replaces the reserved output by `actualOutput` and frees the concurrency slot.
    /// Returns false (and does nothing) when the reservation was already settled or released.
    @discardableResult
    public func settle(_ reservation: Reservation, actualOutput: Int, now: Int64? = nil) -> Bool {
        finish(reservation, actual: Int64(max(0, actualOutput)), refundRequest: false, now: now ?? clock())
    }

    /// Returns the whole reservation (failure before any output) and frees the concurrency slot.
    /// The request itself stays counted in requests per minute unless `refundRequest`.
    @discardableResult
    public func release(_ reservation: Reservation, refundRequest: Bool = false, now: Int64? = nil) -> Bool {
        finish(reservation, actual: 0, refundRequest: refundRequest, now: now ?? clock())
    }

    private func finish(_ r: Reservation, actual: Int64, refundRequest: Bool, now: Int64) -> Bool {
        state.withLock { st in
            guard st.open.remove(r.id) != nil else { return false }
            let delta = actual - Int64(r.reservedOutput)
            for (i, subject) in r.subjects.enumerated() {
                Self.stored(&st.subjects, subject).finish(delta, chargedAt: r.admittedAtMs[i], batch: r.batch,
                                                          refundRequest: refundRequest, now: now)
            }
            return true
        }
    }

    // MARK: status and headers

    public struct WindowStatus: Sendable, Hashable {
        public var limit: Int
        public var used: Int
        public var remaining: Int
        /// Until the window is back to its initial state.
        public var resetAfterMs: Int64
    }

    public struct Status: Sendable, Hashable {
        public var requestsPerMinute: WindowStatus
        public var outputTokensPerHour: WindowStatus
        public var outputTokensPerDay: WindowStatus
        public var concurrent: Int
        public var concurrentLimit: Int
        /// The token window with the least room (hour on a tie): what `-Tokens` headers show.
        public var tokens: WindowStatus {
            outputTokensPerDay.remaining < outputTokensPerHour.remaining ? outputTokensPerDay : outputTokensPerHour
        }
    }

    public func status(for subject: String, limits: Limits, now: Int64? = nil) -> Status {
        let now = now ?? clock()
        return state.withLock { st in
            let (t, s) = Self.advanced(st.subjects, subject, now)
            func w(_ w: Window, _ limit: Int) -> WindowStatus {
                WindowStatus(limit: limit, used: Int(w.total), remaining: Int(max(0, Int64(limit) - w.total)),
                             resetAfterMs: w.resetAfterMs(now: t))
            }
            return Status(requestsPerMinute: w(s.minute, limits.requestsPerMinute),
                          outputTokensPerHour: w(s.hour, limits.outputTokensPerHour),
                          outputTokensPerDay: w(s.day, limits.outputTokensPerDay),
                          concurrent: s.concurrent, concurrentLimit: limits.concurrentRequests)
        }
    }

    /// OpenAI-style headers: `X-RateLimit-{Limit,Remaining,Reset}-{Requests,Tokens}`. Tokens are
    /// output tokens of whichever window (hour or day) has the least room; resets read "1s", "6m0s".
    public func headers(for subject: String, limits: Limits, now: Int64? = nil) -> [(String, String)] {
        let s = status(for: subject, limits: limits, now: now)
        let t = s.tokens
        let n = Self.headerNames
        return [
            (n[0], String(s.requestsPerMinute.limit)),
            (n[1], String(s.requestsPerMinute.remaining)),
            (n[2], Self.formatDuration(ms: s.requestsPerMinute.resetAfterMs)),
            (n[3], String(t.limit)),
            (n[4], String(t.remaining)),
            (n[5], Self.formatDuration(ms: t.resetAfterMs)),
        ]
    }

    /// The names of ``headers(for:limits:now:)``, in its order.
    public static let headerNames = [
        "X-RateLimit-Limit-Requests", "X-RateLimit-Remaining-Requests", "X-RateLimit-Reset-Requests",
        "X-RateLimit-Limit-Tokens", "X-RateLimit-Remaining-Tokens", "X-RateLimit-Reset-Tokens",
    ]

    /// Go-style durations as OpenAI sends them: 0 → "0s", 250 → "250ms", 1000 → "1s",
    /// 360000 → "6m0s", 3723000 → "1h2m3s". At or above one second, whole seconds rounded up.
    public static func formatDuration(ms: Int64) -> String {
        if ms <= 0 { return "0s" }
        if ms < 1_000 { return "\(ms)ms" }
        let secs = (ms + 999) / 1_000
        let h = secs / 3_600, m = secs % 3_600 / 60, s = secs % 60
        if h > 0 { return "\(h)h\(m)m\(s)s" }
        if m > 0 { return "\(m)m\(s)s" }
        return "\(s)s"
    }

    /// Forgets subjects with nothing counted and nothing in flight (bounded memory).
    /// Returns how many were dropped.
    @discardableResult
    public func purgeIdle(now: Int64? = nil) -> Int {
        let now = now ?? clock()
        return state.withLock { st in
            var dropped = 0
            for (k, s) in st.subjects {
                _ = s.advance(now)
                if s.idle { st.subjects[k] = nil; dropped += 1 }
            }
            return dropped
        }
    }

    /// Subjects currently tracked.
    public var subjectCount: Int { state.withLock { $0.subjects.count } }
}

struct WindowSpec: Sendable {
    let lengthMs: Int64
    let bucketMs: Int64
    /// Buckets in the window besides the current one.
    var n: Int64 { lengthMs / bucketMs }
}

/// A ring of n + 1 buckets: the current one and the n before it.
struct Window: Sendable {
    let spec: WindowSpec
    private var counts: [Int64]
    /// The bucket the ring was last advanced to.
    private var current: Int64 = .min
    private(set) var total: Int64 = 0

    init(_ spec: WindowSpec) {
        self.spec = spec
        counts = Array(repeating: 0, count: Int(spec.n + 1))
    }

    func bucket(_ ms: Int64) -> Int64 {
        let q = ms / spec.bucketMs
        return ms % spec.bucketMs < 0 ? q - 1 : q
    }

    private func slot(_ b: Int64) -> Int {
        let m = spec.n + 1
        return Int(((b % m) + m) % m)
    }

    /// The instant usage of bucket `b` leaves the window.
    private func expiry(_ b: Int64) -> Int64 { (b + spec.n + 1) * spec.bucketMs }

    mutating func advance(to ms: Int64) {
        let cur = bucket(ms)
        if current == .min || cur - current > spec.n {
            if total != 0 { for i in counts.indices { counts[i] = 0 } }
            total = 0
            current = cur
            return
        }
        guard cur > current else { return }
        var b = current + 1
        while b <= cur {
            let i = slot(b)
            total -= counts[i]
            counts[i] = 0
            b += 1
        }
        current = cur
    }

    /// Adds to the current bucket (call `advance(to: ms)` first).
    mutating func add(_ amount: Int64, at ms: Int64) {
        counts[slot(bucket(ms))] += amount
        total += amount
    }

    /// Moves the amount charged at `chargedAt` by `delta`: in the original bucket while it is in
    /// the window; a positive overrun after it left goes to the current bucket; never below 0.
    mutating func adjust(_ delta: Int64, chargedAt: Int64, now: Int64) {
        guard delta != 0 else { return }
        let b = bucket(chargedAt)
        if b >= current - spec.n && b <= current {
            let i = slot(b)
            let d = max(delta, -counts[i])
            counts[i] += d
            total += d
        } else if delta > 0 {
            add(delta, at: now)
        }
    }

    /// Milliseconds until `need` more fits under `limit`; 0 if it fits now; nil if never.
    func retryAfterMs(need: Int64, limit: Int64, now: Int64) -> Int64? {
        if need > limit { return nil }
        let mustFree = total + need - limit
        if mustFree <= 0 { return 0 }
        var freed: Int64 = 0
        var b = current - spec.n
        while b <= current {
            freed += counts[slot(b)]
            if freed >= mustFree { return max(0, expiry(b) - now) }
            b += 1
        }
        return max(0, expiry(current) - now)
    }

    /// Milliseconds until everything counted has left the window (0 when empty).
    func resetAfterMs(now: Int64) -> Int64 {
        guard total > 0 else { return 0 }
        var b = current
        while b >= current - spec.n {
            if counts[slot(b)] != 0 { return max(0, expiry(b) - now) }
            b -= 1
        }
        return 0
    }
}
