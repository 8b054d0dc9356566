import Testing
import TestSupport
@testable import Gateway

/// The configuration parser returns a config or a ConfigError naming a field, never traps, on
/// mutations of a valid file (issue 10). Fixed seed, bounded count.
@Suite struct ConfigFuzzTests {
    static let valid = """
    listen: 127.0.0.1:9090
    limits: { max_body_bytes: 4096, max_embedding_inputs: 16, max_messages: 8, max_input_characters: 1000 }
    server: { header_timeout_ms: 500, idle_timeout_ms: 1000, body_timeout_ms: 700, linger_timeout_ms: 100, linger_time_ms: 900, max_connections_per_client: 4, listen_backlog: 64 }
    security: { auth_failures_per_minute: 3, webhook_allow_http: true, webhook_allowed_networks: ["127.0.0.1/32", "fd00::/8"] }
    testing: { allow_simulator_fields: true }
    tiers:
      tier-9: { requests_per_minute: 5, priority: 3, monthly_cap_eur: "10" }
    backends:
      - name: a
        kind: sim
        url: http://127.0.0.1:9000
        models: { "m:1": "m" }
        timeouts: { first_byte_ms: 100 }
    """

    @Test func parsesTheHardeningSettings() throws {
        let c = try GatewayConfig.parse(Self.valid)
        #expect(c.requestLimits.maxEmbeddingInputs == 16 && c.requestLimits.maxMessages == 8 && c.requestLimits.maxInputCharacters == 1000)
        #expect(c.connections.headerTimeoutMs == 500 && c.connections.idleTimeoutMs == 1000 && c.connections.bodyTimeoutMs == 700)
        #expect(c.connections.lingerTimeoutMs == 100 && c.connections.lingerTimeMs == 900 && c.connections.maxConnectionsPerClient == 4)
        #expect(c.connections.listenBacklog == 64 && GatewayConfig().connections.listenBacklog == 256)
        #expect(c.webhooks.allowHTTP && c.webhooks.allowedNetworks.count == 2 && c.allowSimulatorFields)
        let defaults = GatewayConfig()
        #expect(!defaults.webhooks.allowHTTP && defaults.webhooks.allowedNetworks.isEmpty && !defaults.allowSimulatorFields)
    }

    @Test(arguments: ["security: { webhook_allowed_networks: [\"/\"] }", "security: { webhook_allowed_networks: [\"\"] }",
                      "server: { header_timeout_ms: 0 }", "server: { listen_backlog: 0 }", "server: { listen_backlog: 70000 }", "limits: { max_embedding_inputs: -1 }", "testing: { allow_simulator_fields: 3 }"])
    func refusesBadValues(_ yaml: String) {
        #expect(throws: ConfigError.self) { try GatewayConfig.parse(yaml) }
    }

    @Test func mutationsNeverTrap() {
        var rng = SeededRandom(state: 42)
        func next() -> Int { Int(truncatingIfNeeded: rng.next() >> 33) }
        let bytes = Array(Self.valid.utf8)
        let inserts: [[UInt8]] = [":", "{", "[", "\"", "- ", "\n  ", "/", "-1", "0", "~", "&a", "*a", "!!int ", "\t"].map { Array($0.utf8) }
        var parsed = 0
        for _ in 0..<3_000 {
            var b = bytes
            for _ in 0..<(1 + next() % 3) {
                let at = next() % (b.count + 1)
                switch next() % 3 {
                case 0: if at < b.count { b.remove(at: at) }
                case 1: b.insert(contentsOf: inserts[next() % inserts.count], at: at)
                default: if at < b.count { b[at] = UInt8(truncatingIfNeeded: next()) }
                }
            }
            if (try? GatewayConfig.parse(String(decoding: b, as: UTF8.self))) != nil { parsed += 1 }
        }
        #expect(parsed > 0)
    }
}
