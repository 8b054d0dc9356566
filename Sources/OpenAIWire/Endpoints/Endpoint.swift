/// One piece of text a request carries, with the role of who wrote it.
public struct RoledText: Sendable, Equatable {
    /// `system`, `developer`, `user`, `assistant`, `tool` (`user` for endpoints without roles).
    public var role: String
    public var text: String

    public init(role: String, text: String) { self.role = role; self.text = text }
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
}

/// An inference endpoint the gateway serves (see ``EndpointSpec``). Two endpoints are the same
/// when their ids are.
public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    public let spec: any EndpointSpec

    public init(_ spec: any EndpointSpec) { self.spec = spec }

    public static let chat = Endpoint(ChatEndpoint())
    public static let completions = Endpoint(CompletionsEndpoint())
    public static let embeddings = Endpoint(EmbeddingsEndpoint())

    /// Every endpoint the gateway serves. Adding one: its spec file and a line here.
    public static let all: [Endpoint] = [.chat, .completions, .embeddings]

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
