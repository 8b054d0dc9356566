import Foundation
import Synchronization
import Testing
@testable import Gateway

/// Values the request path writes by hand instead of through Foundation (issue 16) are the same
/// as Foundation's.
struct HotPathTests {
    @Test func keyExpiryHeaderMatchesISO8601DateFormatter() {
        let formatter = ISO8601DateFormatter()
        for ms: Int64 in [0, 999, 1_000, 1_780_000_000_123, 1_796_083_199_999, 4_102_444_800_000, 951_782_400_500, -1, -86_400_001] {
            let expected = formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
            #expect(CompletionPipeline.iso8601(ms: ms) == expected, "ms \(ms)")
        }
    }

    /// Runs `body` in a request task that is first handed its own handle, as the connection's
    /// slot hands it to the pipeline.
    static func request<T: Sendable>(_ body: @escaping @Sendable (Task<Void, Never>) async throws -> T) async -> Result<T, any Error> {
        let (handles, handOver) = AsyncStream<Task<Void, Never>>.makeStream()
        let outcome = Mutex<Result<T, any Error>?>(nil)
        let task = Task<Void, Never> {
            var next = handles.makeAsyncIterator()
            guard let me = await next.next() else { return }
            let r: Result<T, any Error>
            do { r = .success(try await body(me)) } catch { r = .failure(error) }
            outcome.withLock { $0 = r }
        }
        handOver.yield(task)
        await task.value
        return outcome.withLock { $0! }
    }

    /// The hang-up hook cancels the request's own task (issue 16: no task per engine call), only
    /// while the engine call runs: a hang-up before it cancels it at once, one after it changes nothing.
    @Test func hangUpCancelsOnlyTheEngineCall() async throws {
        // Fired during the call: the call sees its task cancelled, the caller a CancellationError.
        let during = HangUpHook()
        let entered = AsyncStream<Void>.makeStream()
        let interrupted = Task { await Self.request { me in
            try await during.cancelling(me) {
                entered.continuation.yield()
                for _ in 0..<10_000 where !Task.isCancelled { try? await Task.sleep(for: .milliseconds(1)) }
                #expect(Task.isCancelled)
                throw URLError(.cancelled)  // what an interrupted engine call throws, not a CancellationError
            }
        } }
        for await _ in entered.stream { break }
        during.fire()
        let outcome = await interrupted.value
        #expect(throws: CancellationError.self) { try outcome.get() }

        // Fired before: cancelled at once.
        let before = HangUpHook()
        before.fire()
        let early = await Self.request { me in try await before.cancelling(me) { Task.isCancelled } }
        #expect(try early.get() == true)

        // Fired after the call returned: the answer stands and the task is not cancelled.
        let after = HangUpHook()
        let late = await Self.request { me -> [Int] in
            let answer = try await after.cancelling(me) { 42 }
            after.fire()
            return [answer, Task.isCancelled ? 1 : 0]
        }
        #expect(try late.get() == [42, 0])

        // An error of the call itself, with no hang-up, is the caller's as it is.
        let none = HangUpHook()
        let failed = await Self.request { me in try await none.cancelling(me) { () async throws -> Int in throw URLError(.badServerResponse) } }
        #expect(throws: URLError.self) { try failed.get() }
    }
}
