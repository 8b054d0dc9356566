import Testing
@testable import OpenAIWire

/// The hand-written integer formatting writes what the standard library's `String(_:radix:)` does.
@Suite struct DigitsTests {
    static let edges: [UInt64] = [0, 1, 9, 10, 15, 16, 35, 36, 37, 255, 1295, 1296, 46_655, 46_656,
                                  UInt64(Int.max), UInt64.max - 1, UInt64.max]

    @Test func base36MatchesTheStandardLibrary() {
        var rng = SystemRandomNumberGenerator()
        for v in Self.edges + (0..<2000).map({ _ in rng.next() }) + (0..<2000).map({ _ in UInt64.random(in: 0..<100_000) }) {
            #expect(Digits.base36(v) == String(v, radix: 36), "\(v)")
        }
    }

    @Test func hexMatchesTheStandardLibrary() {
        for v in Self.edges.map({ Int(truncatingIfNeeded: $0 & UInt64(Int.max)) }) + Array(0..<5000) + [65_535, 65_536, 1 << 40] {
            let hex = Digits.withHex(v) { String(decoding: $0, as: UTF8.self) }
            #expect(hex == String(v, radix: 16), "\(v)")
        }
    }
}
