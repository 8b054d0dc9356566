// Decoding before matching (issue 15 item 4). Encoded payloads are decoded and their text is
// inspected by the pattern layer and appended to the semantic view:
//   base64  runs of ≥ 16 characters of the base64 alphabet (standard or URL-safe, padding
//           optional) that decode to readable UTF-8 text
//   hex     runs of ≥ 16 hex digits, or ≥ 8 hex pairs separated by spaces, ':' or "\x",
//           that decode to readable UTF-8 text
//   rot13   text whose words are ROT13 forms of common English words ("gur", "lbh",
//           "vtaber" …): the whole normalized text is rotated (SemanticView counts the markers)
// Leetspeak, spaced letters, zero-width and bidi characters, full-width and mathematical
// letters are handled by the Normalizer and SemanticView. Binary payloads (images, hashes,
// keys) do not decode to readable text and are ignored.

enum Decoder {
    struct Payload {
        var span: Range<Int>
        var bytes: [UInt8]
        var kind: String
    }

    static let maxPayloads = 8, maxDecodedBytes = 64 << 10

    /// 0–63 for base64 characters (both alphabets), 0xFF otherwise.
    static let b64: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8).enumerated() { t[Int(c)] = UInt8(i) }
        t[Int(UInt8(ascii: "-"))] = 62; t[Int(UInt8(ascii: "_"))] = 63
        return t
    }()
    static let hexv: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in Array("0123456789abcdef".utf8).enumerated() { t[Int(c)] = UInt8(i) }
        for (i, c) in Array("ABCDEF".utf8).enumerated() { t[Int(c)] = UInt8(10 + i) }
        return t
    }()

    static func find(_ raw: UnsafeBufferPointer<UInt8>) -> [Payload] {
        var out: [Payload] = []
        var total = 0
        let n = raw.count
        let b64t = b64, hext = hexv
        var hexPairs = 0          // two-hex-digit tokens ("69 67", "\x69"): the pair scan runs only if ≥ 8
        var percent = 0           // "%69": URL-encoding is decoded when there are ≥ 8
        var i = 0
        // Runs of base64 characters: the scan only measures a run (one table look-up per byte);
        // the letter/digit/hex classification is done for the few runs long enough to decode.
        b64t.withUnsafeBufferPointer { b64t in
        hext.withUnsafeBufferPointer { hext in
        while i < n && out.count < maxPayloads && total < maxDecodedBytes {
            // Skip the bytes outside the alphabet (counting "%xx" escapes) in a tight loop: the
            // loop's conditions only change when a payload is added.
            while i < n && b64t[Int(raw[i])] == 0xFF {
                if raw[i] == 0x25 && i + 2 < n && hext[Int(raw[i + 1])] != 0xFF && hext[Int(raw[i + 2])] != 0xFF { percent += 1 }
                i += 1
            }
            guard i < n else { break }
            // A run of base64 characters.
            let lo = i
            while i < n && b64t[Int(raw[i])] != 0xFF { i += 1 }
            var hi = i
            while hi < n && raw[hi] == 0x3D && hi - i < 2 { hi += 1 }   // '=' padding
            let len = i - lo
            if len < 16 {
                if (len == 2 && hext[Int(raw[lo])] != 0xFF && hext[Int(raw[lo + 1])] != 0xFF)
                    || (len == 3 && (raw[lo] == 0x78 || raw[lo] == 0x58) && hext[Int(raw[lo + 1])] != 0xFF && hext[Int(raw[lo + 2])] != 0xFF) { hexPairs += 1 }
                i = hi; continue
            }
            var upper = false, lower = false, digit = false, allHex = true
            for k in lo..<i {
                let d = raw[k]
                if d >= 0x41 && d <= 0x5A { upper = true } else if d >= 0x61 && d <= 0x7A { lower = true } else if d >= 0x30 && d <= 0x39 { digit = true }
                if hext[Int(d)] == 0xFF { allHex = false }
            }
            if allHex && len % 2 == 0, let text = decodeHex(UnsafeBufferPointer(rebasing: raw[lo..<i])), readable(text) {
                out.append(Payload(span: lo..<i, bytes: text, kind: "hex")); total += text.count
            } else if upper && lower || (digit && (upper || lower)),
                      let text = decodeBase64(UnsafeBufferPointer(rebasing: raw[lo..<i])), readable(text) {
                out.append(Payload(span: lo..<hi, bytes: text, kind: "base64")); total += text.count
            }
            // (an all-hex run that decodes to nothing readable may start a separated hex
            // sequence: the pair scan below looks at those)
            i = hi
        }
        } }
        if percent >= 8 && out.count < maxPayloads {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(n)
            var k = 0
            while k < n {
                if raw[k] == 0x25 && k + 2 < n && hext[Int(raw[k + 1])] != 0xFF && hext[Int(raw[k + 2])] != 0xFF {
                    bytes.append(hext[Int(raw[k + 1])] << 4 | hext[Int(raw[k + 2])]); k += 3
                } else { bytes.append(raw[k] == 0x2B ? 0x20 : raw[k]); k += 1 }
            }
            if String(validating: bytes, as: UTF8.self) != nil { out.append(Payload(span: 0..<n, bytes: bytes, kind: "url")) }
        }
        // Separated hex pairs: "69 67 6e …", "69:67:6e", "\x69\x67". Ordinary text has many
        // two-letter hex tokens ("de", "be", "42"), so a sequence is first only counted, and
        // decoded when it has enough pairs.
        if out.count < maxPayloads && hexPairs >= 8 {
            /// The sequence of separated pairs starting at `j`: its pair count and end; the
            /// decoded bytes are appended to `bytes` when it is non-nil.
            func pairRun(from j: Int, into bytes: inout [UInt8]?) -> (pairs: Int, end: Int) {
                var k = j, pairs = 0
                while k + 1 < n {
                    var s = k
                    if raw[s] == 0x5C && s + 1 < n && (raw[s + 1] == 0x78 || raw[s + 1] == 0x58) { s += 2 }
                    guard s + 1 < n, hext[Int(raw[s])] != 0xFF, hext[Int(raw[s + 1])] != 0xFF,
                          s + 2 >= n || hext[Int(raw[s + 2])] == 0xFF else { break }
                    bytes?.append(hext[Int(raw[s])] << 4 | hext[Int(raw[s + 1])])
                    pairs += 1
                    k = s + 2
                    if k < n && (raw[k] == 0x20 || raw[k] == 0x3A || raw[k] == 0x2C) { k += 1 }
                    else if !(k + 1 < n && raw[k] == 0x5C) { break }
                }
                return (pairs, k)
            }
            var j = 0
            var none: [UInt8]? = nil
            while j + 2 < n {
                let (pairs, k) = pairRun(from: j, into: &none)
                var decoded: [UInt8]? = []
                if pairs >= 8 { _ = pairRun(from: j, into: &decoded) }
                if pairs >= 8, let bytes = decoded, readable(bytes) {
                    out.append(Payload(span: j..<k, bytes: bytes, kind: "hex"))
                    if out.count >= maxPayloads { break }
                    j = k
                } else {
                    // skip to the next separator
                    j = max(j + 1, k)
                    while j < n && raw[j] != 0x20 && raw[j] != 0x5C && raw[j] != 0x0A { j += 1 }
                    j += raw.count > j && raw[j] != 0x5C ? 1 : 0
                }
            }
        }
        return out
    }

    static func decodeBase64(_ s: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(s.count * 3 / 4)
        var acc: UInt32 = 0, bits = 0
        let t = b64
        for c in s {
            let v = t[Int(c)]
            guard v != 0xFF else { return nil }
            acc = acc << 6 | UInt32(v); bits += 6
            if bits >= 8 { bits -= 8; out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits))) }
        }
        return out
    }

    static func decodeHex(_ s: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard s.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(s.count / 2)
        var k = 0
        while k < s.count { out.append(hexv[Int(s[k])] << 4 | hexv[Int(s[k + 1])]); k += 2 }
        return out
    }

    /// Valid UTF-8, no control bytes except whitespace, mostly letters and spaces, some spaces.
    static func readable(_ b: [UInt8]) -> Bool {
        guard b.count >= 8 else { return false }
        var letters = 0, spaces = 0, bad = 0, scalars = 0
        var it = b.makeIterator()
        var dec = UTF8()
        loop: while true {
            switch dec.decode(&it) {
            case .scalarValue(let u):
                scalars += 1
                if u == " " || u == "\n" || u == "\t" || u == "\r" { spaces += 1 }
                else if u.value < 0x20 || u.value == 0x7F || (0x80..<0xA0).contains(u.value) { bad += 1 }
                else if u.properties.isAlphabetic { letters += 1 }
            case .emptyInput: break loop
            case .error: return false
            }
        }
        guard scalars > 0, bad == 0 else { return false }
        let cjk = letters > 0 && spaces == 0 && b.contains(where: { $0 >= 0xE0 })
        return Double(letters + spaces) >= 0.75 * Double(scalars) && (spaces > 0 || cjk)
    }

    // ROT13 markers: ROT13 forms of frequent English words and attack words.
    static let rot13Markers: [UInt64] = ["gur", "lbh", "lbhe", "naq", "vtaber", "cerivbhf", "flfgrz", "cebzcg", "nyy",
                                          "sbetrg", "cnffjbeq", "erirny", "ehyrf", "jvgu", "guvf", "gung", "abj", "ner"].map(pack)

    // Reversed text: the same idea with reversed words ("erongi", "snoitcurtsni" is too long,
    // so its first 8 letters are not used; "suoiverp", "eht", "uoy", "ruoy", "dna", "lla").
    static let reversedMarkers: [UInt64] = ["erongi", "suoiverp", "eht", "uoy", "ruoy", "dna", "lla", "tegrof", "laever",
                                            "tpmorp", "metsys", "selur", "drowssap", "siht", "taht", "won", "era"].map(pack)

    static func pack(_ s: String) -> UInt64 {
        var v: UInt64 = 0
        for c in s.utf8.prefix(8) { v = v << 8 | UInt64(c) }
        return v
    }

    /// The words of a normalized text in reverse order, each reversed ("snoitcurtsni erongi" -> "ignore instructions").
    static func reversed(_ b: [UInt8]) -> [UInt8] {
        var out = b
        out.reverse()
        return out
    }

    static func rot13(_ b: [UInt8]) -> [UInt8] {
        b.map { c in
            if c >= 0x61 && c <= 0x7A { return (c - 0x61 + 13) % 26 + 0x61 }
            if c >= 0x41 && c <= 0x5A { return (c - 0x41 + 13) % 26 + 0x41 }
            return c
        }
    }
}
