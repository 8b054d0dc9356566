import EngineSim
import Logging
import OpenAIWire
import Testing
@testable import Fleet

/// What the gateway changes in a request for an engine kind, and how it reads an engine's errors
/// (issue 11). No engine is called.
@Suite struct EngineAdapterTests {
    func engine(_ kind: EngineKind) -> Engine {
        Engine(config: BackendConfig(name: "e", kind: kind, url: "http://127.0.0.1:1", models: ["m": "m"]), http: testHTTP,
               logger: Logger(label: "t"))
    }

    func prepared(_ kind: EngineKind, _ text: String, stream: Bool = false) throws -> JSONValue {
        let body = try JSONValue.parse(text)
        return engine(kind).adapter.prepare(body, UpstreamRequest(endpoint: .chat, body: body, stream: stream))
    }

    @Test func llamaCppGetsMaxTokensForMaxCompletionTokens() throws {
        let b = try prepared(.llamacpp, #"{"model":"m","messages":[],"max_completion_tokens":5}"#)
        #expect(b["max_tokens"]?.intValue == 5 && b["max_completion_tokens"] == nil)
        let both = try prepared(.llamacpp, #"{"model":"m","messages":[],"max_completion_tokens":5,"max_tokens":3}"#)
        #expect(both["max_tokens"]?.intValue == 3)
        let legacy = try prepared(.llamacpp, #"{"model":"m","messages":[],"max_tokens":7}"#)
        #expect(legacy["max_tokens"]?.intValue == 7)
    }

    @Test(arguments: [EngineKind.vllm, .openai, .sim])
    func openAIKindsKeepMaxCompletionTokens(_ kind: EngineKind) throws {
        let b = try prepared(kind, #"{"model":"m","messages":[],"max_completion_tokens":5}"#)
        #expect(b["max_completion_tokens"]?.intValue == 5)
    }

    /// Issue 17: which engine kinds rerank and transcribe, and where.
    @Test func rerankAndTranscriptionPaths() {
        for kind in [EngineKind.vllm, .openai, .sim, .llamacpp] {
            #expect(engine(kind).adapter.path(for: .rerank) == "/v1/rerank", "\(kind)")
        }
        for kind in [EngineKind.vllm, .openai, .sim] {
            #expect(engine(kind).adapter.path(for: .transcriptions) == "/v1/audio/transcriptions", "\(kind)")
        }
        #expect(engine(.llamacpp).adapter.path(for: .transcriptions) == nil)
        #expect(engine(.ollama).adapter.path(for: .rerank) == nil)
        #expect(engine(.ollama).adapter.path(for: .transcriptions) == nil)
    }

    @Test func vllmRerankUsageIsItsTotalTokens() async {
        let request = UpstreamRequest(endpoint: .rerank, body: ["model": "m", "query": "q", "documents": ["a"]], stream: false)
        let usage = await engine(.vllm).completeUsage(["usage": ["total_tokens": 17]], request: request)
        #expect(usage == Usage(promptTokens: 17, completionTokens: 0))
    }

    @Test func tracebackGivesItsExceptionLine() {
        let traceback = """
        Traceback (most recent call last):
          File "/venv/lib/python3.11/site-packages/llama_cpp/server/errors.py", line 171, in custom_route_handler
            response = await original_route_handler(request)
                       ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
        ValueError: Requested tokens (9000) exceed context window of 8192
        """
        #expect(Engine.engineMessage(of: traceback) == "ValueError: Requested tokens (9000) exceed context window of 8192")
        #expect(Engine.engineMessage(of: "grammar parse failed:\nexpecting ')' at line 1") == "grammar parse failed: expecting ')' at line 1")
        #expect(!Engine.engineMessage(of: "File \"/x/y.py\", line 3\nboom at /x/y.py").contains(".py"))
    }
}

/// An engine that ignores the client's cap is stopped there by the gateway (issue 11).
@Suite(.serialized) struct TokenCapTests {
    /// A stream of 5 tokens asked of EngineSim with its "overrun" fault (it ignores max_tokens
    /// and would send 40).
    func overrunStream(_ fleet: Fleet) async throws -> EngineStream? {
        let body = chatBody(stream: true, maxTokens: 5, extra: [("sim_fault", "overrun")])
        let (_, response) = try await fleet.send(model: "chat-model", endpoint: .chat, body: body, stream: true)
        guard case .stream(let events) = response else { Issue.record("not a stream"); return nil }
        return events
    }

    @Test func streamPastTheCapIsEndedAtTheCap() async throws {
        let h = try await SimHarness.start(SimConfig(ttftMs: 1, itlMs: 1, defaultTokens: 40))
        defer { h.task.cancel() }
        let fleet = Fleet(configs: [h.backend()], http: testHTTP, logger: Logger(label: "t"))
        guard let events = try await overrunStream(fleet) else { return }
        var text = 0
        var finish: String?
        var usage: Usage?
        for try await e in events {
            switch e {
            case .chunk(let c):
                let choice = c["choices"]?.arrayValue?.first
                if let t = choice?["delta"]?["content"]?.stringValue, !t.isEmpty { text += 1 }
                if let f = choice?["finish_reason"]?.stringValue { finish = f }
            case .usage(let u): usage = u
            }
        }
        #expect(text == 5)
        #expect(finish == "length")
        #expect((usage?.completionTokens ?? 0) <= 6)
    }

    /// Ordinary chunks are relayed as the engine's bytes (spliced by the gateway), the chunk the
    /// gateway makes at the cap is a tree; both read the same text.
    @Test func ordinaryChunksAreSplicedTheCapChunkIsATree() async throws {
        let h = try await SimHarness.start(SimConfig(ttftMs: 1, itlMs: 1, defaultTokens: 40))
        defer { h.task.cancel() }
        let fleet = Fleet(configs: [h.backend()], http: testHTTP, logger: Logger(label: "t"))
        guard let events = try await overrunStream(fleet) else { return }
        var spliced = 0, trees: [JSONValue] = [], text = "", usage: Usage?
        for try await e in events.relayed {
            switch e {
            case .spliced(let c):
                spliced += 1
                text += c.content
                let tree = try c.json()
                #expect(tree["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue ?? "" == c.content)
                #expect(tree["usage"] == nil)
            case .chunk(let c): trees.append(c)
            case .usage(let u): usage = u
            }
        }
        #expect(spliced >= 5 && !text.isEmpty)
        #expect(trees.count == 1 && trees.first?["choices"]?.arrayValue?.first?["finish_reason"] == "length")
        #expect(usage != nil)
    }

    @Test func honestEngineKeepsItsOwnEnding() async throws {
        let h = try await SimHarness.start(SimConfig(ttftMs: 1, itlMs: 1, defaultTokens: 40))
        defer { h.task.cancel() }
        let fleet = Fleet(configs: [h.backend()], http: testHTTP, logger: Logger(label: "t"))
        let (_, response) = try await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(stream: true, maxTokens: 5), stream: true)
        guard case .stream(let events) = response else { Issue.record("not a stream"); return }
        var usage: Usage?
        for try await e in events { if case .usage(let u) = e { usage = u } }
        #expect(usage?.completionTokens == 5 && usage?.estimated == false)  // the engine's own usage chunk still arrives
    }
}
