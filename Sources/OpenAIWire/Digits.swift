/// Integer formatting for the request path without the generic `BinaryInteger` code:
/// `String(_:radix:)` is specialized for radix 10 only, and in any other radix called two
/// protocol witnesses per digit (issue 16).
public enum Digits {
    /// `value` in base 36 (`0-9a-z`), as `String(value, radix: 36)` writes it.
    public static func base36(_ value: UInt64) -> String {
        // 36^13 > 2^64: at most 13 digits.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 13) { buffer in
            var v = value, i = 13
            repeat {
                i -= 1
                let d = UInt8(truncatingIfNeeded: v % 36)
                buffer[i] = d < 10 ? 0x30 + d : 0x57 + d  // "0"… / "a"…
                v /= 36
            } while v > 0
            return String(decoding: UnsafeBufferPointer(rebasing: buffer[i...]), as: UTF8.self)
        }
    }

    /// `value` (≥ 0) in lower-case hexadecimal ASCII, as `String(value, radix: 16)` writes it,
    /// handed to `body` as bytes.
    public static func withHex<R>(_ value: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        precondition(value >= 0, "a negative value has no hexadecimal digits here")
        return try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { buffer in
            var v = UInt(value), i = 16
            repeat {
                i -= 1
                let d = UInt8(truncatingIfNeeded: v & 0xF)
                buffer[i] = d < 10 ? 0x30 + d : 0x57 + d
                v >>= 4
            } while v > 0
            return try body(UnsafeBufferPointer(rebasing: buffer[i...]))
        }
    }
}
