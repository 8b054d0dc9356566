import Testing
@testable import OpenAIWire

/// The splice path of a relayed stream event must give what the tree path gave (parse, remove
/// `usage`, set `id`, `model`, `backend`, serialize), and must refuse whatever it does not handle.
@Suite struct SplicedChunkTests {
    static let backend: JSONValue = .object([("engine_type", "vllm"), ("machine_name", "gpu-1")])

    /// The tree path's edit of an event.
    func treePath(_ text: String) throws -> JSONValue {
        var chunk = try JSONValue.parse(text)
        chunk.remove("usage")
        chunk.set("id", "req-1")
        chunk.set("model", "catalog/model")
        chunk.set("backend", Self.backend)
        return chunk
    }

    func splice(_ chunk: SplicedChunk) -> [UInt8] {
        var id: [UInt8] = [], model: [UInt8] = []
        JSONValue.writeString("req-1", into: &id)
        JSONValue.writeString("catalog/model", into: &model)
        var tail = Array(",\"backend\":".utf8)
        Self.backend.write(into: &tail)
        var out: [UInt8] = []
        chunk.splice(id: id, model: model, tail: tail, into: &out)
        return out
    }

    @Test(arguments: [
        #"{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1733400000,"model":"smollm2","choices":[{"index":0,"delta":{"content":" once"},"logprobs":null,"finish_reason":null}]}"#,
        #"{ "id" : "x", "model": "m" , "choices": [ { "delta": { "role": "assistant", "content": "" } } ] }"#,
        #"{"usage":null,"id":"x","model":"m","choices":[{"delta":{"content":"a"}}]}"#,
        #"{"id":"x","usage":null,"model":"m","choices":[{"delta":{"content":"a"}}]}"#,
        #"{"id":"x","model":"m","choices":[{"delta":{"content":"a"}}],"usage":null}"#,
        #"{"object":"chat.completion.chunk","choices":[{"delta":{"content":"no id, no model"}}]}"#,
        #"{"id":"x","model":"m","choices":[],"system_fingerprint":"fp","nested":{"a":[1,{"b":"}]"}],"c":"\"{"}}"#,
        #"{"model":"m","id":"x","choices":[{"delta":{"content":"q\"uote\\ and \n é 😀 \u00e9"},"finish_reason":"stop"}]}"#,
    ])
    func spliceEqualsTheTreePath(_ text: String) throws {
        let chunk = try #require(SplicedChunk(Array(text.utf8), delta: .chat))
        let spliced = try JSONValue.parse(splice(chunk))
        #expect(spliced == (try treePath(text)))
        // Same members in the same order (the tree path's `set` keeps a member's place).
        #expect(spliced.objectValue?.map { $0.0 } == (try treePath(text)).objectValue?.map { $0.0 })
        #expect(try chunk.json() == JSONValue.parse(text).removing("usage"))
    }

    @Test func readsTheChatDeltaText() throws {
        let c = try #require(SplicedChunk(Array(#"{"id":"x","choices":[{"delta":{"content":"a\"b\n","reasoning_content":"think"},"finish_reason":"length"}]}"#.utf8), delta: .chat))
        #expect(c.content == "a\"b\n" && c.reasoning == "think" && c.reasoningContent == "think")
        #expect(c.finishReason == "length")
        // vLLM's newer `reasoning` field counts as reasoning (as `deltaText` reads it), not as `reasoning_content`.
        let v = try #require(SplicedChunk(Array(#"{"choices":[{"delta":{"reasoning":"r","content":null}}]}"#.utf8), delta: .chat))
        #expect(v.content == "" && v.reasoning == "r" && v.reasoningContent == "")
        #expect(v.finishReason == nil)
        let spec = Endpoint.chat.spec
        let choice = try JSONValue.parse(#"{"delta":{"reasoning":"r","content":null}}"#)
        let (content, reasoning) = spec.deltaText(choice)
        #expect(content == v.content && reasoning == v.reasoning)
    }

    @Test func readsTheCompletionsText() throws {
        let c = try #require(SplicedChunk(Array(#"{"id":"cmpl-1","object":"text_completion","created":17,"choices":[{"text":" hi","index":0,"finish_reason":null}]}"#.utf8), delta: .completions))
        #expect(c.content == " hi" && c.reasoning == "")
        #expect(c.createdValue == 17)
        #expect(c.finishReason == .null)
    }

    @Test(arguments: [
        "",
        "[1,2]",
        "{}",
        #"{"error":{"message":"boom"}}"#,
        #"{"id":"x","error":null,"choices":[]}"#,
        #"{"id":"x","backend":"engine's own","choices":[]}"#,
        #"{"id":"x","usage":{"prompt_tokens":1,"completion_tokens":2},"choices":[]}"#,
        #"{"usage":null}"#,
        #"{"i\u0064":"x","choices":[]}"#,
        #"{"id":"x","id":"y"}"#,
        #"{"id":"x","choices":[{"delta":{"content":"a"}}]"#,
        #"{"id":"x","choices":[{"delta":{"content":"a"]}]}"#,
        #"{"id":"x"} trailing"#,
        #"{"id":"x","choices":[{"delta":{"content":"bad \x escape"}}]}"#,
        "{\"id\":\"a\nb\"}",
        #"{"id" "x"}"#,
        #"{"id":"x",}"#,
    ])
    func unusualEventsTakeTheTreePath(_ text: String) {
        #expect(SplicedChunk(Array(text.utf8), delta: .chat) == nil)
    }
}

extension JSONValue {
    func removing(_ key: String) -> JSONValue {
        var copy = self
        copy.remove(key)
        return copy
    }
}
