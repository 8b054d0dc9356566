import OpenAIWire

/// Remembers which backend last served each prompt prefix, so a conversation's next turn goes
/// where its KV cache already is. A prompt is cut into fixed-size blocks of characters; block
/// `i`'s key is a hash of blocks `0…i` (a chain, as vLLM's prefix cache does with tokens), so a
/// key names a whole prefix, not a block that happens to repeat.
public struct PrefixIndex: Sendable {
    public let blockChars: Int
    public let maxEntries: Int
    private var owner: [UInt64: (backend: Int, stamp: UInt64)] = [:]
    private var clock: UInt64 = 0

    public init(blockChars: Int = 256, maxEntries: Int = 200_000) {
        self.blockChars = max(16, blockChars)
        self.maxEntries = max(16, maxEntries)
    }

    public var count: Int { owner.count }

    /// The chained hashes of the prompt's full leading blocks (a partial last block is ignored:
    /// it changes with every turn).
    public func blockHashes(_ prompt: String) -> [UInt64] {
        var hashes: [UInt64] = []
        var h: UInt64 = 0xcbf29ce484222325
        var n = 0
        for b in prompt.utf8 {
            h = (h ^ UInt64(b)) &* 0x100000001b3
            n += 1
            if n == blockChars {
                hashes.append(h)
                n = 0
            }
        }
        return hashes
    }

    /// For each backend that served some leading prefix of `hashes`: how many blocks.
    public func matches(_ hashes: [UInt64]) -> [Int: Int] {
        var out: [Int: Int] = [:]
        for (i, h) in hashes.enumerated() {
            guard let o = owner[h] else { break }  // a chain: past the first miss nothing matches
            out[o.backend] = i + 1
        }
        return out
    }

    /// Records that `backend` now holds every block of `hashes`.
    public mutating func record(_ hashes: [UInt64], backend: Int) {
        clock &+= 1
        for h in hashes { owner[h] = (backend, clock) }
        if owner.count > maxEntries { evictOldestHalf() }
    }

    /// Forgets what a backend held (it restarted: its cache is empty).
    public mutating func forget(backend: Int) {
        owner = owner.filter { $0.value.backend != backend }
    }

    private mutating func evictOldestHalf() {
        let stamps = owner.values.map(\.stamp).sorted()
        let cut = stamps[stamps.count / 2]
        owner = owner.filter { $0.value.stamp > cut }
    }
}
