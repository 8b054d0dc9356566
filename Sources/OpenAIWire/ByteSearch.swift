/// The first occurrence of a byte string in a byte buffer, for the few places that look for a
/// delimiter in raw bytes (multipart bodies, HTTP/1.1 answers from engines).
public enum ByteSearch {
    /// Offset of the first `needle` in `hay` at or after `from`, or nil.
    @inlinable
    public static func firstIndex(of needle: UnsafeBufferPointer<UInt8>, in hay: UnsafeBufferPointer<UInt8>, from: Int = 0) -> Int? {
        guard !needle.isEmpty, from >= 0, hay.count >= needle.count, from <= hay.count - needle.count else { return nil }
        let first = needle[0], last = hay.count - needle.count
        var i = from
        while i <= last {
            if hay[i] == first {
                var j = 1
                while j < needle.count && hay[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }
}
