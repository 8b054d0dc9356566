/// `POST /v1/completions` (legacy): a prompt (text, texts or token ids) in, text out.
public struct CompletionsEndpoint: EndpointSpec {
    public let id = "completions"
    public let path = "/v1/completions"
    public let objectName = "text_completion"
    public let grantName = "completions"
    public let capability = "completions"
    public let inputParam = "prompt"

    public init() {}

    public func validate(_ request: inout InferenceRequest, limits: RequestLimits) throws(APIError) {
        guard let prompt = request.body["prompt"], !prompt.isNull else { throw APIError.missingParameter("prompt") }
        switch prompt {
        case .string: break
        case .array(let parts) where !parts.isEmpty && parts.allSatisfy({ $0.stringValue != nil }): break
        case .array(let parts) where !parts.isEmpty && parts.allSatisfy({ $0.intValue != nil }): break
        default: throw APIError.invalidType("prompt", expected: "a string, an array of strings or an array of token ids", got: prompt)
        }
        request.maxTokens = try InferenceRequest.optionalCount(request.body, "max_tokens")
    }

    public func texts(_ body: JSONValue) -> [RoledText] {
        InferenceRequest.texts(of: body["prompt"] ?? .null).map { RoledText(role: "user", text: $0) }
    }

    /// A prompt given as token ids is counted exactly.
    public func exactPromptTokens(_ body: JSONValue) -> Int? {
        guard let ids = body["prompt"]?.arrayValue, ids.allSatisfy({ $0.intValue != nil }) else { return nil }
        return ids.count
    }
}
