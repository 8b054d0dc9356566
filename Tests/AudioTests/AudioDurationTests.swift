import XCTest
@testable import Audio

/// Each container's duration from headers built byte by byte here (no fixture files), plus the
/// tiny files ffmpeg made (Tests/AudioTests/Fixtures) when they are present.
final class AudioDurationTests: XCTestCase {
    // MARK: builders

    func le32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xFF) } }
    func le16(_ v: Int) -> [UInt8] { (0..<2).map { UInt8((v >> (8 * $0)) & 0xFF) } }
    func be32(_ v: Int) -> [UInt8] { (0..<4).reversed().map { UInt8((v >> (8 * $0)) & 0xFF) } }
    func ascii(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// A PCM WAV of `seconds` at `rate` Hz, 16-bit, `channels`, with an extra chunk before `data`.
    func wav(seconds: Double, rate: Int = 8000, channels: Int = 1, dataSize: Int? = nil) -> [UInt8] {
        let blockAlign = channels * 2
        let frames = Int(seconds * Double(rate))
        let data = [UInt8](repeating: 0, count: frames * blockAlign)
        var fmt = le16(1) + le16(channels) + le32(rate) + le32(rate * blockAlign) + le16(blockAlign) + le16(16)
        fmt = ascii("fmt ") + le32(fmt.count) + fmt
        let list = ascii("LIST") + le32(3) + ascii("abc") + [0]  // odd size: padded
        let body = ascii("WAVE") + fmt + list + ascii("data") + le32(dataSize ?? data.count) + data
        return ascii("RIFF") + le32(body.count) + body
    }

    func testWAV() throws {
        XCTAssertEqual(try AudioDuration.read(wav(seconds: 1.5)), .init(container: "wav", durationMs: 1500))
        XCTAssertEqual(try AudioDuration.read(wav(seconds: 0.25, rate: 16000, channels: 2)).durationMs, 250)
        // A streamed WAV leaves the data size open: the rest of the file counts.
        XCTAssertEqual(try AudioDuration.read(wav(seconds: 2, dataSize: 0xFFFF_FFFF)).durationMs, 2000)
    }

    func testWAVWithoutFormatIsRefusedNamingIt() {
        let bytes = ascii("RIFF") + le32(12) + ascii("WAVE") + ascii("data") + le32(0)
        XCTAssertThrowsError(try AudioDuration.read(bytes)) { e in
            XCTAssertTrue("\(e)".contains("'data' chunk comes before its 'fmt '"), "\(e)")
        }
    }

    func testStartedMinutes() {
        XCTAssertEqual(AudioDuration.Info(container: "wav", durationMs: 1).startedMinutes, 1)
        XCTAssertEqual(AudioDuration.Info(container: "wav", durationMs: 60_000).startedMinutes, 1)
        XCTAssertEqual(AudioDuration.Info(container: "wav", durationMs: 60_001).startedMinutes, 2)
    }

    // MARK: FLAC

    func flac(rate: Int, samples: Int64) -> [UInt8] {
        var info = [UInt8](repeating: 0, count: 34)
        info[10] = UInt8((rate >> 12) & 0xFF)
        info[11] = UInt8((rate >> 4) & 0xFF)
        info[12] = UInt8((rate & 0x0F) << 4) | (1 << 1)  // 2 channels (bits 1-3: channels − 1)
        info[13] = 0xF0 | UInt8((samples >> 32) & 0x0F)  // bits per sample, then the samples' top bits
        for k in 0..<4 { info[14 + k] = UInt8((samples >> (8 * (3 - k))) & 0xFF) }
        return ascii("fLaC") + [0x80, 0, 0, 34] + info + [0xFF, 0xF8]
    }

    func testFLAC() throws {
        XCTAssertEqual(try AudioDuration.read(flac(rate: 44_100, samples: 44_100 * 3)), .init(container: "flac", durationMs: 3000))
        XCTAssertEqual(try AudioDuration.read(flac(rate: 96_000, samples: 96_000 * 125 / 1000)).durationMs, 125)
        XCTAssertThrowsError(try AudioDuration.read(flac(rate: 44_100, samples: 0))) { e in
            XCTAssertTrue("\(e)".contains("number of samples"), "\(e)")
        }
    }

    // MARK: OGG

    func oggPage(granule: Int64, packet: [UInt8], headerType: UInt8 = 0) -> [UInt8] {
        var g: [UInt8] = []
        for k in 0..<8 { g.append(UInt8((UInt64(bitPattern: granule) >> (8 * UInt64(k))) & 0xFF)) }
        return ascii("OggS") + [0, headerType] + g + le32(1) + le32(0) + le32(0) + [1, UInt8(packet.count)] + packet
    }

    func testOggVorbis() throws {
        let ident: [UInt8] = [1] + ascii("vorbis") + le32(0) + [2] + le32(22_050) + le32(0) + le32(0) + le32(0) + [0xB8, 1]
        let bytes = oggPage(granule: 0, packet: ident, headerType: 2) + oggPage(granule: 22_050 * 4, packet: [1, 2, 3])
            + oggPage(granule: 22_050 * 7 + 11_025, packet: [4, 5], headerType: 4)
        XCTAssertEqual(try AudioDuration.read(bytes), .init(container: "ogg", durationMs: 7500))
    }

    func testOggOpusSubtractsPreSkip() throws {
        let head: [UInt8] = ascii("OpusHead") + [1, 1] + le16(312) + le32(48_000) + le16(0) + [0]
        let bytes = oggPage(granule: 0, packet: head, headerType: 2) + oggPage(granule: 312 + 48_000 * 2, packet: [9], headerType: 4)
        XCTAssertEqual(try AudioDuration.read(bytes).durationMs, 2000)
    }

    func testOggOtherCodecIsRefused() {
        let bytes = oggPage(granule: 0, packet: ascii("\u{7F}FLAC") + [UInt8](repeating: 0, count: 20), headerType: 2)
        XCTAssertThrowsError(try AudioDuration.read(bytes)) { e in XCTAssertTrue("\(e)".contains("neither Vorbis nor Opus")) }
    }

    // MARK: M4A

    func box(_ type: String, _ body: [UInt8]) -> [UInt8] { be32(8 + body.count) + ascii(type) + body }

    func testM4AMovieHeader() throws {
        let mvhd0 = box("mvhd", [0, 0, 0, 0] + be32(0) + be32(0) + be32(1000) + be32(4321) + [UInt8](repeating: 0, count: 80))
        let bytes = box("ftyp", ascii("M4A ") + be32(0)) + box("mdat", [1, 2, 3, 4]) + box("moov", mvhd0)
        XCTAssertEqual(try AudioDuration.read(bytes), .init(container: "m4a", durationMs: 4321))
        // Version 1: 64-bit times.
        let mvhd1 = box("mvhd", [1, 0, 0, 0] + [UInt8](repeating: 0, count: 16) + be32(44_100) + be32(0) + be32(44_100 * 90) + [UInt8](repeating: 0, count: 80))
        XCTAssertEqual(try AudioDuration.read(box("ftyp", ascii("isom")) + box("moov", mvhd1)).durationMs, 90_000)
    }

    func testM4AFallsBackToMediaHeader() throws {
        let mvhd = box("mvhd", [0, 0, 0, 0] + be32(0) + be32(0) + be32(1000) + be32(0) + [UInt8](repeating: 0, count: 80))
        let mdhd = box("mdhd", [0, 0, 0, 0] + be32(0) + be32(0) + be32(16_000) + be32(16_000 * 5 / 2) + [0, 0, 0, 0])
        let bytes = box("ftyp", ascii("M4A ")) + box("moov", mvhd + box("trak", box("tkhd", [0]) + box("mdia", mdhd)))
        XCTAssertEqual(try AudioDuration.read(bytes).durationMs, 2500)
    }

    func testM4AWithoutMoovIsRefused() {
        XCTAssertThrowsError(try AudioDuration.read(box("ftyp", ascii("M4A ")) + box("mdat", [0]))) { e in
            XCTAssertTrue("\(e)".contains("no 'moov' box"))
        }
    }

    // MARK: MP3

    /// One MPEG-1 layer III frame header: 128 kbit/s, 44.1 kHz, stereo (417 bytes, no padding).
    let mp3Header: [UInt8] = [0xFF, 0xFB, 0x90, 0x00]
    var mp3FrameLength: Int { 144 * 128_000 / 44_100 }

    func mp3Frame(_ payload: [UInt8] = []) -> [UInt8] {
        mp3Header + payload + [UInt8](repeating: 0, count: mp3FrameLength - 4 - payload.count)
    }

    func testMP3CountsFrames() throws {
        // 100 frames × 1152 samples / 44 100 Hz = 2612 ms, after an ID3v2 tag.
        let id3 = ascii("ID3") + [4, 0, 0, 0, 0, 0, 10] + [UInt8](repeating: 0, count: 10)
        let bytes = id3 + (0..<100).flatMap { _ in mp3Frame() }
        XCTAssertEqual(try AudioDuration.read(bytes), .init(container: "mp3", durationMs: 2612))
    }

    func testMP3XingHeaderGivesTheFrameCount() throws {
        // The Xing tag sits after the 32 bytes of stereo MPEG-1 side information; frames flag set.
        let xing = [UInt8](repeating: 0, count: 32) + ascii("Xing") + be32(1) + be32(4_000)
        let bytes = mp3Frame(xing) + (0..<3).flatMap { _ in mp3Frame() }
        XCTAssertEqual(try AudioDuration.read(bytes).durationMs, 4_000 * 1152 * 1000 / 44_100)
    }

    func testMP3VBRIHeader() throws {
        let vbri = [UInt8](repeating: 0, count: 32) + ascii("VBRI") + [0, 1, 0, 0, 0, 0] + be32(0) + be32(500)
        let bytes = mp3Frame(vbri) + mp3Frame()
        XCTAssertEqual(try AudioDuration.read(bytes).durationMs, 500 * 1152 * 1000 / 44_100)
    }

    func testNotAudio() {
        XCTAssertThrowsError(try AudioDuration.read(ascii("hello, this is not audio at all"))) { e in
            XCTAssertTrue("\(e)".contains("not a recognised audio container"), "\(e)")
        }
        XCTAssertThrowsError(try AudioDuration.read([]))
    }

    // MARK: files made by ffmpeg

    /// Tiny files encoded by ffmpeg (1.0 s of a 440 Hz tone; see Fixtures/README.md): the
    /// parsers against real encoders' headers, not only ours.
    func testFilesMadeByFFmpeg() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        let expected: [(String, String)] = [("tone.wav", "wav"), ("tone.mp3", "mp3"), ("tone-cbr.mp3", "mp3"), ("tone.flac", "flac"),
                                            ("tone.ogg", "ogg"), ("tone.opus", "ogg"), ("tone.m4a", "m4a")]
        var found = 0
        for (name, container) in expected {
            guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) else { continue }
            found += 1
            let info = try AudioDuration.read(Array(data))
            XCTAssertEqual(info.container, container, name)
            // Exact within a frame where the header says so (the LAME tag's delay and padding);
            // an MP3 without a header counts whole frames, encoder delay and padding included.
            let bound = name == "tone-cbr.mp3" ? 1200 : 1050
            XCTAssertTrue((950...bound).contains(info.durationMs), "\(name): \(info.durationMs) ms")
        }
        XCTAssertEqual(found, expected.count, "the fixtures are committed with the tests")
    }
}
