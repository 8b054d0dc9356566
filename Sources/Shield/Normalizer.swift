// The normalized form every pattern is matched on, built in one pass over the UTF-8 bytes:
//   - ASCII: lower-cased; letters, digits, '@' and '$' are word bytes, everything else is a
//     separator; runs of separators collapse to one space (0x20).
//   - other scalars: NFKC (Foundation's precomposedStringWithCompatibilityMapping), lower-cased;
//     Latin/Greek/Cyrillic letters also lose their diacritics (NFKD minus marks), so that
//     "précédentes" and "precedentes" match alike; Unicode confusables (generated table) are
//     mapped to their ASCII lookalike; zero-width, bidi-control and variation-selector
//     characters are removed; Unicode tag characters (U+E0020–E007E, "ASCII smuggling") are
//     turned back into the ASCII they hide.
//   - "i g n o r e" (runs of three or more one-letter tokens) is joined into one word.
// Every normalized byte remembers the UTF-8 offset of the original scalar it came from, so a
// match maps back to a span of the original text. Leet digits are folded later, inside the
// automaton's byte classes (AhoCorasick.swift).

import Foundation

enum Script: UInt8 {
    case other = 0, latin, greek, cyrillic, armenian, cherokee, han, kana, hangul

    /// Script of a code point by block ranges. (Unicode.Scalar.Properties does not expose the
    /// Script property, so the blocks of the scripts that matter here are listed.)
    static func of(_ v: UInt32) -> Script {
        switch v {
        case 0x41...0x5A, 0x61...0x7A, 0xC0...0x24F, 0x1E00...0x1EFF, 0x2C60...0x2C7F, 0xA720...0xA7FF,
             0xAB30...0xAB6F, 0xFF21...0xFF3A, 0xFF41...0xFF5A, 0x250...0x2AF, 0x1D00...0x1DBF:
            return .latin
        case 0x370...0x3FF, 0x1F00...0x1FFF: return .greek
        case 0x400...0x52F, 0x1C80...0x1C8F, 0x2DE0...0x2DFF, 0xA640...0xA69F: return .cyrillic
        case 0x530...0x58F: return .armenian
        case 0x13A0...0x13FF, 0xAB70...0xABBF: return .cherokee
        case 0x2E80...0x2FDF, 0x3005, 0x3007, 0x3021...0x3029, 0x3400...0x4DBF, 0x4E00...0x9FFF,
             0xF900...0xFAFF, 0x20000...0x3134F: return .han
        case 0x3040...0x30FF, 0x31F0...0x31FF, 0xFF66...0xFF9F: return .kana
        case 0x1100...0x11FF, 0x3130...0x318F, 0xAC00...0xD7AF: return .hangul
        default: return .other
        }
    }

    /// Scripts whose letters are lookalikes of Latin letters (homoglyph sources).
    var isLatinLookalikeScript: Bool { self == .greek || self == .cyrillic || self == .armenian || self == .cherokee }
}

struct Normalized {
    /// Normalized bytes (UTF-8; 0x20 separates words).
    var bytes: [UInt8] = []
    /// For each normalized byte, the UTF-8 offset of the original scalar it came from.
    var origin: [Int32] = []
    /// For each normalized byte, how it was obtained (Normalized.Flag bits).
    var flags: [UInt8] = []
    /// Original spans of Latin words containing a confusable letter of another script.
    var homoglyphWords: [Range<Int>] = []
    /// Original spans of words mixing Latin with Greek/Cyrillic/Armenian/Cherokee letters
    /// that are not confusables.
    var mixedScriptWords: [Range<Int>] = []
    /// Zero-width characters between two letters.
    var zeroWidthInWords: [Range<Int>] = []
    var bidiControls: [Range<Int>] = []
    var tagCharacters: [Range<Int>] = []
    /// Number of scalars NFKC changed, split into "ordinary" (punctuation, spaces, ligatures,
    /// half/full-width kana, ...) and "styled letters" (mathematical, enclosed, full-width Latin
    /// letters and digits) — the second kind can spell a keyword invisibly to naive filters.
    var nfkcOrdinary = 0
    var nfkcStyledLetters: [Range<Int>] = []
    /// Number of CJK letters seen (full-width Latin in CJK text is ordinary typing).
    var cjkLetters = 0

    enum Flag {
        static let confusable: UInt8 = 1
        static let zeroWidth: UInt8 = 2      // a removed invisible character precedes this byte
        static let spaced: UInt8 = 4         // joined from "i g n o r e"
        static let styled: UInt8 = 8         // from a styled (NFKC) letter
        static let tag: UInt8 = 16           // from a Unicode tag character
    }

    /// End (exclusive) of the original span for normalized range lo..<hi.
    func originalSpan(_ lo: Int, _ hi: Int, raw: UnsafeBufferPointer<UInt8>) -> Range<Int> {
        guard lo < hi, hi <= origin.count else { return 0..<0 }
        let start = Int(origin[lo])
        let lastStart = Int(origin[hi - 1])
        return start..<(lastStart + Normalizer.scalarLength(raw, at: lastStart))
    }
}

enum Normalizer {
    // Kinds of non-ASCII scalars.
    static let kLetter: UInt8 = 0, kSeparator: UInt8 = 1, kDrop: UInt8 = 2, kZeroWidth: UInt8 = 3,
               kBidi: UInt8 = 4, kSlow: UInt8 = 5

    struct Info {
        var kind: UInt8
        var script: Script
        var confusable: Bool
        var compatOrdinary: Bool
        var styledLetter: Bool
        var out: [UInt8]
    }

    /// Precomputed table for U+0080..<U+3100 and U+FB00..<U+10000.
    struct Table {
        var meta: [UInt16]        // kind | script<<3 | flags<<8
        var outRef: [UInt32]      // offset<<8 | length
        var outBytes: [UInt8]
    }

    static let lowRange: Range<UInt32> = 0x80..<0x3100
    static let highRange: Range<UInt32> = 0xFB00..<0x10000

    static let table: Table = {
        var t = Table(meta: [], outRef: [], outBytes: [])
        let count = lowRange.count + highRange.count
        t.meta.reserveCapacity(count)
        t.outRef.reserveCapacity(count)
        for v in Array(lowRange) + Array(highRange) {
            let info = computeInfo(v)
            var flags: UInt16 = 0
            if info.confusable { flags |= 1 }
            if info.compatOrdinary { flags |= 2 }
            if info.styledLetter { flags |= 4 }
            t.meta.append(UInt16(info.kind) | UInt16(info.script.rawValue) << 3 | flags << 8)
            t.outRef.append(UInt32(t.outBytes.count) << 8 | UInt32(min(info.out.count, 255)))
            t.outBytes += info.out.prefix(255)
        }
        return t
    }()

    static let confusableMap: [UInt32: UInt8] = {
        var d: [UInt32: UInt8] = [:]
        for (k, v) in Confusables.pairs { d[k] = v }
        return d
    }()

    static func isZeroWidth(_ v: UInt32) -> Bool {
        switch v {
        case 0x200B, 0x200C, 0x200D, 0x2060...0x2064, 0xFEFF, 0x00AD, 0x180E, 0x034F, 0x115F, 0x1160,
             0x3164, 0xFFA0, 0x17B4, 0x17B5:
            return true
        default: return false
        }
    }

    static func isBidi(_ v: UInt32) -> Bool {
        (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v) || v == 0x200E || v == 0x200F || v == 0x061C
    }

    /// Classify and normalize one non-ASCII scalar (slow: Foundation normalization).
    static func computeInfo(_ v: UInt32) -> Info {
        let script = Script.of(v)
        var info = Info(kind: kLetter, script: script, confusable: false, compatOrdinary: false, styledLetter: false, out: [])
        if isZeroWidth(v) || (0xFE00...0xFE0F).contains(v) || (0xE0100...0xE01EF).contains(v) {
            info.kind = kZeroWidth; return info
        }
        if isBidi(v) { info.kind = kBidi; return info }
        guard let scalar = Unicode.Scalar(v) else { info.kind = kSeparator; info.out = [0x20]; return info }
        let props = scalar.properties
        switch props.generalCategory {
        case .nonspacingMark, .enclosingMark, .spacingMark:
            info.kind = kDrop; return info
        case .control, .format, .surrogate, .privateUse, .unassigned:
            info.kind = kSeparator; info.out = [0x20]; return info
        default: break
        }
        let s = String(Character(scalar))
        let nfkc = s.precomposedStringWithCompatibilityMapping
        let changed = nfkc != s
        var folded: String
        let stripMarks = script == .latin || script == .greek || script == .cyrillic
            || (changed && nfkc.unicodeScalars.allSatisfy { Script.of($0.value) == .latin || $0.value < 0x80 })
        if stripMarks {
            folded = String(String.UnicodeScalarView(
                s.decomposedStringWithCompatibilityMapping.unicodeScalars.filter { !isMark($0) }))
        } else {
            folded = nfkc
        }
        folded = folded.lowercased()
        if folded == "ß" { folded = "ss" }
        var out: [UInt8] = []
        var anyLetter = false
        for r in folded.unicodeScalars {
            if r.value < 0x80 {
                let c = UInt8(r.value)
                if isWordByte(c) { out.append(c); anyLetter = true } else { out.append(0x20) }
            } else if let a = confusableMap[r.value] {
                out.append(a); anyLetter = true; info.confusable = true
            } else if r.properties.isAlphabetic || r.properties.numericType != nil {
                out += Array(String(r).utf8); anyLetter = true
            } else if isZeroWidth(r.value) || isMark(r) {
                continue
            } else {
                out.append(0x20)
            }
        }
        if out.isEmpty { info.kind = kDrop; return info }
        info.kind = anyLetter ? kLetter : kSeparator
        if !anyLetter { out = [0x20] }
        info.out = out
        if changed {
            // "Styled letters": an NFKC change that yields ASCII letters/digits from a
            // non-Latin-script block (mathematical alphanumerics, enclosed, full-width, ...).
            let asciiAlnum = nfkc.unicodeScalars.allSatisfy { $0.value < 0x80 && isWordByte(UInt8($0.value)) }
            if asciiAlnum && !(0xFB00...0xFB06).contains(v) { info.styledLetter = true } else { info.compatOrdinary = true }
        }
        return info
    }

    static func isMark(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .nonspacingMark, .enclosingMark, .spacingMark: return true
        default: return false
        }
    }

    @inline(__always) static func isWordByte(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || c == 0x40 || c == 0x24
    }

    /// ASCII byte -> normalized byte (lower-case word byte or 0x20).
    static let asciiMap: [UInt8] = (0..<128).map { (b: Int) -> UInt8 in
        let c = UInt8(b)
        if c >= 0x41 && c <= 0x5A { return c + 32 }
        return isWordByte(c) ? c : 0x20
    }

    @inline(__always) static func scalarLength(_ raw: UnsafeBufferPointer<UInt8>, at i: Int) -> Int {
        guard i < raw.count else { return 0 }
        let b = raw[i]
        let n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4
        return min(n, raw.count - i)
    }

    static func scalarBoundary(_ raw: UnsafeBufferPointer<UInt8>, atOrBefore i: Int) -> Int {
        var j = max(0, min(i, raw.count))
        while j > 0 && j < raw.count && raw[j] & 0xC0 == 0x80 { j -= 1 }
        return j
    }

    /// Mutable state of one normalization pass (a struct with mutating methods, so the hot
    /// loop has no captured variables and no dynamic exclusivity checks). The three output
    /// streams are written into one scratch allocation (no per-byte Array append, with its
    /// uniqueness and capacity checks) and copied into `n` once at the end (`finish`).
    struct Builder {
        var n = Normalized()
        var wordStart = -1
        var wordHasLatin = false, wordHasLookalike = false, wordHasConfusable = false
        var pendingZeroWidth = false, pendingZWOrigin = 0
        var lastLetterEnd = -1
        var singleRun = 0, curTokenLen = 0, curTokenAlpha = true, needJoin = false
        /// Output: normalized bytes, their origins and flags; `count` written, room for `capacity`.
        var out: UnsafeMutablePointer<UInt8>
        var org: UnsafeMutablePointer<Int32>
        var flg: UnsafeMutablePointer<UInt8>
        var count = 0, capacity: Int

        init(capacity: Int) {
            self.capacity = max(capacity, 16)
            out = .allocate(capacity: self.capacity)
            org = .allocate(capacity: self.capacity)
            flg = .allocate(capacity: self.capacity)
        }

        /// Make room for `extra` more output bytes.
        @inline(__always) mutating func reserve(_ extra: Int) {
            if count + extra > capacity { grow(count + extra) }
        }

        mutating func grow(_ need: Int) {
            let cap = max(need, capacity * 2)
            let o = UnsafeMutablePointer<UInt8>.allocate(capacity: cap)
            let g = UnsafeMutablePointer<Int32>.allocate(capacity: cap)
            let f = UnsafeMutablePointer<UInt8>.allocate(capacity: cap)
            o.moveInitialize(from: out, count: count); g.moveInitialize(from: org, count: count); f.moveInitialize(from: flg, count: count)
            out.deallocate(); org.deallocate(); flg.deallocate()
            out = o; org = g; flg = f; capacity = cap
        }

        /// Move the output streams into `n` and free the scratch buffers.
        mutating func finish() -> Normalized {
            n.bytes = Array(UnsafeBufferPointer(start: out, count: count))
            n.origin = Array(UnsafeBufferPointer(start: org, count: count))
            n.flags = Array(UnsafeBufferPointer(start: flg, count: count))
            out.deallocate(); org.deallocate(); flg.deallocate()
            count = 0; capacity = 0
            return n
        }

        @inline(__always) mutating func endWord(_ end: Int) {
            if wordStart >= 0 && wordHasLatin && wordHasLookalike {
                if wordHasConfusable { if n.homoglyphWords.count < 32 { n.homoglyphWords.append(wordStart..<end) } }
                else if n.mixedScriptWords.count < 32 { n.mixedScriptWords.append(wordStart..<end) }
            }
            wordStart = -1; wordHasLatin = false; wordHasLookalike = false; wordHasConfusable = false
        }
        /// Room must have been reserved.
        @inline(__always) mutating func emitSeparator(_ at: Int) {
            if count > 0 && out[count - 1] != 0x20 {
                if curTokenLen == 1 && curTokenAlpha { singleRun += 1; if singleRun >= 3 { needJoin = true } } else { singleRun = 0 }
                curTokenLen = 0
                out[count] = 0x20; org[count] = Int32(truncatingIfNeeded: at); flg[count] = 0; count += 1
            }
            pendingZeroWidth = false
        }
        /// Room must have been reserved.
        @inline(__always) mutating func emitWordByte(_ c: UInt8, _ at: Int, _ flag: UInt8) {
            var f = flag
            if pendingZeroWidth { f |= Normalized.Flag.zeroWidth; pendingZeroWidth = false }
            out[count] = c; org[count] = Int32(truncatingIfNeeded: at); flg[count] = f; count += 1
            curTokenLen += 1
            curTokenAlpha = c >= 0x61 && c <= 0x7A
        }
    }

    static func normalize(_ raw: UnsafeBufferPointer<UInt8>) -> Normalized {
        // Room: every input byte yields at most one output byte, except non-ASCII scalars whose
        // folded form is longer than their UTF-8 (checked where they are emitted), so keeping
        // capacity ≥ count + bytes not yet read is enough for the ASCII path.
        let count = raw.count
        var st = Builder(capacity: count + 16)
        let amap = asciiMap, tbl = table
        amap.withUnsafeBufferPointer { amap in
        tbl.meta.withUnsafeBufferPointer { meta in
        tbl.outRef.withUnsafeBufferPointer { outRef in
        tbl.outBytes.withUnsafeBufferPointer { outBytes in
        var i = 0
        while i < count {
            let b = raw[i]
            if b < 0x80 {
                let c = amap[Int(b)]
                if c == 0x20 {
                    st.endWord(i); st.emitSeparator(i)
                } else {
                    if st.wordStart < 0 { st.wordStart = i }
                    if b >= 0x41 { st.wordHasLatin = true }
                    if st.pendingZeroWidth && st.lastLetterEnd == i && st.n.zeroWidthInWords.count < 32 {
                        st.n.zeroWidthInWords.append(st.pendingZWOrigin..<i)
                    }
                    st.emitWordByte(c, i, 0)
                    st.lastLetterEnd = i + 1
                }
                i += 1
                continue
            }
            // Decode one scalar.
            var v: UInt32
            var len: Int
            if b < 0xE0 { v = UInt32(b & 0x1F); len = 2 }
            else if b < 0xF0 { v = UInt32(b & 0x0F); len = 3 }
            else { v = UInt32(b & 0x07); len = 4 }
            if i + len > count { len = count - i }
            for k in 1..<max(len, 1) { v = v << 6 | UInt32(raw[i + k] & 0x3F) }
            let start = i
            i += max(len, 1)

            // Fast paths: CJK ideographs, Hangul syllables (letters, unchanged by NFKC).
            if (0x4E00...0x9FFF).contains(v) || (0xAC00...0xD7A3).contains(v) || (0x3400...0x4DBF).contains(v) {
                st.endWord(start)
                for k in start..<(start + len) { st.emitWordByte(raw[k], start, 0) }
                st.curTokenLen = 2 // never a "single letter" token
                st.n.cjkLetters += 1
                st.lastLetterEnd = i
                continue
            }
            if (0xE0000...0xE007F).contains(v) {
                // Unicode tag characters: invisible, they can spell ASCII text.
                if st.n.tagCharacters.count < 32 { st.n.tagCharacters.append(start..<i) }
                let a = UInt8(v - 0xE0000)
                let c = a < 0x80 ? amap[Int(a)] : 0x20
                if c == 0x20 { st.emitSeparator(start) } else { st.emitWordByte(c, start, Normalized.Flag.tag) }
                continue
            }
            if (0x1F000...0x1FAFF).contains(v) {   // emoji and pictographs: separators
                st.endWord(start); st.emitSeparator(start); continue
            }
            var kind: UInt8, script: Script, conf = false, ordinary = false, styled = false
            var outSlice = UnsafeBufferPointer<UInt8>(start: nil, count: 0)
            var slowOut: [UInt8]? = nil
            let idx: Int? = lowRange.contains(v) ? Int(v - lowRange.lowerBound)
                : highRange.contains(v) ? lowRange.count + Int(v - highRange.lowerBound) : nil
            if let idx {
                let m = meta[idx]
                kind = UInt8(m & 7)
                script = Script(rawValue: UInt8((m >> 3) & 0x1F)) ?? .other
                conf = m & (1 << 8) != 0; ordinary = m & (2 << 8) != 0; styled = m & (4 << 8) != 0
                let ref = outRef[idx]
                let off = Int(ref >> 8), l = Int(ref & 0xFF)
                outSlice = UnsafeBufferPointer(rebasing: outBytes[off..<(off + l)])
            } else {
                let info = computeInfo(v)
                kind = info.kind; script = info.script; conf = info.confusable
                ordinary = info.compatOrdinary; styled = info.styledLetter
                slowOut = info.out
            }
            switch kind {
            case kZeroWidth:
                if st.lastLetterEnd == start {
                    // recorded when the next letter arrives (only "inside a word" counts)
                    if !st.pendingZeroWidth { st.pendingZWOrigin = start }
                    st.pendingZeroWidth = true
                }
                st.lastLetterEnd = i   // a run of invisibles still counts as "inside" the word
                continue
            case kBidi:
                if st.n.bidiControls.count < 32 { st.n.bidiControls.append(start..<i) }
                continue
            case kDrop:
                if st.lastLetterEnd == start { st.lastLetterEnd = i }
                continue
            case kSeparator:
                if ordinary { st.n.nfkcOrdinary += 1 }
                st.endWord(start); st.emitSeparator(start)
                continue
            default: break
            }
            if let slowOut {
                slowOut.withUnsafeBufferPointer {
                    emitLetter(&st, $0, script: script, conf: conf, ordinary: ordinary, styled: styled, start: start, end: i, rawCount: count)
                }
            } else {
                emitLetter(&st, outSlice, script: script, conf: conf, ordinary: ordinary, styled: styled, start: start, end: i, rawCount: count)
            }
        }
        } } } }
        st.endWord(count)
        if st.curTokenLen == 1 && st.curTokenAlpha { st.singleRun += 1; if st.singleRun >= 3 { st.needJoin = true } }
        var n = st.finish()
        if st.needJoin { joinSpacedLetters(&n) }
        return n
    }

    /// A letter scalar at raw[start..<end]: its folded bytes `outSlice` (possibly several, possibly
    /// with separators inside), with the word-level bookkeeping (scripts, styled letters,
    /// zero-width characters inside words).
    @inline(__always)
    static func emitLetter(_ st: inout Builder, _ outSlice: UnsafeBufferPointer<UInt8>, script: Script, conf: Bool,
                           ordinary: Bool, styled: Bool, start: Int, end i: Int, rawCount count: Int) {
        st.reserve(outSlice.count + (count - start))
        if ordinary { st.n.nfkcOrdinary += 1 }
        if styled, st.n.nfkcStyledLetters.count < 64 { st.n.nfkcStyledLetters.append(start..<i) }
        if st.pendingZeroWidth && st.lastLetterEnd == start && st.n.zeroWidthInWords.count < 32 {
            st.n.zeroWidthInWords.append(st.pendingZWOrigin..<start)
        }
        if script == .han || script == .kana || script == .hangul { st.endWord(start); st.n.cjkLetters += 1 }
        else {
            if st.wordStart < 0 { st.wordStart = start }
            if script == .latin || styled { st.wordHasLatin = true }
            if script.isLatinLookalikeScript { st.wordHasLookalike = true; if conf { st.wordHasConfusable = true } }
        }
        var flag: UInt8 = 0
        if conf { flag |= Normalized.Flag.confusable }
        if styled { flag |= Normalized.Flag.styled }
        for c in outSlice {
            if c == 0x20 { st.emitSeparator(start) } else { st.emitWordByte(c, start, flag) }
        }
        if script == .han || script == .kana || script == .hangul { st.curTokenLen = 2 }
        st.lastLetterEnd = i
    }

    /// Join runs of three or more one-byte tokens ("i g n o r e" -> "ignore").
    static func joinSpacedLetters(_ n: inout Normalized) {
        let bytes = n.bytes, origin = n.origin, flags = n.flags
        let count = bytes.count
        // Token starts.
        var tokens: [(Int, Int)] = []   // (start, end)
        var s = -1
        for i in 0..<count {
            if bytes[i] == 0x20 { if s >= 0 { tokens.append((s, i)); s = -1 } } else if s < 0 { s = i }
        }
        if s >= 0 { tokens.append((s, count)) }
        var dropSep = [Bool](repeating: false, count: count)
        var t = 0
        while t < tokens.count {
            var u = t
            while u < tokens.count && tokens[u].1 - tokens[u].0 == 1 && bytes[tokens[u].0] >= 0x61 && bytes[tokens[u].0] <= 0x7A { u += 1 }
            if u - t >= 3 {
                for k in t..<(u - 1) { dropSep[tokens[k].1] = true }
            }
            t = max(u, t + 1)
        }
        var nb: [UInt8] = [], no: [Int32] = [], nf: [UInt8] = []
        nb.reserveCapacity(count); no.reserveCapacity(count); nf.reserveCapacity(count)
        for i in 0..<count where !dropSep[i] {
            nb.append(bytes[i]); no.append(origin[i])
            nf.append(i > 0 && dropSep[i - 1] || (i + 1 < count && dropSep[i + 1]) ? flags[i] | Normalized.Flag.spaced : flags[i])
        }
        n.bytes = nb; n.origin = no; n.flags = nf
    }
}
