/// One piece of text a request carries, with the role of who wrote it.
public struct RoledText: Sendable, Equatable {
    /// `system`, `developer`, `user`, `assistant`, `tool` (`user` for endpoints without roles).
    public var role: String
    public var text: String

    public init(role: String, text: String) { self.role = role; self.text = text }
}

/// What one request of an endpoint is billed by (the ledger's unit).
public enum BilledUnit: String, Sendable {
    /// Input, output and reasoning tokens at the model's token prices.
    case tokens
    /// Every token the model read to rank the documents (query and documents), at the rerank price.
    case rerankedTokens = "reranked_tokens"
    /// The audio's duration, billed per started minute at the audio price.
    case audioSeconds = "audio_seconds"
}

/// How a request body is written.
public enum BodyFormat: Sendable {
    case json
    /// `multipart/form-data` with one uploaded `file` (the other form fields are read as a JSON
    /// object of strings, then validated like a JSON body).
    case multipart
}

/// What the platform needs to know to serve one OpenAI inference endpoint: its wire shape and
/// validation, its grant name, the catalog capability it needs, the text the shield inspects,
/// how its usage is counted and shown, and how it routes. Each endpoint is one value of this
/// protocol in its own file (`OpenAIWire/Endpoints/`), registered in ``Endpoint/all``; the
/// rest of the platform reads it from there (docs/ARCHITECTURE.md: "Adding an endpoint").
/// The defaults describe an endpoint that generates text from a prompt.
public protocol EndpointSpec: Sendable {
    /// Its name in request rows, audit actions and metrics (`chat.completions`).
    var id: String { get }
    /// The gateway path (`/v1/chat/completions`); an engine speaking OpenAI's API has the same one.
    var path: String { get }
    /// The OpenAI `object` of a non-streamed answer.
    var objectName: String { get }
    /// The OpenAI `object` of a stream chunk; nil when the endpoint does not stream.
    var chunkObjectName: String? { get }
    /// Its name in key grants (`chat`).
    var grantName: String { get }
    /// The catalog capability a model needs to serve it (`chat`).
    var capability: String { get }
    /// The parameter holding its input (named by errors about the input's size).
    var inputParam: String { get }
    /// Whether it generates tokens: `max_tokens`, sampling parameters and streams apply, and
    /// output tokens are billed.
    var generates: Bool { get }
    /// Each input is processed on its own (embeddings): the context check applies per input.
    var inputsAreSeparate: Bool { get }

    /// Checks the endpoint's own fields and fills what the pipeline needs in `request`
    /// (`maxTokens`, `hasTools`, `hasImages`). Errors name the offending `param`.
    func validate(_ request: inout InferenceRequest, limits: RequestLimits) throws(APIError)
    /// Every text a user, developer or tool put in the request, with its role (shield, estimates).
    func texts(_ body: JSONValue) -> [RoledText]
    /// What the prompt shield inspects: the new turn of a conversation (default: every text).
    func inspectedTexts(_ body: JSONValue) -> [RoledText]
    /// Prompt tokens known exactly before the engine counts (a prompt of token ids); nil: estimate.
    func exactPromptTokens(_ body: JSONValue) -> Int?
    /// The text whose prefix identifies a conversation, for prefix-affinity routing ("": none).
    func routingKey(_ body: JSONValue) -> String
    /// The generated text of a complete answer, and its reasoning.
    func answerText(_ answer: JSONValue) -> (content: String, reasoning: String)
    /// The text of one stream choice, and its reasoning.
    func deltaText(_ choice: JSONValue) -> (content: String, reasoning: String)
    /// The choice of a complete answer built from a stream's pieces.
    func collectedChoice(text: String, reasoning: String, finishReason: JSONValue) -> JSONValue
    /// The choice of the last chunk of a stream the gateway ended at the client's token cap.
    var lengthFinishChoice: JSONValue { get }
    /// The `usage` object the client sees.
    func clientUsage(_ usage: Usage) -> JSONValue
    /// What one request is billed by (default: tokens).
    var billedUnit: BilledUnit { get }
    /// How its body is written (default: JSON).
    var bodyFormat: BodyFormat { get }
    /// Its own body limit, when it differs from the gateway's `max_body_bytes` (audio uploads).
    var maxBodyBytes: Int? { get }
    /// The answer the client sees, from the engine's (or the gateway's) complete answer, the
    /// request body and the settled usage (default: the answer with ``clientUsage(_:)``).
    func clientAnswer(_ answer: JSONValue, request: JSONValue, usage: Usage) -> JSONValue
}

extension EndpointSpec {
    public var chunkObjectName: String? { generates ? objectName : nil }
    public var generates: Bool { true }
    public var inputsAreSeparate: Bool { false }
    public func inspectedTexts(_ body: JSONValue) -> [RoledText] { texts(body) }
    public func exactPromptTokens(_ body: JSONValue) -> Int? { nil }
    public func routingKey(_ body: JSONValue) -> String { texts(body).map(\.text).joined(separator: "\n") }
    public func answerText(_ answer: JSONValue) -> (content: String, reasoning: String) {
        (answer["choices"]?.arrayValue?.first?["text"]?.stringValue ?? "", "")
    }
    public func deltaText(_ choice: JSONValue) -> (content: String, reasoning: String) { (choice["text"]?.stringValue ?? "", "") }
    public func collectedChoice(text: String, reasoning: String, finishReason: JSONValue) -> JSONValue {
        .object([("index", 0), ("text", .string(text)), ("logprobs", .null), ("finish_reason", finishReason)])
    }
    public var lengthFinishChoice: JSONValue { .object([("index", 0), ("text", ""), ("logprobs", .null), ("finish_reason", "length")]) }
    public func clientUsage(_ usage: Usage) -> JSONValue { usage.json }
    public var billedUnit: BilledUnit { .tokens }
    public var bodyFormat: BodyFormat { .json }
    public var maxBodyBytes: Int? { nil }
    public func clientAnswer(_ answer: JSONValue, request: JSONValue, usage: Usage) -> JSONValue {
        answer.setting("usage", clientUsage(usage))
    }
}

/// An inference endpoint the gateway serves (see ``EndpointSpec``). Two endpoints are the same
/// when their ids are.
public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    public let spec: any EndpointSpec

    public init(_ spec: any EndpointSpec) { self.spec = spec }

    public static let chat = Endpoint(ChatEndpoint())
    public static let completions = Endpoint(CompletionsEndpoint())
    public static let embeddings = Endpoint(EmbeddingsEndpoint())
    /// Cohere's rerank, v1 and v2 (one grant, `rerank`).
    public static let rerank = Endpoint(RerankEndpoint(version: 1))
    public static let rerankV2 = Endpoint(RerankEndpoint(version: 2))
    public static let transcriptions = Endpoint(TranscriptionEndpoint())

    /// Every endpoint the gateway serves. Adding one: its spec file and a line here.
    public static let all: [Endpoint] = [.chat, .completions, .embeddings, .rerank, .rerankV2, .transcriptions]

    /// The grant names of ``all``, each once (both rerank versions are the grant `rerank`).
    public static var grantNames: [String] {
        var seen = Set<String>()
        return all.map(\.grantName).filter { seen.insert($0).inserted }
    }

    /// The endpoint with this id (`chat.completions`), if the gateway serves it.
    public init?(id: String) {
        guard let e = Self.all.first(where: { $0.id == id }) else { return nil }
        self = e
    }

    public var id: String { spec.id }
    public var path: String { spec.path }
    public var objectName: String { spec.objectName }
    public var grantName: String { spec.grantName }
    public var description: String { spec.id }

    public static func == (a: Endpoint, b: Endpoint) -> Bool { a.spec.id == b.spec.id }
    public func hash(into hasher: inout Hasher) { hasher.combine(spec.id) }
}
