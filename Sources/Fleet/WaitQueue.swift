import Clocks
import Synchronization

/// Requests waiting for a free backend, served by tier priority rank (lowest first), then arrival.
final class WaitQueue: Sendable {
    struct Waiter {
        let id: UInt64
        let model: String
        let priority: Int
        let seq: UInt64
        let continuation: CheckedContinuation<Bool, Never>
    }

    private let waiting = Mutex<[Waiter]>([])
    private let counter = Atomic<UInt64>(0)
    /// Deadlines are on the platform's clock.
    let clock: any PlatformClock

    init(clock: any PlatformClock) { self.clock = clock }

    func nextSeq() -> UInt64 { counter.add(1, ordering: .relaxed).newValue }

    var count: Int { waiting.withLock { $0.count } }

    func depths() -> [String: Int] {
        waiting.withLock { list in list.reduce(into: [:]) { $0[$1.model, default: 0] += 1 } }
    }

    /// Whether a request of a better (lower) rank than `priority` is waiting.
    func hasWaiter(before priority: Int) -> Bool {
        waiting.withLock { $0.contains { $0.priority < priority } }
    }

    /// Waits until woken (true) or the deadline passes (false). `ready` is checked under the
    /// queue's lock after registering, so a wake-up that raced the registration is not lost.
    func wait(model: String, priority: Int, seq: UInt64, deadlineMs: Int64, ready: @escaping @Sendable () -> Bool) async -> Bool {
        let id = nextSeq()
        if clock.now() >= deadlineMs { return false }
        let timer = Task { [weak self, clock] in
            do { try await clock.sleep(untilMs: deadlineMs) } catch { return }  // cancelled: woken first
            self?.resume(id: id, with: false)
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                waiting.withLock { $0.append(Waiter(id: id, model: model, priority: priority, seq: seq, continuation: c)) }
                if ready() { resume(id: id, with: true) }
            }
        } onCancel: {
            self.resume(id: id, with: false)
        }
    }

    private func resume(id: UInt64, with value: Bool) {
        let w = waiting.withLock { list -> Waiter? in
            guard let i = list.firstIndex(where: { $0.id == id }) else { return nil }
            return list.remove(at: i)
        }
        w?.continuation.resume(returning: value)
    }

    /// Wakes the first waiter (by priority, then arrival) whose model `serves` accepts.
    func wakeOne(serves: (String) -> Bool) {
        let w = waiting.withLock { list -> Waiter? in
            var best: Int?
            for (i, w) in list.enumerated() where serves(w.model) {
                if let b = best, (list[b].priority, list[b].seq) <= (w.priority, w.seq) { continue }
                best = i
            }
            return best.map { list.remove(at: $0) }
        }
        w?.continuation.resume(returning: true)
    }

    func wakeAll() {
        let all = waiting.withLock { list -> [Waiter] in defer { list = [] }; return list }
        for w in all { w.continuation.resume(returning: true) }
    }
}
