import ArgumentParser
import EngineSim
import Foundation
import OpenAIWire

/// `llmaas sim`: one SIMULATED engine, or a whole SIMULATED fleet on consecutive ports
/// (`--machines N` or `--profile FILE`). EngineSim produces deterministic pseudo-text with
/// engine-like timing; it is never a model. Replaces the v1 `Sim` command (same options, plus
/// the fleet ones).
struct SimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Run EngineSim: SIMULATED inference engines (no model) for tests and benchmarks; one or a whole fleet.")
    @Option(help: "HOST:PORT to listen on (with --machines: the first port; the others follow).") var listen: String = "127.0.0.1:9000"
    @Option(help: "Number of simulated machines (more than 1: the mixed vLLM/Ollama-like fleet of bench/routing).") var machines: Int = 1
    @Option(help: "JSON profile of the machines (a list, or {\"machines\": [...]}); overrides --machines.") var profile: String?
    @Option(help: "Engine to imitate with one machine: openai|vllm|ollama.") var mode: String = "openai"
    @Option(name: .customLong("model"), help: "Model name the sim serves (repeatable).") var models: [String] = []
    @Option(name: .customLong("ttft-ms"), help: "Time to first token.") var ttftMs: Int = 20
    @Option(name: .customLong("itl-ms"), help: "Inter-token latency.") var itlMs: Int = 5
    @Option(help: "Report usage: on|off.") var usage: String = "on"
    @Option(help: "Reasoning output: none|field|think.") var reasoning: String = "none"
    @Option(help: "Seed of the deterministic text.") var seed: UInt64 = 42
    @Option(help: "Natural answer length in tokens (max_tokens caps it).") var tokens: Int = 32
    @Option(help: "Fault: none|refuse|500|hang|cut|overrun|slow.") var fault: String = "none"

    func run() async throws {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
            throw fail("--listen must be HOST:PORT", code: 2)
        }
        let host = String(listen[..<colon])
        guard let style = SimConfig.ReasoningStyle(rawValue: reasoning) else { throw fail("--reasoning must be none, field or think", code: 2) }
        guard let f = SimConfig.Fault(rawValue: fault) else { throw fail("--fault must be none, refuse, 500, hang, cut, overrun or slow", code: 2) }
        guard let m = SimConfig.Mode(rawValue: mode) else { throw fail("--mode must be openai, vllm or ollama", code: 2) }
        guard usage == "on" || usage == "off" else { throw fail("--usage must be on or off", code: 2) }
        guard machines >= 1 else { throw fail("--machines must be at least 1", code: 2) }

        var configs: [SimConfig]
        if let profile {
            guard let data = FileManager.default.contents(atPath: profile), let json = try? JSONValue.parse(Array(data)) else {
                throw fail("--profile \(profile): not a readable JSON file", code: 2)
            }
            do { configs = try SimFleet.profile(json: json, host: host, firstPort: port) } catch { throw fail("--profile \(profile): \(error)", code: 2) }
        } else if machines > 1 {
            configs = SimFleet.mixedProfile(machines: machines, host: host, firstPort: port, seed: seed)
            if !models.isEmpty { configs = SimFleet.mixedProfile(machines: machines, host: host, firstPort: port, models: models, seed: seed) }
        } else {
            var c = SimConfig(host: host, port: port, models: models.isEmpty ? ["sim-chat"] : models, ttftMs: ttftMs, itlMs: itlMs,
                              usage: usage == "on", reasoning: style, seed: seed, defaultTokens: tokens, fault: f)
            c.mode = m
            configs = [c]
        }
        let fleet = SimFleet(configs: configs)
        let ports = try await fleet.start()
        for (i, c) in configs.enumerated() {
            print("EngineSim (simulated engine) \(i + 1)/\(configs.count) mode=\(c.mode.rawValue) listening on http://\(c.host):\(ports[i]) serving \(c.models.joined(separator: ", "))")
        }
        fflush(stdout)
        while !Task.isCancelled { try await Task.sleep(for: .seconds(3600)) }
    }
}
