import Testing
import TestSupport
@testable import OpenAIWire

/// The parsers that read request and engine bytes never trap, whatever they are given (issue 10).
/// Deterministic pseudo-random inputs with a fixed seed; the counts keep the suite fast.
@Suite struct FuzzTests {
    static let seeds: [String] = [
        #"{"model":"m","messages":[{"role":"user","content":"hi \u00e9 \ud83d\ude00"}],"max_tokens":5,"stream":true}"#,
        #"{"model":"m","input":["a","b"],"encoding_format":"base64"}"#,
        #"{"model":"m","prompt":[1,2,3],"temperature":0.5,"logit_bias":{"12":-100}}"#,
        #"[1,-2.5e10,true,false,null,"\\\"",{"a":{"b":[[]]}}]"#,
    ]

    /// Mutations of valid requests (bytes flipped, cut, repeated, escapes injected), then whole
    /// random byte strings: parsing and request validation return or throw, never trap.
    @Test func jsonAndRequestsNeverTrap() {
        var rng = SeededRandom(state: 10)
        let interesting: [[UInt8]] = ["\\u", "\\ud800", "\\udc00", "\"", "{", "}", "[", "]", ",", ":", "1e999", "-", "\u{0}", "\u{FF}"].map { Array($0.utf8) }
        for i in 0..<60_000 {
            var bytes = Array(Self.seeds[i % Self.seeds.count].utf8)
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let at = Int.random(in: 0...bytes.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: if at < bytes.count { bytes[at] = UInt8.random(in: 0...255, using: &rng) }
                case 1: bytes = Array(bytes[..<at])
                case 2: bytes.insert(contentsOf: interesting.randomElement(using: &rng) ?? [], at: at)
                default: if at < bytes.count { bytes.remove(at: at) }
                }
            }
            if let value = try? JSONValue.parse(bytes) {
                #expect((try? JSONValue.parse(value.serialized())) == value)
                for e in Endpoint.all { _ = try? InferenceRequest(endpoint: e, body: value) }
            }
        }
        for _ in 0..<20_000 {
            let bytes = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = try? JSONValue.parse(bytes)
        }
    }

    @Test func deepNestingIsRefusedNotOverflowed() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(deep) }
    }

    @Test(arguments: [#"{"a":1,"a":2}"#, #"{"model":"x","messages":[],"model":"y"}"#, #"{"a":{"b":1,"b":1}}"#])
    func duplicateKeysAreRefused(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    @Test func duplicateKeysInLargeObjects() {
        let members = (0..<40).map { "\"k\($0)\":\($0)" } + ["\"k7\":0"]
        #expect(throws: JSONParseError.self) { try JSONValue.parse("{" + members.joined(separator: ",") + "}") }
        let distinct = (0..<40).map { "\"k\($0)\":\($0)" }
        #expect((try? JSONValue.parse("{" + distinct.joined(separator: ",") + "}")) != nil)
    }

    @Test func sseParserNeverTraps() {
        var rng = SeededRandom(state: 99)
        let pieces: [[UInt8]] = ["data: ", "{\"a\":1}", "\n", "\r\n", "\r", "\n\n", ":comment", "event: x", "data:[DONE]", "\u{0}"].map { Array($0.utf8) }
        for _ in 0..<20_000 {
            var parser = SSEParser()
            for _ in 0..<Int.random(in: 1...12, using: &rng) {
                if Bool.random(using: &rng) {
                    _ = parser.feed(pieces.randomElement(using: &rng) ?? [])
                } else {
                    _ = parser.feed((0..<Int.random(in: 0...16, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
                }
            }
            _ = parser.finish()
        }
    }

    @Test func requestLimitsNameTheLimit() throws {
        var limits = RequestLimits()
        limits.maxEmbeddingInputs = 3
        limits.maxMessages = 2
        limits.maxInputCharacters = 10
        func error(_ e: Endpoint, _ text: String) -> APIError? {
            do { _ = try InferenceRequest(endpoint: e, bytes: Array(text.utf8), limits: limits); return nil } catch { return error }
        }
        #expect(error(.embeddings, #"{"model":"m","input":["a","b","c","d"]}"#)?.code == "too_many_inputs")
        #expect(error(.embeddings, #"{"model":"m","input":["a","b","c"]}"#) == nil)
        let m = #"{"role":"user","content":"x"}"#
        #expect(error(.chat, #"{"model":"m","messages":[\#(m),\#(m),\#(m)]}"#)?.code == "too_many_messages")
        #expect(error(.chat, #"{"model":"m","messages":[{"role":"user","content":"0123456789ab"}]}"#)?.code == "input_too_large")
        #expect(error(.chat, #"{"model":"m","model":"n","messages":[\#(m)]}"#)?.message.contains("duplicate key") == true)
    }
}
