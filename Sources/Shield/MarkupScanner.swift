// Linear byte scanners over the original text (no regular expressions):
//   patterns.hidden_html   a tag that hides its content: <div hidden>, <hidden …>,
//                          style="display:none | visibility:hidden | font-size:0 | opacity:0",
//                          aria-hidden="true" with text, <!-- comments --> with instructions
//   patterns.active_html   <script>, <iframe>, <object>, <embed>, on…= handlers (medium: code
//                          questions show these too)
//   patterns.script_link   Markdown [text](javascript:…) / (data:…) / (vbscript:…), reference
//                          links and href/src attributes with those schemes
//   patterns.role_marker   chat-template tokens (<|im_start|>, <|system|>, [INST], <<SYS>>,
//                          <|endoftext|>) — high; a line that opens with "system:" — medium

enum MarkupScanner {
    @inline(__always) static func lower(_ b: UInt8) -> UInt8 { (b >= 0x41 && b <= 0x5A) ? b + 32 : b }

    /// Case-insensitive ASCII comparison of raw[i...] with a lower-case literal.
    @inline(__always) static func matches(_ raw: UnsafeBufferPointer<UInt8>, _ i: Int, _ lit: StaticString) -> Bool {
        let n = lit.utf8CodeUnitCount
        guard i + n <= raw.count else { return false }
        let p = lit.utf8Start
        for k in 0..<n where lower(raw[i + k]) != p[k] { return false }
        return true
    }

    /// Skip spaces, tabs, newlines and percent/HTML-entity-free whitespace.
    @inline(__always) static func skipSpace(_ raw: UnsafeBufferPointer<UInt8>, _ i: Int) -> Int {
        var j = i
        while j < raw.count && (raw[j] == 0x20 || raw[j] == 0x09 || raw[j] == 0x0A || raw[j] == 0x0D) { j += 1 }
        return j
    }

    /// A URL scheme that runs code or embeds content, allowing whitespace/control bytes
    /// inside ("java\tscript:").
    static func dangerousScheme(_ raw: UnsafeBufferPointer<UInt8>, _ start: Int) -> Bool {
        var buf: [UInt8] = []
        var j = start
        while j < raw.count && buf.count < 11 && j < start + 40 {
            let b = raw[j]
            if b == 0x09 || b == 0x0A || b == 0x0D || b == 0x20 { j += 1; continue }
            buf.append(lower(b))
            j += 1
        }
        func has(_ s: String) -> Bool { buf.starts(with: Array(s.utf8)) }
        return has("javascript:") || has("vbscript:") || has("data:")
    }

    /// The bytes `scan` looks at when it is not at the start of a line: '<', '[', ']', '\n'.
    static let interesting: [Bool] = (0..<256).map { $0 == 0x3C || $0 == 0x5B || $0 == 0x5D || $0 == 0x0A }

    static func scan(_ raw: UnsafeBufferPointer<UInt8>, index: Int) -> [ShieldFinding] {
        var out: [ShieldFinding] = []
        var seen = Set<String>()
        func add(_ rule: String, _ sev: ShieldSeverity, _ span: Range<Int>) {
            guard seen.insert(rule).inserted else { return }
            out.append(ShieldFinding(ruleID: rule, layer: .patterns, severity: sev, textIndex: index, span: span))
        }
        let n = raw.count
        var lineStart = true
        var i = 0
        let interesting = Self.interesting
        while i < n {
            // Off the start of a line only '<', '[', ']' and a newline matter: skip the rest.
            if !lineStart {
                while i < n && !interesting[Int(raw[i])] { i += 1 }
                guard i < n else { break }
            }
            let b = raw[i]
            switch b {
            case 0x3C: // <
                if matches(raw, i, "<|im_start|>") || matches(raw, i, "<|im_end|>") || matches(raw, i, "<|system|>")
                    || matches(raw, i, "<|endoftext|>") || matches(raw, i, "<|start_header_id|>") || matches(raw, i, "<<sys>>")
                    || matches(raw, i, "<|eot_id|>") || matches(raw, i, "</s>") && i + 4 < n {
                    add("patterns.role_marker", .high, i..<min(n, i + 12))
                } else if matches(raw, i, "<!--") {
                    // Instructions hidden in an HTML comment are checked by the pattern layer;
                    // the comment itself is only noted.
                } else {
                    scanTag(raw, i, add)
                }
            case 0x5B: // [
                if matches(raw, i, "[inst]") || matches(raw, i, "[/inst]") || matches(raw, i, "[system]") && lineStart {
                    add("patterns.role_marker", .high, i..<min(n, i + 8))
                }
            case 0x5D: // ]  -> Markdown link target or reference definition
                var j = i + 1
                if j < n && raw[j] == 0x28 {        // ](
                    j = skipSpace(raw, j + 1)
                    if j < n && raw[j] == 0x3C { j += 1 } // ](<javascript:...>)
                    if dangerousScheme(raw, j) { add("patterns.script_link", .high, i..<min(n, j + 11)) }
                } else if j < n && raw[j] == 0x3A { // ]: ref definition
                    j = skipSpace(raw, j + 1)
                    if dangerousScheme(raw, j) { add("patterns.script_link", .high, i..<min(n, j + 11)) }
                }
            default:
                break
            }
            if lineStart && (b == 0x73 || b == 0x53) && matches(raw, i, "system:") {
                add("patterns.role_marker_line", .medium, i..<(i + 7))
            }
            if b == 0x0A { lineStart = true } else if b != 0x20 && b != 0x09 && b != 0x23 && b != 0x2A && b != 0x3E && b != 0x5B && b != 0x3C {
                lineStart = false
            }
            i += 1
        }
        return out
    }

    /// Inspect one tag starting at raw[i] == '<' (bounded to 512 bytes).
    static func scanTag(_ raw: UnsafeBufferPointer<UInt8>, _ i: Int, _ add: (String, ShieldSeverity, Range<Int>) -> Void) {
        let n = raw.count
        var j = i + 1
        guard j < n else { return }
        let c = lower(raw[j])
        guard c >= 0x61 && c <= 0x7A else { return }      // a start tag
        let nameStart = j
        while j < n && (lower(raw[j]) >= 0x61 && lower(raw[j]) <= 0x7A || (raw[j] >= 0x30 && raw[j] <= 0x39)) { j += 1 }
        let name = String(decoding: UnsafeBufferPointer(rebasing: raw[nameStart..<j]), as: UTF8.self).lowercased()
        // Find the end of the tag.
        var end = j
        var quote: UInt8 = 0
        while end < n && end < i + 512 {
            let b = raw[end]
            if quote != 0 { if b == quote { quote = 0 } } else if b == 0x22 || b == 0x27 { quote = b } else if b == 0x3E { break }
            end += 1
        }
        guard end < n && raw[end] == 0x3E else { return }
        let span = i..<(end + 1)
        // Attributes, lower-cased, spaces removed (for "display : none").
        var attrs: [UInt8] = []
        attrs.reserveCapacity(end - j)
        for k in j..<end where raw[k] != 0x20 && raw[k] != 0x09 && raw[k] != 0x0A && raw[k] != 0x0D { attrs.append(lower(raw[k])) }
        let a = String(decoding: attrs, as: UTF8.self)
        if name == "hidden" {
            add("patterns.hidden_html", .high, span); return
        }
        let hiddenAttr = a.hasPrefix("hidden") || a.contains("\"hidden") || spacedAttribute(raw, j, end, "hidden")
        if hiddenAttr || a.contains("display:none") || a.contains("visibility:hidden") || a.contains("font-size:0")
            || a.contains("opacity:0") || a.contains("aria-hidden=\"true\"") && name != "svg" && name != "i" && name != "span"
            || a.contains("color:transparent") || a.contains("height:0") && a.contains("overflow:hidden") {
            add("patterns.hidden_html", .high, span)
        }
        if ["script", "iframe", "object", "embed", "frame", "frameset", "meta", "base"].contains(name) {
            add("patterns.active_html", .medium, span)
        } else if hasEventHandler(a) {
            add("patterns.active_html", .medium, span)
        }
        if let r = a.range(of: "href=") ?? a.range(of: "src=") ?? a.range(of: "action=") {
            var k = attrs.index(attrs.startIndex, offsetBy: a.utf8.distance(from: a.utf8.startIndex, to: r.upperBound))
            while k < attrs.count && (attrs[k] == 0x22 || attrs[k] == 0x27) { k += 1 }
            let rest = attrs[k...].prefix(11)
            if rest.starts(with: Array("javascript:".utf8)) || rest.starts(with: Array("vbscript:".utf8)) {
                add("patterns.script_link", .high, span)
            }
        }
    }

    /// `hidden` as a bare attribute: preceded by whitespace in the tag and followed by
    /// whitespace, '>', '/' or '='.
    static func spacedAttribute(_ raw: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int, _ word: StaticString) -> Bool {
        var k = from
        let len = word.utf8CodeUnitCount
        while k + len <= to {
            if (raw[k - 1] == 0x20 || raw[k - 1] == 0x09 || raw[k - 1] == 0x0A) && matches(raw, k, word) {
                let after = k + len
                if after >= to || [0x20, 0x09, 0x0A, 0x3E, 0x2F, 0x3D].contains(raw[after]) { return true }
            }
            k += 1
        }
        return false
    }

    static func hasEventHandler(_ a: String) -> Bool {
        for h in ["onerror=", "onload=", "onclick=", "onmouseover=", "onfocus=", "onmouseenter=", "ontoggle=", "onbegin="] where a.contains(h) {
            return true
        }
        return false
    }
}
