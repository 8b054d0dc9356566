// Quoted text as its own evidence (issue 15, stop 26). The words of a prompt that sit between
// quotation marks — a phishing mail pasted to ask about it, an attack quoted in a security
// question, a sentence to translate — get a second set of features next to the whole text's:
// the same words again, hashed with their own tags into their own weight table. The model can
// then learn that "ignore your instructions" between quotation marks, in a prompt that asks what
// it is, weighs less (or, for an injected line inside a pasted document, more) than the same
// words addressed to it, phrase by phrase, which one "the text quotes something" feature could
// not (measured at stop 25 and not adopted).
//
// A quotation is the text between an opening mark and its closing mark, 6 to 400 scalars long,
// without a line feed; the first closing mark after the sixth scalar ends it (the pairs:
// "…", '…', “…”, „…“, ‚…‘, ‘…’, ”…”, «…», 「…」, 『…』). Its words are the normalized bytes
// (Normalizer) whose original offsets fall inside the quotation, with leet folded as in the
// semantic view; quotations are joined by a line feed in the "quoted view".
//
// Features of the quoted view, hashed like the semantic view's (FNV-1a seeded by a tag byte,
// bucket = (h ^ h >> 16) & mask), within one quotation at a time:
//   tag 0x21: every word, tag 0x22: every pair of adjacent words ("previous word" + " " + word),
//   tag 0x23: every pair of consecutive kana/CJK scalars (U+3040–30FF, U+4E00–9FFF; other
//   scalars in between are skipped), their UTF-8 bytes concatenated.
// Logit: scale * Σ q[bucket] / sqrt(max(feature count, norm floor)).

enum QuotedSpans {
    /// The closing mark of an opening mark (Unicode scalar values), or 0.
    @inline(__always) static func closing(_ c: UInt32) -> UInt32 {
        switch c {
        case 0x22: 0x22
        case 0x27: 0x27
        case 0x201C: 0x201D   // “ ”
        case 0x201E: 0x201C   // „ “
        case 0x201D: 0x201D   // ” ”
        case 0x2018: 0x2019   // ‘ ’
        case 0x201A: 0x2018   // ‚ ‘
        case 0xAB: 0xBB       // « »
        case 0x300C: 0x300D   // 「 」
        case 0x300E: 0x300F   // 『 』
        default: 0
        }
    }

    /// The scalar at `i` of valid UTF-8 and its length in bytes.
    @inline(__always) static func scalar(_ raw: UnsafeBufferPointer<UInt8>, _ i: Int) -> (UInt32, Int) {
        let b = raw[i]
        if b < 0x80 { return (UInt32(b), 1) }
        let n = raw.count
        if b < 0xE0, i + 1 < n { return (UInt32(b & 0x1F) << 6 | UInt32(raw[i + 1] & 0x3F), 2) }
        if b < 0xF0, i + 2 < n { return (UInt32(b & 0x0F) << 12 | UInt32(raw[i + 1] & 0x3F) << 6 | UInt32(raw[i + 2] & 0x3F), 3) }
        if i + 3 < n {
            return (UInt32(b & 0x07) << 18 | UInt32(raw[i + 1] & 0x3F) << 12 | UInt32(raw[i + 2] & 0x3F) << 6 | UInt32(raw[i + 3] & 0x3F), 4)
        }
        return (UInt32(b), 1)
    }

    static let minScalars = 6, maxScalars = 400

    /// Byte ranges of the quotations' contents (without the marks), in order, not overlapping.
    static func find(_ raw: UnsafeBufferPointer<UInt8>) -> [Range<Int>] {
        var out: [Range<Int>] = []
        let n = raw.count
        var i = 0
        while i < n {
            let b = raw[i]
            // Every opening mark starts with 0x22, 0x27, 0xC2 (« U+00AB), 0xE2 (U+20xx) or 0xE3 (U+300x).
            guard b == 0x22 || b == 0x27 || b == 0xC2 || b == 0xE2 || b == 0xE3 else { i += 1; continue }
            let (c, len) = scalar(raw, i)
            let close = closing(c)
            guard close != 0 else { i += len; continue }
            var j = i + len, count = 0, found = -1, closeLen = 0
            while j < n && count <= maxScalars {
                let (d, dl) = scalar(raw, j)
                if d == 0x0A { break }
                if count >= minScalars && d == close { found = j; closeLen = dl; break }
                j += dl; count += 1
            }
            if found >= 0 {
                out.append((i + len)..<found)
                i = found + closeLen
            } else {
                i += len
            }
        }
        return out
    }

    /// Is `span` inside one of `spans` (sorted, not overlapping)?
    static func contains(_ spans: [Range<Int>], _ span: Range<Int>) -> Bool {
        for s in spans where s.lowerBound <= span.lowerBound {
            if span.upperBound <= s.upperBound { return true }
        }
        return false
    }

    /// The quoted view: for each quotation (`find`), the normalized bytes that come from it (leet folded
    /// as in the semantic view), quotations separated by a line feed. Empty when nothing is quoted.
    static func view(spans: [Range<Int>], norm: Normalized) -> [UInt8] {
        guard !spans.isEmpty else { return [] }
        var out: [UInt8] = []
        var piece: [UInt8] = []
        var k = 0
        let count = norm.bytes.count
        norm.bytes.withUnsafeBufferPointer { nb in
        norm.origin.withUnsafeBufferPointer { org in
            for s in spans {
                while k < count && Int(org[k]) < s.lowerBound { k += 1 }
                let lo = k
                while k < count && Int(org[k]) < s.upperBound { k += 1 }
                guard k > lo else { continue }
                piece.removeAll(keepingCapacity: true)
                SemanticView.append(UnsafeBufferPointer(rebasing: nb[lo..<k]), to: &piece)
                while piece.last == 0x20 { piece.removeLast() }
                var start = 0
                while start < piece.count && piece[start] == 0x20 { start += 1 }
                guard start < piece.count else { continue }
                if !out.isEmpty { out.append(0x0A) }
                out.append(contentsOf: piece[start...])
            }
        } }
        return out
    }

    /// Calls `sink` with the bucket of every feature of a quoted view (see the file header).
    @inline(__always)
    static func forEachFeature(_ v: UnsafeBufferPointer<UInt8>, mask: UInt32, _ sink: (UInt32) -> Void) {
        let prime = SemanticModel.fnvPrime
        let cjkSeed = (SemanticModel.fnvBasis ^ 0x23) &* prime
        let n = v.count
        var i = 0
        while i < n {
            // One quotation: [i, end).
            var end = i
            while end < n && v[end] != 0x0A { end += 1 }
            SemanticModel.forEachWord(v, in: i..<end, wordTag: 0x21, pairTag: 0x22, mask: mask, sink)
            // Pairs of consecutive kana/CJK scalars.
            var prevStart = -1, prevLen = 0
            var k = i
            while k < end {
                let b = v[k]
                guard b >= 0xE3 && b <= 0xE9 else { k += Normalizer.scalarLength(v, at: k); continue }
                let (c, len) = scalar(v, k)
                if (0x3040...0x30FF).contains(c) || (0x4E00...0x9FFF).contains(c) {
                    if prevStart >= 0 {
                        var h = cjkSeed
                        for t in prevStart..<(prevStart + prevLen) { h = (h ^ UInt32(v[t])) &* prime }
                        for t in k..<(k + len) { h = (h ^ UInt32(v[t])) &* prime }
                        sink(SemanticModel.mix(h) & mask)
                    }
                    prevStart = k; prevLen = len
                }
                k += len
            }
            i = end + 1
        }
    }
}
