import Audio
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import OpenAIWire
import Synchronization

/// Counters the sim exposes at `GET /sim/stats`, so tests can see what reached the engine.
public struct SimStats: Sendable {
    public var requests = 0
    public var completed = 0
    public var cancelled = 0
    public var tokensGenerated = 0
    public var lastRequest: JSONValue = .null
    /// Prompt tokens seen, and those found in the prefix cache (SIMULATED cache).
    public var promptTokens = 0
    public var cachedPromptTokens = 0
    /// Cold model loads (Ollama mode).
    public var coldLoads = 0
}

/// One inference request, from either wire (OpenAI `/v1/*` or Ollama `/api/*`).
struct SimRequest {
    var endpoint: Endpoint
    var native: Bool
    var json: JSONValue
    var model: String
    var prompt: String
    var maxTokens: Int?
    var stream: Bool
    var includeUsage: Bool

    init(endpoint: Endpoint, native: Bool, json: JSONValue) {
        self.endpoint = endpoint
        self.native = native
        self.json = json
        model = json["model"]?.stringValue ?? ""
        if native {
            switch endpoint {
            case .chat:
                prompt = (json["messages"]?.arrayValue ?? []).map { $0["content"]?.stringValue ?? "" }.joined(separator: "\n")
            case .completions:
                prompt = json["prompt"]?.stringValue ?? ""
            default:
                prompt = json["input"]?.stringValue ?? (json["input"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: "\n")
            }
            maxTokens = json["options"]?["num_predict"]?.intValue
            stream = json["stream"]?.boolValue ?? true  // Ollama streams unless told not to
            includeUsage = true
        } else {
            prompt = InferenceRequest.promptTexts(of: json, endpoint: endpoint).joined(separator: "\n")
            maxTokens = json["max_completion_tokens"]?.intValue ?? json["max_tokens"]?.intValue
            stream = json["stream"]?.boolValue ?? false
            includeUsage = json["stream_options"]?["include_usage"]?.boolValue ?? false
        }
    }
}

/// EngineSim: a SIMULATED inference engine (NOT a model) on SwiftNIO. Every answer is
/// deterministic pseudo-text and every latency is a sleep computed from the configuration.
/// Speaks `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `/v1/models`, `/health`,
/// `/v1/rerank` (scores by shared words) and `/v1/audio/transcriptions` (fixed simulated text);
/// in vLLM mode `/metrics`; in Ollama mode `/api/chat`, `/api/generate`, `/api/embed`,
/// `/api/tags`, `/api/ps`; plus `/sim/fault` and `/sim/stats` for tests.
public final class EngineSim: Sendable {
    public let config: SimConfig
    private let fault: Mutex<SimConfig.Fault>
    private let slowDelayMs: Mutex<Int>
    private let stats = Mutex(SimStats())
    let scheduler: SimScheduler
    /// Stopped: the listener is closed and running streams are cut (a machine going down).
    private let down = Atomic<Bool>(false)
    private let listener = Mutex<(any Channel)?>(nil)
    /// Open client connections, closed all at once by ``stop()``.
    private let open = Mutex<[ObjectIdentifier: any Channel]>([:])

    public init(config: SimConfig) {
        self.config = config
        self.fault = Mutex(config.fault)
        self.slowDelayMs = Mutex(config.slowDelayMs)
        self.scheduler = SimScheduler(config: config)
    }

    public var currentStats: SimStats {
        var s = stats.withLock { $0 }
        let k = scheduler.snapshot
        s.promptTokens = k.promptTokens
        s.cachedPromptTokens = k.cachedTokens
        s.coldLoads = k.coldLoads
        return s
    }
    public func setFault(_ f: SimConfig.Fault) { fault.withLock { $0 = f } }

    /// Stops the simulated machine: closes the listening socket (new connections are refused)
    /// and cuts every running stream. ``run(onBound:)`` returns once they are gone.
    public func stop() {
        down.store(true, ordering: .sequentiallyConsistent)
        let channel = listener.withLock { c -> (any Channel)? in defer { c = nil }; return c }
        channel?.close(promise: nil)
        for c in open.withLock({ Array($0.values) }) { c.close(promise: nil) }
    }

    public var isDown: Bool { down.load(ordering: .relaxed) }

    typealias Outbound = NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>

    /// An accepted connection on its way from the listener to ``serve(_:)``. NIO drops it
    /// without handing it over when the listener closes (``stop()``, cancellation) while the
    /// connection is being set up or still buffered in the listener's stream — NIO's
    /// `_deliverReads` discards it once the stream is finished, and a cancelled or throwing
    /// `for try await` over the stream drops whatever it buffered. Its `NIOAsyncChannel` holds a
    /// writer that must be finished before it deinits (else: "Deinited NIOAsyncWriter without
    /// calling finish()", a crash on an NIO thread). ``serve(_:)`` takes it and always closes
    /// it through `executeThenClose` (which finishes the writer on every path, thrown errors
    /// included); one never taken is closed the same way when it is dropped.
    final class AcceptedConnection: Sendable {
        private let channel: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
        private let taken = Atomic<Bool>(false)
        init(_ channel: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) { self.channel = channel }

        /// The caller must end it with `executeThenClose`.
        func take() -> NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart> {
            taken.store(true, ordering: .sequentiallyConsistent)
            return channel
        }

        deinit {
            guard !taken.load(ordering: .sequentiallyConsistent) else { return }
            // The task keeps the channel (and its writer) alive until executeThenClose has
            // finished the writer and closed the socket.
            Task { [channel] in try? await channel.executeThenClose { _, _ in } }
        }
    }

    /// Binds and serves until the task is cancelled or ``stop()``. `onBound` receives the actual
    /// port. Calling it again after a stop restarts the machine with an empty cache.
    public func run(port overridePort: Int? = nil, onBound: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        if down.load(ordering: .relaxed) {
            scheduler.reset()
            down.store(false, ordering: .sequentiallyConsistent)
        }
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 1024)
            .bind(host: config.host, port: overridePort ?? config.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return AcceptedConnection(try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel))
                }
            }
        listener.withLock { $0 = server.channel }
        onBound(server.channel.localAddress?.port ?? config.port)
        try await withTaskCancellationHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { connections in
                    for try await connection in connections {
                        group.addTask { await self.serve(connection) }
                    }
                }
            }
        } onCancel: {
            server.channel.close(promise: nil)
        }
    }

    func serve(_ accepted: AcceptedConnection) async {
        let connection = accepted.take()
        // Closing through executeThenClose finishes the channel's writer first (dropping an
        // unfinished NIOAsyncWriter is a fatal error in debug builds).
        if fault.withLock({ $0 }) == .refuse || isDown {
            try? await connection.executeThenClose { _, _ in }
            return
        }
        let key = ObjectIdentifier(connection.channel)
        open.withLock { $0[key] = connection.channel }
        defer { open.withLock { _ = $0.removeValue(forKey: key) } }
        if isDown {  // stopped between the first check and the registration: stop() missed it
            try? await connection.executeThenClose { _, _ in }
            return
        }
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var body = ByteBuffer()
                for try await part in inbound {
                    switch part {
                    case .head(let h):
                        head = h
                        body.clear()
                    case .body(var b):
                        body.writeBuffer(&b)
                    case .end:
                        guard let h = head else { return }
                        let keepOpen = try await respond(h, Array(body.readableBytesView), outbound, connection.channel)
                        if !keepOpen || isDown { return }
                    }
                }
            }
        } catch {
            // Connection errors are the client's business.
        }
    }

    /// Returns false when the connection must be closed (a fault, or the client went away).
    func respond(_ head: HTTPRequestHead, _ body: [UInt8], _ out: Outbound, _ channel: any Channel) async throws -> Bool {
        let path = head.uri.split(separator: "?").first.map(String.init) ?? head.uri
        let ollama = config.mode == .ollama
        switch (head.method, path) {
        case (.GET, "/health"):
            try await sendJSON(out, ["status": "ok"])
        case (.GET, "/v1/models"):
            let data = config.models.map { JSONValue.object([("id", .string($0)), ("object", "model"), ("owned_by", "engine-sim")]) }
            try await sendJSON(out, .object([("object", "list"), ("data", .array(data))]))
        case (.GET, "/metrics") where config.mode == .vllm:
            try await sendText(out, metricsText(), contentType: "text/plain; version=0.0.4")
        case (.GET, "/api/tags") where ollama:
            try await sendJSON(out, .object([("models", .array(config.models.map { .object([("name", .string($0)), ("model", .string($0))]) }))]))
        case (.GET, "/api/ps") where ollama:
            try await sendJSON(out, .object([("models", .array(scheduler.residentModels.map { .object([("name", .string($0)), ("model", .string($0))]) }))]))
        case (.GET, "/api/version") where ollama:
            try await sendJSON(out, ["version": "0.0.0-enginesim"])
        case (.GET, "/sim/stats"):
            let s = currentStats
            try await sendJSON(out, .object([
                ("requests", .int(s.requests)), ("completed", .int(s.completed)), ("cancelled", .int(s.cancelled)),
                ("tokens_generated", .int(s.tokensGenerated)), ("last_request", s.lastRequest),
                ("prompt_tokens", .int(s.promptTokens)), ("cached_prompt_tokens", .int(s.cachedPromptTokens)),
                ("cold_loads", .int(s.coldLoads)), ("simulated", true),
            ]))
        case (.POST, "/sim/fault"):
            guard let json = try? JSONValue.parse(body), let mode = json["mode"]?.stringValue, let f = SimConfig.Fault(rawValue: mode) else {
                try await sendJSON(out, APIError.invalidRequest("send {\"mode\": \"none|refuse|500|hang|cut|overrun|slow\", \"delay_ms\": 400}").json, status: .badRequest)
                return true
            }
            if let delay = json["delay_ms"]?.intValue, delay >= 0 { slowDelayMs.withLock { $0 = delay } }
            setFault(f)
            try await sendJSON(out, ["mode": .string(f.rawValue), "delay_ms": .int(slowDelayMs.withLock { $0 })])
        case (.POST, "/v1/chat/completions"):
            return try await inference(.chat, native: false, body, out, channel)
        case (.POST, "/v1/completions"):
            return try await inference(.completions, native: false, body, out, channel)
        case (.POST, "/v1/embeddings"):
            return try await inference(.embeddings, native: false, body, out, channel)
        case (.POST, "/v1/rerank") where !ollama:
            return try await simulatedRerank(body, out)
        case (.POST, "/v1/audio/transcriptions") where !ollama:
            return try await simulatedTranscription(body, contentType: head.headers["content-type"].first, out)
        case (.POST, "/api/chat") where ollama:
            return try await inference(.chat, native: true, body, out, channel)
        case (.POST, "/api/generate") where ollama:
            return try await inference(.completions, native: true, body, out, channel)
        case (.POST, "/api/embed") where ollama:
            return try await inference(.embeddings, native: true, body, out, channel)
        default:
            try await sendJSON(out, APIError.notFound("no route \(head.method) \(path)").json, status: .notFound)
        }
        return true
    }

    /// SIMULATED rerank, in vLLM's shape: each document's score is the share of the query's
    /// distinct words it contains (deterministic; no model). Usage counts the words read.
    func simulatedRerank(_ body: [UInt8], _ out: Outbound) async throws -> Bool {
        guard let json = try? JSONValue.parse(body), let query = json["query"]?.stringValue,
              let documents = json["documents"]?.arrayValue?.compactMap(\.stringValue) else {
            try await sendJSON(out, APIError.invalidRequest("send {model, query, documents: [strings]}").json, status: .badRequest)
            return true
        }
        let model = json["model"]?.stringValue ?? ""
        guard config.models.contains(model) else {
            try await sendJSON(out, APIError.modelNotFound(model).json, status: .notFound)
            return true
        }
        stats.withLock { $0.requests += 1; $0.lastRequest = json }
        try await sleep(config.ttftMs)
        func words(_ t: String) -> Set<String> {
            Set(t.lowercased().split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map(String.init))
        }
        let q = words(query)
        let scored = documents.enumerated().map { i, d -> (Int, Double) in
            (i, q.isEmpty ? 0 : Double(q.intersection(words(d)).count) / Double(q.count))
        }.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
        let tokens = ([query] + documents).reduce(0) { $0 + SimText.countTokens($1) }
        let results: [JSONValue] = scored.map { .object([("index", .int($0.0)), ("document", .object([("text", .string(documents[$0.0]))])), ("relevance_score", .double($0.1))]) }
        stats.withLock { $0.completed += 1; $0.promptTokens += tokens }
        try await sendJSON(out, .object([("id", .string("sim-rerank")), ("model", .string(model)), ("usage", .object([("total_tokens", .int(tokens))])),
                                         ("results", .array(results)), ("simulated", true)]))
        return true
    }

    /// SIMULATED transcription: no speech recognition; a fixed sentence naming the file's
    /// container and duration (read from its header), in the asked response format.
    func simulatedTranscription(_ body: [UInt8], contentType: String?, _ out: Outbound) async throws -> Bool {
        let parts: [Multipart.Part]
        do { parts = try Multipart.parse(body, contentType: contentType) } catch {
            try await sendJSON(out, error.json, status: .badRequest)
            return true
        }
        func field(_ name: String) -> String? { parts.first { $0.name == name && $0.filename == nil }?.text }
        let model = field("model") ?? ""
        guard config.models.contains(model) else {
            try await sendJSON(out, APIError.modelNotFound(model).json, status: .notFound)
            return true
        }
        guard let file = parts.first(where: { $0.name == "file" }), let info = try? AudioDuration.read(file.data) else {
            try await sendJSON(out, APIError.invalidRequest("the simulated engine could not read the audio file", param: "file").json, status: .badRequest)
            return true
        }
        stats.withLock { $0.requests += 1; $0.lastRequest = .object(parts.filter { $0.filename == nil }.map { ($0.name, .string($0.text)) }) }
        try await sleep(config.ttftMs)
        let seconds = Double(info.durationMs) / 1000
        let text = "Simulated transcription (EngineSim, no speech recognition) of \(info.durationMs) ms of \(info.container.uppercased()) audio."
        func stamp(_ ms: Int, _ sep: String) -> String {
            String(format: "%02d:%02d:%02d%@%03d", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, sep, ms % 1000)
        }
        stats.withLock { $0.completed += 1 }
        switch field("response_format") ?? "json" {
        case "text": try await sendText(out, text + "\n", contentType: "text/plain; charset=utf-8")
        case "srt": try await sendText(out, "1\n\(stamp(0, ",")) --> \(stamp(info.durationMs, ","))\n\(text)\n\n", contentType: "text/plain; charset=utf-8")
        case "vtt": try await sendText(out, "WEBVTT\n\n\(stamp(0, ".")) --> \(stamp(info.durationMs, "."))\n\(text)\n\n", contentType: "text/vtt; charset=utf-8")
        case "verbose_json":
            let segment: JSONValue = .object([("id", 0), ("seek", 0), ("start", .double(0)), ("end", .double(seconds)), ("text", .string(text)), ("tokens", .array([])),
                                              ("temperature", .double(Double(field("temperature") ?? "0") ?? 0)), ("avg_logprob", .double(0)),
                                              ("compression_ratio", .double(1)), ("no_speech_prob", .double(0))])
            try await sendJSON(out, .object([("task", "transcribe"), ("language", .string(field("language") ?? "english")), ("duration", .double(seconds)),
                                             ("text", .string(text)), ("segments", .array([segment])), ("simulated", true)]))
        default:
            try await sendJSON(out, .object([("text", .string(text)), ("simulated", true)]))
        }
        return true
    }

    /// vLLM's metric names, from the simulated scheduler.
    func metricsText() -> String {
        let s = scheduler.snapshot
        let kv = scheduler.kvUsage
        let label = "{model_name=\"\(config.models.first ?? "sim")\"}"
        return """
        # SIMULATED by EngineSim
        # TYPE vllm:num_requests_running gauge
        vllm:num_requests_running\(label) \(s.running)
        # TYPE vllm:num_requests_waiting gauge
        vllm:num_requests_waiting\(label) \(s.waiting.count)
        # TYPE vllm:kv_cache_usage_perc gauge
        vllm:kv_cache_usage_perc\(label) \(kv)
        # TYPE vllm:prefix_cache_queries counter
        vllm:prefix_cache_queries_total\(label) \(s.promptTokens)
        # TYPE vllm:prefix_cache_hits counter
        vllm:prefix_cache_hits_total\(label) \(s.cachedTokens)

        """
    }

    func inference(_ endpoint: Endpoint, native: Bool, _ body: [UInt8], _ out: Outbound, _ channel: any Channel) async throws -> Bool {
        guard let json = try? JSONValue.parse(body), case .object = json else {
            try await sendJSON(out, APIError.invalidJSON("sim").json, status: .badRequest)
            return true
        }
        stats.withLock { $0.requests += 1; $0.lastRequest = json }
        let req = SimRequest(endpoint: endpoint, native: native, json: json)
        let model = req.model
        guard config.models.contains(model) else {
            if native {
                try await sendJSON(out, ["error": .string("model '\(model)' not found")], status: .notFound)
            } else {
                try await sendJSON(out, APIError.modelNotFound(model).json, status: .notFound)
            }
            return true
        }
        var f = fault.withLock { $0 }
        if let perRequest = json["sim_fault"]?.stringValue, let pf = SimConfig.Fault(rawValue: perRequest) { f = pf }
        switch f {
        case .refuse:
            try? await channel.close()
            return false
        case .http500:
            try await sendJSON(out, APIError.server("simulated engine failure").json, status: .internalServerError)
            return true
        case .hang:
            while channel.isActive && !isDown { try await Task.sleep(for: .milliseconds(50)) }
            if !isDown { stats.withLock { $0.cancelled += 1 } }  // the caller closed the connection
            return false
        case .none, .cut, .overrun, .slow:
            break
        }

        // The simulated engine: wait for a batch slot, load the model if cold, prefill what the
        // prefix cache does not hold, then decode at the batch's pace.
        await scheduler.acquire()
        defer { scheduler.release() }
        _ = await scheduler.ensureResident(model)
        defer { scheduler.doneWith(model) }

        if endpoint == .embeddings {
            try await sleep(config.ttftMs)
            // Token ids (OpenAI API) are simulated as words, one per id.
            let tokenInputs = native ? nil : InferenceRequest.tokenInputs(json["input"] ?? .null)
            let inputs = native
                ? (json["input"]?.stringValue.map { [$0] } ?? (json["input"]?.arrayValue ?? []).compactMap(\.stringValue))
                : tokenInputs?.map { $0.map { "t\($0)" }.joined(separator: " ") } ?? InferenceRequest.promptTexts(of: json, endpoint: .embeddings)
            let vectors: [JSONValue] = inputs.map { text in
                var g = SimText(seed: config.seed, prompt: text)
                return .array((0..<config.embeddingDimensions).map { _ in .double(Double(Int(g.next() % 2001) - 1000) / 1000) })
            }
            let prompt = inputs.reduce(0) { $0 + SimText.countTokens($1) }
            stats.withLock { $0.completed += 1 }
            if native {
                try await sendJSON(out, .object([("model", .string(model)), ("embeddings", .array(vectors)), ("prompt_eval_count", .int(prompt))]))
                return true
            }
            let data: [JSONValue] = vectors.enumerated().map { i, v in .object([("object", "embedding"), ("index", .int(i)), ("embedding", v)]) }
            var response: JSONValue = .object([("object", "list"), ("data", .array(data)), ("model", .string(model))])
            if config.usage { response.set("usage", .object([("prompt_tokens", .int(prompt)), ("total_tokens", .int(prompt))])) }
            try await sendJSON(out, response)
            return true
        }

        let promptTokens = SimText.countTokens(req.prompt)
        let cap = f == .overrun ? config.defaultTokens : (req.maxTokens ?? config.defaultTokens)
        let plan = TokenPlan(config: config, endpoint: endpoint, prompt: req.prompt, maxTokens: max(1, cap))
        let (uncached, blocks) = scheduler.admitPrompt(req.prompt, promptTokens: promptTokens, maxTokens: plan.count)
        defer { scheduler.releaseBlocks(blocks) }
        let prefillMs = config.ttftMs + Int((Double(uncached) * config.prefillMsPerToken).rounded())
            + (f == .slow ? slowDelayMs.withLock { $0 } : 0)
        let created = Int(Date().timeIntervalSince1970)
        let id = "sim-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)

        if !req.stream {
            try await sleep(prefillMs)
            for _ in 1..<max(1, plan.count) { try await sleep(Int(scheduler.currentITL.rounded())) }
            if isDown {
                try? await channel.close()
                return false
            }
            stats.withLock { $0.completed += 1; $0.tokensGenerated += plan.count }
            let answer = native ? plan.ollamaResponse(model: model, promptTokens: promptTokens)
                                : plan.completeResponse(id: id, created: created, model: model, promptTokens: promptTokens)
            try await sendJSON(out, answer)
            return true
        }

        try await out.write(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: [
            "content-type": native ? "application/x-ndjson" : "text/event-stream", "cache-control": "no-cache", "transfer-encoding": "chunked",
        ])))
        func write(_ bytes: [UInt8]) async throws { try await out.write(.body(.byteBuffer(ByteBuffer(bytes: bytes)))) }
        do {
            try await sleep(prefillMs)
            for i in 0..<plan.count {
                if i > 0 { try await sleep(Int(scheduler.currentITL.rounded())) }
                if (f == .cut && i == config.cutAfterTokens) || isDown {
                    stats.withLock { $0.completed += 1 }
                    try? await channel.close()
                    return false
                }
                try await write(native ? plan.ollamaLine(i, model: model) : SSE.event(plan.chunk(i, id: id, created: created, model: model)))
                stats.withLock { $0.tokensGenerated += 1 }
            }
            if native {
                try await write(plan.ollamaFinalLine(model: model, promptTokens: promptTokens))
            } else {
                try await write(SSE.event(plan.finalChunk(id: id, created: created, model: model)))
                if req.includeUsage && config.usage {
                    try await write(SSE.event(plan.usageChunk(id: id, created: created, model: model, promptTokens: promptTokens)))
                }
                try await write(SSE.done)
            }
            try await out.write(.end(nil))
            stats.withLock { $0.completed += 1 }
            return true
        } catch {
            // The client went away mid-stream: stop generating, as a real engine should.
            stats.withLock { $0.cancelled += 1 }
            return false
        }
    }

    func sleep(_ ms: Int) async throws {
        if ms > 0 { try await Task.sleep(for: .milliseconds(ms)) }
    }

    func sendText(_ out: Outbound, _ text: String, contentType: String) async throws {
        let bytes = Array(text.utf8)
        try await out.write(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: [
            "content-type": contentType, "content-length": String(bytes.count),
        ])))
        try await out.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
        try await out.write(.end(nil))
    }

    func sendJSON(_ out: Outbound, _ value: JSONValue, status: HTTPResponseStatus = .ok) async throws {
        let bytes = value.serialized()
        try await out.write(.head(HTTPResponseHead(version: .http1_1, status: status, headers: [
            "content-type": "application/json", "content-length": String(bytes.count),
        ])))
        try await out.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
        try await out.write(.end(nil))
    }
}
