/// Reads an audio file's duration from its container's header, without decoding the audio:
/// WAV (fmt and data chunks), MP3 (Xing/Info or VBRI header, else counting frames), FLAC
/// (STREAMINFO), OGG (the last page's granule position; Vorbis or Opus), M4A/MP4 (mvhd, else
/// mdhd). Plain byte parsing, no Foundation. The gateway bills transcriptions by this duration.
public enum AudioDuration {
    public struct Info: Sendable, Equatable {
        /// `wav`, `mp3`, `flac`, `ogg` or `m4a`.
        public var container: String
        /// The duration, in milliseconds (rounded down).
        public var durationMs: Int

        public init(container: String, durationMs: Int) { self.container = container; self.durationMs = durationMs }

        /// Started minutes: what a transcription is billed by (at least one).
        public var startedMinutes: Int { max(1, (durationMs + 59_999) / 60_000) }
    }

    /// Why a file's duration could not be read; `description` names the problem.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
        init(_ d: String) { description = d }
    }

    /// The container and duration of `bytes`; throws naming what is wrong.
    public static func read(_ bytes: [UInt8]) throws(Failure) -> Info {
        let r = Reader(bytes)
        let info: Info
        if r.ascii(0, 4) == "RIFF" && r.ascii(8, 4) == "WAVE" {
            info = Info(container: "wav", durationMs: try wav(r))
        } else if r.ascii(0, 4) == "fLaC" {
            info = Info(container: "flac", durationMs: try flac(r))
        } else if r.ascii(0, 4) == "OggS" {
            info = Info(container: "ogg", durationMs: try ogg(r))
        } else if r.ascii(4, 4) == "ftyp" {
            info = Info(container: "m4a", durationMs: try mp4(r))
        } else if r.ascii(0, 3) == "ID3" || (r.count >= 2 && r[0] == 0xFF && r[1] & 0xE0 == 0xE0) {
            info = Info(container: "mp3", durationMs: try mp3(r))
        } else {
            throw Failure("the file is not a recognised audio container (WAV, MP3, FLAC, OGG or M4A)")
        }
        if info.durationMs <= 0 { throw Failure("the \(info.container.uppercased()) header gives no duration (zero length)") }
        return info
    }

    // MARK: WAV

    static func wav(_ r: Reader) throws(Failure) -> Int {
        var at = 12
        var byteRate: Int?
        while at + 8 <= r.count {
            let id = r.ascii(at, 4)
            let size = r.u32le(at + 4)
            let body = at + 8
            if id == "fmt " {
                guard size >= 16, body + 16 <= r.count else { throw Failure("the WAV 'fmt ' chunk is too short") }
                byteRate = r.u32le(body + 8)
                guard let b = byteRate, b > 0 else { throw Failure("the WAV 'fmt ' chunk gives a byte rate of 0") }
            } else if id == "data" {
                guard let byteRate else { throw Failure("the WAV 'data' chunk comes before its 'fmt ' chunk") }
                // A streamed WAV may leave the size open (0 or 0xFFFFFFFF): the rest of the file.
                let available = r.count - body
                let length = (size == 0 || size == 0xFFFF_FFFF || size > available) ? available : size
                return Int(Int64(length) * 1000 / Int64(byteRate))
            }
            at = body + size + (size & 1)  // chunks are padded to an even size
        }
        throw Failure(byteRate == nil ? "the WAV file has no 'fmt ' chunk" : "the WAV file has no 'data' chunk")
    }

    // MARK: FLAC

    static func flac(_ r: Reader) throws(Failure) -> Int {
        // The first metadata block must be STREAMINFO (type 0, 34 bytes).
        guard r.count >= 8 + 34, r[4] & 0x7F == 0 else { throw Failure("the FLAC file has no STREAMINFO block") }
        let s = 8
        let rate = (Int(r[s + 10]) << 12) | (Int(r[s + 11]) << 4) | (Int(r[s + 12]) >> 4)
        let total = (Int64(r[s + 13] & 0x0F) << 32) | Int64(r.u32be(s + 14))
        guard rate > 0 else { throw Failure("the FLAC STREAMINFO gives a sample rate of 0") }
        guard total > 0 else { throw Failure("the FLAC STREAMINFO does not give the number of samples") }
        return Int(total * 1000 / Int64(rate))
    }

    // MARK: OGG

    static func ogg(_ r: Reader) throws(Failure) -> Int {
        guard r.count >= 28 else { throw Failure("the OGG file is shorter than one page header") }
        let segments = Int(r[26])
        let packet = 27 + segments
        guard packet + 19 <= r.count else { throw Failure("the OGG first page holds no codec header") }
        var rate: Int64, preSkip: Int64 = 0
        if r[packet] == 1 && r.ascii(packet + 1, 6) == "vorbis" {
            rate = Int64(r.u32le(packet + 12))
        } else if r.ascii(packet, 8) == "OpusHead" {
            rate = 48_000  // Opus granule positions always count 48 kHz samples
            preSkip = Int64(r.u16le(packet + 10))
        } else {
            throw Failure("the OGG stream is neither Vorbis nor Opus")
        }
        guard rate > 0 else { throw Failure("the OGG Vorbis header gives a sample rate of 0") }
        // The last page's granule position is the stream's length in samples.
        var at = r.count - 27
        while at >= 0 {
            if r[at] == 0x4F && r.ascii(at, 4) == "OggS" {
                let granule = r.i64le(at + 6)
                if granule > 0 {
                    let samples = max(0, granule - preSkip)
                    return Int(samples * 1000 / rate)
                }
            }
            at -= 1
        }
        throw Failure("no OGG page gives a granule position")
    }

    // MARK: MP4 / M4A

    static func mp4(_ r: Reader) throws(Failure) -> Int {
        guard let moov = box("moov", in: r, from: 0, to: r.count) else { throw Failure("the M4A file has no 'moov' box") }
        if let mvhd = box("mvhd", in: r, from: moov.body, to: moov.end), let d = timed(r, mvhd), d > 0 { return d }
        // No movie duration: the first track's media header.
        var at = moov.body
        while let trak = box("trak", in: r, from: at, to: moov.end) {
            if let mdia = box("mdia", in: r, from: trak.body, to: trak.end), let mdhd = box("mdhd", in: r, from: mdia.body, to: mdia.end),
               let d = timed(r, mdhd), d > 0 { return d }
            at = trak.end
        }
        throw Failure("the M4A file's mvhd and mdhd boxes give no duration")
    }

    /// The duration of an mvhd/mdhd box: version 0 (32-bit times) or 1 (64-bit).
    static func timed(_ r: Reader, _ b: (body: Int, end: Int)) -> Int? {
        let v = r[b.body]
        let (scaleAt, durationAt, wide) = v == 1 ? (b.body + 4 + 16, b.body + 4 + 20, true) : (b.body + 4 + 8, b.body + 4 + 12, false)
        guard durationAt + (wide ? 8 : 4) <= b.end else { return nil }
        let scale = Int64(r.u32be(scaleAt))
        let duration = wide ? (Int64(r.u32be(durationAt)) << 32) | Int64(r.u32be(durationAt + 4)) : Int64(r.u32be(durationAt))
        guard scale > 0, duration >= 0, duration < Int64.max / 1000 else { return nil }
        return Int(duration * 1000 / scale)
    }

    /// The first box of `type` among the boxes in `[from, to)`: its body and end.
    static func box(_ type: String, in r: Reader, from: Int, to: Int) -> (body: Int, end: Int)? {
        var at = from
        while at + 8 <= to {
            var size = r.u32be(at)
            var header = 8
            if size == 1 {
                guard at + 16 <= to else { return nil }
                size = Int((Int64(r.u32be(at + 8)) << 32) | Int64(r.u32be(at + 12)))
                header = 16
            } else if size == 0 {
                size = to - at
            }
            guard size >= header, at + size <= to else { return nil }
            if r.ascii(at + 4, 4) == type { return (at + header, at + size) }
            at += size
        }
        return nil
    }

    // MARK: MP3

    struct FrameHeader {
        var length: Int
        var samples: Int
        var rate: Int
        var mpeg1: Bool
        var mono: Bool
    }

    static let bitrates: [[Int]] = [  // kbit/s by [version-layer row][index]
        [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],  // MPEG1 layer I
        [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],     // MPEG1 layer II
        [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],      // MPEG1 layer III
        [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],     // MPEG2/2.5 layer I
        [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],          // MPEG2/2.5 layers II, III
    ]

    static func frame(_ r: Reader, at i: Int) -> FrameHeader? {
        guard i + 4 <= r.count, r[i] == 0xFF, r[i + 1] & 0xE0 == 0xE0 else { return nil }
        let version = (r[i + 1] >> 3) & 3   // 0: 2.5, 2: 2, 3: 1
        let layer = (r[i + 1] >> 1) & 3     // 1: III, 2: II, 3: I
        let bitrateIndex = Int(r[i + 2] >> 4)
        let rateIndex = Int((r[i + 2] >> 2) & 3)
        let padding = Int((r[i + 2] >> 1) & 1)
        let mono = (r[i + 3] >> 6) == 3
        guard version != 1, layer != 0, bitrateIndex != 0, bitrateIndex != 15, rateIndex != 3 else { return nil }
        let mpeg1 = version == 3
        let rate = [44_100, 48_000, 32_000][rateIndex] / (mpeg1 ? 1 : version == 2 ? 2 : 4)
        let row = mpeg1 ? Int(3 - layer) : (layer == 3 ? 3 : 4)
        let bitrate = bitrates[row][bitrateIndex] * 1000
        let samples: Int
        let length: Int
        switch layer {
        case 3:  // layer I
            samples = 384
            length = (12 * bitrate / rate + padding) * 4
        case 2:  // layer II
            samples = 1152
            length = 144 * bitrate / rate + padding
        default: // layer III
            samples = mpeg1 ? 1152 : 576
            length = (mpeg1 ? 144 : 72) * bitrate / rate + padding
        }
        guard length >= 4 else { return nil }
        return FrameHeader(length: length, samples: samples, rate: rate, mpeg1: mpeg1, mono: mono)
    }

    static func mp3(_ r: Reader) throws(Failure) -> Int {
        var at = 0
        // ID3v2 tags (there may be several) before the audio.
        while r.ascii(at, 3) == "ID3", at + 10 <= r.count {
            let size = (Int(r[at + 6] & 0x7F) << 21) | (Int(r[at + 7] & 0x7F) << 14) | (Int(r[at + 8] & 0x7F) << 7) | Int(r[at + 9] & 0x7F)
            at += 10 + size + (r[at + 5] & 0x10 != 0 ? 10 : 0)
        }
        // The first frame: a sync whose next frame also syncs (or that ends the file).
        var first: FrameHeader?
        while at + 4 <= r.count {
            if let f = frame(r, at: at), at + f.length >= r.count || frame(r, at: at + f.length) != nil {
                first = f
                break
            }
            at += 1
        }
        guard let f = first else { throw Failure("no MPEG audio frame found in the MP3 file") }
        // Xing/Info (after the side information) or VBRI (at 32 after the header): the frame count.
        let side = f.mpeg1 ? (f.mono ? 17 : 32) : (f.mono ? 9 : 17)
        let xing = at + 4 + side
        let tag = r.ascii(xing, 4)
        if tag == "Xing" || tag == "Info", xing + 12 <= r.count, r.u32be(xing + 4) & 1 != 0 {
            let frames = r.u32be(xing + 8)
            if frames > 0 {
                // A LAME tag after the Xing fields gives the encoder delay and padding (gapless).
                let flags = r.u32be(xing + 4)
                var lame = xing + 12
                if flags & 2 != 0 { lame += 4 }
                if flags & 4 != 0 { lame += 100 }
                if flags & 8 != 0 { lame += 4 }
                var trimmed: Int64 = 0
                if ["LAME", "Lavf", "Lavc", "GOGO"].contains(r.ascii(lame, 4)), lame + 24 <= r.count {
                    let delay = (Int(r[lame + 21]) << 4) | Int(r[lame + 22] >> 4)
                    let padding = (Int(r[lame + 22] & 0x0F) << 8) | Int(r[lame + 23])
                    trimmed = Int64(delay + padding)
                }
                let samples = max(0, Int64(frames) * Int64(f.samples) - trimmed)
                return Int(samples * 1000 / Int64(f.rate))
            }
        }
        if r.ascii(at + 36, 4) == "VBRI", at + 36 + 18 <= r.count {
            let frames = r.u32be(at + 36 + 14)
            if frames > 0 { return Int(Int64(frames) * Int64(f.samples) * 1000 / Int64(f.rate)) }
        }
        // No header: count the frames (their sizes may vary: VBR without a header).
        var samples: Int64 = 0
        var rate = f.rate
        while let h = frame(r, at: at) {
            samples += Int64(h.samples)
            rate = h.rate
            at += h.length
        }
        return Int(samples * 1000 / Int64(rate))
    }
}

/// Bounds-checked reads (out of range reads as 0).
struct Reader {
    let bytes: [UInt8]
    init(_ b: [UInt8]) { bytes = b }
    var count: Int { bytes.count }
    subscript(_ i: Int) -> UInt8 { i >= 0 && i < bytes.count ? bytes[i] : 0 }
    func ascii(_ at: Int, _ n: Int) -> String {
        guard at >= 0, at + n <= bytes.count else { return "" }
        return String(decoding: bytes[at..<(at + n)], as: UTF8.self)
    }
    func u16le(_ i: Int) -> Int { Int(self[i]) | Int(self[i + 1]) << 8 }
    func u32le(_ i: Int) -> Int { Int(self[i]) | Int(self[i + 1]) << 8 | Int(self[i + 2]) << 16 | Int(self[i + 3]) << 24 }
    func u32be(_ i: Int) -> Int { Int(self[i]) << 24 | Int(self[i + 1]) << 16 | Int(self[i + 2]) << 8 | Int(self[i + 3]) }
    func i64le(_ i: Int) -> Int64 {
        var v: UInt64 = 0
        for k in (0..<8).reversed() { v = v << 8 | UInt64(self[i + k]) }
        return Int64(bitPattern: v)
    }
}
