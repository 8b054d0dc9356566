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
}

/// EngineSim: a simulated OpenAI-compatible inference engine (NOT a model) on SwiftNIO.
/// Speaks `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `/v1/models`, `/health`,
/// plus `/sim/fault` and `/sim/stats` for tests.
public final class EngineSim: Sendable {
    public let config: SimConfig
    private let fault: Mutex<SimConfig.Fault>
    private let stats = Mutex(SimStats())

    public init(config: SimConfig) {
        self.config = config
        self.fault = Mutex(config.fault)
    }

    public var currentStats: SimStats { stats.withLock { $0 } }
    public func setFault(_ f: SimConfig.Fault) { fault.withLock { $0 = f } }

    typealias Outbound = NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>

    /// Binds and serves until the task is cancelled. `onBound` receives the actual port.
    public func run(onBound: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 1024)
            .bind(host: config.host, port: config.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                }
            }
        onBound(server.channel.localAddress?.port ?? config.port)
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { connections in
                for try await connection in connections {
                    group.addTask { await self.serve(connection) }
                }
            }
        }
    }

    func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        if fault.withLock({ $0 }) == .refuse {
            try? await connection.channel.close()
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
                        if !keepOpen { return }
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
        switch (head.method, path) {
        case (.GET, "/health"):
            try await sendJSON(out, ["status": "ok"])
        case (.GET, "/v1/models"):
            let data = config.models.map { JSONValue.object([("id", .string($0)), ("object", "model"), ("owned_by", "engine-sim")]) }
            try await sendJSON(out, .object([("object", "list"), ("data", .array(data))]))
        case (.GET, "/sim/stats"):
            let s = currentStats
            try await sendJSON(out, .object([
                ("requests", .int(s.requests)), ("completed", .int(s.completed)), ("cancelled", .int(s.cancelled)),
                ("tokens_generated", .int(s.tokensGenerated)), ("last_request", s.lastRequest),
            ]))
        case (.POST, "/sim/fault"):
            guard let json = try? JSONValue.parse(body), let mode = json["mode"]?.stringValue, let f = SimConfig.Fault(rawValue: mode) else {
                try await sendJSON(out, APIError.invalidRequest("send {\"mode\": \"none|refuse|500|hang|cut\"}").json, status: .badRequest)
                return true
            }
            setFault(f)
            try await sendJSON(out, ["mode": .string(f.rawValue)])
        case (.POST, "/v1/chat/completions"):
            return try await inference(.chat, body, out, channel)
        case (.POST, "/v1/completions"):
            return try await inference(.completions, body, out, channel)
        case (.POST, "/v1/embeddings"):
            return try await inference(.embeddings, body, out, channel)
        default:
            try await sendJSON(out, APIError.notFound("no route \(head.method) \(path)").json, status: .notFound)
        }
        return true
    }

    func inference(_ endpoint: Endpoint, _ body: [UInt8], _ out: Outbound, _ channel: any Channel) async throws -> Bool {
        guard let json = try? JSONValue.parse(body), case .object = json else {
            try await sendJSON(out, APIError.invalidJSON("sim").json, status: .badRequest)
            return true
        }
        stats.withLock { $0.requests += 1; $0.lastRequest = json }
        let model = json["model"]?.stringValue ?? ""
        guard config.models.contains(model) else {
            try await sendJSON(out, APIError.modelNotFound(model).json, status: .notFound)
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
            while channel.isActive { try await Task.sleep(for: .milliseconds(50)) }
            return false
        case .none, .cut:
            break
        }

        if endpoint == .embeddings {
            try await sleep(config.ttftMs)
            let inputs = InferenceRequest.promptTexts(of: json, endpoint: .embeddings)
            let data: [JSONValue] = inputs.enumerated().map { i, text in
                var g = SimText(seed: config.seed, prompt: text)
                let v = (0..<config.embeddingDimensions).map { _ in Double(Int(g.next() % 2001) - 1000) / 1000 }
                return .object([("object", "embedding"), ("index", .int(i)), ("embedding", .array(v.map { .double($0) }))])
            }
            let prompt = inputs.reduce(0) { $0 + SimText.countTokens($1) }
            var response: JSONValue = .object([("object", "list"), ("data", .array(data)), ("model", .string(model))])
            if config.usage { response.set("usage", .object([("prompt_tokens", .int(prompt)), ("total_tokens", .int(prompt))])) }
            stats.withLock { $0.completed += 1 }
            try await sendJSON(out, response)
            return true
        }

        let promptText = InferenceRequest.promptTexts(of: json, endpoint: endpoint).joined(separator: "\n")
        let promptTokens = SimText.countTokens(promptText)
        let maxTokens = json["max_completion_tokens"]?.intValue ?? json["max_tokens"]?.intValue ?? config.defaultTokens
        let stream = json["stream"]?.boolValue ?? false
        let plan = TokenPlan(config: config, endpoint: endpoint, prompt: promptText, maxTokens: max(1, maxTokens))
        let created = Int(Date().timeIntervalSince1970)
        let id = "sim-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)

        if !stream {
            try await sleep(config.ttftMs + config.itlMs * max(0, plan.count - 1))
            stats.withLock { $0.completed += 1; $0.tokensGenerated += plan.count }
            try await sendJSON(out, plan.completeResponse(id: id, created: created, model: model, promptTokens: promptTokens))
            return true
        }

        try await out.write(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: [
            "content-type": "text/event-stream", "cache-control": "no-cache", "transfer-encoding": "chunked",
        ])))
        let includeUsage = json["stream_options"]?["include_usage"]?.boolValue ?? false
        do {
            try await sleep(config.ttftMs)
            for i in 0..<plan.count {
                if i > 0 { try await sleep(config.itlMs) }
                if f == .cut && i == config.cutAfterTokens {
                    stats.withLock { $0.completed += 1 }
                    try? await channel.close()
                    return false
                }
                try await out.write(.body(.byteBuffer(ByteBuffer(bytes: SSE.event(plan.chunk(i, id: id, created: created, model: model))))))
                stats.withLock { $0.tokensGenerated += 1 }
            }
            try await out.write(.body(.byteBuffer(ByteBuffer(bytes: SSE.event(plan.finalChunk(id: id, created: created, model: model))))))
            if includeUsage && config.usage {
                try await out.write(.body(.byteBuffer(ByteBuffer(bytes: SSE.event(plan.usageChunk(id: id, created: created, model: model, promptTokens: promptTokens))))))
            }
            try await out.write(.body(.byteBuffer(ByteBuffer(bytes: SSE.done))))
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

    func sendJSON(_ out: Outbound, _ value: JSONValue, status: HTTPResponseStatus = .ok) async throws {
        let bytes = value.serialized()
        try await out.write(.head(HTTPResponseHead(version: .http1_1, status: status, headers: [
            "content-type": "application/json", "content-length": String(bytes.count),
        ])))
        try await out.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
        try await out.write(.end(nil))
    }
}
