/// `POST /v1/chat/completions`: messages in, an assistant message (or a stream of deltas) out.
public struct ChatEndpoint: EndpointSpec {
    public let id = "chat.completions"
    public let path = "/v1/chat/completions"
    public let objectName = "chat.completion"
    public var chunkObjectName: String? { "chat.completion.chunk" }
    public let grantName = "chat"
    public let capability = "chat"
    public let inputParam = "messages"

    public init() {}

    public func validate(_ request: inout InferenceRequest, limits: RequestLimits) throws(APIError) {
        let body = request.body
        guard let messages = body["messages"], !messages.isNull else { throw APIError.missingParameter("messages") }
        guard let list = messages.arrayValue else { throw APIError.invalidType("messages", expected: "an array of messages", got: messages) }
        if list.isEmpty { throw APIError.invalidValue("messages", "it must contain at least one message.") }
        if list.count > limits.maxMessages {
            throw APIError.invalidRequest("Too many messages: \(list.count); at most \(limits.maxMessages) are allowed in one request (limit max_messages).",
                                          param: "messages", code: "too_many_messages")
        }
        for (i, message) in list.enumerated() {
            try InferenceRequest.validateMessage(message, index: i, hasImages: &request.hasImages)
        }
        if let tools = body["tools"], !tools.isNull {
            guard let toolList = tools.arrayValue else { throw APIError.invalidType("tools", expected: "an array", got: tools) }
            request.hasTools = !toolList.isEmpty
        }
        let maxCompletion = try InferenceRequest.optionalCount(body, "max_completion_tokens")
        let legacyMax = try InferenceRequest.optionalCount(body, "max_tokens")
        request.maxTokens = maxCompletion ?? legacyMax
    }

    public func texts(_ body: JSONValue) -> [RoledText] {
        (body["messages"]?.arrayValue ?? []).flatMap { m in
            let role = m["role"]?.stringValue ?? "user"
            return InferenceRequest.texts(of: m["content"] ?? .null).map { RoledText(role: role, text: $0) }
        }
    }

    /// The new turn: what follows the last assistant message (earlier turns were inspected when
    /// they were new), plus the developer's system prompt, one text per message.
    public func inspectedTexts(_ body: JSONValue) -> [RoledText] {
        let messages = body["messages"]?.arrayValue ?? []
        let lastAssistant = messages.lastIndex { $0["role"]?.stringValue == "assistant" } ?? -1
        return messages.enumerated().compactMap { i, m in
            let role = m["role"]?.stringValue ?? "user"
            guard i > lastAssistant || role == "system" || role == "developer" else { return nil }
            return RoledText(role: role, text: InferenceRequest.texts(of: m["content"] ?? .null).joined(separator: "\n"))
        }
    }

    /// Every message's role and content in order.
    public func routingKey(_ body: JSONValue) -> String {
        var out = ""
        for m in body["messages"]?.arrayValue ?? [] {
            out += m["role"]?.stringValue ?? ""
            out += "\u{1}"
            out += InferenceRequest.texts(of: m["content"] ?? .null).joined()
            out += "\u{2}"
        }
        return out
    }

    public func answerText(_ answer: JSONValue) -> (content: String, reasoning: String) {
        let message = answer["choices"]?.arrayValue?.first?["message"]
        return (message?["content"]?.stringValue ?? "", message?["reasoning_content"]?.stringValue ?? message?["reasoning"]?.stringValue ?? "")
    }

    public func deltaText(_ choice: JSONValue) -> (content: String, reasoning: String) {
        let delta = choice["delta"]
        return (delta?["content"]?.stringValue ?? "", delta?["reasoning_content"]?.stringValue ?? delta?["reasoning"]?.stringValue ?? "")
    }

    public func collectedChoice(text: String, reasoning: String, finishReason: JSONValue) -> JSONValue {
        var message: [(String, JSONValue)] = [("role", "assistant"), ("content", .string(text))]
        if !reasoning.isEmpty { message.append(("reasoning_content", .string(reasoning))) }
        return .object([("index", 0), ("message", .object(message)), ("logprobs", .null), ("finish_reason", finishReason)])
    }

    public var lengthFinishChoice: JSONValue {
        .object([("index", 0), ("delta", .object([])), ("logprobs", .null), ("finish_reason", "length")])
    }
}
