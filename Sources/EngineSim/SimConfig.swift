/// Settings of one simulated engine. EngineSim is a SIMULATOR: it produces deterministic
/// pseudo-text with engine-like timing, for tests and benchmarks that one machine cannot do
/// with real GPUs (many machines, saturation, faults). It is never a model.
public struct SimConfig: Sendable {
    public enum ReasoningStyle: String, Sendable, CaseIterable {
        case none
        /// `reasoning_content` in messages and deltas (vLLM's reasoning parser style).
        case field
        /// `<think>…</think>` at the start of the content (raw reasoning-model output).
        case think
    }

    public enum Fault: String, Sendable, CaseIterable {
        case none
        /// Close each connection as soon as it is accepted.
        case refuse
        /// Answer HTTP 500.
        case http500 = "500"
        /// Accept the request and never answer.
        case hang
        /// Stream a few tokens, then close the connection without `[DONE]`.
        case cut
        /// Ignore the request's max_tokens (an engine that does not honour the client's cap).
        case overrun
        /// Answer normally, but wait `slowDelayMs` more before the first token (a model gone slow).
        case slow
    }

    /// Which engine the simulator imitates.
    public enum Mode: String, Sendable, CaseIterable {
        /// A plain OpenAI-compatible server (EngineSim v1).
        case openai
        /// vLLM-like: continuous batching, prefix-cached KV blocks, `/metrics` in vLLM's names.
        case vllm
        /// Ollama-like: native `/api/*` (NDJSON streams), few resident models, cold loads.
        case ollama
    }

    public var mode: Mode = .openai
    /// Sequences decoded at once; more wait in the engine's queue (0: unlimited).
    public var maxBatch: Int = 0
    /// Inter-token latency grows by this fraction of `itlMs` per extra running sequence.
    public var batchSlowdown: Double = 0
    /// Prefill time per prompt token not found in the prefix cache.
    public var prefillMsPerToken: Double = 0
    /// KV-cache size in blocks (0: no prefix caching) and tokens per block.
    public var kvBlocks: Int = 0
    public var blockTokens: Int = 16
    /// Ollama: models held in memory at once (0: unlimited) and the time to load a cold one.
    public var maxResident: Int = 0
    public var loadMs: Int = 0
    /// Ollama: models loaded at start (the rest of `models` are "on disk").
    public var initiallyResident: [String]? = nil

    public var host: String
    public var port: Int
    public var models: [String]
    public var ttftMs: Int
    public var itlMs: Int
    public var usage: Bool
    public var reasoning: ReasoningStyle
    public var seed: UInt64
    /// Tokens produced when the request sets no max_tokens.
    public var defaultTokens: Int
    public var fault: Fault
    /// With `cut`: tokens sent before the cut.
    public var cutAfterTokens: Int
    public var embeddingDimensions: Int
    /// With `slow`: the extra wait before the first token (POST /sim/fault may change it).
    public var slowDelayMs: Int = 400

    public init(host: String = "127.0.0.1", port: Int = 0, models: [String] = ["sim-chat"], ttftMs: Int = 20, itlMs: Int = 5,
                usage: Bool = true, reasoning: ReasoningStyle = .none, seed: UInt64 = 42, defaultTokens: Int = 32,
                fault: Fault = .none, cutAfterTokens: Int = 3, embeddingDimensions: Int = 64) {
        self.host = host; self.port = port; self.models = models; self.ttftMs = ttftMs; self.itlMs = itlMs
        self.usage = usage; self.reasoning = reasoning; self.seed = seed; self.defaultTokens = defaultTokens
        self.fault = fault; self.cutAfterTokens = cutAfterTokens; self.embeddingDimensions = embeddingDimensions
    }
}
