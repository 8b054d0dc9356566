/// Server-sent events: the framing OpenAI streams use (`data: {...}\n\n`, ending `data: [DONE]`).
public enum SSE {
    /// `data: <json>\n\n`
    public static func event(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = Array("data: ".utf8)
        value.write(into: &out)
        out.append(contentsOf: [0x0A, 0x0A])
        return out
    }

    public static let done: [UInt8] = Array("data: [DONE]\n\n".utf8)
    /// What comes before and after an event's payload.
    public static let dataPrefix: [UInt8] = Array("data: ".utf8)
    public static let eventEnd: [UInt8] = [0x0A, 0x0A]
}

/// Incremental SSE parser: feed it bytes as they arrive, take complete events' `data` payloads.
/// Handles `\n`, `\r\n` line ends, multi-line data, comments and events split across reads.
public struct SSEParser: Sendable {
    private var buffer: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false

    public init() {}

    /// Appends bytes and returns the data payloads of every event completed by them.
    public mutating func feed<Bytes: Sequence>(_ bytes: Bytes) -> [[UInt8]] where Bytes.Element == UInt8 {
        buffer.append(contentsOf: bytes)
        var events: [[UInt8]] = []
        var lineStart = 0
        var i = 0
        while i < buffer.count {
            if buffer[i] == 0x0A {
                var lineEnd = i
                if lineEnd > lineStart, buffer[lineEnd - 1] == 0x0D { lineEnd -= 1 }
                if let event = line(buffer[lineStart..<lineEnd]) { events.append(event) }
                lineStart = i + 1
            }
            i += 1
        }
        buffer.removeFirst(lineStart)
        return events
    }

    /// Call at end of stream: an event not terminated by a blank line is still delivered.
    public mutating func finish() -> [UInt8]? {
        if !buffer.isEmpty {
            let rest = buffer
            buffer = []
            if let e = line(rest[...]) { return e }
        }
        if hasData {
            hasData = false
            defer { data = [] }
            return data
        }
        return nil
    }

    private mutating func line(_ line: ArraySlice<UInt8>) -> [UInt8]? {
        if line.isEmpty {
            guard hasData else { return nil }
            hasData = false
            defer { data = [] }
            return data
        }
        if line.first == UInt8(ascii: ":") { return nil }  // comment / keep-alive
        let field: ArraySlice<UInt8>
        var value: ArraySlice<UInt8>
        if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            field = line[line.startIndex..<colon]
            value = line[(colon + 1)...]
            if value.first == 0x20 { value = value.dropFirst() }
        } else {
            field = line
            value = []
        }
        if field.elementsEqual("data".utf8) {
            if hasData { data.append(0x0A) }
            data.append(contentsOf: value)
            hasData = true
        }
        return nil
    }
}
