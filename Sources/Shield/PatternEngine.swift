// The pattern layer (SPEC S6.2). One Aho–Corasick pass over the normalized text finds every
// vocabulary atom; linear rules combine them:
//   patterns.ignore_instructions  ignore-verb … instructions-object (≤ 48 bytes apart; object
//                                 first allowed for verb-final languages, ≤ 30 bytes)
//   patterns.reveal_prompt        reveal-verb … system prompt / your instructions
//   patterns.reveal_secret        reveal-verb … password / secret (medium)
//   patterns.role_override        you are now / act as … DAN / no restrictions
//   patterns.jailbreak_phrase     phrases that are attacks on their own
//   patterns.new_instructions     "new instructions", "new task" (medium)
//   patterns.obfuscated_keyword   an attack keyword written with homoglyphs, zero-width
//                                 characters, spaced letters, leet digits, styled letters or
//                                 tag characters
//   patterns.keyword_repetition   "forget forget forget"; patterns.word_repetition (medium)
//   patterns.hidden_html, patterns.active_html, patterns.script_link, patterns.role_marker —
//                                 byte scanners over the original text (linear, no regex)
// A phrase quoted inside a text that talks about attacks ("for example", "prompt
// injection", …) is downgraded (a security course quoting an attack is not an attack).

struct Atom {
    var bytes: [UInt8]
    var category: AtomCategory
    var verbFinal: Bool
    var needsBoundary: Bool   // ASCII atoms must start and end on word boundaries
}

struct RawHit {
    var rule: String
    var severity: ShieldSeverity
    var lo: Int     // normalized range
    var hi: Int
    var downgradable: Bool
}

final class PatternEngine: Sendable {
    static let shared = PatternEngine()

    let atoms: [Atom]
    let automaton: AhoCorasick

    init() {
        var seen = Set<String>()
        var list: [Atom] = []
        for spec in PatternCatalog.specs() {
            let n = Array(spec.text.utf8).withUnsafeBufferPointer { Normalizer.normalize($0) }
            var b = n.bytes
            while b.first == 0x20 { b.removeFirst() }
            while b.last == 0x20 { b.removeLast() }
            guard !b.isEmpty else { continue }
            let key = "\(spec.category.rawValue):\(String(decoding: b, as: UTF8.self))"
            guard seen.insert(key).inserted else { continue }
            list.append(Atom(bytes: b, category: spec.category, verbFinal: spec.verbFinal, needsBoundary: b[0] < 0x80))
        }
        atoms = list
        automaton = AhoCorasick(patterns: list.map(\.bytes))
    }

    struct AtomHit { var atom: Int; var lo: Int; var hi: Int }

    /// All atom occurrences on word boundaries, in order of end position.
    func atomHits(_ bytes: UnsafeBufferPointer<UInt8>) -> [AtomHit] {
        let n = bytes.count
        var hits: [AtomHit] = []
        for m in automaton.matches(bytes) {
            let lo = Int(m.lo), hi = Int(m.hi), p = Int(m.pattern)
            let a = atoms[p]
            if a.needsBoundary {
                if lo > 0 && bytes[lo - 1] != 0x20 && bytes[lo - 1] < 0x80 { continue }
                if hi < n && bytes[hi] != 0x20 && bytes[hi] < 0x80 && a.bytes.last! < 0x80 { continue }
            }
            hits.append(AtomHit(atom: p, lo: lo, hi: hi))
        }
        return hits
    }

    static let forwardGap = 48, reverseGap = 30

    /// Combination rules over atom hits (normalized coordinates). Linear in the number of hits.
    func rules(_ hits: [AtomHit]) -> (hits: [RawHit], meta: Bool, webdev: Bool) {
        var out: [RawHit] = []
        var meta = false, webdev = false
        // Last seen occurrence per category (lo, hi, verbFinal, negated).
        var last = [AtomCategory: AtomHit]()
        var lastNegationEnd = -10
        func near(_ a: AtomHit?, _ b: AtomHit, gap: Int) -> Bool {
            guard let a else { return false }
            return a.hi <= b.lo && b.lo - a.hi <= gap
        }
        func pair(_ verbCat: AtomCategory, _ objCats: [AtomCategory], _ h: AtomHit, rule: (AtomCategory) -> (String, ShieldSeverity)?) {
            let cat = atoms[h.atom].category
            if objCats.contains(cat), let v = last[verbCat], near(v, h, gap: Self.forwardGap), let (r, s) = rule(cat) {
                out.append(RawHit(rule: r, severity: s, lo: v.lo, hi: h.hi, downgradable: true))
            } else if cat == verbCat && atoms[h.atom].verbFinal {
                for oc in objCats { if let o = last[oc], near(o, h, gap: Self.reverseGap), let (r, s) = rule(oc) {
                    out.append(RawHit(rule: r, severity: s, lo: o.lo, hi: h.hi, downgradable: true)); break
                } }
            }
        }
        for h in hits {
            let a = atoms[h.atom]
            switch a.category {
            case .meta: meta = true
            case .webdev: webdev = true
            case .negation: lastNegationEnd = h.hi
            case .jailbreak:
                out.append(RawHit(rule: "patterns.jailbreak_phrase", severity: .high, lo: h.lo, hi: h.hi, downgradable: true))
            case .newTask:
                out.append(RawHit(rule: "patterns.new_instructions", severity: .medium, lo: h.lo, hi: h.hi, downgradable: true))
            case .ignoreVerb:
                if h.lo >= lastNegationEnd && h.lo - lastNegationEnd <= 4 { continue }   // "do not ignore"
                pair(.ignoreVerb, [.instrObject, .secretStrong], h) { _ in ("patterns.ignore_instructions", .high) }
            case .instrObject, .secretStrong, .secretWeak:
                pair(.ignoreVerb, [.instrObject, .secretStrong], h) { _ in ("patterns.ignore_instructions", .high) }
                pair(.revealVerb, [.secretStrong, .secretWeak], h) { c in
                    c == .secretStrong ? ("patterns.reveal_prompt", .high) : ("patterns.reveal_secret", .medium)
                }
            case .revealVerb:
                pair(.revealVerb, [.secretStrong, .secretWeak], h) { c in
                    c == .secretStrong ? ("patterns.reveal_prompt", .high) : ("patterns.reveal_secret", .medium)
                }
            case .roleObject:
                if let r = [last[.roleIntro], last[.roleReassign]].compactMap({ $0 }).max(by: { $0.hi < $1.hi }), r.hi <= h.lo, h.lo - r.hi <= 64 {
                    out.append(RawHit(rule: "patterns.role_override", severity: .high, lo: r.lo, hi: h.hi, downgradable: true))
                }
            case .roleIntro: break
            case .overrideParaphrase:
                out.append(RawHit(rule: "patterns.paraphrased_override", severity: .medium, lo: h.lo, hi: h.hi, downgradable: true))
            case .aiAddressed:
                out.append(RawHit(rule: "patterns.ai_addressed", severity: .medium, lo: h.lo, hi: h.hi, downgradable: true))
            case .extraction:
                out.append(RawHit(rule: "patterns.prompt_extraction", severity: .medium, lo: h.lo, hi: h.hi, downgradable: true))
            case .roleReassign:
                out.append(RawHit(rule: "patterns.role_reassignment", severity: .medium, lo: h.lo, hi: h.hi, downgradable: true))
            }
            last[a.category] = h
        }
        return (out, meta, webdev)
    }

    static let attackCategories: Set<AtomCategory> = [.ignoreVerb, .instrObject, .revealVerb, .secretStrong,
                                                       .secretWeak, .roleObject, .jailbreak]

    func analyze(raw: UnsafeBufferPointer<UInt8>, norm: Normalized, index: Int, config: ShieldConfig) -> [ShieldFinding] {
        var findings: [ShieldFinding] = []
        var isWebdev = false
        norm.bytes.withUnsafeBufferPointer { nb in
            let hits = atomHits(nb)
            let (raws, meta, webdev) = rules(hits)
            isWebdev = webdev
            for h in raws {
                let span = norm.originalSpan(h.lo, h.hi, raw: raw)
                var sev = h.severity
                if h.downgradable && meta {
                    sev = Self.isQuoted(raw, span) ? .low : min(sev, .medium)
                }
                findings.append(ShieldFinding(ruleID: h.rule, layer: .patterns, severity: sev, textIndex: index, span: span))
            }
            // Obfuscated keywords: an attack atom whose bytes came from homoglyphs, invisible
            // characters, spaced letters, styled letters, tag characters or leet digits.
            var reported = 0
            for h in hits where Self.attackCategories.contains(atoms[h.atom].category) && atoms[h.atom].bytes.count >= 4 {
                var f: UInt8 = 0
                var leet = false
                for k in h.lo..<h.hi {
                    f |= norm.flags[k]
                    let c = nb[k]
                    if (c >= 0x30 && c <= 0x39) || c == 0x40 || c == 0x24 { leet = true }
                }
                // zeroWidth flag on the first byte means the invisible char is before the word
                let inner = f & ~Normalized.Flag.zeroWidth | (h.hi - h.lo > 1 ? (norm.flags[(h.lo + 1)..<h.hi].reduce(0, |) & Normalized.Flag.zeroWidth) : 0)
                if inner != 0 || leet {
                    findings.append(ShieldFinding(ruleID: "patterns.obfuscated_keyword", layer: .patterns, severity: .high,
                                                  textIndex: index, span: norm.originalSpan(h.lo, h.hi, raw: raw)))
                    reported += 1
                    if reported >= 8 { break }
                }
            }
            findings += repetition(nb, hits: hits, norm: norm, raw: raw, index: index, threshold: config.wordRepetitionThreshold)
        }
        // Context: markup inside a fenced code block, or in a text about web development, is
        // what the user is working on, not something hidden from them.
        var markup = MarkupScanner.scan(raw, index: index)
        if !markup.isEmpty {
            let fences = Self.fenceStarts(raw)
            for i in markup.indices where markup[i].severity > .low {
                let before = fences.filter { $0 < markup[i].span.lowerBound }.count
                if before % 2 == 1 || isWebdev { markup[i].severity = .low }
            }
        }
        findings += markup
        if !norm.mixedScriptWords.isEmpty {
            findings.append(ShieldFinding(ruleID: "patterns.mixed_script_word", layer: .patterns,
                                          severity: norm.mixedScriptWords.count >= 2 ? .medium : .low,
                                          textIndex: index, span: norm.mixedScriptWords[0]))
        }
        return findings
    }

    /// "forget forget forget": an attack keyword repeated three times in a row (high), or any
    /// word repeated `threshold` times in a row (medium).
    func repetition(_ nb: UnsafeBufferPointer<UInt8>, hits: [AtomHit], norm: Normalized, raw: UnsafeBufferPointer<UInt8>,
                    index: Int, threshold: Int) -> [ShieldFinding] {
        var out: [ShieldFinding] = []
        // Keyword repetition from atom hits: same atom, consecutive (only a space between).
        var run = 1
        var runStart = 0
        var reportedKeyword = false
        for i in 1..<max(hits.count, 1) where i < hits.count {
            let a = hits[i - 1], b = hits[i]
            if a.atom == b.atom && b.lo == a.hi + 1 && Self.attackCategories.contains(atoms[b.atom].category) {
                if run == 1 { runStart = a.lo }
                run += 1
                if run == 3 && !reportedKeyword {
                    out.append(ShieldFinding(ruleID: "patterns.keyword_repetition", layer: .patterns, severity: .high,
                                             textIndex: index, span: norm.originalSpan(runStart, b.hi, raw: raw)))
                    reportedKeyword = true
                }
            } else if !(a.atom == b.atom && a.lo == b.lo) {
                run = 1
            }
        }
        // Generic word repetition: compare each token with the previous one.
        var prevLo = -1, prevHi = -1, curLo = -1
        var count = 1, repStart = 0
        var i = 0
        let n = nb.count
        while i <= n {
            if i == n || nb[i] == 0x20 {
                if curLo >= 0 {
                    let len = i - curLo
                    if prevLo >= 0 && len == prevHi - prevLo && len >= 2, let base = nb.baseAddress,
                       memcmp(base + curLo, base + prevLo, len) == 0 {
                        if count == 1 { repStart = prevLo }
                        count += 1
                        if count == threshold {
                            out.append(ShieldFinding(ruleID: "patterns.word_repetition", layer: .patterns, severity: .medium,
                                                     textIndex: index, span: norm.originalSpan(repStart, i, raw: raw)))
                            return out
                        }
                    } else { count = 1 }
                    prevLo = curLo; prevHi = i; curLo = -1
                }
            } else if curLo < 0 { curLo = i }
            i += 1
        }
        return out
    }

    /// Offsets of "```" fences.
    static func fenceStarts(_ raw: UnsafeBufferPointer<UInt8>) -> [Int] {
        var out: [Int] = []
        var i = 0
        while i + 2 < raw.count {
            if raw[i] == 0x60 && raw[i + 1] == 0x60 && raw[i + 2] == 0x60 { out.append(i); i += 3 } else { i += 1 }
        }
        return out
    }

    /// Is the span enclosed in quotation marks on its line (within 200 bytes each side)?
    static func isQuoted(_ raw: UnsafeBufferPointer<UInt8>, _ span: Range<Int>) -> Bool {
        func isQuoteAt(_ i: Int) -> Bool {
            let b = raw[i]
            if b == 0x22 || b == 0x60 { return true }     // " `
            if b == 0xC2 && i + 1 < raw.count && (raw[i + 1] == 0xAB || raw[i + 1] == 0xBB) { return true } // « »
            if b == 0xE2 && i + 2 < raw.count && raw[i + 1] == 0x80 && (0x9C...0x9F).contains(raw[i + 2]) { return true } // “ ” „
            if b == 0xE3 && i + 2 < raw.count && raw[i + 1] == 0x80 && (0x8C...0x8F).contains(raw[i + 2]) { return true } // 「」『』
            return false
        }
        var before = false
        var i = span.lowerBound - 1
        while i >= 0 && i >= span.lowerBound - 200 {
            if raw[i] == 0x0A { break }
            if isQuoteAt(i) { before = true; break }
            i -= 1
        }
        guard before else { return false }
        var j = span.upperBound
        while j < raw.count && j < span.upperBound + 200 {
            if raw[j] == 0x0A { break }
            if isQuoteAt(j) { return true }
            j += 1
        }
        return false
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
