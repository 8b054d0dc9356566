import OpenAIWire

/// Any OpenAI-compatible server (vLLM's and Ollama's `/v1` included, without their extras): the
/// request passes as it is, with usage asked for in streams.
struct OpenAICompatibleAdapter: EngineAdapter {
    var shortensEmbeddings: Bool { true }  // OpenAI answers for itself
}

/// EngineSim, the simulated engine of tests and benchmarks: it speaks OpenAI's API.
struct SimAdapter: EngineAdapter {}
