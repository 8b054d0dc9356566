import Testing
@testable import OpenAIWire

@Suite struct JSONTests {
    @Test func roundTripKeepsOrderAndNumberText() throws {
        let text = #"{"model":"m","top_k":40,"temperature":0.70,"tiny":1e-5,"big":12345678901234567890,"nested":{"a":[1,2.50,"x",null,true]},"z":false}"#
        let value = try JSONValue.parse(text)
        #expect(value.jsonString == text)
    }

    @Test func stringsWithEscapesAndUnicode() throws {
        let value = try JSONValue.parse(#"{"s":"a\"b\\c\n\u00e9\ud83d\ude00/\t"}"#)
        #expect(value["s"]?.stringValue == "a\"b\\c\né😀/\t")
        let again = try JSONValue.parse(value.jsonString)
        #expect(again == value)
    }

    @Test(arguments: [
        "", "{", "{\"a\":}", "[1,]", "{\"a\" 1}", "tru", "01", "1.", "\"\\x\"", "{\"a\":1} x", "\"a\u{01}\"", "-", "[1 2]",
    ])
    func rejectsMalformed(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    @Test func errorNamesOffset() {
        do {
            _ = try JSONValue.parse(#"{"a": [1, 2,, 3]}"#)
            Issue.record("should fail")
        } catch let error as JSONParseError {
            #expect(error.offset == 12)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func deepNestingIsRefusedNotCrashed() {
        let deep = String(repeating: "[", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(deep) }
    }

    @Test func setReplacesInPlaceAndAppends() throws {
        var v = try JSONValue.parse(#"{"model":"a","x":1}"#)
        v.set("model", "b")
        v.set("y", true)
        #expect(v.jsonString == #"{"model":"b","x":1,"y":true}"#)
        v.remove("x")
        #expect(v.jsonString == #"{"model":"b","y":true}"#)
    }

    @Test func intValueAcceptsIntegralForms() throws {
        #expect(JSONValue.number("3").intValue == 3)
        #expect(JSONValue.number("3.0").intValue == 3)
        #expect(JSONValue.number("3e2").intValue == 300)
        #expect(JSONValue.number("3.5").intValue == nil)
    }
}

@Suite struct SSETests {
    @Test func parsesEventsSplitAcrossReads() {
        var p = SSEParser()
        var events: [[UInt8]] = []
        let stream = "data: {\"a\":1}\n\n: keep-alive\n\ndata: {\"b\":\r\ndata: 2}\r\n\r\ndata: [DONE]\n\n"
        for byte in stream.utf8 { events += p.feed([byte]) }
        #expect(events.map { String(decoding: $0, as: UTF8.self) } == ["{\"a\":1}", "{\"b\":\n2}", "[DONE]"])
    }

    @Test func finishDeliversUnterminatedEvent() {
        var p = SSEParser()
        #expect(p.feed(Array("data: x".utf8)).isEmpty)
        #expect(p.finish().map { String(decoding: $0, as: UTF8.self) } == "x")
    }

    @Test func framing() {
        #expect(String(decoding: SSE.event(["a": 1]), as: UTF8.self) == "data: {\"a\":1}\n\n")
    }
}
