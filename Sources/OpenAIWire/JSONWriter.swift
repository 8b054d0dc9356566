/// Serializes ``JSONValue`` compactly. Numbers are written as their original text.
extension JSONValue {
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(into: &out)
        return out
    }

    public var jsonString: String { String(decoding: serialized(), as: UTF8.self) }

    public func write(into out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let n): out.append(contentsOf: n.utf8)
        case .string(let s): JSONValue.writeString(s, into: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            // Through the buffer: each element borrowed in place, not copied out (a retain per
            // value and per key written; issue 16).
            elements.withUnsafeBufferPointer { elements in
                for i in elements.indices {
                    if i > 0 { out.append(UInt8(ascii: ",")) }
                    elements[i].write(into: &out)
                }
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            members.withUnsafeBufferPointer { members in
                for i in members.indices {
                    if i > 0 { out.append(UInt8(ascii: ",")) }
                    JSONValue.writeString(members[i].0, into: &out)
                    out.append(UInt8(ascii: ":"))
                    members[i].1.write(into: &out)
                }
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    public static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Runs of bytes that need no escape are copied whole (not byte by byte); the string's
        // bytes are read in place (a native or small string always has them contiguous).
        let done: Void? = s.utf8.withContiguousStorageIfAvailable { bytes in
            writeEscaping(bytes, into: &out)
        }
        if done == nil {
            var s = s
            s.withUTF8 { writeEscaping($0, into: &out) }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// `bytes`, escaped where JSON requires it.
    private static func writeEscaping(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        var start = 0
        for i in 0..<bytes.count {
            let b = bytes[i]
            guard b < 0x20 || b == 0x22 || b == 0x5C else { continue }
            if start < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<i])) }
            writeEscaped(b, into: &out)
            start = i + 1
        }
        if start < bytes.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start...])) }
    }

    /// One byte that JSON requires escaped (a quote, a backslash, a control character).
    @inline(__always)
    static func writeEscaped(_ b: UInt8, into out: inout [UInt8]) {
        switch b {
        case 0x22: out.append(0x5C); out.append(0x22)
        case 0x5C: out.append(0x5C); out.append(0x5C)
        case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
        case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
        case 0x09: out.append(0x5C); out.append(UInt8(ascii: "t"))
        default:
            out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hexDigits[Int(b >> 4)], hexDigits[Int(b & 0xF)]])
        }
    }
}
