import Testing
@testable import Gateway

/// Request ids: `req_` and 24 characters of one alphabet, time first (ids of a later millisecond
/// sort after, so the ledger's primary-key index is appended to), then random bits.
@Suite struct RequestIDTests {
    @Test func theFormatIsUnchanged() {
        let id = RequestIDs.next()
        #expect(id.hasPrefix("req_"))
        #expect(id.utf8.count == 28)
        #expect(id.utf8.dropFirst(4).allSatisfy { RequestIDs.alphabet.contains($0) })
    }

    @Test func laterMillisecondsSortAfter() {
        let random: (UInt64, UInt64) = (.max, .max)
        let early = RequestIDs.make(millis: 1_764_000_000_000, random: random)
        let later = RequestIDs.make(millis: 1_764_000_000_001, random: (0, 0))
        #expect(early < later)
        #expect(RequestIDs.make(millis: 0, random: (0, 0)) == "req_" + String(repeating: "0", count: 24))
        // Much later too (the time takes 50 bits: every millisecond for 35 000 years).
        #expect(later < RequestIDs.make(millis: 1 << 49, random: (0, 0)))
    }

    @Test func idsOfOneMillisecondDiffer() {
        var seen = Set<String>()
        for _ in 0..<10_000 { seen.insert(RequestIDs.next()) }
        #expect(seen.count == 10_000)
    }
}
