import AsyncHTTPClient
import EngineSim
import Logging
import OpenAIWire
import Testing
@testable import Fleet

/// One client for the whole test process (never shut down: it lives as long as the process).
let testHTTP = Fleet.makeHTTPClient(connectTimeoutMs: 1000)

/// Fleet against EngineSim (a simulator) started in-process on a free port.
struct SimHarness {
    let sim: EngineSim
    let port: Int
    let task: Task<Void, any Error>

    static func start(_ config: SimConfig) async throws -> SimHarness {
        let sim = EngineSim(config: config)
        let (stream, cont) = AsyncStream.makeStream(of: Int.self)
        let task = Task { try await sim.run { cont.yield($0) } }
        var it = stream.makeAsyncIterator()
        let port = await it.next()!
        return SimHarness(sim: sim, port: port, task: task)
    }

    func backend(_ name: String = "sim-1", kind: EngineKind = .sim, firstByteMs: Int = 5000, idleMs: Int = 5000) -> BackendConfig {
        BackendConfig(name: name, kind: kind, url: "http://127.0.0.1:\(port)", models: ["chat-model": "sim-chat"],
                      timeouts: Timeouts(connectMs: 1000, firstByteMs: firstByteMs, idleMs: idleMs))
    }
}

func chatBody(stream: Bool = false, maxTokens: Int = 8, extra: [(String, JSONValue)] = []) -> JSONValue {
    .object([("model", "chat-model"), ("messages", [["role": "user", "content": "hello there"]]), ("max_tokens", .int(maxTokens)),
             ("stream", .bool(stream))] + extra)
}

@Suite(.serialized) struct FleetTests {
    let http = testHTTP

    @Test func completeAnswerWithUsageAndMappedModel() async throws {
        let h = try await SimHarness.start(SimConfig(ttftMs: 1, itlMs: 0, defaultTokens: 100))
        defer { h.task.cancel() }
        let fleet = Fleet(configs: [h.backend()], http: http, logger: Logger(label: "t"))
        let (engine, response) = try await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(extra: [("top_k", .number("40"))]), stream: false)
        #expect(engine.name == "sim-1")
        guard case .complete(let json, let usage) = response else { Issue.record("not complete"); return }
        #expect(usage.completionTokens == 8)
        #expect(json["choices"]?.arrayValue?.count == 1)
        let last = h.sim.currentStats.lastRequest
        #expect(last["model"]?.stringValue == "sim-chat")
        #expect(last["top_k"] == .number("40"))
    }

    @Test func streamYieldsChunksThenUsage() async throws {
        let h = try await SimHarness.start(SimConfig(ttftMs: 1, itlMs: 1, defaultTokens: 100))
        defer { h.task.cancel() }
        let fleet = Fleet(configs: [h.backend()], http: http, logger: Logger(label: "t"))
        let (_, response) = try await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(stream: true, maxTokens: 6), stream: true)
        guard case .stream(let events) = response else { Issue.record("not a stream"); return }
        var chunks = 0
        var usage: Usage?
        for try await e in events {
            switch e {
            case .chunk: chunks += 1
            case .usage(let u): usage = u
            }
        }
        #expect(chunks == 7)  // 6 tokens + the finish chunk
        #expect(usage?.completionTokens == 6)
        #expect(usage?.estimated == false)
        // The adapter asked the engine for usage although the client did not.
        #expect(h.sim.currentStats.lastRequest["stream_options"]?["include_usage"] == .bool(true))
    }

    @Test func streamWithoutEngineUsageIsEstimatedAndMarked() async throws {
        let h = try await SimHarness.start(SimConfig(ttftMs: 1, itlMs: 1, usage: false, defaultTokens: 100))
        defer { h.task.cancel() }
        let fleet = Fleet(configs: [h.backend(kind: .openai)], http: http, logger: Logger(label: "t"))
        let (_, response) = try await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(stream: true, maxTokens: 6), stream: true)
        guard case .stream(let events) = response else { return }
        var usage: Usage?
        for try await e in events { if case .usage(let u) = e { usage = u } }
        #expect(usage?.estimated == true)
        #expect((usage?.completionTokens ?? 0) > 0)
    }

    @Test func faultsMapToEngineErrors() async throws {
        let h = try await SimHarness.start(SimConfig(ttftMs: 1, itlMs: 1, defaultTokens: 100))
        defer { h.task.cancel() }
        let fleet = Fleet(configs: [h.backend(firstByteMs: 300, idleMs: 300)], http: http, logger: Logger(label: "t"))
        await #expect(throws: EngineError.self) {
            _ = try await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(extra: [("sim_fault", "500")]), stream: false)
        }
        do {
            _ = try await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(extra: [("sim_fault", "hang")]), stream: false)
            Issue.record("hang should time out")
        } catch {
            #expect(error.apiError.status == 504)
        }
        // The cut stream's first bytes must arrive whatever the machine's load: this fleet
        // keeps the default (generous) first-byte deadline; only the hang above needs a short one.
        let patient = Fleet(configs: [h.backend()], http: http, logger: Logger(label: "t"))
        let (_, response) = try await patient.send(model: "chat-model", endpoint: .chat, body: chatBody(stream: true, extra: [("sim_fault", "cut")]), stream: true)
        guard case .stream(let events) = response else { return }
        do {
            for try await _ in events {}
            Issue.record("a cut stream must fail")
        } catch let e as EngineError {
            #expect(e.apiError.code == "upstream_stream_error")
        }
    }

    @Test func failsOverWhenFirstEngineIsDown() async throws {
        let h = try await SimHarness.start(SimConfig(ttftMs: 1, itlMs: 0))
        defer { h.task.cancel() }
        let dead = BackendConfig(name: "dead", kind: .openai, url: "http://127.0.0.1:1", models: ["chat-model": "sim-chat"])
        let fleet = Fleet(configs: [dead, h.backend()], http: http, logger: Logger(label: "t"))
        let (engine, _) = try await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(), stream: false)
        #expect(engine.name == "sim-1")
        let onlyDead = Fleet(configs: [dead], http: http, logger: Logger(label: "t"))
        do {
            _ = try await onlyDead.send(model: "chat-model", endpoint: .chat, body: chatBody(), stream: false)
            Issue.record("should fail")
        } catch {
            #expect(error.apiError.status == 502)
        }
    }

    /// A stream that breaks before its first token reached nobody: `send` (which waits for that
    /// token) and `dispatch` (whose caller waits, then resumes the dispatch) both go on to the other
    /// backend; with no other backend, the break is the error.
    @Test func aStreamBrokenBeforeItsFirstTokenFailsOver() async throws {
        let h = try await SimHarness.start(SimConfig(ttftMs: 1, itlMs: 0))
        defer { h.task.cancel() }
        // An engine that answers a stream's head, then closes without an event.
        let broken = try await ScriptedEngine.start { ("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n", .close) }
        defer { Task { await broken.stop() } }
        let brokenBackend = BackendConfig(name: "broken", kind: .openai, url: "http://127.0.0.1:\(broken.port)", models: ["chat-model": "m"],
                                          timeouts: Timeouts(connectMs: 1000, firstByteMs: 5000, idleMs: 5000))
        var failovers = 0
        for seed in UInt64(1)...6 {
            // Either order: a backend is picked at random among equals (seeded).
            let fleet = Fleet(configs: [brokenBackend, h.backend()], http: http, logger: Logger(label: "t"), options: FleetOptions(seed: seed))
            let (engine, response) = try await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(stream: true), stream: true)
            #expect(engine.name == "sim-1")
            guard case .stream(let events) = response else { Issue.record("not a stream"); return }
            var chunks = 0
            for try await _ in events { chunks += 1 }
            #expect(chunks > 0)

            let (first, upstream, dispatch) = try await fleet.dispatch(model: "chat-model", endpoint: .chat, body: chatBody(stream: true), stream: true)
            var current = (first, upstream)
            while case .stream(let events) = current.1, let e = await Fleet.firstEvent(events, backend: current.0.name) {
                #expect(current.0.name == "broken")
                failovers += 1
                try dispatch.firstEventFailed(e)
                current = try await dispatch.next()
            }
            dispatch.firstEventCame()
            #expect(current.0.name == "sim-1")
        }
        #expect(failovers > 0)
        let onlyBroken = Fleet(configs: [brokenBackend], http: http, logger: Logger(label: "t"))
        do {
            _ = try await onlyBroken.send(model: "chat-model", endpoint: .chat, body: chatBody(stream: true), stream: true)
            Issue.record("should fail")
        } catch {
            #expect(error.apiError.status >= 500)
        }
    }

    @Test func hangUpCancelsTheEngine() async throws {
        let h = try await SimHarness.start(SimConfig(ttftMs: 1, itlMs: 20, defaultTokens: 5000))
        defer { h.task.cancel() }
        let fleet = Fleet(configs: [h.backend()], http: http, logger: Logger(label: "t"))
        let (_, response) = try await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(stream: true, maxTokens: 5000), stream: true)
        guard case .stream(let events) = response else { return }
        var seen = 0
        for try await _ in events {
            seen += 1
            if seen == 3 { break }
        }
        events.cancel()
        for _ in 0..<600 where h.sim.currentStats.cancelled == 0 { try await Task.sleep(for: .milliseconds(50)) }
        #expect(h.sim.currentStats.cancelled == 1)
        #expect(h.sim.currentStats.tokensGenerated < 1000)
    }

    @Test func llamaCppEmbeddingsArePooled() {
        let json: JSONValue = ["data": [["object": "embedding", "index": 0, "embedding": [[1, 0], [3, 0]]]]]
        let pooled = LlamaCppAdapter(template: .smolLM2).embeddings(json, base64: false)
        #expect(pooled["data"]?.arrayValue?.first?["embedding"] == .array([.double(1), .double(0)]))
    }

    @Test func llamaCppBadInputBecomes400() {
        let engine = Engine(config: BackendConfig(name: "l", kind: .llamacpp, url: "http://x:1", models: [:]), http: http, logger: Logger(label: "t"))
        let e = engine.mapEngineError(status: 500, body: Array(#"{"error":{"message":"bad logit_bias"}}"#.utf8), endpoint: .chat)
        #expect(e.status == 400)
        let v = engine.mapEngineError(status: 422, body: Array(#"{"detail":[{"loc":["body","n"],"msg":"too big"}]}"#.utf8), endpoint: .chat)
        #expect(v.status == 400 && v.param == "n")
    }

    @Test func chatTemplateRendersSmolLM2() {
        let r = UpstreamRequest(endpoint: .chat, body: ["messages": [["role": "user", "content": "Hello"]]], stream: true)
        #expect(ChatTemplate.smolLM2.render(r) == "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n")
    }
}

/// EngineSim's reasoning styles, as engines emit them (the simulator, not a model).
@Suite(.serialized) struct SimReasoningTests {
    func completion(_ style: SimConfig.ReasoningStyle) async throws -> (JSONValue, Usage) {
        let h = try await SimHarness.start(SimConfig(ttftMs: 0, itlMs: 0, reasoning: style, defaultTokens: 10))
        defer { h.task.cancel() }
        let fleet = Fleet(configs: [h.backend()], http: testHTTP, logger: Logger(label: "t"))
        let (_, response) = try await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(maxTokens: 10), stream: false)
        guard case .complete(let json, let usage) = response else { throw CancellationError() }
        return (json, usage)
    }

    @Test func reasoningField() async throws {
        let (json, usage) = try await completion(.field)
        let message = json["choices"]?.arrayValue?.first?["message"]
        #expect(message?["reasoning_content"]?.stringValue?.isEmpty == false)
        #expect(usage.reasoningTokens == 5 && usage.completionTokens == 10)
    }

    @Test func thinkTags() async throws {
        let (json, usage) = try await completion(.think)
        let content = json["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue ?? ""
        #expect(content.hasPrefix("<think>") && content.contains("</think>"))
        #expect(usage.reasoningTokens == 5)
    }

    @Test func deterministicFromSeed() async throws {
        let a = try await completion(.none).0["choices"]?.arrayValue?.first?["message"]?["content"]
        let b = try await completion(.none).0["choices"]?.arrayValue?.first?["message"]?["content"]
        #expect(a == b && a?.stringValue?.isEmpty == false)
    }
}
