#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Random 64-bit words from the kernel's CSPRNG, fetched 64 at a time: the ids a request gets (its
/// `req_…` id, the answer's `chatcmpl-…` id) took three `getrandom` system calls per request, one
/// per word, through `SystemRandomNumberGenerator` (issue 16). Each word is handed out once.
public enum RandomWords {
    private struct Pool: ~Copyable {
        var words = [UInt64](repeating: 0, count: 64)
        var next = 64
    }

    private static let pool = Mutex(Pool())

    public static func next() -> UInt64 {
        pool.withLock { p -> UInt64 in
            if p.next == p.words.count {
                refill(&p.words)
                p.next = 0
            }
            defer { p.next += 1 }
            return p.words[p.next]
        }
    }

    /// One call fills the buffer: glibc's `arc4random_buf` (the kernel's `getrandom`, one system
    /// call for the whole buffer); elsewhere `SystemRandomNumberGenerator` word by word.
    private static func refill(_ words: inout [UInt64]) {
        #if canImport(Glibc)
        words.withUnsafeMutableBytes { raw in arc4random_buf(raw.baseAddress!, raw.count) }
        #else
        var rng = SystemRandomNumberGenerator()
        for i in words.indices { words[i] = rng.next() }
        #endif
    }
}
