/// Token counts of one request, in OpenAI's `usage` shape.
public struct Usage: Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    /// Part of `completionTokens` spent on reasoning (`completion_tokens_details.reasoning_tokens`).
    public var reasoningTokens: Int
    /// True when the engine gave no counts and the platform estimated them.
    public var estimated: Bool

    public init(promptTokens: Int, completionTokens: Int, reasoningTokens: Int = 0, estimated: Bool = false) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.reasoningTokens = reasoningTokens
        self.estimated = estimated
    }

    public var totalTokens: Int { promptTokens + completionTokens }

    /// Reads an engine's `usage` object; nil when absent or not shaped like one.
    public init?(json: JSONValue?) {
        guard let json, case .object = json, let prompt = json["prompt_tokens"]?.intValue else { return nil }
        self.promptTokens = prompt
        self.completionTokens = json["completion_tokens"]?.intValue ?? 0
        self.reasoningTokens = json["completion_tokens_details"]?["reasoning_tokens"]?.intValue ?? 0
        self.estimated = false
    }

    public var json: JSONValue {
        var members: [(String, JSONValue)] = [
            ("prompt_tokens", .int(promptTokens)),
            ("completion_tokens", .int(completionTokens)),
            ("total_tokens", .int(totalTokens)),
            ("completion_tokens_details", .object([("reasoning_tokens", .int(reasoningTokens))])),
        ]
        if estimated { members.append(("estimated", .bool(true))) }
        return .object(members)
    }

    /// The rough estimate of SPEC S3 (1 token ≈ 4 characters), used only when an engine gives no count.
    public static func estimateTokens(_ text: String) -> Int {
        text.isEmpty ? 0 : max(1, (text.utf8.count + 3) / 4)
    }
}
