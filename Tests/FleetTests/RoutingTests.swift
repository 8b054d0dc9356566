import Clocks
import Synchronization
import OpenAIWire
import Testing
@testable import Fleet

/// The routing policy and its parts, from plain values (no servers).
struct RoutingTests {
    var rng = SplitMix64(seed: 7)

    @Test mutating func residentModelBeatsEverythingElse() {
        let cold = RoutingCandidate(index: 0, inFlight: 0, capacity: 4, resident: false, prefixBlocks: 8, promptBlocks: 8)
        let warmBusy = RoutingCandidate(index: 1, inFlight: 3, capacity: 4, engineWaiting: 2, kvUsage: 0.9, resident: true)
        #expect(Router.choose([cold, warmBusy], policy: .scored, weights: RoutingWeights(), rotation: 0, using: &rng) == 1)
    }

    @Test mutating func prefixAffinityWinsOnlyWhileLoadIsWithinBounds() {
        let w = RoutingWeights()
        let owner = RoutingCandidate(index: 0, inFlight: 1, capacity: 4, prefixBlocks: 6, promptBlocks: 8)
        let idle = RoutingCandidate(index: 1, inFlight: 0, capacity: 4)
        #expect(Router.choose([owner, idle], policy: .scored, weights: w, rotation: 0, using: &rng) == 0)
        // Past affinityMaxLoad the cache no longer pulls: balance wins.
        let busyOwner = RoutingCandidate(index: 0, inFlight: 3, capacity: 4, prefixBlocks: 6, promptBlocks: 8)
        #expect(Router.choose([busyOwner, idle], policy: .scored, weights: w, rotation: 0, using: &rng) == 1)
    }

    @Test mutating func loadQueueAndKVPenalise() {
        let w = RoutingWeights()
        let a = RoutingCandidate(index: 0, inFlight: 1, capacity: 4, engineWaiting: 3, kvUsage: 0.2)
        let b = RoutingCandidate(index: 1, inFlight: 1, capacity: 4, engineWaiting: 0, kvUsage: 0.2)
        let c = RoutingCandidate(index: 2, inFlight: 1, capacity: 4, engineWaiting: 0, kvUsage: 0.95)
        #expect(Router.choose([a, b, c], policy: .scored, weights: w, rotation: 0, using: &rng) == 1)
        #expect(Router.score(b, weights: w) > Router.score(a, weights: w))
        #expect(Router.score(b, weights: w) > Router.score(c, weights: w))
    }

    @Test func tiesAreBrokenByTheInjectedGenerator() {
        let same = (0..<4).map { RoutingCandidate(index: $0, inFlight: 0, capacity: 4) }
        var g1 = SplitMix64(seed: 1), g2 = SplitMix64(seed: 1)
        let picks1 = (0..<20).map { _ in Router.choose(same, policy: .scored, weights: RoutingWeights(), rotation: 0, using: &g1)! }
        let picks2 = (0..<20).map { _ in Router.choose(same, policy: .scored, weights: RoutingWeights(), rotation: 0, using: &g2)! }
        #expect(picks1 == picks2)
        #expect(Set(picks1).count > 1)  // it really is random
    }

    @Test mutating func baselines() {
        let cs = [RoutingCandidate(index: 0, inFlight: 3, capacity: 4), RoutingCandidate(index: 2, inFlight: 1, capacity: 4),
                  RoutingCandidate(index: 5, inFlight: 2, capacity: 4)]
        #expect(Router.choose(cs, policy: .roundRobin, weights: RoutingWeights(), rotation: 1, using: &rng) == 2)
        #expect(Router.choose(cs, policy: .roundRobin, weights: RoutingWeights(), rotation: 3, using: &rng) == 5)
        #expect(Router.choose(cs, policy: .roundRobin, weights: RoutingWeights(), rotation: 6, using: &rng) == 0)
        #expect(Router.choose(cs, policy: .leastInFlight, weights: RoutingWeights(), rotation: 0, using: &rng) == 2)
        #expect(Router.choose([], policy: .scored, weights: RoutingWeights(), rotation: 0, using: &rng) == nil)
    }

    @Test func prefixIndexFollowsTheConversation() {
        var index = PrefixIndex(blockChars: 16)
        let system = String(repeating: "You are helpful. ", count: 4)  // 68 chars: 4 blocks
        let turn1 = index.blockHashes(system + "user: hi")
        index.record(turn1, backend: 3)
        let turn2 = index.blockHashes(system + "user: hi assistant: hello user: more please")
        #expect(index.matches(turn2)[3] == turn1.count)
        index.record(turn2, backend: 5)
        #expect(index.matches(turn2)[5] == turn2.count)
        #expect(index.matches(index.blockHashes("something else entirely, not shared")).isEmpty)
        index.forget(backend: 5)
        #expect(index.matches(turn2)[5] == nil)
    }

    @Test func breakerOpensHalfOpensAndCloses() {
        var b = CircuitBreaker(threshold: 3, cooldownMs: 100)
        b.failure(nowMs: 0); b.failure(nowMs: 1)
        #expect(b.state == .closed(consecutiveFailures: 2) && b.admits(nowMs: 2))
        b.failure(nowMs: 2)
        #expect(b.state == .open(sinceMs: 2) && !b.admits(nowMs: 50))
        #expect(b.admits(nowMs: 102))
        b.dispatched(nowMs: 102)
        #expect(b.state == .halfOpen(trialInFlight: true) && !b.admits(nowMs: 103))  // one trial at a time
        b.failure(nowMs: 110)
        #expect(b.state == .open(sinceMs: 110))
        b.tick(nowMs: 300)
        #expect(b.state == .halfOpen(trialInFlight: false))
        b.success()
        #expect(b.state == .closed(consecutiveFailures: 0) && b.label == "healthy")
    }

    @Test func vllmMetricsParse() {
        let text = """
        # HELP vllm:num_requests_running Number of requests in model execution batches.
        vllm:num_requests_running{model_name="m"} 3.0
        vllm:num_requests_waiting{model_name="m"} 7.0
        vllm:gpu_cache_usage_perc{model_name="m"} 0.42
        """
        #expect(EngineMetrics(prometheus: text) == EngineMetrics(waiting: 7, running: 3, kvUsage: 0.42))
        let newer = "vllm:kv_cache_usage_perc{engine=\"0\"} 0.5\nvllm:num_requests_waiting 0\n"
        #expect(EngineMetrics(prometheus: newer)?.kvUsage == 0.5)
        #expect(EngineMetrics(prometheus: "process_cpu_seconds_total 1") == nil)
    }

    @Test func discoveredNamesMapToCatalogIDs() {
        let map = ModelNameMatcher.map(engineNames: ["qwen3:8b", "Qwen/Qwen3-14B", "llama3.2:latest", "unknown-model"],
                                       catalogIDs: ["qwen3:8b", "qwen3:14b", "llama3.2"])
        #expect(map == ["qwen3:8b": "qwen3:8b", "qwen3:14b": "Qwen/Qwen3-14B", "llama3.2": "llama3.2:latest"])
    }

    @Test func ollamaRequestTranslation() {
        let body: JSONValue = ["model": "qwen3:8b", "messages": [["role": "user", "content": [["type": "text", "text": "hi"]]]],
                               "max_tokens": 5, "temperature": .double(0.5), "stop": "x", "response_format": ["type": "json_object"]]
        let native = OllamaAdapter.request(body, endpoint: .chat, stream: true)
        #expect(native["messages"]?.arrayValue?.first?["content"] == "hi")
        #expect(native["options"]?["num_predict"] == 5)
        #expect(native["options"]?["stop"] == ["x"])
        #expect(native["format"] == "json")
        #expect(native["stream"] == true)
        let answer: JSONValue = ["model": "qwen3:8b", "message": ["role": "assistant", "content": "ok", "thinking": "hmm"],
                                 "done": true, "done_reason": "length", "prompt_eval_count": 12, "eval_count": 5]
        let openai = OllamaAdapter.response(answer, endpoint: .chat, model: "qwen3:8b", id: "x", created: 1)
        let choice = openai["choices"]?.arrayValue?.first
        #expect(choice?["finish_reason"] == "length")
        #expect(choice?["message"]?["reasoning_content"] == "hmm")
        #expect(Usage(json: openai["usage"]) == Usage(promptTokens: 12, completionTokens: 5))
    }
}

/// The fleet's wait queue serves the lowest configured tier priority rank first, then by arrival
/// (issue 12: the rank used to be guessed from the tier's name). No timing: the test waits until
/// both waiters are registered, then wakes one.
@Suite struct WaitQueueTests {
    @Test func highestPriorityFirstThenArrival() async throws {
        let queue = WaitQueue(clock: ManualClock())
        let woken = Mutex<[String]>([])
        let far = Int64.max / 2
        // Ranks as Fleet.send passes them: the tier's configured priority (lowest is served first).
        let bronze = Task { if await queue.wait(model: "m", priority: 5, seq: 1, deadlineMs: far, ready: { false }) { woken.withLock { $0.append("bronze") } } }
        let gold = Task { if await queue.wait(model: "m", priority: 0, seq: 2, deadlineMs: far, ready: { false }) { woken.withLock { $0.append("gold") } } }
        for _ in 0..<2_000 where queue.count < 2 { try await Task.sleep(for: .milliseconds(5)) }
        try #require(queue.count == 2)
        queue.wakeOne { _ in true }
        _ = await gold.value
        #expect(woken.withLock { $0 } == ["gold"])
        queue.wakeOne { _ in true }
        _ = await bronze.value
        #expect(woken.withLock { $0 } == ["gold", "bronze"])
    }

    /// Polls `condition` every 5 ms for up to 10 s (no timing: the tasks register when they run).
    func until(_ condition: () -> Bool) async throws {
        for _ in 0..<2_000 where !condition() { try await Task.sleep(for: .milliseconds(5)) }
        try #require(condition())
    }

    /// Waiters whose deadline passes are failed (false) in deadline order, by one expiry timer for
    /// the whole queue — also when a later waiter has an earlier deadline — and the others wait on.
    @Test func deadlinesExpireThroughOneTimer() async throws {
        let clock = ManualClock()
        let queue = WaitQueue(clock: clock)
        let t0 = clock.now()
        let late = Task { await queue.wait(model: "m", priority: 0, seq: 1, deadlineMs: t0 + 1_000, ready: { false }) }
        try await until { queue.count == 1 && clock.sleepers == 1 }
        let waiters = (0..<10).map { i in
            Task { await queue.wait(model: "m", priority: 0, seq: UInt64(2 + i), deadlineMs: t0 + 2_000 + Int64(i), ready: { false }) }
        }
        try await until { queue.count == 11 }
        #expect(clock.sleepers == 1)  // one timer, not one per waiter
        let early = Task { await queue.wait(model: "m", priority: 0, seq: 20, deadlineMs: t0 + 100, ready: { false }) }
        try await until { queue.count == 12 && clock.sleepers == 1 }  // re-armed for the earlier deadline
        clock.set(t0 + 100)
        #expect(await early.value == false)
        try await until { queue.count == 11 }
        clock.set(t0 + 1_000)
        #expect(await late.value == false)
        try await until { queue.count == 10 }
        clock.set(t0 + 2_004)  // the first five of the ten
        for w in waiters.prefix(5) { #expect(await w.value == false) }
        try await until { queue.count == 5 }
        queue.wakeAll()
        for w in waiters.suffix(5) { #expect(await w.value == true) }
        // The timer is not re-armed by wake-ups; at its deadline it finds nothing waiting and ends.
        #expect(clock.sleepers == 1)
        clock.set(t0 + 2_005)
        try await until { clock.sleepers == 0 }
    }
}
