import OpenAIWire
import Testing
@testable import Catalog

@Suite struct CapabilityCheckTests {
    let textOnly = CatalogEntry(id: "text:1b", capabilities: [.chat, .completions], contextLength: 100)
    let vision = CatalogEntry(id: "eyes:3b", capabilities: [.chat, .vision, .tools], contextLength: 100_000)
    let embedder = CatalogEntry(id: "embed:1b", capabilities: [.embeddings], contextLength: 8)

    func request(_ endpoint: Endpoint, _ json: String) throws -> InferenceRequest {
        try InferenceRequest(endpoint: endpoint, bytes: Array(json.utf8))
    }

    /// The error `check` throws, or nil.
    func failure(_ r: InferenceRequest, _ e: CatalogEntry, limits: CapabilityLimits = .standard) -> APIError? {
        apiError { try CapabilityCheck.check(r, model: e, limits: limits) }
    }

    @Test func imagesToANonVisionModel() throws {
        let r = try request(.chat, #"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}"#)
        let e = try #require(failure(r, textOnly))
        #expect(e.status == 400)
        #expect(e.type == "invalid_request_error")
        #expect(e.param == "messages[0].content[1].image_url.url")
        #expect(e.code == "model_capability_mismatch")
        #expect(e.message.contains("'vision'"))
        #expect(failure(r, vision) == nil)
    }

    @Test func toolsToAModelWithoutTools() throws {
        let r = try request(.chat, #"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]}"#)
        let e = try #require(failure(r, textOnly))
        #expect(e.status == 400)
        #expect(e.param == "tools")
        #expect(e.message.contains("Remove 'tools'"))
        #expect(failure(r, vision) == nil)
    }

    @Test func endpointNeedsItsCapability() throws {
        let emb = try request(.embeddings, #"{"model":"m","input":"hello"}"#)
        let e = try #require(failure(emb, textOnly))
        #expect(e.param == "model")
        #expect(e.message.contains("/v1/embeddings") && e.message.contains("'embeddings'"))
        #expect(failure(emb, embedder) == nil)
        let chat = try request(.chat, #"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
        #expect(failure(chat, embedder)?.param == "model")
    }

    @Test func promptPlusMaxTokensOverTheContext() throws {
        // 200 ASCII bytes → ceil(200/4) = 50 estimated tokens; context 100.
        let text = String(repeating: "a", count: 200)
        let fits = try request(.chat, #"{"model":"m","messages":[{"role":"user","content":"\#(text)"}],"max_tokens":50}"#)
        #expect(failure(fits, textOnly) == nil)
        let over = try request(.chat, #"{"model":"m","messages":[{"role":"user","content":"\#(text)"}],"max_tokens":51}"#)
        let e = try #require(failure(over, textOnly))
        #expect(e.status == 400)
        #expect(e.param == "max_tokens")
        #expect(e.code == "context_length_exceeded")
        #expect(e.message.contains("ceil(UTF-8 bytes / 4)"))
        #expect(e.message.contains("Set max_tokens to at most 50"))
        let newer = try request(.chat, #"{"model":"m","messages":[{"role":"user","content":"\#(text)"}],"max_completion_tokens":60}"#)
        #expect(failure(newer, textOnly)?.param == "max_completion_tokens")
        // One byte more than 400 → 101 tokens: the prompt alone is too long.
        let long = try request(.chat, #"{"model":"m","messages":[{"role":"user","content":"\#(String(repeating: "b", count: 401))"}]}"#)
        #expect(failure(long, textOnly)?.param == "messages")
        // Multi-byte text counts bytes: 34 × "é" (2 bytes) = 68 bytes → 17 tokens.
        #expect(CapabilityCheck.estimatedTokens(String(repeating: "é", count: 34)) == 17)
        #expect(CapabilityCheck.estimatedTokens("") == 0)
    }

    @Test func completionsAndEmbeddingsContext() throws {
        let ids = (0..<90).map(String.init).joined(separator: ",")
        let tokens = try request(.completions, #"{"model":"m","prompt":[\#(ids)],"max_tokens":11}"#)
        let e = try #require(failure(tokens, textOnly))
        #expect(e.param == "max_tokens")
        #expect(e.message.contains("Set max_tokens to at most 10"))
        let prompt = try request(.completions, #"{"model":"m","prompt":"\#(String(repeating: "x", count: 404))"}"#)
        #expect(failure(prompt, textOnly)?.param == "prompt")
        let inputs = try request(.embeddings, #"{"model":"m","input":["short","\#(String(repeating: "y", count: 33))"]}"#)
        #expect(failure(inputs, embedder)?.param == "input")
        let ok = try request(.embeddings, #"{"model":"m","input":["short","\#(String(repeating: "y", count: 32))"]}"#)
        #expect(failure(ok, embedder) == nil)
    }

    @Test func dataURLImagesAreSizeChecked() throws {
        // 16 base64 chars with "==" → 12 − 2 = 10 bytes.
        func image(_ url: String) throws -> InferenceRequest {
            try request(.chat, #"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"\#(url)"}}]}]}"#)
        }
        let small = try image("data:image/png;base64,AAAAAAAAAAAAAA==")
        #expect(failure(small, vision, limits: CapabilityLimits(maxImageBytes: 10)) == nil)
        let e = try #require(failure(small, vision, limits: CapabilityLimits(maxImageBytes: 9)))
        #expect(e.status == 413)
        #expect(e.param == "messages[0].content[0].image_url.url")
        #expect(e.code == "image_too_large")
        #expect(e.message.contains("10 bytes once decoded"))
        // Unpadded: 15 chars → 11 bytes.
        #expect(failure(try image("data:image/png;base64,AAAAAAAAAAAAAAA"), vision, limits: CapabilityLimits(maxImageBytes: 10))?.status == 413)
        // Default: 10 MiB decoded.
        let big = String(repeating: "A", count: (10 * 1024 * 1024 / 3 + 1) * 4)
        #expect(failure(try image("data:image/png;base64,\(big)"), vision)?.status == 413)
        #expect(failure(try image("data:image/png;base64,\(String(repeating: "A", count: 10 * 1024 * 1024 / 3 * 4))"), vision) == nil)
        // Not base64, no comma: 400 naming the part. Remote URLs are left to the engine.
        #expect(failure(try image("data:image/png,rawbytes"), vision)?.status == 400)
        #expect(failure(try image("data:image/png;base64"), vision)?.param == "messages[0].content[0].image_url.url")
        #expect(failure(try image("https://example.com/cat.png"), vision) == nil)
    }
}
