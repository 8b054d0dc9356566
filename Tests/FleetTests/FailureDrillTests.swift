import EngineSim
import Logging
import OpenAIWire
import Synchronization
import Testing
@testable import Fleet

/// The failure drill (issue 7 item 8) on a SIMULATED 12-machine fleet: under load, stop 3
/// machines, then bring them back.
@Suite(.serialized) struct FailureDrillTests {
    struct Outcome: Sendable {
        var backend = ""
        var chunks = 0
        var sendError: String?
        var streamError: String?
        var usageBeforeError = false
    }

    @Test func stopThreeOfTwelveUnderLoadThenRevive() async throws {
        var c = SimConfig(models: ["sim-chat"], ttftMs: 5, itlMs: 15, defaultTokens: 1000)
        c.mode = .vllm
        c.maxBatch = 8
        let sims = SimFleet(configs: Array(repeating: c, count: 12))
        try await sims.start()
        defer { Task { await sims.shutdown() } }
        let configs = sims.boundPorts.enumerated().map { i, port in
            BackendConfig(name: "m\(i)", kind: .vllm, url: "http://127.0.0.1:\(port)", models: ["chat-model": "sim-chat"],
                          timeouts: Timeouts(connectMs: 10_000, firstByteMs: 30_000, idleMs: 30_000), capacity: 8, probeIntervalMs: 100)
        }
        let fleet = Fleet(configs: configs, http: testHTTP, logger: Logger(label: "drill"),
                          options: FleetOptions(maxAttempts: 4, breakerThreshold: 2, breakerCooldownMs: 300, seed: 9))
        let probes = Task { await fleet.runHealthChecks() }
        defer { probes.cancel() }

        let outcomes = Mutex<[Outcome]>([])
        // Streams open right now that have received a chunk, by backend: the stop waits for one
        // on a machine it stops (a condition, not a guess at how long the load takes to start).
        let streaming = Mutex<[String: Int]>([:])
        func one(_ n: Int) async {
            var o = Outcome()
            let body: JSONValue = ["model": "chat-model", "max_tokens": 20, "stream": true,
                                   "messages": [["role": "user", "content": .string("drill request \(n)")]]]
            do {
                let (engine, response) = try await fleet.send(model: "chat-model", endpoint: .chat, body: body, stream: true)
                o.backend = engine.name
                guard case .stream(let events) = response else { return }
                var sawUsage = false
                defer { if o.chunks > 0 { streaming.withLock { $0[o.backend, default: 0] -= 1 } } }
                do {
                    for try await e in events {
                        switch e {
                        case .chunk:
                            o.chunks += 1
                            if o.chunks == 1 { streaming.withLock { $0[o.backend, default: 0] += 1 } }
                        case .usage: sawUsage = true
                        }
                    }
                } catch {
                    o.streamError = "\(error)"
                    o.usageBeforeError = sawUsage
                }
            } catch {
                o.sendError = "\(error)"
            }
            outcomes.withLock { $0.append(o) }
        }

        let stopped = [0, 1, 2]
        // 192 requests, one every 12 ms (each stream lasts ~300 ms). Machines 0-2 are stopped as
        // soon as a stream on one of them is under way, kept down while 48 more requests are
        // sent, then revived under the rest of the load. The pacing sleeps only spread the
        // load; what happens when is decided by conditions, so a starved machine changes the
        // speed of the drill, not its course.
        var stoppedAt: Int?
        var revivedAt: Int?
        await withTaskGroup(of: Void.self) { load in
            for n in 0..<192 {
                load.addTask { await one(n) }
                try? await Task.sleep(for: .milliseconds(12))
                if stoppedAt == nil, streaming.withLock({ s in stopped.contains { s["m\($0)", default: 0] > 0 } }) {
                    for i in stopped { sims.stop(i) }
                    stoppedAt = n
                } else if let s = stoppedAt, revivedAt == nil, n >= s + 48 {
                    load.addTask { for i in stopped { try? await sims.revive(i) } }
                    revivedAt = n
                }
            }
        }
        #expect(stoppedAt != nil && revivedAt != nil, "stopped at request \(stoppedAt.map(String.init) ?? "-"), revived at \(revivedAt.map(String.init) ?? "-")")

        let all = outcomes.withLock { $0 }
        #expect(all.count == 192)
        // No client error for a request that had not started streaming.
        #expect(all.filter { $0.sendError != nil }.isEmpty, "send errors: \(all.compactMap(\.sendError).prefix(3))")
        // Streams broken by the stop were on stopped machines, had started, and billed their part.
        let broken = all.filter { $0.streamError != nil }
        #expect(!broken.isEmpty)
        for b in broken {
            #expect(stopped.map { "m\($0)" }.contains(b.backend))
            #expect(b.chunks > 0 && b.usageBeforeError)
        }

        // Routing returns to the revived machines (once their probes pass: polled, bounded).
        for _ in 0..<1200 where !stopped.allSatisfy({ fleet.backendStates["m\($0)"] == "healthy" }) {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(stopped.allSatisfy { fleet.backendStates["m\($0)"] == "healthy" }, "\(fleet.backendStates)")
        let before = fleet.requestCounts
        await withTaskGroup(of: Void.self) { group in
            for n in 0..<60 {
                group.addTask { await one(1000 + n) }
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        let after = fleet.requestCounts
        for i in stopped { #expect((after["m\(i)"] ?? 0) > (before["m\(i)"] ?? 0), "m\(i) got no traffic after revival") }
    }
}
