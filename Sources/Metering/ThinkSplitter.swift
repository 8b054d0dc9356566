/// Reasoning text and visible text of one generated output.
public struct ReasoningSplit: Sendable, Equatable {
    /// The text of all think blocks, joined with "\n", without the tags.
    public var reasoning: String
    /// The text outside think blocks, without the tags (leading whitespace after a closing tag
    /// dropped, as templates put "\n\n" there).
    public var visible: String
    /// True when the output ended inside a think block (a stream cut or `max_tokens` stop).
    public var unterminated: Bool

    public init(reasoning: String, visible: String, unterminated: Bool) {
        self.reasoning = reasoning; self.visible = visible; self.unterminated = unterminated
    }
}

/// Splits `<think>…</think>` blocks (Qwen3, DeepSeek-R1, SmolLM3 style) from generated text.
///
/// Rules:
/// - every `<think>…</think>` block is reasoning, wherever it stands; text between blocks is visible;
/// - an unterminated `<think>` (output cut mid-thought) makes the rest of the text reasoning;
/// - a `</think>` with no opening tag before it makes all the text before it reasoning (templates
///   that put `<think>` in the prompt, so the model's output starts inside the thought);
/// - a trailing partial tag at a cut (`<thi`) stays with the part it would have ended.
public enum ThinkSplitter {
    public static let open = "<think>"
    public static let close = "</think>"

    public static func split(_ text: String) -> ReasoningSplit {
        // A byte scan: `String.contains(String)` is Foundation's `range(of:)` (bridging) once
        // Foundation is imported anywhere in the module, and this runs on every settled request.
        guard text.utf8.contains(UInt8(ascii: "<")) else { return ReasoningSplit(reasoning: "", visible: text, unterminated: false) }
        var reasoning: [Substring] = []
        var visible = ""
        var rest = text[...]

        // An orphan closing tag first: everything before it was thought.
        if let c = rest.firstRange(of: close), rest.firstRange(of: open).map({ $0.lowerBound > c.lowerBound }) ?? true {
            reasoning.append(rest[..<c.lowerBound])
            rest = dropLeadingWhitespace(rest[c.upperBound...])
        }
        var unterminated = false
        while !rest.isEmpty {
            guard let o = rest.firstRange(of: open) else { visible += rest; break }
            visible += rest[..<o.lowerBound]
            let inside = rest[o.upperBound...]
            guard let c = inside.firstRange(of: close) else {
                reasoning.append(inside); unterminated = true; break
            }
            reasoning.append(inside[..<c.lowerBound])
            rest = dropLeadingWhitespace(inside[c.upperBound...])
        }
        let joined = reasoning.map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }.joined(separator: "\n")
        return ReasoningSplit(reasoning: joined, visible: visible, unterminated: unterminated)
    }

    private static func dropLeadingWhitespace(_ s: Substring) -> Substring {
        s.drop(while: { $0.isWhitespace })
    }
}

extension Substring {
    fileprivate func trimmingWhitespace() -> Substring {
        let start = drop(while: { $0.isWhitespace })
        var end = start.endIndex
        while end > start.startIndex, start[start.index(before: end)].isWhitespace { end = start.index(before: end) }
        return start[..<end]
    }
}
