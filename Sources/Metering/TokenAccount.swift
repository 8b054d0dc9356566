import OpenAIWire

/// The token counts of one request, as billed.
///
/// Shares are *breakdowns*, never extra tokens: `systemPromptTokens ⊆ inputTokens` and
/// `reasoningTokens ⊆ outputTokens` (as OpenAI's `completion_tokens_details.reasoning_tokens`
/// is a part of `completion_tokens`). The initializer clamps counts so these always hold.
public struct TokenAccount: Sendable, Hashable {
    /// Prompt and context tokens (OpenAI `prompt_tokens`).
    public private(set) var inputTokens: Int
    /// The part of `inputTokens` spent on system instructions (SPEC S3 "system" tokens).
    public private(set) var systemPromptTokens: Int
    /// Generated tokens, reasoning included (OpenAI `completion_tokens`).
    public private(set) var outputTokens: Int
    /// The part of `outputTokens` spent on reasoning.
    public private(set) var reasoningTokens: Int
    /// True when any count was estimated (1 token ≈ 4 characters) rather than counted.
    public var estimated: Bool

    public init(inputTokens: Int, systemPromptTokens: Int = 0, outputTokens: Int,
                reasoningTokens: Int = 0, estimated: Bool = false) {
        self.inputTokens = max(0, inputTokens)
        self.systemPromptTokens = min(max(0, systemPromptTokens), self.inputTokens)
        self.outputTokens = max(0, outputTokens)
        self.reasoningTokens = min(max(0, reasoningTokens), self.outputTokens)
        self.estimated = estimated
    }

    public static let zero = TokenAccount(inputTokens: 0, outputTokens: 0)

    /// From an OpenAI-shaped `usage`, with the system-prompt share given by the caller.
    public init(usage: Usage, systemPromptTokens: Int = 0) {
        self.init(inputTokens: usage.promptTokens, systemPromptTokens: systemPromptTokens,
                  outputTokens: usage.completionTokens, reasoningTokens: usage.reasoningTokens,
                  estimated: usage.estimated)
    }

    /// The `usage` the client gets (reasoning inside `completion_tokens_details`).
    public var usage: Usage {
        Usage(promptTokens: inputTokens, completionTokens: outputTokens,
              reasoningTokens: reasoningTokens, estimated: estimated)
    }

    /// Input that is not system instructions.
    public var userInputTokens: Int { inputTokens - systemPromptTokens }
    /// Output billed at the output price: output minus reasoning.
    public var visibleOutputTokens: Int { outputTokens - reasoningTokens }
    public var totalTokens: Int { inputTokens + outputTokens }

    /// Sums accounts (reports, per-tenant totals); estimated if any part was.
    public static func + (a: TokenAccount, b: TokenAccount) -> TokenAccount {
        TokenAccount(inputTokens: a.inputTokens + b.inputTokens,
                     systemPromptTokens: a.systemPromptTokens + b.systemPromptTokens,
                     outputTokens: a.outputTokens + b.outputTokens,
                     reasoningTokens: a.reasoningTokens + b.reasoningTokens,
                     estimated: a.estimated || b.estimated)
    }
}

/// Counts tokens of a text with the serving model's tokenizer; nil when none is available.
public typealias TokenCounter = @Sendable (String) -> Int

extension TokenAccount {
    /// Counts `text` with `tokenizer`, else estimates (1 token ≈ 4 characters, SPEC S3).
    /// Returns the count and whether it was estimated.
    public static func count(_ text: String, tokenizer: TokenCounter?) -> (tokens: Int, estimated: Bool) {
        if text.isEmpty { return (0, false) }
        if let tokenizer { return (tokenizer(text), false) }
        return (Usage.estimateTokens(text), true)
    }

    /// Builds the billed account of one finished (or cut) request, whatever the engine sent.
    ///
    /// Order of trust, per count (issue 4):
    /// - input: the engine's `prompt_tokens`; else `promptText` counted (tokenizer or estimate).
    /// - output: the engine's `completion_tokens`; else reasoning + visible text counted.
    /// - reasoning: the engine's `completion_tokens_details.reasoning_tokens` when > 0; else the
    ///   `reasoning_content` text plus any `<think>…</think>` blocks of `outputText`, counted with
    ///   `tokenizer`, else estimated (and the account marked estimated).
    ///
    /// - Parameters:
    ///   - engineUsage: the engine's `usage`, nil when it sent none (llama.cpp streaming).
    ///   - systemPromptTokens: the system-prompt share of the input, counted by the caller.
    ///   - promptText: the prompt as text, used only when the engine gave no `prompt_tokens`.
    ///   - outputText: all generated `content` text (may contain think blocks).
    ///   - reasoningContent: all generated `reasoning_content` text (vLLM/DeepSeek style).
    public static func resolve(engineUsage: Usage?, systemPromptTokens: Int = 0, promptText: String = "",
                               outputText: String, reasoningContent: String? = nil,
                               tokenizer: TokenCounter? = nil) -> TokenAccount {
        let split = ThinkSplitter.split(outputText)
        var reasoningText = reasoningContent ?? ""
        if !split.reasoning.isEmpty {
            reasoningText += reasoningText.isEmpty ? split.reasoning : "\n" + split.reasoning
        }
        var estimated = engineUsage?.estimated ?? false

        let input: Int
        if let engineUsage { input = engineUsage.promptTokens } else {
            let c = count(promptText, tokenizer: tokenizer)
            input = c.tokens; estimated = estimated || c.estimated
        }

        var reasoning = 0
        if let r = engineUsage?.reasoningTokens, r > 0 { reasoning = r } else if !reasoningText.isEmpty {
            let c = count(reasoningText, tokenizer: tokenizer)
            reasoning = c.tokens; estimated = estimated || c.estimated
        }

        let output: Int
        if let engineUsage { output = engineUsage.completionTokens } else {
            let visible = count(split.visible, tokenizer: tokenizer)
            output = reasoning + visible.tokens; estimated = estimated || visible.estimated
        }
        return TokenAccount(inputTokens: input, systemPromptTokens: systemPromptTokens,
                            outputTokens: max(output, reasoning), reasoningTokens: reasoning,
                            estimated: estimated)
    }
}
