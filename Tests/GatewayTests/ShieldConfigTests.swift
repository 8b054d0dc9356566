import Testing
@testable import Gateway

@Suite struct ShieldConfigTests {
    @Test func parsesShieldSettings() throws {
        let c = try GatewayConfig.parse("shield: { semantic: false, threshold: 0.9, window_size: 4 }", baseDir: "/base")
        #expect(c.shield.semanticEnabled == false)
        #expect(c.shield.threshold == 0.9)
        #expect(c.shield.windowSize == 4)
        let d = try GatewayConfig.parse("shield: { window_size: 4 }", baseDir: "/base")
        #expect(d.shield.semanticEnabled && d.shield.threshold == nil && d.shield.semanticModelPath == nil)
    }

    @Test(arguments: [
        ("shield: { threshold: 0 }", "shield.threshold"),
        ("shield: { threshold: 1.5 }", "shield.threshold"),
        ("shield: { threshold: high }", "shield.threshold"),
        ("shield: { semantic: maybe }", "shield.semantic"),
        ("shield: { semantic_model: /nonexistent/model.bin }", "shield.semantic_model"),
    ])
    func badShieldSettingsNameTheField(_ yaml: String, _ field: String) {
        do {
            _ = try GatewayConfig.parse(yaml, baseDir: "/base")
            Issue.record("expected a ConfigError for \(field)")
        } catch let e as ConfigError {
            #expect(e.field == field)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}
