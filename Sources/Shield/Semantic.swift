// The semantic layer (issue 15 item 3): a logistic-regression model over hashed byte n-grams
// and word n-grams of the "semantic view" of a prompt, plus one learned weight per rule
// finding (rule id and context-adjusted severity). Trained by scripts/train-shield.sh
// (scripts/train_shield.py) on the public dev set and our own train split; the weights are
// Sources/Shield/Resources/semantic-v1.bin, loaded once at start.
//
// The semantic view is the normalized text (Normalizer: case, accents, NFKC, confusables,
// invisible characters, spaced letters) with leet digits folded inside words that mix
// letters and digits, plus the decoded form of base64/hex/ROT13 payloads (Decoder.swift).
// Views longer than `maxViewBytes` keep their head and tail. The trainer receives the view
// from `llmaas shield features` and only hashes it, so Swift and Python see the same bytes.
//
// Features (each hashed with 32-bit FNV-1a, seeded by a tag byte, bucket = (h ^ h >> 16) & mask):
//   tag 1: every byte n-gram (n = 3, 4, 5) of " " + view + " ", in order of start, then length
//   tag 0x11: every word (space-separated token), tag 0x12: every pair of adjacent words
// and, when the model has a second table, the words of the quotations in the text (Quoted.swift).
// The score is z = bias + scale * Σ q[bucket] / sqrt(max(feature count, norm floor)) + Σ rule weights
// (+ concept weights + the quoted view's own sum), and
// p = 1 / (1 + e^-z). The verdict blocks when p ≥ threshold (the model's, or the config's).

import Foundation

public struct SemanticModel: Sendable {
    public var version: Int
    public var bucketBits: Int
    public var ngrams: [Int]
    public var words: Bool
    public var scale: Double
    public var bias: Double
    /// Weight of a finding, keyed "ruleID:severity" (e.g. "patterns.ignore_instructions:high").
    public var ruleWeights: [String: Double]
    /// Probability threshold chosen by the trainer (out-of-fold, ≤ its FP budget).
    public var threshold: Double
    /// Free-form description from the trainer (rows, date, cross-validated figures).
    public var trainedOn: String
    /// The n-gram sum is divided by sqrt(max(feature count, normFloor)), so that a very short
    /// text ("Say hello") does not get the weight of a few n-grams at full strength.
    public var normFloor: Int
    /// Weights of the concept features (Concepts.swift), keyed "ignore" or "ignore+instr".
    public var conceptWeights: [String: Double]
    /// The same weights as a K×K table over the lexicon's concepts (a*K+a: concept a alone,
    /// a*K+b: pair a < b).
    let conceptTable: [Double]
    let quantized: [Int8]
    let mask: UInt32
    /// The quoted view's weights (Quoted.swift), when the model has them: their own table
    /// (2^quotedBits Int8 after the n-gram table), scale and norm floor.
    public var quotedScale: Double = 0
    public var quotedNormFloor: Int = 1
    let quotedWeights: [Int8]
    let quotedMask: UInt32

    public static let maxViewBytes = 4096
    static let magic: [UInt8] = Array("LLSH".utf8)

    struct Header: Codable {
        var version: Int
        var bucket_bits: Int
        var ngrams: [Int]
        var words: Bool
        var scale: Double
        var bias: Double
        var rules: [String: Double]
        var threshold: Double
        var trained_on: String
        var norm_floor: Int?
        var concepts: [String: Double]?
        var quoted: Quoted?
        struct Quoted: Codable {
            var bucket_bits: Int
            var scale: Double
            var norm_floor: Int
        }
    }

    public enum LoadError: Error, CustomStringConvertible {
        case unreadable(String), badFormat(String)
        public var description: String {
            switch self {
            case .unreadable(let p): "cannot read the semantic model file \(p)"
            case .badFormat(let why): "not a semantic model file: \(why)"
            }
        }
    }

    /// File format: "LLSH", UInt32 LE header length, JSON header, then 2^bucket_bits Int8 weights
    /// (then, when the header has "quoted", 2^quoted.bucket_bits Int8 weights of the quoted view).
    public init(data: Data) throws {
        let b = [UInt8](data)
        guard b.count > 8, Array(b[0..<4]) == Self.magic else { throw LoadError.badFormat("magic") }
        let hl = Int(b[4]) | Int(b[5]) << 8 | Int(b[6]) << 16 | Int(b[7]) << 24
        guard 8 + hl <= b.count else { throw LoadError.badFormat("header length") }
        let h: Header
        do { h = try JSONDecoder().decode(Header.self, from: Data(b[8..<(8 + hl)])) } catch { throw LoadError.badFormat("header: \(error)") }
        let quotedBits = h.quoted?.bucket_bits ?? 0
        guard (10...24).contains(h.bucket_bits), quotedBits == 0 || (10...24).contains(quotedBits),
              b.count == 8 + hl + (1 << h.bucket_bits) + (quotedBits == 0 ? 0 : 1 << quotedBits) else { throw LoadError.badFormat("weights size") }
        guard h.ngrams.allSatisfy({ (1...8).contains($0) }), (0...1).contains(h.threshold) else { throw LoadError.badFormat("ngrams/threshold") }
        version = h.version; bucketBits = h.bucket_bits; ngrams = h.ngrams; words = h.words
        scale = h.scale; bias = h.bias; ruleWeights = h.rules; threshold = h.threshold; trainedOn = h.trained_on
        normFloor = max(h.norm_floor ?? 1, 1)
        conceptWeights = h.concepts ?? [:]
        let lex = ConceptLexicon.shared
        var table = [Double](repeating: 0, count: lex.names.count * lex.names.count)
        for (name, w) in conceptWeights {
            guard let i = lex.index(of: name) else { throw LoadError.badFormat("unknown concept feature \(name)") }
            table[i] = w
        }
        conceptTable = table
        let tableEnd = 8 + hl + (1 << h.bucket_bits)
        quantized = b[(8 + hl)..<tableEnd].map { Int8(bitPattern: $0) }
        mask = UInt32((1 << h.bucket_bits) - 1)
        if let qh = h.quoted {
            quotedWeights = b[tableEnd...].map { Int8(bitPattern: $0) }
            quotedMask = UInt32((1 << qh.bucket_bits) - 1)
            quotedScale = qh.scale
            quotedNormFloor = max(qh.norm_floor, 1)
        } else {
            quotedWeights = []
            quotedMask = 0
        }
    }

    public static func load(path: String) throws -> SemanticModel {
        guard let d = FileManager.default.contents(atPath: path) else { throw LoadError.unreadable(path) }
        return try SemanticModel(data: d)
    }

    /// The model shipped in the repository (nil if the resource is missing or unreadable).
    public static let bundled: SemanticModel? = {
        guard let url = Bundle.module.url(forResource: "semantic-v1", withExtension: "bin", subdirectory: "Resources"),
              let d = try? Data(contentsOf: url) else { return nil }
        return try? SemanticModel(data: d)
    }()

    // MARK: features

    @inline(__always) static func mix(_ h: UInt32) -> UInt32 { h ^ (h >> 16) }
    static let fnvBasis: UInt32 = 2166136261, fnvPrime: UInt32 = 16777619

    /// Calls `sink` with the bucket of every feature of `view` (see the file header).
    @inline(__always)
    static func forEachFeature(_ view: UnsafeBufferPointer<UInt8>, ngrams: [Int], words: Bool, mask: UInt32,
                               _ sink: (UInt32) -> Void) {
        let n = view.count
        // Byte n-grams over " " + view + " " (virtual padding): from each start, one FNV pass
        // emits the n-grams of every wanted length (tag 1, so an n-gram's hash continues the
        // hash of its prefix).
        @inline(__always) func at(_ i: Int) -> UInt8 { i == 0 || i == n + 1 ? 0x20 : view[i - 1] }
        let padded = n + 2
        var want: UInt16 = 0
        var maxG = 0
        for g in ngrams { want |= 1 << UInt16(g); maxG = max(maxG, g) }
        let h0 = (fnvBasis ^ 1) &* fnvPrime
        var i = 0
        while i < padded {
            var h = h0
            let end = min(i + maxG, padded)
            var k = i
            while k < end {
                h = (h ^ UInt32(at(k))) &* fnvPrime
                k += 1
                if want & (1 << UInt16(k - i)) != 0 { sink(mix(h) & mask) }
            }
            i += 1
        }
        guard words else { return }
        forEachWord(view, in: 0..<n, wordTag: 0x11, pairTag: 0x12, mask: mask, sink)
    }

    /// Calls `sink` with the bucket of every space-separated word of `view[range]` (tag
    /// `wordTag`) and of every pair of adjacent words (tag `pairTag`: previous word, " ", word).
    /// Three FNV chains per word: the word, the pair it ends, the prefix of the pair it starts.
    @inline(__always)
    static func forEachWord(_ view: UnsafeBufferPointer<UInt8>, in range: Range<Int>, wordTag: UInt32, pairTag: UInt32,
                            mask: UInt32, _ sink: (UInt32) -> Void) {
        let wordSeed = (fnvBasis ^ wordTag) &* fnvPrime, pairSeed = (fnvBasis ^ pairTag) &* fnvPrime
        var pairPrefix: UInt32 = 0
        var havePrev = false
        var k = range.lowerBound
        let end = range.upperBound
        while k < end {
            while k < end && view[k] == 0x20 { k += 1 }
            guard k < end else { break }
            var hw = wordSeed, hp = pairPrefix, hn = pairSeed
            while k < end && view[k] != 0x20 {
                let x = UInt32(view[k])
                hw = (hw ^ x) &* fnvPrime; hp = (hp ^ x) &* fnvPrime; hn = (hn ^ x) &* fnvPrime
                k += 1
            }
            sink(mix(hw) & mask)
            if havePrev { sink(mix(hp) & mask) }
            pairPrefix = (hn ^ 0x20) &* fnvPrime
            havePrev = true
        }
    }

    /// Buckets of every feature (for the parity test with the trainer).
    public func buckets(view: [UInt8]) -> [UInt32] {
        var out: [UInt32] = []
        view.withUnsafeBufferPointer { v in Self.forEachFeature(v, ngrams: ngrams, words: words, mask: mask) { out.append($0) } }
        return out
    }

    /// The n-gram part of the logit: scale * Σ q / sqrt(count). The same features as
    /// `forEachFeature` (the parity test checks both against the trainer), written out as plain
    /// loops over buffer pointers because this is the hot path: the byte n-grams of the
    /// shipped model's lengths (3, 4, 5) are unrolled, the other lengths take the generic loop;
    /// words and word pairs are hashed in one pass (three independent FNV chains per word: the
    /// word, the pair it ends, the prefix of the pair it starts). The sum is an integer sum, so
    /// the order of the features does not change the result.
    public func ngramLogit(view: UnsafeBufferPointer<UInt8>) -> Double {
        let n = view.count
        var want: UInt16 = 0
        var maxG = 0
        for g in ngrams { want |= 1 << UInt16(g); maxG = max(maxG, g) }
        let m = mask, prime = Self.fnvPrime
        var sum = 0, count = 0
        quantized.withUnsafeBufferPointer { q in
            // Byte n-grams over " " + view + " ".
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: n + 2) { p in
                p[0] = 0x20; p[n + 1] = 0x20
                if n > 0 { UnsafeMutableRawPointer(p.baseAddress! + 1).copyMemory(from: view.baseAddress!, byteCount: n) }
                let total = n + 2
                let h0 = (Self.fnvBasis ^ 1) &* prime
                var i = 0
                if want == 1 << 3 | 1 << 4 | 1 << 5 {
                    var s = 0
                    while i + 5 <= total {
                        let a = (h0 ^ UInt32(p[i])) &* prime
                        let b = (a ^ UInt32(p[i + 1])) &* prime
                        let c = (b ^ UInt32(p[i + 2])) &* prime
                        let d = (c ^ UInt32(p[i + 3])) &* prime
                        let e = (d ^ UInt32(p[i + 4])) &* prime
                        s &+= Int(q[Int((c ^ (c >> 16)) & m)]) &+ Int(q[Int((d ^ (d >> 16)) & m)]) &+ Int(q[Int((e ^ (e >> 16)) & m)])
                        i += 1
                    }
                    sum &+= s; count += 3 * i
                }
                while i < total {
                    var h = h0
                    let end = min(i + maxG, total)
                    var k = i
                    while k < end {
                        h = (h ^ UInt32(p[k])) &* prime
                        k += 1
                        if want & (1 << UInt16(truncatingIfNeeded: k - i)) != 0 {
                            sum &+= Int(q[Int((h ^ (h >> 16)) & m)]); count += 1
                        }
                    }
                    i += 1
                }
            }
            guard words else { return }
            // Words (tag 0x11) and pairs of adjacent words (tag 0x12: previous word, " ", word).
            let wordSeed = (Self.fnvBasis ^ 0x11) &* prime, pairSeed = (Self.fnvBasis ^ 0x12) &* prime
            var pairPrefix: UInt32 = 0   // FNV of tag 0x12, the previous word and " "
            var havePrev = false
            var i = 0
            while i < n {
                while i < n && view[i] == 0x20 { i += 1 }
                guard i < n else { break }
                var hw = wordSeed, hp = pairPrefix, hn = pairSeed
                while i < n {
                    let c = view[i]
                    if c == 0x20 { break }
                    let x = UInt32(c)
                    hw = (hw ^ x) &* prime; hp = (hp ^ x) &* prime; hn = (hn ^ x) &* prime
                    i += 1
                }
                sum &+= Int(q[Int((hw ^ (hw >> 16)) & m)]); count += 1
                if havePrev { sum &+= Int(q[Int((hp ^ (hp >> 16)) & m)]); count += 1 }
                pairPrefix = (hn ^ 0x20) &* prime
                havePrev = true
            }
        }
        return count == 0 ? 0 : scale * Double(sum) / Double(max(count, normFloor)).squareRoot()
    }

    /// Buckets of every feature of a quoted view (for the parity test with the trainer).
    public func quotedBuckets(_ quoted: [UInt8]) -> [UInt32] {
        var out: [UInt32] = []
        quoted.withUnsafeBufferPointer { v in QuotedSpans.forEachFeature(v, mask: quotedMask) { out.append($0) } }
        return out
    }

    /// The quoted view's part of the logit (0 for a model without quoted weights).
    public func quotedLogit(_ quoted: UnsafeBufferPointer<UInt8>) -> Double {
        guard !quotedWeights.isEmpty, !quoted.isEmpty else { return 0 }
        var sum = 0, count = 0
        quotedWeights.withUnsafeBufferPointer { q in
            QuotedSpans.forEachFeature(quoted, mask: quotedMask) { sum &+= Int(q[Int($0)]); count += 1 }
        }
        return count == 0 ? 0 : quotedScale * Double(sum) / Double(max(count, quotedNormFloor)).squareRoot()
    }

    /// The concept part of the logit: the weights of the concepts and close pairs present.
    public func conceptLogit(view: UnsafeBufferPointer<UInt8>) -> Double {
        guard !conceptWeights.isEmpty else { return 0 }
        let lex = ConceptLexicon.shared
        let k = lex.names.count
        var z = 0.0
        lex.forEachFeature(lex.hits(view)) { a, b in z += conceptTable[a * k + b] }
        return z
    }

    public func ruleWeight(_ ruleID: String, _ severity: ShieldSeverity) -> Double {
        ruleWeights["\(ruleID):\(severity)"] ?? 0
    }

    @inline(__always) static func sigmoid(_ z: Double) -> Double { 1 / (1 + exp(-z)) }
}

enum SemanticView {
    /// Leet digits folded to letters inside words that mix ASCII letters and digits/@/$.
    static let leet: [UInt8: UInt8] = [0x30: 0x6F, 0x31: 0x69, 0x33: 0x65, 0x34: 0x61, 0x35: 0x73, 0x37: 0x74,
                                       0x40: 0x61, 0x24: 0x73, 0x38: 0x62, 0x39: 0x67]
    static let leetTable: [UInt8] = (0..<256).map { b in leet[UInt8(b)] ?? UInt8(b) }

    /// A 256-bit filter over the ROT13 and reversed-text markers (`markerSlot` of each), so
    /// that most words skip the exact look-up in the two marker lists.
    static let markerFilter: [UInt64] = {
        var f = [UInt64](repeating: 0, count: 4)
        for v in Decoder.rot13Markers + Decoder.reversedMarkers { let s = markerSlot(v); f[s >> 6] |= 1 << UInt64(s & 63) }
        return f
    }()
    @inline(__always) static func markerSlot(_ v: UInt64) -> Int { Int(truncatingIfNeeded: (v &* 0x9E37_79B9_7F4A_7C15) >> 56) }

    /// Append the semantic view of normalized bytes to `out` (leet folded in mixed words).
    /// Returns how many words are ROT13 markers and how many are reversed-text markers
    /// (Decoder.rot13Markers, Decoder.reversedMarkers). The view is never longer than `nb`
    /// (one byte per byte, runs of spaces collapsed), so it is written in place into room
    /// made once, then trimmed.
    @discardableResult
    static func append(_ nb: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) -> (rot13: Int, reversed: Int) {
        let n = nb.count
        guard n > 0 else { return (0, 0) }
        var rot = 0, rev = 0
        let table = leetTable, filter = markerFilter
        let markers = Decoder.rot13Markers, rmarkers = Decoder.reversedMarkers
        let base = out.count
        out.append(contentsOf: repeatElement(0, count: n))
        var w = base
        table.withUnsafeBufferPointer { table in
        filter.withUnsafeBufferPointer { filter in
        out.withUnsafeMutableBufferPointer { o in
            var i = 0
            while i < n {
                if nb[i] == 0x20 {
                    if w > 0 && o[w - 1] != 0x20 { o[w] = 0x20; w += 1 }
                    i += 1; continue
                }
                let lo = i
                var letters = false, digits = false
                while i < n && nb[i] != 0x20 {
                    let c = nb[i]
                    if c >= 0x61 && c <= 0x7A { letters = true } else if (c >= 0x30 && c <= 0x39) || c == 0x40 || c == 0x24 { digits = true }
                    i += 1
                }
                if letters && digits {
                    for k in lo..<i { o[w] = table[Int(nb[k])]; w += 1 }
                } else {
                    UnsafeMutableRawPointer(o.baseAddress! + w).copyMemory(from: nb.baseAddress! + lo, byteCount: i - lo)
                    w += i - lo
                    if letters && i - lo >= 3 && i - lo <= 8 {
                        var v: UInt64 = 0
                        var ascii = true
                        for k in lo..<i { let c = nb[k]; if c >= 0x80 { ascii = false }; v = v << 8 | UInt64(c) }
                        let slot = markerSlot(v)
                        if ascii && filter[slot >> 6] & (1 << UInt64(slot & 63)) != 0 {
                            if markers.contains(v) { rot += 1 }
                            if rmarkers.contains(v) { rev += 1 }
                        }
                    }
                }
            }
        } } }
        out.removeLast(out.count - w)
        return (rot, rev)
    }

    /// Trim to the model's budget: head and tail, cut on UTF-8 scalar boundaries, no edge spaces.
    static func finish(_ v: [UInt8]) -> [UInt8] {
        var v = v
        while v.last == 0x20 { v.removeLast() }
        var s = 0
        while s < v.count && v[s] == 0x20 { s += 1 }
        if s > 0 { v.removeFirst(s) }
        let cap = SemanticModel.maxViewBytes
        guard v.count > cap else { return v }
        var h = cap / 2
        while h > 0 && v[h] & 0xC0 == 0x80 { h -= 1 }
        var t = v.count - cap / 2
        while t < v.count && v[t] & 0xC0 == 0x80 { t += 1 }
        return Array(v[0..<h]) + [0x20] + Array(v[t...])
    }
}
