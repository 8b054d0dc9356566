import Testing
@testable import OpenAIWire

@Suite struct InferenceRequestTests {
    func parse(_ endpoint: Endpoint, _ text: String) throws(APIError) -> InferenceRequest {
        try InferenceRequest(endpoint: endpoint, bytes: Array(text.utf8))
    }

    func error(_ endpoint: Endpoint, _ text: String) -> APIError? {
        do { _ = try parse(endpoint, text); return nil } catch { return error }
    }

    @Test func validChat() throws {
        let r = try parse(.chat, #"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":5}"#)
        #expect(r.model == "m")
        #expect(r.stream && r.includeUsage)
        #expect(r.maxTokens == 5)
        #expect(r.promptTexts == ["hi"])
    }

    @Test func multipartContentAndImages() throws {
        let r = try parse(.chat, #"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAA"}}]}]}"#)
        #expect(r.hasImages)
        #expect(r.promptTexts == ["look"])
    }

    @Test(arguments: [
        (#"{"messages":[]}"#, "model", "missing_required_parameter"),
        (#"{"model":"m"}"#, "messages", "missing_required_parameter"),
        (#"{"model":"m","messages":"hi"}"#, "messages", "invalid_type"),
        (#"{"model":"m","messages":[]}"#, "messages", "invalid_value"),
        (#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#, "messages[0].role", "invalid_value"),
        (#"{"model":"m","messages":[{"role":"user"}]}"#, "messages[0].content", "missing_required_parameter"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"abc"}"#, "max_tokens", "invalid_type"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":-5}"#, "max_tokens", "invalid_value"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"x"}"#, "temperature", "invalid_type"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3}"#, "temperature", "invalid_value"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#, "stream", "invalid_type"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}"#, "stream_options", "invalid_value"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":3}"#, "n", "invalid_value"),
        (#"{"model":5,"messages":[{"role":"user","content":"x"}]}"#, "model", "invalid_type"),
    ])
    func chatErrorsNameTheParam(_ body: String, _ param: String, _ code: String) {
        let e = error(.chat, body)
        #expect(e?.status == 400)
        #expect(e?.param == param)
        #expect(e?.code == code)
        #expect(e?.type == "invalid_request_error")
    }

    @Test func malformedJSONIs400() {
        let e = error(.chat, #"{"model": "m", "messages": [}"#)
        #expect(e?.status == 400)
        #expect(e?.code == "invalid_json")
        #expect(e?.message.contains("byte") == true)
        #expect(error(.chat, "[1]")?.status == 400)
    }

    @Test func embeddingsAndCompletions() throws {
        #expect(try parse(.embeddings, #"{"model":"e","input":["a","b"]}"#).promptTexts == ["a", "b"])
        #expect(error(.embeddings, #"{"model":"e"}"#)?.param == "input")
        #expect(error(.embeddings, #"{"model":"e","input":[1,{}]}"#)?.param == "input")
        #expect(try parse(.completions, #"{"model":"c","prompt":"once"}"#).promptTexts == ["once"])
        #expect(error(.completions, #"{"model":"c"}"#)?.param == "prompt")
    }

    @Test func errorShape() {
        let e = APIError.modelNotFound("x")
        #expect(e.json.jsonString == #"{"error":{"message":"Model 'x' does not exist or you do not have access to it. List the available models with GET /v1/models.","type":"invalid_request_error","param":"model","code":"model_not_found"}}"#)
    }

    @Test func usageJSONAndEstimate() {
        let u = Usage(promptTokens: 3, completionTokens: 5, reasoningTokens: 2)
        #expect(u.json["total_tokens"]?.intValue == 8)
        #expect(Usage(json: u.json) == u)
        #expect(Usage.estimateTokens("abcdefgh") == 2)
        #expect(Usage.estimateTokens("") == 0)
    }
}

@Suite struct TokenInputTests {
    @Test func embeddingsTakeTokenIds() throws {
        #expect(InferenceRequest.tokenInputs(try JSONValue.parse("[1, 2, 3]")) == [[1, 2, 3]])
        #expect(InferenceRequest.tokenInputs(try JSONValue.parse("[[1, 2], [3]]")) == [[1, 2], [3]])
        #expect(InferenceRequest.tokenInputs(try JSONValue.parse(#"["a", "b"]"#)) == nil)
        #expect(InferenceRequest.tokenInputs(try JSONValue.parse("[[1], 2]")) == nil)
        #expect(InferenceRequest.tokenInputs(try JSONValue.parse("[-1]")) == nil)
        let r = try InferenceRequest(endpoint: .embeddings, bytes: Array(#"{"model":"m","input":[[15339,1917]]}"#.utf8))
        #expect(r.promptTexts.isEmpty)
        var limits = RequestLimits()
        limits.maxEmbeddingInputs = 1
        // One input of many ids is one input.
        #expect((try? InferenceRequest(endpoint: .embeddings, bytes: Array(#"{"model":"m","input":[1,2,3,4]}"#.utf8), limits: limits)) != nil)
        #expect((try? InferenceRequest(endpoint: .embeddings, bytes: Array(#"{"model":"m","input":[[1],[2]]}"#.utf8), limits: limits)) == nil)
    }
}
