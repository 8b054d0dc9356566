import Quotas
import Testing
@testable import Gateway

@Suite struct ConfigTests {
    @Test func parsesFullConfig() throws {
        let c = try GatewayConfig.parse("""
        listen: 127.0.0.1:9090
        data_dir: ./d
        catalog: ./c.yaml
        limits: { max_body_bytes: 4096 }
        backends:
          - name: a
            kind: sim
            url: http://127.0.0.1:9000
            models: { "m:1": "m" }
            timeouts: { first_byte_ms: 100 }
        """, baseDir: "/base")
        #expect(c.port == 9090 && c.host == "127.0.0.1")
        #expect(c.dataDir == "/base/d")
        #expect(c.maxBodyBytes == 4096)
        #expect(c.backends.first?.timeouts.firstByteMs == 100)
        #expect(c.backends.first?.models == ["m:1": "m"])
    }

    @Test(arguments: [
        ("listen: nowhere", "listen"),
        ("backends:\n  - name: a\n    kind: nosuch\n    url: http://x:1\n    models: {a: b}", "backends[0].kind"),
        ("backends:\n  - name: a\n    kind: sim\n    models: {a: b}", "backends[0].url"),
        ("backends:\n  - name: a\n    kind: sim\n    url: http://x:1", "backends[0].models"),
        ("backends:\n  - name: a\n    kind: sim\n    url: http://x:1\n    models: {a: b}\n    managed: {model_file: x}", "backends[0].managed"),
        ("limits: {max_body_bytes: 5}", "limits.max_body_bytes"),
        ("lisen: 1", "lisen"),
        // A prepaid tier needs its credit (a 0 € balance would refuse every request).
        ("tiers:\n  gold: { prepaid: true }", "tiers.gold.upfront_credit_eur"),
        ("tiers:\n  gold: { prepaid: true, upfront_credit_eur: \"0\" }", "tiers.gold.upfront_credit_eur"),
        ("tiers:\n  monthly: { prepaid: true }", "tiers.monthly.upfront_credit_eur"),
    ])
    func errorsNameTheField(_ yaml: String, _ field: String) {
        do {
            _ = try GatewayConfig.parse(yaml)
            Issue.record("should fail: \(yaml)")
        } catch let e as ConfigError {
            #expect(e.field == field)
            #expect(e.description.contains(field))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    /// A tier given no upfront credit is invoiced, not prepaid (a prepaid tier with a 0 € balance
    /// would refuse every request with `insufficient_credit`); saying `prepaid: true` then needs
    /// the credit. The SPEC S4 tiers keep theirs.
    @Test func customTierWithoutCreditIsNotPrepaid() throws {
        let c = try GatewayConfig.parse("""
        tiers:
          gold: { requests_per_minute: 5 }
          silver: { upfront_credit_eur: "0" }
          bronze: { upfront_credit_eur: "25.50" }
          invoiced: { upfront_credit_eur: "10", prepaid: false }
          tier-1: { requests_per_minute: 7 }
        """)
        #expect(c.tiers["gold"]?.prepaid == false)
        #expect(c.tiers["silver"]?.prepaid == false)
        #expect(c.tiers["bronze"]?.prepaid == true && c.tiers["bronze"]?.upfrontCreditNano == 25_500_000_000)
        #expect(c.tiers["invoiced"]?.prepaid == false)
        #expect(c.tiers["tier-1"]?.prepaid == true && c.tiers["tier-1"]?.upfrontCreditNano == 200 * Tier.euro)
        #expect(c.tiers["tier-1"]?.requestsPerMinute == 7)
        #expect(c.tiers["monthly"]?.prepaid == false)
        for name in ["tier-1", "tier-2", "tier-3", "tier-4"] { #expect(GatewayConfig().tiers[name]?.prepaid == true) }
    }

    @Test func environmentOverrides() throws {
        let c = try GatewayConfig.load(path: nil, environment: ["LLMAAS_LISTEN": "0.0.0.0:1234", "LLMAAS_DATA_DIR": "/tmp/x"])
        #expect(c.host == "0.0.0.0" && c.port == 1234 && c.dataDir == "/tmp/x")
    }
}
