/// One stream event of an engine kept as the engine's bytes, with the places the gateway edits
/// found by a small scan instead of a parse into a ``JSONValue`` tree (issue 16: a relayed stream
/// event cost a parse, a tree edit and a serialization, twice). The gateway writes it with its own
/// `id` and `model` spliced over the engine's and its `backend` member appended
/// (``splice(id:model:tail:into:)``); the text of the first choice is read for counting.
///
/// ``init(_:delta:)`` returns nil for anything unusual, and the caller takes the tree path: not an
/// object, escaped or duplicate top-level keys, an `error` or `backend` member, a `usage` that is
/// not `null`, malformed strings or brackets, an empty object. The scan checks the structure
/// (strings, brackets, top-level members) and the values it reads; other values pass through as
/// the engine wrote them.
public struct SplicedChunk: Sendable {
    /// Where a chunk's text is: `choices[0].delta` (chat) or `choices[0].text` (completions).
    public enum DeltaShape: Sendable {
        case chat
        case completions
    }

    /// The event's JSON object as the engine sent it.
    public let bytes: [UInt8]
    /// Ranges in ``bytes`` of the top-level `id`, `model` and `created` values.
    let id: Range<Int>?
    let model: Range<Int>?
    let created: Range<Int>?
    /// A top-level `"usage":null` member with one adjacent comma (engines that send it on every
    /// chunk): left out, as the tree path removed `usage`.
    let drop: Range<Int>?
    /// Index of the object's closing brace.
    let close: Int
    /// The first choice's `finish_reason` value.
    let finish: Range<Int>?
    /// The first choice's text (``EndpointSpec/deltaText(_:)``'s reading).
    public let content: String
    public let reasoning: String
    /// Only `delta.reasoning_content` (what the gateway assembles for the request store and the
    /// estimate, as before).
    public let reasoningContent: String

    /// The `created` value (a number), when the engine sent one.
    public var createdValue: JSONValue? {
        guard let created else { return nil }
        let first = bytes[created.lowerBound]
        if first == UInt8(ascii: "-") || (first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9")) {
            return .number(String(decoding: bytes[created], as: UTF8.self))
        }
        return try? JSONValue.parse(bytes[created])
    }

    /// The first choice's `finish_reason`, when present.
    public var finishReason: JSONValue? { finish.flatMap { try? JSONValue.parse(bytes[$0]) } }

    /// The event as a tree (tests, the stream collector's first chunk).
    public func json() throws -> JSONValue {
        var value = try JSONValue.parse(bytes)
        if drop != nil { value.remove("usage") }
        return value
    }

    /// Writes the event with `id` and `model` (each an already serialized JSON value) in place of
    /// the engine's (appended when it had none), without its `"usage":null`, and `tail` (e.g.
    /// `,"backend":{…}`) before the closing brace. The result equals the tree path's
    /// `set("id")`, `set("model")`, `set("backend")` up to the engine's whitespace.
    public func splice(id newID: [UInt8], model newModel: [UInt8], tail: [UInt8], into out: inout [UInt8]) {
        var edits: [(Range<Int>, [UInt8])] = []
        if let id { edits.append((id, newID)) }
        if let model { edits.append((model, newModel)) }
        if let drop { edits.append((drop, [])) }
        edits.sort { $0.0.lowerBound < $1.0.lowerBound }
        bytes.withUnsafeBufferPointer { b in
            var at = 0
            for (range, replacement) in edits {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: b[at..<range.lowerBound]))
                out.append(contentsOf: replacement)
                at = range.upperBound
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: b[at..<close]))
        }
        if id == nil { out.append(contentsOf: Self.idKey); out.append(contentsOf: newID) }
        if model == nil { out.append(contentsOf: Self.modelKey); out.append(contentsOf: newModel) }
        out.append(contentsOf: tail)
        out.append(UInt8(ascii: "}"))
    }

    static let idKey: [UInt8] = Array(",\"id\":".utf8)
    static let modelKey: [UInt8] = Array(",\"model\":".utf8)

    // MARK: Scanning

    public init?(_ bytes: [UInt8], delta shape: DeltaShape) {
        guard let scan = bytes.withUnsafeBufferPointer({ Scanner(b: $0).top(shape) }) else { return nil }
        self.bytes = bytes
        id = scan.id
        model = scan.model
        created = scan.created
        drop = scan.drop
        close = scan.close
        finish = scan.finish
        content = scan.content
        reasoning = scan.reasoning ?? scan.reasoningAlt ?? ""
        reasoningContent = scan.reasoning ?? ""
    }

    struct Found {
        var id: Range<Int>?
        var model: Range<Int>?
        var created: Range<Int>?
        var drop: Range<Int>?
        var close = 0
        var finish: Range<Int>?
        var content = ""
        var reasoning: String?
        var reasoningAlt: String?
    }

    struct Scanner {
        let b: UnsafeBufferPointer<UInt8>

        static let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")

        func ws(_ i: Int) -> Int {
            var i = i
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
            return i
        }

        /// The end of the string starting at `i` (its opening quote), and whether it has escapes.
        func string(_ i: Int) -> (end: Int, escaped: Bool)? {
            guard i < b.count, b[i] == Self.quote else { return nil }
            var j = i + 1
            var escaped = false
            while j < b.count {
                let c = b[j]
                if c == Self.quote { return (j + 1, escaped) }
                if c == Self.backslash { escaped = true; j += 2; continue }
                if c < 0x20 { return nil }
                j += 1
            }
            return nil
        }

        /// The end of the value starting at `i`: strings and brackets checked (nesting, kinds),
        /// numbers and literals as a run of their characters.
        func value(_ i: Int) -> Int? {
            guard i < b.count else { return nil }
            switch b[i] {
            case Self.quote:
                return string(i)?.end
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                var kinds: UInt64 = 0  // bit d: the container at depth d is an array
                var depth = 0
                var j = i
                while j < b.count {
                    let c = b[j]
                    switch c {
                    case Self.quote:
                        guard let s = string(j) else { return nil }
                        j = s.end
                        continue
                    case UInt8(ascii: "{"), UInt8(ascii: "["):
                        guard depth < 64 else { return nil }
                        if c == UInt8(ascii: "[") { kinds |= 1 << UInt64(depth) } else { kinds &= ~(1 << UInt64(depth)) }
                        depth += 1
                    case UInt8(ascii: "}"), UInt8(ascii: "]"):
                        guard depth > 0 else { return nil }
                        depth -= 1
                        let isArray = kinds & (1 << UInt64(depth)) != 0
                        guard isArray == (c == UInt8(ascii: "]")) else { return nil }
                        if depth == 0 { return j + 1 }
                    default:
                        break
                    }
                    j += 1
                }
                return nil
            default:
                var j = i
                while j < b.count, Self.literal(b[j]) { j += 1 }
                return j > i ? j : nil
            }
        }

        static func literal(_ c: UInt8) -> Bool {
            (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z"))
                || c == UInt8(ascii: "-") || c == UInt8(ascii: "+") || c == UInt8(ascii: ".") || c == UInt8(ascii: "E")
        }

        func equals(_ range: Range<Int>, _ text: StaticString) -> Bool {
            guard range.count == text.utf8CodeUnitCount else { return false }
            let t = text.utf8Start
            for k in 0..<range.count where b[range.lowerBound + k] != t[k] { return false }
            return true
        }

        /// A string value's text ("" for null or another type, as `stringValue ?? ""`); nil when malformed.
        func text(_ range: Range<Int>) -> String? {
            guard b[range.lowerBound] == Self.quote else { return "" }
            guard let s = string(range.lowerBound) else { return nil }
            if !s.escaped { return String(decoding: UnsafeBufferPointer(rebasing: b[(range.lowerBound + 1)..<(range.upperBound - 1)]), as: UTF8.self) }
            return (try? JSONValue.parse(UnsafeBufferPointer(rebasing: b[range])))?.stringValue
        }

        /// Walks the members of the object at `i`: `body(keyRange, valueRange, commaBefore)`
        /// returns false to give up. Returns the index of the closing brace.
        func members(_ i: Int, _ body: (Range<Int>, Range<Int>, Int?) -> Bool) -> Int? {
            var i = ws(i)
            guard i < b.count, b[i] == UInt8(ascii: "{") else { return nil }
            i = ws(i + 1)
            if i < b.count, b[i] == UInt8(ascii: "}") { return i }
            var comma: Int?
            while true {
                guard let key = string(i), !key.escaped else { return nil }
                let keyRange = (i + 1)..<(key.end - 1)
                i = ws(key.end)
                guard i < b.count, b[i] == UInt8(ascii: ":") else { return nil }
                i = ws(i + 1)
                guard let end = value(i) else { return nil }
                guard body(keyRange, i..<end, comma) else { return nil }
                i = ws(end)
                guard i < b.count else { return nil }
                if b[i] == UInt8(ascii: "}") { return i }
                guard b[i] == UInt8(ascii: ",") else { return nil }
                comma = i
                i = ws(i + 1)
            }
        }

        func top(_ shape: DeltaShape) -> Found? {
            var f = Found()
            var seen: UInt8 = 0  // bits: id, model, created, usage, choices
            var usageMember: (start: Int, end: Int, comma: Int?)?
            var count = 0
            var firstValueEnd = 0
            var secondComma: Int?
            func once(_ bit: UInt8) -> Bool {
                if seen & bit != 0 { return false }
                seen |= bit
                return true
            }
            let close = members(0) { key, value, comma in
                count += 1
                if count == 1 { firstValueEnd = value.upperBound }
                if count == 2 { secondComma = comma }
                if equals(key, "id") {
                    guard once(1) else { return false }
                    f.id = value
                } else if equals(key, "model") {
                    guard once(2) else { return false }
                    f.model = value
                } else if equals(key, "created") {
                    guard once(4) else { return false }
                    f.created = value
                } else if equals(key, "usage") {
                    guard once(8), equals(value, "null") else { return false }
                    usageMember = (key.lowerBound - 1, value.upperBound, comma)
                } else if equals(key, "choices") {
                    guard once(16) else { return false }
                    return choices(value, shape, &f)
                } else if equals(key, "error") || equals(key, "backend") {
                    return false
                }
                return true
            }
            guard let close, count > 0, ws(close + 1) == b.count else { return nil }
            f.close = close
            if let u = usageMember {
                if let comma = u.comma {
                    f.drop = comma..<u.end
                } else {
                    // The first member: drop it with the comma after it (none: it was the only one).
                    guard count > 1, u.end == firstValueEnd, let next = secondComma else { return nil }
                    f.drop = u.start..<(next + 1)
                }
            }
            return f
        }

        /// `choices[0]`'s text and `finish_reason`.
        func choices(_ value: Range<Int>, _ shape: DeltaShape, _ f: inout Found) -> Bool {
            guard b[value.lowerBound] == UInt8(ascii: "[") else { return true }  // not an array: no text
            let i = ws(value.lowerBound + 1)
            guard i < b.count else { return false }
            if b[i] == UInt8(ascii: "]") { return true }
            guard b[i] == UInt8(ascii: "{") else { return true }  // not an object: no text, as the tree path reads it
            var ok = true
            let end = members(i) { key, v, _ in
                if equals(key, "finish_reason") {
                    f.finish = v
                } else if shape == .completions, equals(key, "text") {
                    guard let t = text(v) else { ok = false; return false }
                    f.content = t
                } else if shape == .chat, equals(key, "delta") {
                    f.content = ""; f.reasoning = nil; f.reasoningAlt = nil  // the last `delta` wins
                    guard b[v.lowerBound] == UInt8(ascii: "{") else { return true }
                    return members(v.lowerBound) { k, dv, _ in
                        if equals(k, "content") {
                            guard let t = text(dv) else { return false }
                            f.content = t
                        } else if equals(k, "reasoning_content") {
                            guard let t = text(dv) else { return false }
                            f.reasoning = b[dv.lowerBound] == Self.quote ? t : nil
                        } else if equals(k, "reasoning") {
                            guard let t = text(dv) else { return false }
                            f.reasoningAlt = b[dv.lowerBound] == Self.quote ? t : nil
                        }
                        return true
                    } != nil
                }
                return true
            }
            return ok && end != nil
        }
    }
}
