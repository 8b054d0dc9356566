import AsyncHTTPClient
import Foundation
import NIOCore
import OpenAIWire

/// Load figures an engine reports about itself (vLLM's Prometheus `/metrics`).
public struct EngineMetrics: Sendable, Equatable {
    public var waiting: Int?
    public var running: Int?
    /// KV-cache use, 0…1.
    public var kvUsage: Double?

    public init(waiting: Int? = nil, running: Int? = nil, kvUsage: Double? = nil) {
        self.waiting = waiting; self.running = running; self.kvUsage = kvUsage
    }

    /// Reads vLLM's metric names from a Prometheus text exposition. Series with labels (one per
    /// model) are summed. `kv_cache_usage_perc` is new vLLM, `gpu_cache_usage_perc` older.
    public init?(prometheus text: String) {
        var sums: [String: Double] = [:]
        for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2, let value = Double(parts[1]) else { continue }
            let name = parts[0].split(separator: "{", maxSplits: 1).first.map(String.init) ?? ""
            sums[name, default: 0] += value
        }
        let waiting = sums["vllm:num_requests_waiting"]
        let running = sums["vllm:num_requests_running"]
        let kv = sums["vllm:kv_cache_usage_perc"] ?? sums["vllm:gpu_cache_usage_perc"]
        if waiting == nil && running == nil && kv == nil { return nil }
        self.init(waiting: waiting.map { Int($0) }, running: running.map { Int($0) }, kvUsage: kv)
    }
}

/// What one active probe learnt about an engine.
public struct ProbeResult: Sendable {
    public var ok: Bool
    public var detail: String
    public var metrics: EngineMetrics?
    /// Engine model names loaded in memory (Ollama `/api/ps`); nil when the engine does not say.
    public var resident: Set<String>?
    /// Engine model names the engine can serve (`/v1/models`, `/api/tags`), when asked to discover.
    public var available: [String]?
}

extension Engine {
    /// GET with a bounded wait; nil when the engine could not be reached.
    func get(_ path: String, timeoutMs: Int) async -> (status: Int, body: [UInt8])? {
        let request = HTTPClientRequest(url: config.url + path)
        do {
            return try await withTimeout(timeoutMs) { [http] in
                let response = try await http.execute(request, deadline: .distantFuture)
                var buffer = try await response.body.collect(upTo: 8 << 20)
                return (Int(response.status.code), buffer.readBytes(length: buffer.readableBytes) ?? [])
            }
        } catch {
            return nil
        }
    }

    /// Health check by kind: vLLM `/health` + `/metrics`; Ollama `/api/ps` (+ `/api/tags`);
    /// llama.cpp `/openapi.json` (or `/health`), which take no model lock; the others `/v1/models`.
    public func probe(timeoutMs: Int = 2000) async -> ProbeResult {
        var result = ProbeResult(ok: false, detail: "")
        switch config.kind {
        case .vllm:
            guard let health = await get("/health", timeoutMs: timeoutMs) else { return ProbeResult(ok: false, detail: "unreachable") }
            guard health.status == 200 else { return ProbeResult(ok: false, detail: "/health answered \(health.status)") }
            result.ok = true
            if let m = await get("/metrics", timeoutMs: timeoutMs), m.status == 200 {
                result.metrics = EngineMetrics(prometheus: String(decoding: m.body, as: UTF8.self))
            }
            if config.discoverModels { result.available = await openAIModels(timeoutMs: timeoutMs) }
        case .ollama:
            guard let ps = await get("/api/ps", timeoutMs: timeoutMs) else { return ProbeResult(ok: false, detail: "unreachable") }
            guard ps.status == 200 else { return ProbeResult(ok: false, detail: "/api/ps answered \(ps.status)") }
            result.ok = true
            let json = try? JSONValue.parse(ps.body)
            result.resident = Set((json?["models"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue ?? $0["model"]?.stringValue })
            if config.discoverModels, let tags = await get("/api/tags", timeoutMs: timeoutMs), tags.status == 200 {
                let t = try? JSONValue.parse(tags.body)
                result.available = (t?["models"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue ?? $0["model"]?.stringValue }
            }
        case .llamacpp:
            // llama-cpp-python takes its model lock for /v1/models (a probe there waits behind a
            // generation, or cuts it with the engine's default interrupt_requests); FastAPI's own
            // /openapi.json takes no lock. llama.cpp's native server has /health.
            guard var answer = await get("/openapi.json", timeoutMs: timeoutMs) else { return ProbeResult(ok: false, detail: "unreachable") }
            if answer.status == 404, let health = await get("/health", timeoutMs: timeoutMs) { answer = health }
            guard answer.status == 200 else { return ProbeResult(ok: false, detail: "health check answered \(answer.status)") }
            result.ok = true
            if config.discoverModels { result.available = await openAIModels(timeoutMs: timeoutMs) }
        case .openai, .sim:
            guard let models = await get("/v1/models", timeoutMs: timeoutMs) else { return ProbeResult(ok: false, detail: "unreachable") }
            guard models.status == 200 else { return ProbeResult(ok: false, detail: "/v1/models answered \(models.status)") }
            result.ok = true
            if config.discoverModels {
                let json = try? JSONValue.parse(models.body)
                result.available = (json?["data"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
            }
        }
        return result
    }

    func openAIModels(timeoutMs: Int) async -> [String]? {
        guard let r = await get("/v1/models", timeoutMs: timeoutMs), r.status == 200 else { return nil }
        let json = try? JSONValue.parse(r.body)
        return (json?["data"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
    }
}

/// Maps engine model names to catalog ids: an exact match first, then a loose one
/// (`Qwen/Qwen3-8B` and `qwen3:8b:latest` both match catalog `qwen3:8b`).
public enum ModelNameMatcher {
    public static func normalize(_ name: String) -> String {
        var n = name.lowercased()
        if let slash = n.lastIndex(of: "/") { n = String(n[n.index(after: slash)...]) }
        if n.hasSuffix(":latest") { n = String(n.dropLast(7)) }
        return String(n.map { ":-_.".contains($0) ? "-" : $0 })
    }

    /// Catalog id → engine name for every engine name that names a catalog model.
    public static func map(engineNames: [String], catalogIDs: [String]) -> [String: String] {
        var byNorm: [String: String] = [:]
        for id in catalogIDs { byNorm[normalize(id)] = id }
        let exact = Set(catalogIDs)
        var out: [String: String] = [:]
        for name in engineNames {
            if exact.contains(name) { out[name] = name; continue }
            if let id = byNorm[normalize(name)], out[id] == nil { out[id] = name }
        }
        return out
    }
}
