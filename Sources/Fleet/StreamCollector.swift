import Foundation
import OpenAIWire

/// Builds one complete OpenAI answer from a relayed stream. llama.cpp answers non-streamed chat
/// and completions requests through a stream the gateway reads (issue 11): llama-cpp-python
/// notices a closed connection only while streaming, so this is what lets a client that went
/// away stop the generation, and lets the gateway know what was produced until then.
struct StreamCollector {
    let endpoint: Endpoint
    var first: JSONValue?
    var text = ""
    var reasoning = ""
    var finishReason: JSONValue = .null
    var usage: Usage?
    var textChunks = 0

    init(endpoint: Endpoint) { self.endpoint = endpoint }

    /// Whether a non-streamed request can be answered this way: the answer of a stream carries no
    /// per-token log probabilities, several choices or tool-call fragments to reassemble.
    static func canCollect(_ body: JSONValue, endpoint: Endpoint) -> Bool {
        guard endpoint.spec.generates else { return false }
        if let lp = body["logprobs"], !lp.isNull, lp.boolValue != false { return false }
        if let n = body["n"]?.intValue, n > 1 { return false }
        if let tools = body["tools"]?.arrayValue, !tools.isEmpty { return false }
        if let echo = body["echo"]?.boolValue, echo { return false }
        return true
    }

    mutating func add(_ event: RelayedEvent) {
        switch event {
        case .usage(let u):
            usage = u
        case .spliced(let chunk):
            if first == nil { first = try? chunk.json() }
            if !chunk.content.isEmpty { text += chunk.content; textChunks += 1 }
            reasoning += chunk.reasoning
            if let f = chunk.finishReason, !f.isNull { finishReason = f }
        case .chunk(let chunk):
            if first == nil { first = chunk }
            guard let choice = chunk["choices"]?.arrayValue?.first else { return }
            let (piece, r) = endpoint.spec.deltaText(choice)
            if !piece.isEmpty { text += piece; textChunks += 1 }
            reasoning += r
            if let f = choice["finish_reason"], !f.isNull { finishReason = f }
        }
    }

    /// The answer as the engine would have sent it without streaming.
    func answer(usage: Usage, id newID: String, created now: Int) -> JSONValue {
        let id = first?["id"] ?? .string(newID)
        let created = first?["created"] ?? .int(now)
        let model = first?["model"] ?? .null
        let choice = endpoint.spec.collectedChoice(text: text, reasoning: reasoning, finishReason: finishReason)
        return .object([("id", id), ("object", .string(endpoint.objectName)), ("created", created), ("model", model),
                        ("choices", .array([choice])), ("usage", usage.json)])
    }

    /// What was collected, as the relay summarises a stream (for the estimate of a stopped one).
    var summary: StreamSummary {
        var s = StreamSummary()
        s.output = text
        s.reasoning = reasoning
        s.textChunks = textChunks
        return s
    }
}
