import Foundation
import OpenAIWire
import Synchronization

/// A whole SIMULATED fleet of EngineSim machines in one process, on consecutive ports, with
/// machines that can be stopped and revived (failure drills, benchmarks). No model runs here.
public final class SimFleet: Sendable {
    public let configs: [SimConfig]
    private let machines: [EngineSim]
    private let tasks = Mutex<[Task<Void, any Error>?]>([])
    private let ports = Mutex<[Int]>([])

    public init(configs: [SimConfig]) {
        self.configs = configs
        self.machines = configs.map { EngineSim(config: $0) }
        tasks.withLock { $0 = Array(repeating: nil, count: configs.count) }
    }

    public var count: Int { machines.count }
    public func machine(_ i: Int) -> EngineSim { machines[i] }
    public var boundPorts: [Int] { ports.withLock { $0 } }

    /// Starts every machine; returns their ports once all are listening.
    @discardableResult
    public func start() async throws -> [Int] {
        var bound: [Int] = []
        for i in machines.indices { bound.append(try await startMachine(i, port: nil)) }
        ports.withLock { $0 = bound }
        return bound
    }

    private func startMachine(_ i: Int, port: Int?) async throws -> Int {
        let (stream, cont) = AsyncThrowingStream.makeStream(of: Int.self)
        let sim = machines[i]
        let task = Task {
            do {
                try await sim.run(port: port) { cont.yield($0) }
                cont.finish()
            } catch {
                cont.finish(throwing: error)
                throw error
            }
        }
        tasks.withLock { $0[i] = task }
        var it = stream.makeAsyncIterator()
        guard let p = try await it.next() else { throw SimFleetError("machine \(i) did not start") }
        return p
    }

    /// Stops machine `i` as a crash would: listener closed, connections and streams cut at once
    /// (returns without waiting for its tasks to wind down).
    public func stop(_ i: Int) {
        machines[i].stop()
    }

    /// Stops machine `i` and waits until its listener is closed (a connection to it is refused).
    public func stopAndWait(_ i: Int) async {
        machines[i].stop()
        _ = await tasks.withLock({ $0[i] })?.result
    }

    /// Brings machine `i` back on its port (empty cache, as after a restart).
    public func revive(_ i: Int) async throws {
        let old = tasks.withLock { $0[i] }
        _ = await old?.result
        let port = ports.withLock { $0.indices.contains(i) ? $0[i] : configs[i].port }
        _ = try await startMachine(i, port: port)
    }

    /// Stops every machine and waits (at most 5 s) for them to wind down.
    public func shutdown() async {
        for i in machines.indices { machines[i].stop() }
        let all = tasks.withLock { $0 }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { for t in all { _ = await t?.result } }
            group.addTask { try? await Task.sleep(for: .seconds(5)) }
            _ = await group.next()
            group.cancelAll()
            for t in all { t?.cancel() }
        }
    }

    /// The benchmark and `llmaas sim --machines N` fleet: every third machine is Ollama-like
    /// (all models on disk, two resident, cold loads of `loadMs`), the others vLLM-like serving one
    /// model each (so not every machine holds every model). Ports consecutive from `firstPort`
    /// (0: any free port).
    public static func mixedProfile(machines: Int, host: String = "127.0.0.1", firstPort: Int = 0, models: [String] = ["sim-a", "sim-b", "sim-c", "sim-d"],
                                    seed: UInt64 = 42, loadMs: Int = 2500) -> [SimConfig] {
        var out: [SimConfig] = []
        var vllmCount = 0
        var ollamaCount = 0
        for i in 0..<machines {
            let port = firstPort == 0 ? 0 : firstPort + i
            var c = SimConfig(host: host, port: port, models: models, ttftMs: 15, itlMs: 30, usage: true, seed: seed &+ UInt64(i),
                              defaultTokens: 4096)
            c.batchSlowdown = 0.08
            c.prefillMsPerToken = 1.0
            c.kvBlocks = 4096
            c.blockTokens = 16
            if i % 3 == 2 {
                c.mode = .ollama
                c.maxBatch = 4
                c.maxResident = 2
                c.loadMs = loadMs
                let a = models[ollamaCount % models.count]
                let b = models[(ollamaCount + 1 + ollamaCount / models.count) % models.count]
                c.initiallyResident = a == b ? [a] : [a, b]
                ollamaCount += 1
            } else {
                c.mode = .vllm
                c.maxBatch = 6
                // Popular models on more machines: a, b, a, c, b, d, a, b, …
                let pattern = [0, 1, 0, 2, 1, 3]
                c.models = [models[pattern[vllmCount % pattern.count] % models.count]]
                vllmCount += 1
            }
            out.append(c)
        }
        return out
    }

    /// Reads a profile: a JSON (or YAML flow-style) list of machines; each entry may set
    /// `mode`, `models`, `ttft_ms`, `itl_ms`, `max_batch`, `batch_slowdown`, `prefill_ms_per_token`,
    /// `kv_blocks`, `block_tokens`, `max_resident`, `load_ms`, `resident`, `reasoning`,
    /// `tokens`, `repeat` (copies of this entry). Ports are assigned consecutively.
    public static func profile(json: JSONValue, host: String, firstPort: Int) throws -> [SimConfig] {
        guard let list = json["machines"]?.arrayValue ?? json.arrayValue else { throw SimFleetError("a profile is a list of machines, or {\"machines\": [...]}") }
        var out: [SimConfig] = []
        for (n, m) in list.enumerated() {
            var c = SimConfig(host: host)
            if let v = m["mode"]?.stringValue { guard let mode = SimConfig.Mode(rawValue: v) else { throw SimFleetError("machines[\(n)].mode: use openai, vllm or ollama") }; c.mode = mode }
            if let v = m["models"]?.arrayValue { c.models = v.compactMap(\.stringValue) }
            if let v = m["ttft_ms"]?.intValue { c.ttftMs = v }
            if let v = m["itl_ms"]?.intValue { c.itlMs = v }
            if let v = m["max_batch"]?.intValue { c.maxBatch = v }
            if let v = m["batch_slowdown"]?.doubleValue { c.batchSlowdown = v }
            if let v = m["prefill_ms_per_token"]?.doubleValue { c.prefillMsPerToken = v }
            if let v = m["kv_blocks"]?.intValue { c.kvBlocks = v }
            if let v = m["block_tokens"]?.intValue { c.blockTokens = v }
            if let v = m["max_resident"]?.intValue { c.maxResident = v }
            if let v = m["load_ms"]?.intValue { c.loadMs = v }
            if let v = m["resident"]?.arrayValue { c.initiallyResident = v.compactMap(\.stringValue) }
            if let v = m["tokens"]?.intValue { c.defaultTokens = v }
            if let v = m["reasoning"]?.stringValue, let r = SimConfig.ReasoningStyle(rawValue: v) { c.reasoning = r }
            for _ in 0..<max(1, m["repeat"]?.intValue ?? 1) {
                var copy = c
                copy.port = firstPort == 0 ? 0 : firstPort + out.count
                copy.seed = c.seed &+ UInt64(out.count)
                out.append(copy)
            }
        }
        return out
    }
}

public struct SimFleetError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}
