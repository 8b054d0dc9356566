import Testing
@testable import OpenAIWire

/// The parser's UTF-8 check (``JSONByteParser/string(validatingUTF8:)``) answers what
/// `String(validating:as:)` answers, for valid text and for every kind of invalid sequence.
@Suite struct UTF8ValidationTests {
    static let cases: [[UInt8]] = [
        [], Array("plain ascii".utf8), Array("é😀中文 ünïcödé".utf8), [0xEF, 0xBF, 0xBD],  // U+FFFD itself is valid
        [0xFF], [0x80], [0xC3], [0x61, 0xC3], [0xE2, 0x82], [0xF0, 0x9F, 0x98],  // stray and cut sequences
        [0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xF0, 0x80, 0x80, 0xAF],  // overlong
        [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF],  // UTF-16 surrogates encoded
        [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80],  // past U+10FFFF
        [0x61, 0x00, 0x62], Array("ok".utf8) + [0xFE] + Array("ok".utf8),
    ]

    @Test(arguments: cases) func sameAnswerAsStringValidating(_ bytes: [UInt8]) {
        let expected = String(validating: bytes, as: UTF8.self)
        let got = bytes.withUnsafeBufferPointer(JSONByteParser.string(validatingUTF8:))
        #expect(got == expected)
    }

    @Test func invalidUTF8InAStringIsRefused() throws {
        for body: [UInt8] in [[0x22, 0xFF, 0x22], [0x22, 0x5C, 0x6E, 0xC3, 0x22]] {  // "\xFF", "\n\xC3" (escape path)
            #expect(throws: JSONParseError.self) { try JSONValue.parse(body) }
        }
        #expect(try JSONValue.parse([0x22] + Array("é\\n".utf8) + [0x22]) == .string("é\n"))
    }
}
