// The structure layer (SPEC S6.1).
//   structure.json_suspicious_keys   a prompt starting with '{' that parses as JSON and whose
//                                    keys or string values carry role/override vocabulary
//                                    ("role": "system", "system", "bypass", "jailbreak", ...);
//                                    high for a forged {"role": "system"} message, else medium
//   structure.json_trailing_text     a JSON object followed by more text (medium)
//   structure.json_malformed         starts with '{', looks like JSON, does not parse (low)
//   structure.homoglyph              a Latin word containing a confusable letter of another
//                                    script (Unicode confusables.txt): high
//   structure.tag_characters         Unicode tag characters (invisible ASCII): high
//   structure.bidi_control           bidi override/isolate controls: medium
//   structure.zero_width             zero-width characters between letters: low
//   structure.nfkc_styled            letters NFKC folds to ASCII from styled forms
//                                    (mathematical, enclosed, full-width Latin outside CJK
//                                    text): low — never blocks alone; when they spell a
//                                    keyword the pattern layer reports obfuscated_keyword
//   structure.nfkc_changed           ordinary NFKC differences (full-width punctuation,
//                                    ligatures, half-width kana): info

import Foundation

enum StructureAnalyzer {
    static func analyze(raw: UnsafeBufferPointer<UInt8>, norm: Normalized, index: Int) -> [ShieldFinding] {
        var out: [ShieldFinding] = []
        func add(_ rule: String, _ sev: ShieldSeverity, _ span: Range<Int>) {
            out.append(ShieldFinding(ruleID: rule, layer: .structure, severity: sev, textIndex: index, span: span))
        }
        // JSON at the start.
        var s = 0
        while s < raw.count && (raw[s] == 0x20 || raw[s] == 0x0A || raw[s] == 0x0D || raw[s] == 0x09 || raw[s] == 0xEF) { s += 1 }
        if s < raw.count && raw[s] == 0x7B {
            out += json(raw, start: s, index: index)
        }
        if let w = norm.homoglyphWords.first {
            add("structure.homoglyph", .high, w)
        }
        if let t = norm.tagCharacters.first { add("structure.tag_characters", .high, t) }
        if let b = norm.bidiControls.first { add("structure.bidi_control", .medium, b) }
        if let z = norm.zeroWidthInWords.first { add("structure.zero_width", .low, z) }
        if let st = norm.nfkcStyledLetters.first {
            // Full-width Latin inside CJK text is ordinary typing.
            add("structure.nfkc_styled", norm.cjkLetters > 0 ? .info : .low, st)
        }
        if norm.nfkcOrdinary > 0 { add("structure.nfkc_changed", .info, 0..<0) }
        return out
    }

    static let suspiciousWords: [String] = [
        "system", "bypass", "override", "jailbreak", "ignore", "disregard", "developer_mode", "developermode",
        "admin", "sudo", "unrestricted", "instructions", "system_prompt", "systemprompt", "prompt_override",
    ]

    static func json(_ raw: UnsafeBufferPointer<UInt8>, start: Int, index: Int) -> [ShieldFinding] {
        // Find the end of the first balanced object (strings and escapes respected).
        var depth = 0, inString = false, escape = false
        var end = -1
        var i = start
        while i < raw.count {
            let b = raw[i]
            if inString {
                if escape { escape = false } else if b == 0x5C { escape = true } else if b == 0x22 { inString = false }
            } else if b == 0x22 { inString = true }
            else if b == 0x7B || b == 0x5B { depth += 1 }
            else if b == 0x7D || b == 0x5D { depth -= 1; if depth == 0 { end = i + 1; break } }
            i += 1
        }
        let looksJSON = raw.count > start + 1 && {
            var k = start + 1
            while k < raw.count && (raw[k] == 0x20 || raw[k] == 0x0A || raw[k] == 0x0D || raw[k] == 0x09) { k += 1 }
            return k < raw.count && (raw[k] == 0x22 || raw[k] == 0x7D)
        }()
        guard end > 0 else {
            return looksJSON ? [ShieldFinding(ruleID: "structure.json_malformed", layer: .structure, severity: .low,
                                              textIndex: index, span: start..<raw.count)] : []
        }
        let data = Data(UnsafeBufferPointer(rebasing: raw[start..<end]))
        guard let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else {
            return looksJSON ? [ShieldFinding(ruleID: "structure.json_malformed", layer: .structure, severity: .low,
                                              textIndex: index, span: start..<end)] : []
        }
        var out: [ShieldFinding] = []
        var forgedRole = false
        var hits = 0
        var budget = 10_000
        func walk(_ v: Any, key: String?) {
            budget -= 1
            guard budget > 0 else { return }
            if let d = v as? [String: Any] {
                if let role = d["role"] as? String, ["system", "developer"].contains(role.lowercased()) { forgedRole = true }
                for (k, x) in d {
                    let lk = k.lowercased()
                    if suspiciousWords.contains(where: { lk.contains($0) }) { hits += 1 }
                    walk(x, key: lk)
                }
            } else if let a = v as? [Any] {
                for x in a { walk(x, key: key) }
            } else if let s = v as? String, s.count < 64 {
                let ls = s.lowercased()
                if ["bypass", "jailbreak", "override", "developer mode", "sudo", "unrestricted"].contains(where: { ls.contains($0) }) { hits += 1 }
            }
        }
        walk(object, key: nil)
        // Context: an ordinary API payload or chat log (a "messages" list, a "model" key,
        // sampling parameters) carries system roles by design.
        let apiKeys: Set<String> = ["model", "messages", "temperature", "max_tokens", "stream", "top_p", "choices", "usage"]
        let ordinaryPayload = (object as? [String: Any]).map { !Set($0.keys.map { $0.lowercased() }).isDisjoint(with: apiKeys) } ?? false
            || object is [Any]
        if forgedRole {
            out.append(ShieldFinding(ruleID: "structure.json_forged_role", layer: .structure, severity: ordinaryPayload ? .low : .high, textIndex: index, span: start..<end))
        } else if hits > 0 {
            out.append(ShieldFinding(ruleID: "structure.json_suspicious_keys", layer: .structure, severity: ordinaryPayload ? .low : .medium, textIndex: index, span: start..<end))
        }
        // Text after the object.
        var k = end
        while k < raw.count && (raw[k] == 0x20 || raw[k] == 0x0A || raw[k] == 0x0D || raw[k] == 0x09) { k += 1 }
        if k < raw.count && raw.count - k > 8 && (hits > 0 || forgedRole) {
            out.append(ShieldFinding(ruleID: "structure.json_trailing_text", layer: .structure, severity: .medium, textIndex: index, span: k..<raw.count))
        }
        return out
    }
}
