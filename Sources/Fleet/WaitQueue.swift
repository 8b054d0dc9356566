import Clocks
import Synchronization

/// Requests waiting for a free backend, served by tier priority rank (lowest first), then arrival.
///
/// One expiry task per queue sleeps until the earliest waiter's deadline and fails the waiters
/// whose deadline has passed, then sleeps until the next one (issue 16): a timer task and a clock
/// sleep per waiting request cost ≈ 28 µs of CPU per request when 24 of 32 concurrent requests
/// waited for an engine of capacity 8 (`bench/profile`), and every sleep was a Dispatch timer.
/// Deadlines mostly grow with arrival (now + the queue timeout), so the expiry task is re-armed
/// only when a waiter comes with an earlier deadline than the one it sleeps until.
final class WaitQueue: Sendable {
    struct Waiter {
        let id: UInt64
        let model: String
        let priority: Int
        let seq: UInt64
        let deadlineMs: Int64
        let continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var waiting: [Waiter] = []
        /// The deadline the expiry task sleeps until, and its generation (a re-armed task
        /// replaces the one before, which ends when it wakes); nil: no expiry task.
        var expiryAt: Int64?
        var expiryGeneration: UInt64 = 0
        var expiryTask: Task<Void, Never>?
    }

    private let state = Mutex(State())
    private let counter = Atomic<UInt64>(0)
    /// Deadlines are on the platform's clock.
    let clock: any PlatformClock

    init(clock: any PlatformClock) { self.clock = clock }

    func nextSeq() -> UInt64 { counter.add(1, ordering: .relaxed).newValue }

    var count: Int { state.withLock { $0.waiting.count } }

    func depths() -> [String: Int] {
        state.withLock { s in s.waiting.reduce(into: [:]) { $0[$1.model, default: 0] += 1 } }
    }

    /// Whether a request of a better (lower) rank than `priority` is waiting.
    func hasWaiter(before priority: Int) -> Bool {
        state.withLock { $0.waiting.contains { $0.priority < priority } }
    }

    /// Waits until woken (true) or the deadline passes (false). `ready` is checked under the
    /// queue's lock after registering, so a wake-up that raced the registration is not lost.
    func wait(model: String, priority: Int, seq: UInt64, deadlineMs: Int64, ready: @escaping @Sendable () -> Bool) async -> Bool {
        let id = nextSeq()
        if clock.now() >= deadlineMs { return false }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                let arm = state.withLock { s -> (UInt64, Task<Void, Never>?)? in
                    s.waiting.append(Waiter(id: id, model: model, priority: priority, seq: seq, deadlineMs: deadlineMs, continuation: c))
                    if let at = s.expiryAt, at <= deadlineMs { return nil }
                    s.expiryAt = deadlineMs
                    s.expiryGeneration &+= 1
                    let previous = s.expiryTask
                    s.expiryTask = nil
                    return (s.expiryGeneration, previous)
                }
                if let arm {
                    arm.1?.cancel()  // it slept until a later deadline
                    startExpiry(generation: arm.0, at: deadlineMs)
                }
                if ready() { resume(id: id, with: true) }
            }
        } onCancel: {
            self.resume(id: id, with: false)
        }
    }

    /// The expiry task of `generation`: sleeps until `at`, fails the waiters whose deadline has
    /// passed, and goes on with the earliest deadline left — or ends, when the queue is empty or a
    /// newer generation replaced it.
    private func startExpiry(generation: UInt64, at first: Int64) {
        let task = Task { [weak self, clock] in
            var at = first
            while true {
                do { try await clock.sleep(untilMs: at) } catch { return }  // replaced by an earlier deadline
                guard let self else { return }
                let now = clock.now()
                let (expired, next) = self.state.withLock { s -> ([Waiter], Int64?) in
                    guard s.expiryGeneration == generation else { return ([], nil) }
                    var expired: [Waiter] = []
                    s.waiting.removeAll { w in
                        if w.deadlineMs <= now { expired.append(w); return true }
                        return false
                    }
                    let next = s.waiting.lazy.map(\.deadlineMs).min()
                    s.expiryAt = next
                    if next == nil { s.expiryTask = nil }
                    return (expired, next)
                }
                for w in expired { w.continuation.resume(returning: false) }
                guard let next else { return }
                at = next
            }
        }
        state.withLock { s in
            // Kept only if no newer generation armed meanwhile (that one cancelled nothing: it
            // found no task to cancel) and this one is still due to run.
            if s.expiryGeneration == generation, s.expiryAt != nil { s.expiryTask = task } else { task.cancel() }
        }
    }

    private func resume(id: UInt64, with value: Bool) {
        let w = state.withLock { s -> Waiter? in
            guard let i = s.waiting.firstIndex(where: { $0.id == id }) else { return nil }
            return s.waiting.remove(at: i)
        }
        w?.continuation.resume(returning: value)
    }

    /// Wakes the first waiter (by priority, then arrival) whose model `serves` accepts.
    func wakeOne(serves: (String) -> Bool) {
        let w = state.withLock { s -> Waiter? in
            var best: Int?
            for (i, w) in s.waiting.enumerated() where serves(w.model) {
                if let b = best, (s.waiting[b].priority, s.waiting[b].seq) <= (w.priority, w.seq) { continue }
                best = i
            }
            return best.map { s.waiting.remove(at: $0) }
        }
        w?.continuation.resume(returning: true)
    }

    func wakeAll() {
        let all = state.withLock { s -> [Waiter] in defer { s.waiting = [] }; return s.waiting }
        for w in all { w.continuation.resume(returning: true) }
    }
}
