import Foundation
import Synchronization

/// The platform's one source of time. Every time the platform records or decides on (request
/// rows, audit entries, breakers, queue deadlines, rate windows, key rotation, retention,
/// lifecycle days) comes from the clock the composition root injects: ``SystemClock`` in
/// production, ``ManualClock`` in tests, which then step through a cooldown or a deadline
/// without sleeping and do not depend on how busy the machine is.
public protocol PlatformClock: Sendable {
    /// Milliseconds since 1970-01-01 UTC.
    func now() -> Int64
    /// Returns once `now() >= deadlineMs` (at once when it already is). Throws
    /// `CancellationError` when the waiting task is cancelled.
    func sleep(untilMs deadlineMs: Int64) async throws
}

/// The wall clock.
public struct SystemClock: PlatformClock {
    public init() {}

    public func now() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }

    public func sleep(untilMs deadlineMs: Int64) async throws {
        let remaining = deadlineMs - now()
        if remaining > 0 { try await Task.sleep(for: .milliseconds(remaining)) }
    }
}

/// A clock that moves only when told (tests). Sleepers wake when ``advance(byMs:)`` or
/// ``set(_:)`` reaches their deadline; ``sleepers`` lets a test wait until someone is waiting.
public final class ManualClock: PlatformClock {
    private struct Sleeper {
        let id: UInt64
        let deadline: Int64
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Int64
        var nextID: UInt64 = 0
        var sleepers: [Sleeper] = []
    }

    private let state: Mutex<State>

    public init(nowMs: Int64 = 1_764_000_000_000) { state = Mutex(State(now: nowMs)) }

    public func now() -> Int64 { state.withLock { $0.now } }

    /// How many tasks are sleeping on this clock.
    public var sleepers: Int { state.withLock { $0.sleepers.count } }

    public func advance(byMs ms: Int64) { set(now() + ms) }

    public func set(_ nowMs: Int64) {
        let due = state.withLock { s -> [Sleeper] in
            s.now = nowMs
            let due = s.sleepers.filter { $0.deadline <= nowMs }
            s.sleepers.removeAll { $0.deadline <= nowMs }
            return due
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    public func sleep(untilMs deadlineMs: Int64) async throws {
        let id = state.withLock { s -> UInt64 in s.nextID += 1; return s.nextID }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let now = state.withLock { s -> Bool in
                    if s.now >= deadlineMs || Task.isCancelled { return true }
                    s.sleepers.append(Sleeper(id: id, deadline: deadlineMs, continuation: c))
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            let cancelled = state.withLock { s -> Sleeper? in
                guard let i = s.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return s.sleepers.remove(at: i)
            }
            cancelled?.continuation.resume(throwing: CancellationError())
        }
        try Task.checkCancellation()
    }
}
