import Foundation
import OpenAIWire

/// llama-cpp-python's server: no usage in streams (counted with its own tokenizer), one vector
/// per token for models without pooling, 500 with a traceback on bad input, one request at a time.
struct LlamaCppAdapter: EngineAdapter {
    /// How the engine renders chat messages into its prompt (to count prompt tokens in streams).
    let template: ChatTemplate

    /// llama.cpp's server ranks on `/v1/rerank` (a reranker model started with `--reranking`);
    /// it does not transcribe.
    func path(for endpoint: Endpoint) -> String? {
        endpoint.spec.billedUnit == .audioSeconds ? nil : endpoint.path
    }

    func prepare(_ body: JSONValue, _ request: UpstreamRequest) -> JSONValue {
        var body = body
        // llama.cpp ignores stream_options (it never sends usage in a stream); we count instead.
        body.remove("stream_options")
        if request.endpoint == .embeddings { body.remove("encoding_format") }
        // llama-cpp-python knows only max_tokens: the newer OpenAI name would be ignored and the
        // engine would generate up to its context (issue 11).
        if let newer = body["max_completion_tokens"], !newer.isNull, let n = newer.intValue {
            let legacy = body["max_tokens"]?.intValue
            body.set("max_tokens", .int(min(n, legacy ?? n)))
            body.remove("max_completion_tokens")
        }
        return body
    }

    /// llama-cpp-python notices a closed connection only while streaming.
    var collectsNonStreamed: Bool { true }
    var servesOneAtATime: Bool { true }
    var canBeManaged: Bool { true }

    /// `POST /extras/tokenize/count` (llama-cpp-python).
    func countTokens(_ text: String, engine: Engine) async -> Int? {
        if text.isEmpty { return 0 }
        let body = JSONValue.object([("input", .string(text))]).serialized()
        guard let response = try? await engine.post("/extras/tokenize/count", body: body, timeoutMs: 10_000, streaming: false),
              response.status.code == 200 else { return nil }
        let bytes = await engine.collect(response, limit: 1 << 16)
        return (try? JSONValue.parse(bytes))?["count"]?.intValue
    }

    func renderedPrompt(_ request: UpstreamRequest) -> String { template.render(request) }

    /// llama.cpp takes text only: the ids become the text its own tokenizer makes of them
    /// (`POST /extras/detokenize`; the ids are the engine model's own).
    func tokenEmbeddingsBody(_ body: JSONValue, ids: [[Int]], engine: Engine) async throws(EngineError) -> JSONValue {
        var texts: [JSONValue] = []
        for one in ids {
            let request = JSONValue.object([("tokens", .array(one.map { .int($0) }))]).serialized()
            let response = try await engine.post("/extras/detokenize", body: request, timeoutMs: engine.config.timeouts.firstByteMs, streaming: false)
            let bytes = await engine.collect(response, limit: 1 << 22)
            guard response.status.code == 200, let text = (try? JSONValue.parse(bytes))?["text"]?.stringValue else {
                throw .rejected(backend: engine.name, error: .invalidRequest("The engine could not read these token ids (they must be ids of the model's own vocabulary).",
                                                                            param: "input", code: "invalid_value"))
            }
            texts.append(.string(text))
        }
        var body = body
        body.set("input", .array(texts))
        return body
    }

    /// Models without a pooling layer give one vector per token: mean-pooled into one
    /// unit-length vector per input, in the asked encoding.
    func embeddings(_ json: JSONValue, base64: Bool) -> JSONValue {
        guard let data = json["data"]?.arrayValue else { return json }
        var out = json
        let pooled: [JSONValue] = data.map { item in
            guard let embedding = item["embedding"], let rows = embedding.arrayValue else { return item }
            var vector: [Double]
            if let firstRow = rows.first, firstRow.arrayValue != nil {
                let matrix = rows.compactMap { $0.arrayValue?.compactMap(\.doubleValue) }
                let dim = matrix.first?.count ?? 0
                vector = [Double](repeating: 0, count: dim)
                for row in matrix where row.count == dim { for i in 0..<dim { vector[i] += row[i] } }
                vector = vector.map { $0 / Double(max(1, matrix.count)) }
                let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
                if norm > 0 { vector = vector.map { $0 / norm } }
            } else {
                vector = rows.compactMap(\.doubleValue)
            }
            let value: JSONValue = base64 ? .string(Self.base64Float32(vector)) : .array(vector.map { .double($0) })
            return item.setting("embedding", value)
        }
        out.set("data", .array(pooled))
        return out
    }

    static func base64Float32(_ vector: [Double]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(vector.count * 4)
        for v in vector {
            let bits = Float(v).bitPattern.littleEndian
            withUnsafeBytes(of: bits) { bytes.append(contentsOf: $0) }
        }
        return Data(bytes).base64EncodedString()
    }

    /// llama-cpp-python answers invalid input with 500 and a Python traceback: the client's
    /// mistake, so 400, and never the traceback.
    func error(status: Int, text: String) -> APIError? {
        guard status == 500 else { return nil }
        return .invalidRequest("The engine could not process this request (\(Engine.engineMessage(of: text))). Check the request's parameters against the API reference.",
                               code: "invalid_value")
    }

    /// llama-cpp-python takes its model lock for `/v1/models` (a probe there waits behind a
    /// generation, or cuts it with the engine's default interrupt_requests); FastAPI's own
    /// `/openapi.json` takes no lock. llama.cpp's native server has `/health`.
    func probe(_ engine: Engine, timeoutMs: Int) async -> ProbeResult {
        guard var answer = await engine.get("/openapi.json", timeoutMs: timeoutMs) else { return ProbeResult(ok: false, detail: "unreachable") }
        if answer.status == 404, let health = await engine.get("/health", timeoutMs: timeoutMs) { answer = health }
        guard answer.status == 200 else { return ProbeResult(ok: false, detail: "health check answered \(answer.status)") }
        var result = ProbeResult(ok: true, detail: "")
        if engine.config.discoverModels { result.available = await engine.openAIModels(timeoutMs: timeoutMs) }
        return result
    }
}
