import OpenAIWire

/// vLLM: OpenAI's API plus `/health`, Prometheus `/metrics` (queue, running, KV-cache use) and
/// `reasoning_content` in messages and deltas.
struct VLLMAdapter: EngineAdapter {
    var shortensEmbeddings: Bool { true }  // vLLM knows whether the model was trained for it

    func probe(_ engine: Engine, timeoutMs: Int) async -> ProbeResult {
        guard let health = await engine.get("/health", timeoutMs: timeoutMs) else { return ProbeResult(ok: false, detail: "unreachable") }
        guard health.status == 200 else { return ProbeResult(ok: false, detail: "/health answered \(health.status)") }
        var result = ProbeResult(ok: true, detail: "")
        if let m = await engine.get("/metrics", timeoutMs: timeoutMs), m.status == 200 {
            result.metrics = EngineMetrics(prometheus: String(decoding: m.body, as: UTF8.self))
        }
        if engine.config.discoverModels { result.available = await engine.openAIModels(timeoutMs: timeoutMs) }
        return result
    }
}
