import OpenAIWire
import Testing
@testable import Metering

@Suite("tokens")
struct TokenAccountTests {
    let words: TokenCounter = { $0.split(whereSeparator: \.isWhitespace).count }

    @Test func sharesAreBreakdowns() {
        let a = TokenAccount(inputTokens: 10, systemPromptTokens: 50, outputTokens: 5, reasoningTokens: 9)
        #expect(a.systemPromptTokens == 10 && a.reasoningTokens == 5)
        #expect(a.visibleOutputTokens == 0 && a.userInputTokens == 0)
        let b = TokenAccount(usage: Usage(promptTokens: 100, completionTokens: 40, reasoningTokens: 30), systemPromptTokens: 20)
        #expect(b.usage == Usage(promptTokens: 100, completionTokens: 40, reasoningTokens: 30))
        #expect((a + b).outputTokens == 45)
        #expect((a + TokenAccount(inputTokens: 1, outputTokens: 1, estimated: true)).estimated)
    }

    @Test func engineCountsWin() {
        let a = TokenAccount.resolve(engineUsage: Usage(promptTokens: 12, completionTokens: 30, reasoningTokens: 20),
                                     systemPromptTokens: 4, outputText: "<think>a b c</think>answer", tokenizer: words)
        #expect(a == TokenAccount(inputTokens: 12, systemPromptTokens: 4, outputTokens: 30, reasoningTokens: 20))
    }

    @Test func thinkBlocksCountedWithTokenizerWhenEngineGivesNoReasoning() {
        let a = TokenAccount.resolve(engineUsage: Usage(promptTokens: 12, completionTokens: 30),
                                     outputText: "<think>one two three</think>\n\nthe answer", tokenizer: words)
        #expect(a.reasoningTokens == 3 && a.outputTokens == 30 && !a.estimated)
        let b = TokenAccount.resolve(engineUsage: Usage(promptTokens: 12, completionTokens: 30),
                                     outputText: "answer", reasoningContent: "four five six seven", tokenizer: words)
        #expect(b.reasoningTokens == 4 && !b.estimated)
    }

    @Test func noEngineUsageIsEstimated() {
        // llama.cpp streaming: no usage at all, no tokenizer → 1 token ≈ 4 characters
        let a = TokenAccount.resolve(engineUsage: nil, promptText: String(repeating: "x", count: 40),
                                     outputText: "<think>" + String(repeating: "r", count: 16) + "</think>" + String(repeating: "v", count: 8))
        #expect(a == TokenAccount(inputTokens: 10, outputTokens: 6, reasoningTokens: 4, estimated: true))
        // with a tokenizer the counts are real
        let b = TokenAccount.resolve(engineUsage: nil, promptText: "a b", outputText: "c d e", tokenizer: words)
        #expect(b == TokenAccount(inputTokens: 2, outputTokens: 3))
    }

    @Test func splitter() {
        #expect(ThinkSplitter.split("plain") == ReasoningSplit(reasoning: "", visible: "plain", unterminated: false))
        #expect(ThinkSplitter.split("<think>hmm</think>\n\nHello") == ReasoningSplit(reasoning: "hmm", visible: "Hello", unterminated: false))
        #expect(ThinkSplitter.split("A<think> x </think>B<think>y</think>C")
                == ReasoningSplit(reasoning: "x\ny", visible: "ABC", unterminated: false))
        // stream cut inside the thought
        #expect(ThinkSplitter.split("<think>still thinking") == ReasoningSplit(reasoning: "still thinking", visible: "", unterminated: true))
        #expect(ThinkSplitter.split("Hi <think>") == ReasoningSplit(reasoning: "", visible: "Hi ", unterminated: true))
        // the template opened the thought in the prompt
        #expect(ThinkSplitter.split("reasoning here</think>\nAnswer") == ReasoningSplit(reasoning: "reasoning here", visible: "Answer", unterminated: false))
        // other tags are content
        #expect(ThinkSplitter.split("<b>bold</b>") == ReasoningSplit(reasoning: "", visible: "<b>bold</b>", unterminated: false))
        // unicode stays intact
        #expect(ThinkSplitter.split("<think>é🙂</think>ü").reasoning == "é🙂")
    }
}
