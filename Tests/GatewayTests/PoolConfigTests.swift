import Testing
@testable import Gateway

/// `backends[].max_connections` (issue 16): the engine client's pool per backend.
@Suite struct PoolConfigTests {
    let base = "backends:\n  - name: a\n    kind: sim\n    url: http://127.0.0.1:9000\n    models: {a: b}\n"

    @Test func defaultIsAboveTheCapacity() throws {
        let c = try GatewayConfig.parse(base + "    capacity: 5000\n")
        #expect(c.backends[0].maxConnections == 10_016)
        #expect(try GatewayConfig.parse(base).backends[0].maxConnections == 32)
    }

    @Test func explicitValue() throws {
        let c = try GatewayConfig.parse(base + "    capacity: 16\n    max_connections: 40\n")
        #expect(c.backends[0].maxConnections == 40)
    }

    @Test(arguments: ["    max_connections: 0\n", "    capacity: 16\n    max_connections: 8\n", "    max_connections: many\n"])
    func badValuesNameTheField(_ extra: String) {
        do {
            _ = try GatewayConfig.parse(base + extra)
            Issue.record("should fail: \(extra)")
        } catch let e as ConfigError {
            #expect(e.field == "backends[0].max_connections")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}
