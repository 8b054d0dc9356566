import AsyncHTTPClient
import EngineSim
import Logging
import OpenAIWire
import Testing
@testable import Fleet

/// The engine client's connection pool is sized per backend (`max_connections`, issue 16): with
/// AsyncHTTPClient's old fixed 512 connections per host, the 513th stream open at once to one
/// engine waited for a connection and failed with a 502.
@Suite(.serialized) struct PoolLimitTests {
    @Test func defaultPoolHoldsMoreStreamsThanTheOldLimit() async throws {
        let n = 600
        // Long gaps between tokens: every stream stays open (holding its connection) until the
        // test has seen the first chunk of all of them, then is cancelled.
        let sims = SimFleet(configs: [SimConfig(models: ["sim-chat"], ttftMs: 1, itlMs: 60_000, defaultTokens: 4)])
        try await sims.start()
        let config = BackendConfig(name: "s", kind: .sim, url: "http://127.0.0.1:\(sims.boundPorts[0])", models: ["chat-model": "sim-chat"],
                                   timeouts: Timeouts(connectMs: 5000, firstByteMs: 60_000, idleMs: 120_000), capacity: n)
        #expect(config.maxConnections == BackendConfig.defaultMaxConnections(capacity: n))
        #expect(config.maxConnections >= n)
        let clients = Fleet.makeHTTPClients(for: [config])
        let fleet = Fleet(configs: [config], clients: clients, logger: Logger(label: "t"), options: FleetOptions(queueDeadlineMs: 60_000))

        let streams = try await withThrowingTaskGroup(of: EngineStream?.self) { group in
            for _ in 0..<n {
                group.addTask {
                    let (_, response) = try await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(stream: true), stream: true)
                    guard case .stream(let events) = response else { return nil }
                    return events
                }
            }
            var all: [EngineStream] = []
            for try await s in group { if let s { all.append(s) } }
            return all
        }
        // Each stream has its first chunk: all n were open at once, each on its own connection.
        var firstChunks = 0
        for s in streams {
            var it = s.makeAsyncIterator()
            if case .chunk = try await it.next() { firstChunks += 1 }
        }
        #expect(streams.count == n)
        #expect(firstChunks == n)
        for s in streams { s.cancel() }
        for c in clients { try await c.shutdown() }
        await sims.shutdown()
    }

    @Test func aBackendCanSetItsPool() {
        let c = BackendConfig(name: "s", kind: .sim, url: "http://x:1", models: [:], capacity: 4, maxConnections: 9)
        #expect(c.maxConnections == 9)
        // Never below the capacity: every request in flight holds a connection.
        #expect(BackendConfig(name: "s", kind: .sim, url: "http://x:1", models: [:], capacity: 4, maxConnections: 2).maxConnections == 4)
        #expect(BackendConfig(name: "s", kind: .sim, url: "http://x:1", models: [:], capacity: 8).maxConnections == 32)
    }
}
