import Foundation
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

    // MARK: Ollama's native wire

    static func now() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date())
    }

    func ollamaResponse(model: String, promptTokens: Int) -> JSONValue {
        var out: JSONValue = .object([("model", .string(model)), ("created_at", .string(Self.now()))])
        if endpoint == .chat {
            var message: JSONValue = .object([("role", "assistant"), ("content", .string(contentText))])
            if style == .field { message.set("thinking", .string(reasoningText)) }
            out.set("message", message)
        } else {
            out.set("response", .string(contentText))
        }
        out.set("done", true)
        out.set("done_reason", .string(finishReason))
        if usage {
            out.set("prompt_eval_count", .int(promptTokens))
            out.set("eval_count", .int(count))
        }
        return out
    }

    func ollamaLine(_ i: Int, model: String) -> [UInt8] {
        let token = tokens[i]
        var line: JSONValue = .object([("model", .string(model)), ("created_at", .string(Self.now()))])
        if endpoint == .chat {
            let thinking = style == .field && token.reasoning
            line.set("message", .object([("role", "assistant"), ("content", .string(thinking ? "" : token.text))]
                                        + (thinking ? [("thinking", JSONValue.string(token.text))] : [])))
        } else {
            line.set("response", .string(token.text))
        }
        line.set("done", false)
        return line.serialized() + [UInt8(ascii: "\n")]
    }

    func ollamaFinalLine(model: String, promptTokens: Int) -> [UInt8] {
        var line: JSONValue = .object([("model", .string(model)), ("created_at", .string(Self.now()))])
        if endpoint == .chat {
            line.set("message", .object([("role", "assistant"), ("content", "")]))
        } else {
            line.set("response", "")
        }
        line.set("done", true)
        line.set("done_reason", .string(finishReason))
        if usage {
            line.set("prompt_eval_count", .int(promptTokens))
            line.set("eval_count", .int(count))
        }
        return line.serialized() + [UInt8(ascii: "\n")]
    }
}
