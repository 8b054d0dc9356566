import Foundation
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

    /// The hang-up hook cancels the request's own task (issue 16: no task per engine call), only
    /// while the engine call runs: a hang-up before it cancels it at once, one after it changes nothing.
    @Test func hangUpCancelsOnlyTheEngineCall() async throws {
        // Fired during the call: the call sees its task cancelled, the caller a CancellationError.
        let during = HangUpHook()
        let entered = AsyncStream<Void>.makeStream()
        let call = Task {
            try await during.cancelling {
                entered.continuation.yield()
                for _ in 0..<10_000 where !Task.isCancelled { try? await Task.sleep(for: .milliseconds(1)) }
                #expect(Task.isCancelled)
                throw URLError(.cancelled)  // what an interrupted engine call throws, not a CancellationError
            }
        }
        for await _ in entered.stream { break }
        during.fire()
        await #expect(throws: CancellationError.self) { try await call.value }

        // Fired before: cancelled at once.
        let before = HangUpHook()
        before.fire()
        let early = Task { try await before.cancelling { () async throws -> Bool in Task.isCancelled } }
        #expect(try await early.value == true)

        // Fired after the call returned: the answer stands and the task is not cancelled.
        let after = HangUpHook()
        let late = Task { () async throws -> (Int, Bool) in
            let answer = try await after.cancelling { 42 }
            after.fire()
            return (answer, Task.isCancelled)
        }
        let (answer, cancelled) = try await late.value
        #expect(answer == 42 && !cancelled)

        // An error of the call itself, with no hang-up, is the caller's as it is.
        let none = HangUpHook()
        await #expect(throws: URLError.self) { try await none.cancelling { throw URLError(.badServerResponse) } }
    }
}
