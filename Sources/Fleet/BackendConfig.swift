/// The kinds of engine the fleet can talk to.
public enum EngineKind: String, Sendable, CaseIterable {
    /// Any OpenAI-compatible server (vLLM's and Ollama's `/v1` included, without their extras).
    case openai
    /// llama-cpp-python's server: no usage in streams, per-token embeddings, 500 on bad input.
    case llamacpp
    /// EngineSim, the simulated engine used for tests and benchmarks.
    case sim
}

public struct Timeouts: Sendable, Equatable {
    /// Connecting to the engine.
    public var connectMs: Int
    /// From sending the request to the response head (for a non-streamed answer: the whole answer).
    public var firstByteMs: Int
    /// Longest silence allowed between two chunks of a stream.
    public var idleMs: Int

    public init(connectMs: Int = 2000, firstByteMs: Int = 120_000, idleMs: Int = 60_000) {
        self.connectMs = connectMs
        self.firstByteMs = firstByteMs
        self.idleMs = idleMs
    }
}

/// A llama.cpp server the gateway starts and supervises itself.
public struct ManagedEngineConfig: Sendable, Equatable {
    public var modelFile: String
    public var python: String
    public var extraArgs: [String]

    public init(modelFile: String, python: String, extraArgs: [String] = []) {
        self.modelFile = modelFile
        self.python = python
        self.extraArgs = extraArgs
    }
}

public struct BackendConfig: Sendable, Equatable {
    public var name: String
    public var kind: EngineKind
    /// Base URL without `/v1`, e.g. `http://127.0.0.1:8081`.
    public var url: String
    /// Catalog model id → the engine's served name.
    public var models: [String: String]
    public var timeouts: Timeouts
    public var managed: ManagedEngineConfig?

    public init(name: String, kind: EngineKind, url: String, models: [String: String], timeouts: Timeouts = Timeouts(),
                managed: ManagedEngineConfig? = nil) {
        self.name = name
        self.kind = kind
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.models = models
        self.timeouts = timeouts
        self.managed = managed
    }
}
