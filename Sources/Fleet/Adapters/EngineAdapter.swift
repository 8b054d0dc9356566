import OpenAIWire

/// What differs from one engine kind to another (DESIGN §4). ``Engine`` does the HTTP; its
/// adapter says where a request goes, what the body must look like for this engine, how to read
/// its answers, streams and errors, how to count tokens it does not report, and how to check its
/// health. One file per kind; ``EngineAdapters/adapter(for:template:)`` is the only place that
/// looks at an ``EngineKind``. The defaults are an OpenAI-compatible engine's behaviour.
protocol EngineAdapter: Sendable {
    /// The engine's path for an endpoint; nil when this kind of engine cannot serve it.
    func path(for endpoint: Endpoint) -> String?
    /// How the engine frames a stream.
    var streamFormat: StreamFormat { get }
    /// The body as this engine takes it: the edits it needs and nothing else (DESIGN §3).
    func prepare(_ body: JSONValue, _ request: UpstreamRequest) -> JSONValue
    /// A complete answer in OpenAI's shape (`model`, `id` and `created` for engines that send none).
    func answer(_ json: JSONValue, request: UpstreamRequest, id: String, created: Int) -> JSONValue
    /// One line of an NDJSON stream as an OpenAI chunk (nil: nothing to relay), and the final line's counts.
    func chunk(line: JSONValue, request: UpstreamRequest, id: String, created: Int, first: Bool) -> JSONValue?
    func usage(ofLine line: JSONValue) -> Usage?
    /// Whether the engine honours `dimensions` (shorter embeddings); the others would silently
    /// return full-size vectors, so the request is refused.
    var shortensEmbeddings: Bool { get }
    /// An embeddings body whose input is token ids, as this engine takes it.
    func tokenEmbeddingsBody(_ body: JSONValue, ids: [[Int]], engine: Engine) async throws(EngineError) -> JSONValue
    /// The engine's vectors as OpenAI clients expect them (one per input, in the asked encoding).
    func embeddings(_ json: JSONValue, base64: Bool) -> JSONValue
    /// Non-streamed generations are asked as a stream and collected, so a client that hangs up
    /// stops the engine (see ``StreamCollector``).
    var collectsNonStreamed: Bool { get }
    /// Tokens of `text` by the engine's own tokenizer; nil when it has no way to say.
    func countTokens(_ text: String, engine: Engine) async -> Int?
    /// The prompt as the engine renders it (what its tokenizer would count).
    func renderedPrompt(_ request: UpstreamRequest) -> String
    /// An error answer with a meaning specific to this engine; nil: the common reading.
    func error(status: Int, text: String) -> APIError?
    /// One active health check.
    func probe(_ engine: Engine, timeoutMs: Int) async -> ProbeResult
    /// The engine serves one request at a time: probing it while it works would wait behind (or
    /// interrupt) the generation, so it is not probed while it has requests in flight.
    var servesOneAtATime: Bool { get }
    /// The engine says which models it holds in memory (``ProbeResult/resident``); the others
    /// serve only what they loaded at start, so a served model is resident by definition.
    var reportsResidency: Bool { get }
    /// The gateway can start and supervise this engine itself (`managed:`).
    var canBeManaged: Bool { get }
}

extension EngineAdapter {
    func path(for endpoint: Endpoint) -> String? { endpoint.path }
    var streamFormat: StreamFormat { .sse }

    /// Asks for usage in streams, so every token is billed even when the client did not ask.
    func prepare(_ body: JSONValue, _ request: UpstreamRequest) -> JSONValue {
        guard request.stream else { return body }
        var body = body
        var options = body["stream_options"] ?? .object([])
        if case .object = options {} else { options = .object([]) }
        options.set("include_usage", true)
        body.set("stream_options", options)
        return body
    }

    func answer(_ json: JSONValue, request: UpstreamRequest, id: String, created: Int) -> JSONValue { json }
    func chunk(line: JSONValue, request: UpstreamRequest, id: String, created: Int, first: Bool) -> JSONValue? { nil }
    func usage(ofLine line: JSONValue) -> Usage? { nil }
    var shortensEmbeddings: Bool { false }
    func tokenEmbeddingsBody(_ body: JSONValue, ids: [[Int]], engine: Engine) async throws(EngineError) -> JSONValue { body }
    func embeddings(_ json: JSONValue, base64: Bool) -> JSONValue { json }
    var collectsNonStreamed: Bool { false }
    func countTokens(_ text: String, engine: Engine) async -> Int? { nil }
    func renderedPrompt(_ request: UpstreamRequest) -> String {
        InferenceRequest.promptTexts(of: request.body, endpoint: request.endpoint).joined(separator: "\n")
    }
    func error(status: Int, text: String) -> APIError? { nil }

    /// `GET /v1/models`, which every OpenAI-compatible server has.
    func probe(_ engine: Engine, timeoutMs: Int) async -> ProbeResult {
        guard let models = await engine.get("/v1/models", timeoutMs: timeoutMs) else { return ProbeResult(ok: false, detail: "unreachable") }
        guard models.status == 200 else { return ProbeResult(ok: false, detail: "/v1/models answered \(models.status)") }
        var result = ProbeResult(ok: true, detail: "")
        if engine.config.discoverModels { result.available = Engine.modelIDs(models.body) }
        return result
    }

    var servesOneAtATime: Bool { false }
    var reportsResidency: Bool { false }
    var canBeManaged: Bool { false }
}

/// The registry of engine kinds: the one `switch` on ``EngineKind``. A new kind is a case in
/// ``EngineKind``, a file with its adapter, and a line here.
enum EngineAdapters {
    static func adapter(for kind: EngineKind, template: ChatTemplate) -> any EngineAdapter {
        switch kind {
        case .openai: return OpenAICompatibleAdapter()
        case .sim: return SimAdapter()
        case .vllm: return VLLMAdapter()
        case .llamacpp: return LlamaCppAdapter(template: template)
        case .ollama: return OllamaAdapter()
        }
    }
}

extension EngineKind {
    /// Whether the gateway can start and supervise an engine of this kind itself.
    public var canBeManaged: Bool { EngineAdapters.adapter(for: self, template: .chatML).canBeManaged }
}
