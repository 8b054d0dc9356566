import OpenAIWire

/// How an engine turns a request into its prompt text, so that prompt tokens can be counted with
/// the engine's tokenizer when the engine itself reports none (llama.cpp streams).
public struct ChatTemplate: Sendable, Equatable {
    /// System prompt the template inserts when the conversation has none.
    public var defaultSystem: String?

    public init(defaultSystem: String?) { self.defaultSystem = defaultSystem }

    /// SmolLM2-Instruct's template (ChatML with a default system prompt), as in its GGUF metadata.
    public static let smolLM2 = ChatTemplate(defaultSystem: "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
    public static let chatML = ChatTemplate(defaultSystem: nil)

    public func render(_ request: UpstreamRequest) -> String {
        guard request.endpoint == .chat else {
            return InferenceRequest.promptTexts(of: request.body, endpoint: request.endpoint).joined(separator: "\n")
        }
        let messages = request.body["messages"]?.arrayValue ?? []
        var out = ""
        for (i, m) in messages.enumerated() {
            let role = m["role"]?.stringValue ?? "user"
            if i == 0, role != "system", let system = defaultSystem {
                out += "<|im_start|>system\n\(system)<|im_end|>\n"
            }
            let content = InferenceRequest.promptTexts(of: .object([("messages", .array([m]))]), endpoint: .chat).joined()
            out += "<|im_start|>\(role)\n\(content)<|im_end|>\n"
        }
        return out + "<|im_start|>assistant\n"
    }
}
