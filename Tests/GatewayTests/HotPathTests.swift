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
}
