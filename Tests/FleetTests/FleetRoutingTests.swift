import AsyncHTTPClient
import Clocks
import EngineSim
import Logging
import OpenAIWire
import Synchronization
import Testing
@testable import Fleet

/// Fleet v2 against EngineSim (SIMULATED engines) in vLLM and Ollama modes.
@Suite(.serialized) struct FleetRoutingTests {
    let logger = Logger(label: "t")

    func start(_ configs: [SimConfig]) async throws -> SimFleet {
        let fleet = SimFleet(configs: configs)
        try await fleet.start()
        return fleet
    }

    func backends(_ sims: SimFleet, kind: EngineKind, models: [String: String] = ["chat-model": "sim-chat"], capacity: Int = 8,
                  firstByteMs: Int = 5000) -> [BackendConfig] {
        sims.boundPorts.enumerated().map { i, port in
            BackendConfig(name: "m\(i)", kind: kind, url: "http://127.0.0.1:\(port)", models: models,
                          timeouts: Timeouts(connectMs: 500, firstByteMs: firstByteMs, idleMs: 3000), capacity: capacity, probeIntervalMs: 100)
        }
    }

    func drain(_ response: UpstreamResponse) async throws -> (chunks: [JSONValue], usage: Usage?) {
        guard case .stream(let events) = response else { return ([], nil) }
        var chunks: [JSONValue] = []
        var usage: Usage?
        for try await e in events {
            switch e {
            case .chunk(let c): chunks.append(c)
            case .usage(let u): usage = u
            }
        }
        return (chunks, usage)
    }

    // MARK: Ollama ↔ OpenAI

    @Test func ollamaChatCompleteAndStreamed() async throws {
        var c = SimConfig(models: ["qwen3:8b"], ttftMs: 1, itlMs: 1, reasoning: .field, defaultTokens: 10)
        c.mode = .ollama
        let sims = try await start([c])
        defer { Task { await sims.shutdown() } }
        let fleet = Fleet(configs: backends(sims, kind: .ollama, models: ["qwen3:8b": "qwen3:8b"]), http: testHTTP, logger: logger)

        let (_, complete) = try await fleet.send(model: "qwen3:8b", endpoint: .chat, body: chatBody(maxTokens: 6).setting("model", "qwen3:8b"), stream: false)
        guard case .complete(let json, let usage) = complete else { Issue.record("not complete"); return }
        #expect(json["object"] == "chat.completion")
        let message = json["choices"]?.arrayValue?.first?["message"]
        #expect(message?["role"] == "assistant")
        #expect(message?["reasoning_content"]?.stringValue?.isEmpty == false)
        #expect(json["choices"]?.arrayValue?.first?["finish_reason"] == "length")
        #expect(usage == Usage(promptTokens: 2, completionTokens: 6))
        // The engine got Ollama's native request.
        let native = sims.machine(0).currentStats.lastRequest
        #expect(native["options"]?["num_predict"] == 6 && native["stream"] == false)

        let (_, streamed) = try await fleet.send(model: "qwen3:8b", endpoint: .chat, body: chatBody(stream: true, maxTokens: 6).setting("model", "qwen3:8b"), stream: true)
        let (chunks, streamUsage) = try await drain(streamed)
        #expect(chunks.first?["object"] == "chat.completion.chunk")
        #expect(chunks.first?["choices"]?.arrayValue?.first?["delta"]?["role"] == "assistant")
        #expect(chunks.last?["choices"]?.arrayValue?.first?["finish_reason"] == "length")
        let reasoning = chunks.compactMap { $0["choices"]?.arrayValue?.first?["delta"]?["reasoning_content"]?.stringValue }
        let content = chunks.compactMap { $0["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue }
        #expect(reasoning.count == 3 && content.count == 3)
        #expect(streamUsage == Usage(promptTokens: 2, completionTokens: 6))
    }

    @Test func ollamaGenerateAndEmbed() async throws {
        var c = SimConfig(models: ["m:1"], ttftMs: 1, itlMs: 1, defaultTokens: 10, embeddingDimensions: 8)
        c.mode = .ollama
        let sims = try await start([c])
        defer { Task { await sims.shutdown() } }
        let fleet = Fleet(configs: backends(sims, kind: .ollama, models: ["m": "m:1"]), http: testHTTP, logger: logger)
        let (_, gen) = try await fleet.send(model: "m", endpoint: .completions, body: ["model": "m", "prompt": "once upon", "max_tokens": 4], stream: true)
        let (chunks, usage) = try await drain(gen)
        #expect(chunks.allSatisfy { $0["object"] == "text_completion" })
        #expect(usage?.completionTokens == 4 && usage?.estimated == false)
        let (_, emb) = try await fleet.send(model: "m", endpoint: .embeddings, body: ["model": "m", "input": ["a b", "c"]], stream: false)
        guard case .complete(let json, let u) = emb else { Issue.record("not complete"); return }
        #expect(json["data"]?.arrayValue?.count == 2)
        #expect(json["data"]?.arrayValue?.first?["embedding"]?.arrayValue?.count == 8)
        #expect(u.promptTokens == 3)
    }

    // MARK: Health, metrics, residency

    @Test func probesReadMetricsAndResidentModels() async throws {
        var v = SimConfig(models: ["sim-chat"], ttftMs: 1, itlMs: 1)
        v.mode = .vllm; v.maxBatch = 2; v.kvBlocks = 64
        var o = SimConfig(models: ["sim-chat", "other"], ttftMs: 1, itlMs: 1)
        o.mode = .ollama; o.maxResident = 1; o.initiallyResident = ["other"]
        let sims = try await start([v, o])
        defer { Task { await sims.shutdown() } }
        var configs = backends(sims, kind: .vllm)
        configs[1].kind = .ollama
        configs[1].discoverModels = true
        let fleet = Fleet(configs: configs, http: testHTTP, logger: logger)
        await fleet.probeAll()
        await fleet.discoverModels(catalogIDs: ["other", "chat-model"])
        #expect(fleet.servedModels == ["chat-model", "other"])
        #expect(fleet.serves("chat-model") && fleet.serves("other") && !fleet.serves("sim-chat"))
        let report = fleet.backendsReport()
        let rows = report["data"]?.arrayValue ?? []
        #expect(rows.count == 2)
        #expect(rows[0]["engine_metrics"]?["running"] == 0)
        #expect(rows[0]["engine_metrics"]?["kv_cache_usage"] != nil)
        #expect(rows[1]["resident_models"] == ["other"])
        #expect(rows[1]["models"] == ["chat-model", "other"])
        #expect(rows.allSatisfy { $0["state"] == "healthy" })
        // Routing prefers the backend where the model is resident (vLLM: unknown = neutral; Ollama: cold).
        for _ in 0..<4 {
            let (engine, _) = try await fleet.send(model: "other", endpoint: .chat, body: chatBody().setting("model", "other"), stream: false)
            #expect(engine.name == "m1")
        }
    }

    @Test func breakerOpensOnFailuresAndProbesCloseIt() async throws {
        var c = SimConfig(models: ["sim-chat"], ttftMs: 1, itlMs: 1)
        c.mode = .vllm
        let sims = try await start([c, c])
        defer { Task { await sims.shutdown() } }
        // The breakers' time is injected: a busy machine cannot move m0 from open to half-open
        // before it is looked at (it did: "half_open" instead of "open").
        let clock = ManualClock(nowMs: 1_000_000)
        let fleet = Fleet(configs: backends(sims, kind: .vllm), http: testHTTP, logger: logger,
                          options: FleetOptions(policy: .roundRobin, breakerThreshold: 2, breakerCooldownMs: 200, seed: 1),
                          clock: clock)
        sims.machine(0).setFault(.http500)
        // Every request succeeds (failover) and m0 opens after two failures.
        for _ in 0..<6 {
            let (engine, _) = try await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(), stream: false)
            #expect(engine.name == "m1")
        }
        #expect(fleet.backendStates["m0"] == "open")
        #expect(sims.machine(0).currentStats.requests == 2)  // the open breaker kept it out
        let errors = fleet.backendsReport()["data"]?.arrayValue?.first?["recent_errors"]?.arrayValue ?? []
        #expect(!errors.isEmpty)
        sims.machine(0).setFault(.none)
        clock.advance(byMs: 199)
        #expect(fleet.backendStates["m0"] == "open")  // still cooling down
        clock.advance(byMs: 51)
        #expect(fleet.backendStates["m0"] == "half_open")
        await fleet.probeAll()
        #expect(fleet.backendStates["m0"] == "healthy")
    }

    @Test func failoverNeverTriesTheSameBackendTwice() async throws {
        var c = SimConfig(models: ["sim-chat"], ttftMs: 1, itlMs: 1)
        c.fault = .http500
        let sims = try await start([c, c, c, c])
        defer { Task { await sims.shutdown() } }
        let fleet = Fleet(configs: backends(sims, kind: .sim), http: testHTTP, logger: logger, options: FleetOptions(maxAttempts: 3))
        do {
            _ = try await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(), stream: false)
            Issue.record("must fail")
        } catch {
            #expect(error.apiError.status == 502)
        }
        let counts = (0..<4).map { sims.machine($0).currentStats.requests }
        #expect(counts.reduce(0, +) == 3 && counts.allSatisfy { $0 <= 1 })
    }

    /// Issue 12: a refused connection sent nothing, so it must not use up the request's attempts
    /// (3 dead machines first in the rotation spent all 3), and it opens that breaker at once.
    @Test func refusedConnectionsDoNotUseUpAttempts() async throws {
        var c = SimConfig(models: ["sim-chat"], ttftMs: 1, itlMs: 1)
        c.mode = .vllm
        let sims = try await start([c, c, c, c])
        defer { Task { await sims.shutdown() } }
        let configs = backends(sims, kind: .vllm)
        for i in 0..<3 { await sims.stopAndWait(i) }
        let fleet = Fleet(configs: configs, http: testHTTP, logger: logger,
                          options: FleetOptions(policy: .roundRobin, maxAttempts: 3, breakerThreshold: 5, seed: 1),
                          clock: ManualClock())
        let (engine, _) = try await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(), stream: false)
        #expect(engine.name == "m3")
        for i in 0..<3 { #expect(fleet.backendStates["m\(i)"] == "open") }
        // The open breakers keep the dead machines out: the next requests go straight to m3.
        for _ in 0..<3 {
            let (e, _) = try await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(), stream: false)
            #expect(e.name == "m3")
        }
        #expect(fleet.requestCounts["m3"] == 4)
        #expect((0..<3).allSatisfy { fleet.requestCounts["m\($0)"] == 1 })
    }

    // MARK: Saturation

    /// Batch work (issue 17) ranks after every tier: queued first, it is still served after an
    /// interactive request that arrived later.
    @Test func batchWaitsBehindInteractiveTraffic() async throws {
        var c = SimConfig(models: ["sim-chat"], ttftMs: 20, itlMs: 0)
        c.mode = .vllm
        let sims = try await start([c])
        defer { Task { await sims.shutdown() } }
        let holdConfig = backends(sims, kind: .vllm, capacity: 1, firstByteMs: 900_000)[0]
        let fleet = Fleet(configs: [holdConfig], http: testHTTP, logger: logger, options: FleetOptions(queueDeadlineMs: 1000), clock: ManualClock())
        var holdBody = chatBody()
        holdBody.set("sim_fault", "hang")
        let order = Mutex<[String]>([])
        let hold = Task { _ = try? await fleet.send(model: "chat-model", endpoint: .chat, body: holdBody, stream: false) }
        for _ in 0..<6_000 where fleet.backendsReport()["data"]?.arrayValue?.first?["in_flight"]?.intValue != 1 { try await Task.sleep(for: .milliseconds(10)) }
        let batch = Task {
            _ = try? await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(), stream: false, priority: Fleet.batchPriority)
            order.withLock { $0.append("batch") }
        }
        for _ in 0..<6_000 where fleet.waiters.count < 1 { try await Task.sleep(for: .milliseconds(10)) }
        let interactive = Task {
            _ = try? await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(), stream: false, priority: 5)  // tier-1, the lowest tier
            order.withLock { $0.append("interactive") }
        }
        for _ in 0..<6_000 where fleet.waiters.count < 2 { try await Task.sleep(for: .milliseconds(10)) }
        try #require(fleet.waiters.count == 2)
        #expect(fleet.waiters.hasWaiter(before: Fleet.batchPriority))
        hold.cancel()
        _ = await (hold.value, batch.value, interactive.value)
        #expect(order.withLock { $0 } == ["interactive", "batch"])
    }

    /// No timing: the queue's order is decided while the only slot is held, and the deadline
    /// passes on the injected clock.
    @Test func fullFleetQueuesByTierThen503() async throws {
        var c = SimConfig(models: ["sim-chat"], ttftMs: 20, itlMs: 0)
        c.mode = .vllm
        let sims = try await start([c])
        defer { Task { await sims.shutdown() } }
        let holdConfig = backends(sims, kind: .vllm, capacity: 1, firstByteMs: 900_000)[0]
        let clock = ManualClock()
        // One backend, one slot: a request the engine never answers holds it; the later ones queue.
        var holdBody = chatBody()
        holdBody.set("sim_fault", "hang")
        let fleet = Fleet(configs: [holdConfig], http: testHTTP, logger: logger, options: FleetOptions(queueDeadlineMs: 1000), clock: clock)
        let order = Mutex<[String]>([])
        let hold = Task { _ = try? await fleet.send(model: "chat-model", endpoint: .chat, body: holdBody, stream: false) }
        for _ in 0..<6_000 where fleet.backendsReport()["data"]?.arrayValue?.first?["in_flight"]?.intValue != 1 { try await Task.sleep(for: .milliseconds(10)) }
        // The slot is taken before the request reaches the engine: wait until the engine has it,
        // or cancelling the hold below could stop it on the way and the engine would count 2.
        for _ in 0..<6_000 where sims.machine(0).currentStats.requests < 1 { try await Task.sleep(for: .milliseconds(10)) }
        let low = Task {
            _ = try? await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(), stream: false, priority: 5)  // tier-1's default rank
            order.withLock { $0.append("tier-1") }
        }
        for _ in 0..<6_000 where fleet.waiters.count < 1 { try await Task.sleep(for: .milliseconds(10)) }
        let high = Task {
            _ = try? await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(), stream: false, priority: 1)  // monthly's default rank
            order.withLock { $0.append("monthly") }
        }
        for _ in 0..<6_000 where fleet.waiters.count < 2 { try await Task.sleep(for: .milliseconds(10)) }
        try #require(fleet.waiters.count == 2)
        hold.cancel()  // frees the slot: the later, higher-priority request is served first
        _ = await (hold.value, low.value, high.value)
        #expect(order.withLock { $0 } == ["monthly", "tier-1"])
        #expect(sims.machine(0).currentStats.requests == 3)

        // Every backend full for the whole deadline: 503, without waiting in real time.
        let short = Fleet(configs: [holdConfig], http: testHTTP, logger: logger, options: FleetOptions(queueDeadlineMs: 100), clock: clock)
        let holding = Task { _ = try? await short.send(model: "chat-model", endpoint: .chat, body: holdBody, stream: false) }
        for _ in 0..<6_000 where short.backendsReport()["data"]?.arrayValue?.first?["in_flight"]?.intValue != 1 { try await Task.sleep(for: .milliseconds(10)) }
        let refused = Task { () -> EngineError? in
            do {
                _ = try await short.send(model: "chat-model", endpoint: .chat, body: chatBody(), stream: false)
                return nil
            } catch let e as EngineError {
                return e
            }
        }
        for _ in 0..<6_000 where short.waiters.count < 1 { try await Task.sleep(for: .milliseconds(10)) }
        clock.advance(byMs: 99)
        #expect(short.waiters.count == 1)  // not yet
        clock.advance(byMs: 1)
        let error = try #require(await refused.value, "must be saturated")
        let api = error.apiError
        #expect(api.status == 503 && api.code == "engines_saturated")
        #expect(api.headers.contains { $0.0 == "Retry-After" })
        #expect(error.outcome == "saturated")
        holding.cancel()
        _ = await holding.value
    }

    // MARK: Prefix affinity and partial usage

    @Test func conversationsStickToTheirBackend() async throws {
        var c = SimConfig(models: ["sim-chat"], ttftMs: 1, itlMs: 0)
        c.mode = .vllm; c.kvBlocks = 1000; c.blockTokens = 4
        let sims = try await start([c, c, c, c])
        defer { Task { await sims.shutdown() } }
        let fleet = Fleet(configs: backends(sims, kind: .vllm), http: testHTTP, logger: logger,
                          options: FleetOptions(prefixBlockChars: 32, seed: 3))
        let system = String(repeating: "You are a careful assistant for conversation one. ", count: 6)
        var messages: [JSONValue] = [["role": "system", "content": .string(system)]]
        var served: Set<String> = []
        for turn in 0..<5 {
            messages.append(["role": "user", "content": .string("question number \(turn) with some words")])
            let body: JSONValue = ["model": "chat-model", "messages": .array(messages), "max_tokens": 2]
            let (engine, _) = try await fleet.send(model: "chat-model", endpoint: .chat, body: body, stream: false)
            served.insert(engine.name)
            messages.append(["role": "assistant", "content": "an answer"])
        }
        #expect(served.count == 1)
        let hits = (0..<4).map { sims.machine($0).currentStats.cachedPromptTokens }.reduce(0, +)
        #expect(hits > 0)
    }

    @Test func cutStreamReportsUsageOfWhatWasProduced() async throws {
        let sims = try await start([SimConfig(ttftMs: 1, itlMs: 1, defaultTokens: 100, fault: .cut, cutAfterTokens: 5)])
        defer { Task { await sims.shutdown() } }
        let fleet = Fleet(configs: backends(sims, kind: .sim), http: testHTTP, logger: logger)
        let (_, response) = try await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(stream: true, maxTokens: 50), stream: true)
        guard case .stream(let events) = response else { return }
        var usage: Usage?
        var chunks = 0
        do {
            for try await e in events {
                switch e {
                case .chunk: chunks += 1
                case .usage(let u): usage = u
                }
            }
            Issue.record("must fail")
        } catch let e as EngineError {
            #expect(e.apiError.code == "upstream_stream_error")
        }
        #expect(chunks > 0 && chunks <= 5)  // the last chunk before the cut may be lost with the connection
        #expect(usage?.estimated == true && (usage?.completionTokens ?? 0) >= chunks)
    }
}
