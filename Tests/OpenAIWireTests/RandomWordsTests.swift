import Testing
@testable import OpenAIWire

/// The buffered random words behind request and answer ids: every word handed out once, across
/// refills of the buffer and from several threads at once.
@Suite struct RandomWordsTests {
    @Test func wordsAreDistinctAcrossRefills() {
        let words = (0..<1000).map { _ in RandomWords.next() }  // ~16 refills of 64
        #expect(Set(words).count == words.count)
        #expect(words.contains { $0 >> 32 != 0 } && words.contains { $0 & 0xFFFF_FFFF != 0 })
    }

    @Test func concurrentCallersNeverShareAWord() async {
        let all = await withTaskGroup(of: [UInt64].self) { group -> [UInt64] in
            for _ in 0..<8 { group.addTask { (0..<500).map { _ in RandomWords.next() } } }
            var all: [UInt64] = []
            for await part in group { all += part }
            return all
        }
        #expect(all.count == 4000)
        #expect(Set(all).count == 4000)
    }
}
