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
    ])
    func errorsNameTheField(_ yaml: String, _ field: String) {
        do {
            _ = try GatewayConfig.parse(yaml)
            Issue.record("should fail")
        } catch let e as ConfigError {
            #expect(e.field == field)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func environmentOverrides() throws {
        let c = try GatewayConfig.load(path: nil, environment: ["LLMAAS_LISTEN": "0.0.0.0:1234", "LLMAAS_DATA_DIR": "/tmp/x"])
        #expect(c.host == "0.0.0.0" && c.port == 1234 && c.dataDir == "/tmp/x")
    }
}
