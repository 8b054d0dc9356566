import Synchronization

/// Slows down guessing: after `limit` failed authentications from one client address within
/// `windowMs`, that address gets 429 until the window has passed. Other clients are unaffected.
public final class AuthThrottle: Sendable {
    let limit: Int
    let windowMs: Int64
    private let failures = Mutex<[String: [Int64]]>([:])
    static let maxAddresses = 100_000

    public init(limit: Int = 10, windowMs: Int64 = 60_000) {
        self.limit = limit
        self.windowMs = windowMs
    }

    /// Seconds to wait when the address is blocked, else nil.
    public func retryAfter(_ ip: String, now: Int64) -> Int? {
        failures.withLock { f in
            guard let times = f[ip]?.filter({ now - $0 < windowMs }), times.count >= limit else { return nil }
            return Int((times[times.count - limit] + windowMs - now + 999) / 1000)
        }
    }

    public func recordFailure(_ ip: String, now: Int64) {
        failures.withLock { f in
            if f.count >= Self.maxAddresses { f = f.filter { $0.value.contains { now - $0 < windowMs } } }
            var times = (f[ip] ?? []).filter { now - $0 < windowMs }
            times.append(now)
            f[ip] = Array(times.suffix(limit))
        }
    }
}
