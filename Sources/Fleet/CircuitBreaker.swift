/// A backend's circuit breaker: after `threshold` consecutive failures it opens (no traffic);
/// after `cooldownMs` it lets one trial through (half-open: a request or an active probe); a
/// success closes it, a failure opens it again.
public struct CircuitBreaker: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case closed(consecutiveFailures: Int)
        case open(sinceMs: Int64)
        case halfOpen(trialInFlight: Bool)
    }

    public private(set) var state: State = .closed(consecutiveFailures: 0)
    public let threshold: Int
    public let cooldownMs: Int64

    public init(threshold: Int = 3, cooldownMs: Int64 = 1000) {
        self.threshold = max(1, threshold)
        self.cooldownMs = max(0, cooldownMs)
    }

    /// Moves an open breaker whose cooldown is over to half-open.
    public mutating func tick(nowMs: Int64) {
        switch state {
        case .open(let since) where nowMs - since >= cooldownMs:
            state = .halfOpen(trialInFlight: false)
        case .open, .closed, .halfOpen:
            break
        }
    }

    public var isClosed: Bool { if case .closed = state { return true }; return false }

    /// Whether a request may be sent now (does not change the state).
    public func admits(nowMs: Int64) -> Bool {
        switch state {
        case .closed: return true
        case .open(let since): return nowMs - since >= cooldownMs
        case .halfOpen(let trial): return !trial
        }
    }

    /// A request is being sent: in half-open it is the one trial.
    public mutating func dispatched(nowMs: Int64) {
        tick(nowMs: nowMs)
        if case .halfOpen = state { state = .halfOpen(trialInFlight: true) }
    }

    public mutating func success() {
        switch state {
        case .closed, .halfOpen, .open:
            state = .closed(consecutiveFailures: 0)
        }
    }

    public mutating func failure(nowMs: Int64) {
        switch state {
        case .closed(let n):
            state = n + 1 >= threshold ? .open(sinceMs: nowMs) : .closed(consecutiveFailures: n + 1)
        case .halfOpen:
            state = .open(sinceMs: nowMs)
        case .open:
            state = .open(sinceMs: nowMs)
        }
    }

    /// Opens at once, whatever the count (the engine refused the connection: it is not there).
    public mutating func trip(nowMs: Int64) {
        state = .open(sinceMs: nowMs)
    }

    /// The label shown by `GET /admin/v1/backends`.
    public var label: String {
        switch state {
        case .closed(let n): return n == 0 ? "healthy" : "degraded"
        case .open: return "open"
        case .halfOpen: return "half_open"
        }
    }
}
