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
        var request = HTTPClientRequest(url: config.url + path)
        request.tlsConfiguration = tls
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

    /// One health check, as this kind of engine answers it (see its ``EngineAdapter``).
    public func probe(timeoutMs: Int = 2000) async -> ProbeResult {
        await adapter.probe(self, timeoutMs: timeoutMs)
    }

    /// The model ids of an OpenAI `GET /v1/models` answer.
    static func modelIDs(_ body: [UInt8]) -> [String] {
        ((try? JSONValue.parse(body))?["data"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
    }

    func openAIModels(timeoutMs: Int) async -> [String]? {
        guard let r = await get("/v1/models", timeoutMs: timeoutMs), r.status == 200 else { return nil }
        return Self.modelIDs(r.body)
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
