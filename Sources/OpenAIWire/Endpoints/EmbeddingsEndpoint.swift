/// `POST /v1/embeddings`: texts (or token ids) in, one vector per input out. Nothing is
/// generated: only prompt tokens are billed, and the shield does not inspect it (nothing it
/// says reaches a model's instructions).
public struct EmbeddingsEndpoint: EndpointSpec {
    public let id = "embeddings"
    public let path = "/v1/embeddings"
    public let objectName = "list"
    public let grantName = "embeddings"
    public let capability = "embeddings"
    public let inputParam = "input"
    public var generates: Bool { false }
    public var inputsAreSeparate: Bool { true }

    public init() {}

    public func validate(_ request: inout InferenceRequest, limits: RequestLimits) throws(APIError) {
        let body = request.body
        guard let input = body["input"], !input.isNull else { throw APIError.missingParameter("input") }
        let tokenIDs = InferenceRequest.tokenInputs(input)
        let inputCount = tokenIDs?.count ?? input.arrayValue?.count ?? 1
        if inputCount > limits.maxEmbeddingInputs {
            throw APIError.invalidRequest("Too many inputs: \(inputCount); at most \(limits.maxEmbeddingInputs) are allowed in one embeddings request (limit max_embedding_inputs). Split them over several requests.",
                                          param: "input", code: "too_many_inputs")
        }
        switch input {
        case .string: break
        case .array(let parts) where !parts.isEmpty && parts.allSatisfy({ $0.stringValue != nil }): break
        case .array(let parts) where parts.isEmpty:
            throw APIError.invalidValue("input", "it must contain at least one string.")
        case .array where tokenIDs != nil:
            // Token ids (what OpenAI clients such as LangChain send): one input, or several.
            if tokenIDs?.contains(where: \.isEmpty) == true {
                throw APIError.invalidValue("input", "an array of token ids must not be empty.")
            }
        default: throw APIError.invalidType("input", expected: "a string, an array of strings, an array of token ids or an array of such arrays", got: input)
        }
        if InferenceRequest.texts(of: input).contains(where: \.isEmpty) {
            throw APIError.invalidValue("input", "an input must not be an empty string.")
        }
        if let format = body["encoding_format"], !format.isNull {
            guard let f = format.stringValue, f == "float" || f == "base64" else {
                throw APIError.invalidValue("encoding_format", "use 'float' or 'base64'.")
            }
        }
    }

    public func texts(_ body: JSONValue) -> [RoledText] {
        InferenceRequest.texts(of: body["input"] ?? .null).map { RoledText(role: "user", text: $0) }
    }

    public func inspectedTexts(_ body: JSONValue) -> [RoledText] { [] }
    public func routingKey(_ body: JSONValue) -> String { "" }
    public func answerText(_ answer: JSONValue) -> (content: String, reasoning: String) { ("", "") }
    public func deltaText(_ choice: JSONValue) -> (content: String, reasoning: String) { ("", "") }

    /// Only prompt tokens (OpenAI's shape).
    public func clientUsage(_ usage: Usage) -> JSONValue {
        var members: [(String, JSONValue)] = [("prompt_tokens", .int(usage.promptTokens)), ("total_tokens", .int(usage.promptTokens))]
        if usage.estimated { members.append(("estimated", .bool(true))) }
        return .object(members)
    }
}
