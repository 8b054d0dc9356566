/// Integer formatting for the request path without the generic `BinaryInteger` code:
/// `String(_:radix:)` is specialized for radix 10 only, and in any other radix called two
/// protocol witnesses per digit (issue 16).
public enum Digits {
    /// `value` in base 36 (`0-9a-z`), as `String(value, radix: 36)` writes it.
    public static func base36(_ value: UInt64) -> String {
        withDigits(value, radix: 36) { String(decoding: $0, as: UTF8.self) }
    }

    /// `value` (≥ 0) in lower-case hexadecimal ASCII, as `String(value, radix: 16)` writes it,
    /// handed to `body` as bytes.
    public static func withHex<R>(_ value: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        precondition(value >= 0, "a negative value has no hexadecimal digits here")
        return try withDigits(UInt64(value), radix: 16, body)
    }

    /// `value`'s digits in `radix` (16…36: `0-9` then lower-case letters), most significant first,
    /// handed to `body` from a buffer on the stack.
    @inline(__always)
    private static func withDigits<R>(_ value: UInt64, radix: UInt64,
                                      _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        // 16^16 = 2^64: at most 16 digits in any radix from 16 on.
        try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { buffer in
            var v = value, i = 16
            repeat {
                i -= 1
                let d = UInt8(truncatingIfNeeded: v % radix)
                buffer[i] = d < 10 ? 0x30 + d : 0x57 + d  // "0"… / "a"…
                v /= radix
            } while v > 0
            return try body(UnsafeBufferPointer(rebasing: buffer[i...]))
        }
    }
}
