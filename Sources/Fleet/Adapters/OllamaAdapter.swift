import Foundation
import OpenAIWire

/// Ollama's native API (`/api/chat`, `/api/generate`, `/api/embed`, `/api/tags`, `/api/ps`):
/// requests are translated to it and answers, NDJSON streams and counts back to OpenAI's shape
/// (pure functions on JSON values: ``Engine`` does the I/O). No metrics: the gateway counts its
/// own load; `/api/ps` says which models are in memory.
public struct OllamaAdapter: EngineAdapter {
    var streamFormat: StreamFormat { .ndjson }
    var reportsResidency: Bool { true }

    func path(for endpoint: Endpoint) -> String? { Self.path(for: endpoint) }

    func prepare(_ body: JSONValue, _ request: UpstreamRequest) -> JSONValue {
        Self.request(body, endpoint: request.endpoint, stream: request.stream)
    }

    func answer(_ json: JSONValue, request: UpstreamRequest, id: String, created: Int) -> JSONValue {
        Self.response(json, endpoint: request.endpoint, model: request.body["model"]?.stringValue ?? "", id: id, created: created)
    }

    func chunk(line: JSONValue, request: UpstreamRequest, id: String, created: Int, first: Bool) -> JSONValue? {
        Self.chunk(line, endpoint: request.endpoint, model: request.body["model"]?.stringValue ?? "", id: id, created: created, first: first)
    }

    func usage(ofLine line: JSONValue) -> Usage? { Self.usage(line) }

    func tokenEmbeddingsBody(_ body: JSONValue, ids: [[Int]], engine: Engine) async throws(EngineError) -> JSONValue {
        throw .rejected(backend: engine.name, error: .invalidRequest("The engine serving this model (Ollama) does not accept token ids as embeddings input; send text instead.",
                                                                    param: "input", code: "invalid_value"))
    }

    /// `GET /api/ps` (models in memory), and `/api/tags` (models it has) when asked to discover.
    func probe(_ engine: Engine, timeoutMs: Int) async -> ProbeResult {
        guard let ps = await engine.get("/api/ps", timeoutMs: timeoutMs) else { return ProbeResult(ok: false, detail: "unreachable") }
        guard ps.status == 200 else { return ProbeResult(ok: false, detail: "/api/ps answered \(ps.status)") }
        var result = ProbeResult(ok: true, detail: "")
        result.resident = Set(Self.modelNames(ps.body))
        if engine.config.discoverModels, let tags = await engine.get("/api/tags", timeoutMs: timeoutMs), tags.status == 200 {
            result.available = Self.modelNames(tags.body)
        }
        return result
    }

    static func modelNames(_ body: [UInt8]) -> [String] {
        ((try? JSONValue.parse(body))?["models"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue ?? $0["model"]?.stringValue }
    }

    /// The native path for an OpenAI endpoint; nil for endpoints Ollama has no equivalent of.
    public static func path(for endpoint: Endpoint) -> String? {
        switch endpoint {
        case .chat: return "/api/chat"
        case .completions: return "/api/generate"
        case .embeddings: return "/api/embed"
        default: return nil
        }
    }

    /// OpenAI request body → Ollama request body. Sampling parameters go to `options`; fields
    /// Ollama has no equivalent for are dropped (Ollama rejects nothing, it ignores).
    public static func request(_ body: JSONValue, endpoint: Endpoint, stream: Bool) -> JSONValue {
        var out: JSONValue = .object([("model", body["model"] ?? .null)])
        if endpoint == .embeddings {
            out.set("input", body["input"] ?? .string(""))
            return out
        }
        out.set("stream", .bool(stream))
        switch endpoint {
        case .chat:
            let messages: [JSONValue] = (body["messages"]?.arrayValue ?? []).map { m in
                var msg: JSONValue = .object([("role", m["role"] ?? "user")])
                var text = ""
                var images: [JSONValue] = []
                if let s = m["content"]?.stringValue {
                    text = s
                } else if let parts = m["content"]?.arrayValue {
                    for p in parts {
                        if let t = p["text"]?.stringValue { text += t }
                        if let url = p["image_url"]?["url"]?.stringValue, let comma = url.firstIndex(of: ",") {
                            images.append(.string(String(url[url.index(after: comma)...])))  // data URL → base64
                        }
                    }
                }
                msg.set("content", .string(text))
                if !images.isEmpty { msg.set("images", .array(images)) }
                if let calls = m["tool_calls"] { msg.set("tool_calls", calls) }
                return msg
            }
            out.set("messages", .array(messages))
            if let tools = body["tools"] { out.set("tools", tools) }
        case .completions:
            let prompt = body["prompt"]?.stringValue ?? body["prompt"]?.arrayValue?.first?.stringValue ?? ""
            out.set("prompt", .string(prompt))
            if let suffix = body["suffix"] { out.set("suffix", suffix) }
        default:
            break
        }
        var options: [(String, JSONValue)] = []
        for (openai, ollama) in [("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k"), ("seed", "seed"),
                                 ("frequency_penalty", "frequency_penalty"), ("presence_penalty", "presence_penalty")] {
            if let v = body[openai], !v.isNull { options.append((ollama, v)) }
        }
        if let n = body["max_completion_tokens"] ?? body["max_tokens"], !n.isNull { options.append(("num_predict", n)) }
        if let stop = body["stop"], !stop.isNull { options.append(("stop", stop.stringValue.map { .array([.string($0)]) } ?? stop)) }
        if !options.isEmpty { out.set("options", .object(options)) }
        if body["response_format"]?["type"]?.stringValue == "json_object" { out.set("format", "json") }
        if let schema = body["response_format"]?["json_schema"]?["schema"] { out.set("format", schema) }
        if let effort = body["reasoning_effort"], !effort.isNull { out.set("think", true) }
        return out
    }

    /// Ollama's `done_reason` → OpenAI's `finish_reason`.
    public static func finishReason(_ doneReason: String?, hasToolCalls: Bool) -> String {
        if hasToolCalls { return "tool_calls" }
        switch doneReason {
        case "length": return "length"
        default: return "stop"
        }
    }

    /// Token counts of a final Ollama message (`prompt_eval_count`, `eval_count`); nil without them.
    public static func usage(_ json: JSONValue) -> Usage? {
        guard let p = json["prompt_eval_count"]?.intValue ?? (json["eval_count"] != nil ? 0 : nil) else { return nil }
        return Usage(promptTokens: p, completionTokens: json["eval_count"]?.intValue ?? 0)
    }

    /// A complete Ollama answer → the OpenAI answer (usage included when Ollama gave counts).
    public static func response(_ json: JSONValue, endpoint: Endpoint, model: String, id: String, created: Int) -> JSONValue {
        switch endpoint {
        case .embeddings:
            let vectors = json["embeddings"]?.arrayValue ?? []
            let data: [JSONValue] = vectors.enumerated().map { i, v in
                .object([("object", "embedding"), ("index", .int(i)), ("embedding", v)])
            }
            var out: JSONValue = .object([("object", "list"), ("data", .array(data)), ("model", .string(model))])
            let p = json["prompt_eval_count"]?.intValue ?? 0
            out.set("usage", .object([("prompt_tokens", .int(p)), ("total_tokens", .int(p))]))
            return out
        default:
            let choice: JSONValue
            if endpoint == .chat {
                var message: JSONValue = .object([("role", "assistant"), ("content", json["message"]?["content"] ?? .string(""))])
                if let thinking = json["message"]?["thinking"]?.stringValue, !thinking.isEmpty {
                    message.set("reasoning_content", .string(thinking))
                }
                let calls = toolCalls(json["message"]?["tool_calls"])
                if let calls { message.set("tool_calls", calls) }
                choice = .object([("index", 0), ("message", message),
                                  ("finish_reason", .string(finishReason(json["done_reason"]?.stringValue, hasToolCalls: calls != nil)))])
            } else {
                choice = .object([("index", 0), ("text", json["response"] ?? .string("")),
                                  ("finish_reason", .string(finishReason(json["done_reason"]?.stringValue, hasToolCalls: false)))])
            }
            var out: JSONValue = .object([
                ("id", .string(id)), ("object", .string(endpoint.objectName)), ("created", .int(created)),
                ("model", .string(model)), ("choices", .array([choice])),
            ])
            if let u = usage(json) { out.set("usage", u.json) }
            return out
        }
    }

    /// Ollama tool calls (`arguments` an object) → OpenAI's (`arguments` a JSON string, with ids).
    static func toolCalls(_ value: JSONValue?) -> JSONValue? {
        guard let calls = value?.arrayValue, !calls.isEmpty else { return nil }
        return .array(calls.enumerated().map { i, c in
            let args = c["function"]?["arguments"] ?? .object([])
            return .object([
                ("id", .string("call_\(i)")), ("type", "function"),
                ("function", .object([("name", c["function"]?["name"] ?? .string("")),
                                      ("arguments", .string(args.stringValue ?? args.jsonString))])),
            ])
        })
    }

    /// One NDJSON line of an Ollama stream → an OpenAI chunk (nil for a line with nothing to
    /// relay). `first` adds the assistant role, as OpenAI's first delta does.
    public static func chunk(_ line: JSONValue, endpoint: Endpoint, model: String, id: String, created: Int, first: Bool) -> JSONValue? {
        let done = line["done"]?.boolValue ?? false
        let choice: JSONValue
        if endpoint == .chat {
            var delta: JSONValue = .object([])
            if first { delta.set("role", "assistant") }
            if let t = line["message"]?["content"]?.stringValue, !t.isEmpty { delta.set("content", .string(t)) }
            if let t = line["message"]?["thinking"]?.stringValue, !t.isEmpty { delta.set("reasoning_content", .string(t)) }
            let calls = toolCalls(line["message"]?["tool_calls"])
            if let calls {
                delta.set("tool_calls", .array((calls.arrayValue ?? []).enumerated().map { i, c in c.setting("index", .int(i)) }))
            }
            if !done, delta.objectValue?.isEmpty ?? true { return nil }
            choice = .object([("index", 0), ("delta", delta),
                              ("finish_reason", done ? .string(finishReason(line["done_reason"]?.stringValue, hasToolCalls: calls != nil)) : .null)])
        } else {
            let text = line["response"]?.stringValue ?? ""
            if !done, text.isEmpty { return nil }
            choice = .object([("index", 0), ("text", .string(text)),
                              ("finish_reason", done ? .string(finishReason(line["done_reason"]?.stringValue, hasToolCalls: false)) : .null)])
        }
        return .object([
            ("id", .string(id)), ("object", .string(endpoint.spec.chunkObjectName ?? endpoint.objectName)),
            ("created", .int(created)), ("model", .string(model)), ("choices", .array([choice])),
        ])
    }
}

/// Splits a byte stream into newline-terminated lines (Ollama streams NDJSON).
struct LineSplitter {
    private var buffer: [UInt8] = []

    mutating func feed<C: Collection>(_ bytes: C) -> [[UInt8]] where C.Element == UInt8 {
        var lines: [[UInt8]] = []
        for b in bytes {
            if b == UInt8(ascii: "\n") {
                if !buffer.isEmpty { lines.append(buffer) }
                buffer.removeAll(keepingCapacity: true)
            } else if b != UInt8(ascii: "\r") {
                buffer.append(b)
            }
        }
        return lines
    }

    mutating func finish() -> [UInt8]? {
        defer { buffer = [] }
        return buffer.isEmpty ? nil : buffer
    }
}
