// routing-bench: the routing policies side by side on a SIMULATED 12-machine fleet (EngineSim).
// Every latency here comes from EngineSim's simulated engines (sleeps computed from their
// configuration: batch slots, prefix-cached prefill, cold model loads) — not from a model.
//
// Usage: routing-bench [--seconds S] [--machines N] [--loads 50,80,95] [--seed N] [--policies round_robin,least_in_flight,scored]

import EngineSim
import Fleet
import Foundation
import Logging
import OpenAIWire
import Synchronization

// MARK: Options

var seconds = 15.0
var machines = 12
var loads = [50, 80, 95]
var seed: UInt64 = 20261201
var policies: [RoutingPolicy] = [.roundRobin, .leastInFlight, .scored]
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--seconds": seconds = Double(args.popFirst() ?? "") ?? seconds
    case "--machines": machines = Int(args.popFirst() ?? "") ?? machines
    case "--loads": loads = (args.popFirst() ?? "").split(separator: ",").compactMap { Int($0) }
    case "--seed": seed = UInt64(args.popFirst() ?? "") ?? seed
    case "--policies": policies = (args.popFirst() ?? "").split(separator: ",").compactMap { RoutingPolicy(rawValue: String($0)) }
    default:
        FileHandle.standardError.write(Data("unknown option \(a)\n".utf8))
        exit(2)
    }
}

let models = ["sim-a", "sim-b", "sim-c", "sim-d"]
let popularity = [0.35, 0.35, 0.15, 0.15]
let loadMs = 2500

// MARK: Workload (pre-generated from the seed: identical for every policy)

struct Req: Sendable {
    let at: Double        // seconds from start
    let model: String
    let body: JSONValue
}

func words(_ n: Int, _ rng: inout SplitMix64) -> String {
    let vocab = ["data", "model", "answer", "system", "policy", "token", "cache", "route", "user", "query", "context", "engine",
                 "fleet", "latency", "value", "result", "report", "summary", "detail", "review", "plan", "table", "note", "step"]
    return (0..<n).map { _ in vocab[Int(rng.next() % UInt64(vocab.count))] }.joined(separator: " ")
}

func workload(rate: Double, seconds: Double, seed: UInt64) -> [Req] {
    var rng = SplitMix64(seed: seed)
    func uniform() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }
    let systems = (0..<8).map { i -> String in
        var r = SplitMix64(seed: seed &+ UInt64(i) &* 7919)
        return "System prompt \(i). " + words(60 + Int(r.next() % 60), &r)
    }
    struct Conversation { var model: String; var messages: [JSONValue] }
    var active: [Conversation] = []
    var out: [Req] = []
    var t = 0.0
    while true {
        t += -log(1 - uniform()) / rate
        if t >= seconds { break }
        var conv: Conversation
        var slot: Int?
        if active.isEmpty || uniform() < 0.2 {
            var u = uniform()
            var m = models.count - 1
            for (i, p) in popularity.enumerated() { if u < p { m = i; break }; u -= p }
            let system = systems[Int(rng.next() % UInt64(systems.count))]
            conv = Conversation(model: models[m], messages: [["role": "system", "content": .string(system)]])
        } else {
            slot = Int(rng.next() % UInt64(active.count))
            conv = active[slot!]
        }
        conv.messages.append(["role": "user", "content": .string(words(30 + Int(rng.next() % 40), &rng))])
        let maxTokens = 12 + Int(rng.next() % 25)
        let body: JSONValue = ["model": .string(conv.model), "messages": .array(conv.messages), "max_tokens": .int(maxTokens),
                               "stream": true]
        out.append(Req(at: t, model: conv.model, body: body))
        conv.messages.append(["role": "assistant", "content": .string(words(maxTokens, &rng))])
        if let slot { active[slot] = conv } else {
            active.append(conv)
            if active.count > 30 { active.removeFirst() }
        }
    }
    return out
}

/// Nominal fleet capacity (requests/s): every batch slot busy, prompts found in the prefix
/// cache except the new turn (~30 tokens), mean answer 24 tokens at the full-batch pace.
func nominalCapacity(_ configs: [SimConfig]) -> Double {
    configs.reduce(0.0) { sum, c in
        let slots = Double(c.maxBatch)
        let itl = Double(c.itlMs) * (1 + c.batchSlowdown * (slots - 1))
        let service = (Double(c.ttftMs) + 30 * c.prefillMsPerToken + 23 * itl) / 1000
        return sum + slots / service
    }
}

// MARK: One run

struct Result {
    var policy: RoutingPolicy
    var load: Int
    var rate: Double
    var ttfts: [Double] = []
    var tokens = 0
    var errors = 0
    var requests = 0
    var wall = 0.0
    var coldLoads = 0
    var promptTokens = 0
    var cachedTokens = 0
}

func percentile(_ xs: [Double], _ p: Double) -> Double {
    guard !xs.isEmpty else { return .nan }
    let s = xs.sorted()
    return s[min(s.count - 1, Int((Double(s.count) * p).rounded(.up)) - 1)]
}

let http = Fleet.makeHTTPClient(connectTimeoutMs: 1000)
var logger = Logger(label: "routing-bench")
logger.logLevel = .error

func run(policy: RoutingPolicy, load: Int, requests: [Req], rate: Double) async throws -> Result {
    let simConfigs = SimFleet.mixedProfile(machines: machines, models: models, seed: seed, loadMs: loadMs)
    let sims = SimFleet(configs: simConfigs)
    let ports = try await sims.start()
    let backends = simConfigs.enumerated().map { i, c in
        BackendConfig(name: "sim-\(i + 1)", kind: c.mode == .ollama ? .ollama : .vllm, url: "http://127.0.0.1:\(ports[i])",
                      models: Dictionary(uniqueKeysWithValues: c.models.map { ($0, $0) }),
                      timeouts: Timeouts(connectMs: 1000, firstByteMs: 30_000, idleMs: 30_000),
                      capacity: c.maxBatch, probeIntervalMs: 250)
    }
    let fleet = Fleet(configs: backends, http: http, logger: logger,
                      options: FleetOptions(policy: policy, queueDeadlineMs: 15_000, seed: seed))
    await fleet.probeAll()
    let probes = Task { await fleet.runHealthChecks() }

    let result = Mutex(Result(policy: policy, load: load, rate: rate))
    let clock = ContinuousClock()
    let start = clock.now
    await withTaskGroup(of: Void.self) { group in
        for r in requests {
            try? await clock.sleep(until: start + .milliseconds(Int(r.at * 1000)))
            group.addTask {
                let sent = clock.now
                var ttft: Double?
                var tokens = 0
                var failed = false
                do {
                    let (_, response) = try await fleet.send(model: r.model, endpoint: .chat, body: r.body, stream: true)
                    if case .stream(let events) = response {
                        for try await e in events {
                            switch e {
                            case .chunk(let c):
                                if ttft == nil, c["choices"]?.arrayValue?.first?["delta"]?["content"] != nil {
                                    let d = (clock.now - sent).components
                                    ttft = Double(d.seconds) * 1000 + Double(d.attoseconds) / 1e15
                                }
                            case .usage(let u): tokens = u.completionTokens
                            }
                        }
                    }
                } catch {
                    failed = true
                }
                result.withLock { res in
                    res.requests += 1
                    if failed { res.errors += 1 } else {
                        res.tokens += tokens
                        if let ttft { res.ttfts.append(ttft) }
                    }
                }
            }
        }
    }
    let w = (clock.now - start).components
    probes.cancel()
    var res = result.withLock { $0 }
    res.wall = Double(w.seconds) + Double(w.attoseconds) / 1e18
    for i in 0..<sims.count {
        let s = sims.machine(i).currentStats
        res.coldLoads += s.coldLoads
        res.promptTokens += s.promptTokens
        res.cachedTokens += s.cachedPromptTokens
    }
    await sims.shutdown()
    return res
}

// MARK: Main

let capacity = nominalCapacity(SimFleet.mixedProfile(machines: machines, models: models, seed: seed, loadMs: loadMs))
print("routing-bench — SIMULATED fleet of \(machines) EngineSim machines (no model runs; latencies are simulated)")
print(String(format: "nominal capacity %.1f req/s; %.0f s of Poisson arrivals per run; seed %llu", capacity, seconds, seed))
print("")
print("| load | policy | req/s | requests | p50 TTFT ms | p99 TTFT ms | tokens/s | cold loads | prefix-cache hit | errors |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
var results: [Result] = []
for load in loads {
    let rate = capacity * Double(load) / 100
    let requests = workload(rate: rate, seconds: seconds, seed: seed &+ UInt64(load))
    for policy in policies {
        let r = try await run(policy: policy, load: load, requests: requests, rate: rate)
        results.append(r)
        let hit = r.promptTokens == 0 ? 0 : Double(r.cachedTokens) / Double(r.promptTokens) * 100
        print(String(format: "| %d %% | %@ | %.1f | %d | %.0f | %.0f | %.0f | %d | %.1f %% | %d |", load, policy.rawValue, rate, r.requests,
                     percentile(r.ttfts, 0.5), percentile(r.ttfts, 0.99), Double(r.tokens) / r.wall, r.coldLoads, hit, r.errors))
        fflush(stdout)
    }
}
if let rr = results.first(where: { $0.load == 80 && $0.policy == .roundRobin }), let ours = results.first(where: { $0.load == 80 && $0.policy == .scored }) {
    print("")
    print(String(format: "at 80 %% load: round robin p99 TTFT / ours = %.1fx; errors %d vs %d",
                 percentile(rr.ttfts, 0.99) / percentile(ours.ttfts, 0.99), rr.errors, ours.errors))
}
try? await http.shutdown().get()
