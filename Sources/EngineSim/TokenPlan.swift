import OpenAIWire

/// The tokens one simulated answer will produce: reasoning first (if the sim reasons), then content.
struct TokenPlan {
    let endpoint: Endpoint
    let style: SimConfig.ReasoningStyle
    let usage: Bool
    /// Each token's text and whether it is reasoning.
    let tokens: [(text: String, reasoning: Bool)]
    let finishReason: String

    init(config: SimConfig, endpoint: Endpoint, prompt: String, maxTokens: Int) {
        self.endpoint = endpoint
        self.style = endpoint == .chat ? config.reasoning : .none
        self.usage = config.usage
        var gen = SimText(seed: config.seed, prompt: prompt)
        let count = min(maxTokens, config.defaultTokens)
        let reasoningCount = style == .none ? 0 : count / 2
        var tokens: [(String, Bool)] = []
        for i in 0..<count {
            let isReasoning = i < reasoningCount
            var text = gen.token(isReasoning ? i : i - reasoningCount)
            if style == .think {
                // The <think> markers travel inside the first and last reasoning tokens.
                if i == 0 { text = "<think>" + text }
                if i == reasoningCount - 1 { text += "</think>\n" }
            }
            tokens.append((text, isReasoning))
        }
        self.tokens = tokens
        self.finishReason = count < maxTokens ? "stop" : "length"
    }

    var count: Int { tokens.count }
    var reasoningCount: Int { tokens.filter(\.reasoning).count }

    var contentText: String {
        style == .field ? tokens.filter { !$0.reasoning }.map(\.text).joined() : tokens.map(\.text).joined()
    }
    var reasoningText: String { tokens.filter(\.reasoning).map(\.text).joined() }

    func usageJSON(promptTokens: Int) -> JSONValue {
        Usage(promptTokens: promptTokens, completionTokens: count, reasoningTokens: reasoningCount).json
    }

    func completeResponse(id: String, created: Int, model: String, promptTokens: Int) -> JSONValue {
        var choice: JSONValue
        if endpoint == .chat {
            var message: JSONValue = .object([("role", "assistant"), ("content", .string(contentText))])
            if style == .field { message.set("reasoning_content", .string(reasoningText)) }
            choice = .object([("index", 0), ("message", message), ("finish_reason", .string(finishReason))])
        } else {
            choice = .object([("index", 0), ("text", .string(contentText)), ("finish_reason", .string(finishReason))])
        }
        var response: JSONValue = .object([
            ("id", .string(id)), ("object", .string(endpoint.objectName)), ("created", .int(created)),
            ("model", .string(model)), ("choices", .array([choice])),
        ])
        if usage { response.set("usage", usageJSON(promptTokens: promptTokens)) }
        return response
    }

    func chunk(_ i: Int, id: String, created: Int, model: String) -> JSONValue {
        let token = tokens[i]
        let choice: JSONValue
        if endpoint == .chat {
            var delta: JSONValue = .object([])
            if i == 0 { delta.set("role", "assistant") }
            if style == .field && token.reasoning {
                delta.set("reasoning_content", .string(token.text))
            } else {
                delta.set("content", .string(token.text))
            }
            choice = .object([("index", 0), ("delta", delta), ("finish_reason", .null)])
        } else {
            choice = .object([("index", 0), ("text", .string(token.text)), ("finish_reason", .null)])
        }
        return .object([
            ("id", .string(id)), ("object", .string(endpoint == .chat ? "chat.completion.chunk" : "text_completion")),
            ("created", .int(created)), ("model", .string(model)), ("choices", .array([choice])),
        ])
    }

    func finalChunk(id: String, created: Int, model: String) -> JSONValue {
        let choice: JSONValue = endpoint == .chat
            ? .object([("index", 0), ("delta", .object([])), ("finish_reason", .string(finishReason))])
            : .object([("index", 0), ("text", ""), ("finish_reason", .string(finishReason))])
        return .object([
            ("id", .string(id)), ("object", .string(endpoint == .chat ? "chat.completion.chunk" : "text_completion")),
            ("created", .int(created)), ("model", .string(model)), ("choices", .array([choice])),
        ])
    }

    func usageChunk(id: String, created: Int, model: String, promptTokens: Int) -> JSONValue {
        .object([
            ("id", .string(id)), ("object", .string(endpoint == .chat ? "chat.completion.chunk" : "text_completion")),
            ("created", .int(created)), ("model", .string(model)), ("choices", .array([])),
            ("usage", usageJSON(promptTokens: promptTokens)),
        ])
    }
}
