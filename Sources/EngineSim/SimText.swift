/// Deterministic pseudo-text: the same seed and prompt give the same words.
struct SimText {
    static let words = ["the", "model", "answers", "with", "care", "and", "a", "simulated", "voice", "while", "tokens",
                        "flow", "through", "the", "gateway", "to", "every", "client", "that", "asked", "for", "them",
                        "quickly", "in", "order", "of", "arrival", "under", "load", "as", "planned", "today"]

    private var state: UInt64

    init(seed: UInt64, prompt: String) {
        // FNV-1a of the prompt mixed with the seed.
        var h: UInt64 = 0xcbf29ce484222325
        for b in prompt.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        state = h ^ seed &* 0x9E3779B97F4A7C15
        if state == 0 { state = 1 }
    }

    /// xorshift64*
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2685821657736338717
    }

    mutating func token(_ index: Int) -> String {
        let w = Self.words[Int(next() % UInt64(Self.words.count))]
        return index == 0 ? w.prefix(1).uppercased() + w.dropFirst() : " " + w
    }

    /// The sim's own "tokenizer": one token per whitespace-separated word (at least 1).
    static func countTokens(_ text: String) -> Int {
        max(1, text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).count)
    }
}
