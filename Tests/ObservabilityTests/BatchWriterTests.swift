import Logging
import Synchronization
import Testing
@testable import Observability

/// A write function that fails a given number of times, then records what it writes.
final class FlakyStore: Sendable {
    let failuresLeft: Mutex<Int>
    let rows = Mutex<[Int]>([])
    let batches = Mutex(0)
    init(failures: Int) { failuresLeft = Mutex(failures) }

    func write(_ batch: [Int]) throws {
        struct Down: Error {}
        if failuresLeft.withLock({ f -> Bool in if f > 0 { f -= 1; return true }; return false }) { throw Down() }
        rows.withLock { $0 += batch }
        batches.withLock { $0 += 1 }
    }
}

@Suite struct BatchWriterTests {
    @Test func groupCommitReturnsOnlyOnceWrittenAndSharesCommits() async {
        let store = FlakyStore(failures: 2)
        let writer = BatchWriter<Int>(name: "t", logger: Logger(label: "t")) { try store.write($0) }
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<200 { group.addTask { await writer.appendAndWait(i) } }
        }
        #expect(store.rows.withLock { Set($0) } == Set(0..<200))
        #expect(store.batches.withLock { $0 } < 200)  // rows that arrived together shared a commit
        #expect(writer.pendingCount == 0)
    }

    @Test func aLoneRowIsWrittenByItsCallerAndAFailedWriteIsRetried() async {
        // Alone (no flush running, the last batch one row): written in the caller's own task.
        let tasks = Mutex<[Int]>([])
        let store = FlakyStore(failures: 0)
        let writer = BatchWriter<Int>(name: "t", logger: Logger(label: "t")) { batch in
            tasks.withLock { $0.append(withUnsafeCurrentTask { $0?.hashValue ?? 0 }) }
            try store.write(batch)
        }
        let caller = withUnsafeCurrentTask { $0?.hashValue ?? -1 }
        await writer.appendAndWait(1)
        writer.append(7)  // queued without waiting: shares the caller's commit
        await writer.appendAndWait(2)
        #expect(store.rows.withLock { $0 } == [1, 2, 7])
        #expect(tasks.withLock { $0 } == [caller, caller])

        // The caller's write fails: it returns only once a flush retried and wrote its row.
        let flaky = FlakyStore(failures: 1)
        let retrying = BatchWriter<Int>(name: "t", logger: Logger(label: "t")) { try flaky.write($0) }
        retrying.append(8)
        await retrying.appendAndWait(3)
        #expect(Set(flaky.rows.withLock { $0 }) == [3, 8])
        #expect(retrying.pendingCount == 0)
        await retrying.appendAndWait(4)
        #expect(flaky.rows.withLock { $0 }.last == 4)
    }

    @Test func shutdownFlushGivesUpOnABrokenDatabase() async {
        let store = FlakyStore(failures: .max)
        let writer = BatchWriter<Int>(name: "t", logger: Logger(label: "t")) { try store.write($0) }
        writer.append(1)
        writer.append(2)
        await writer.flush(maxFailures: 3)
        #expect(writer.pendingCount == 0)
        #expect(store.rows.withLock { $0 }.isEmpty)
    }
}
