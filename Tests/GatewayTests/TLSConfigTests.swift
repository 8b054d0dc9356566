import Testing
@testable import Gateway

/// `tls:` on the listener and `backends[].tls`: parsed, resolved against the file's folder, and
/// every mistake names its field (the files themselves are checked at start-up: tests/e2e/test_tls.py).
@Suite struct TLSConfigTests {
    @Test func parsesListenerAndBackendTLS() throws {
        let c = try GatewayConfig.parse("""
        tls: { cert: certs/server.pem, key: /secret/server.key }
        backends:
          - name: a
            kind: openai
            url: https://engine.internal:8443
            models: { m: m }
            tls: { ca: ca.pem, cert: client.pem, key: client.key }
        """, baseDir: "/etc/llmaas")
        #expect(c.tls == ListenerTLSConfig(certPath: "/etc/llmaas/certs/server.pem", keyPath: "/secret/server.key", minVersion: .v13))
        #expect(c.backends[0].tls?.ca == "/etc/llmaas/ca.pem")
        #expect(c.backends[0].tls?.cert == "/etc/llmaas/client.pem")
        #expect(c.backends[0].tls?.key == "/etc/llmaas/client.key")
        let v12 = try GatewayConfig.parse("tls: { cert: a.pem, key: a.key, min_version: \"1.2\" }")
        #expect(v12.tls?.minVersion == .v12)
        #expect(v12.console.secureCookies)
        #expect(try GatewayConfig.parse("listen: 127.0.0.1:1").tls == nil)
    }

    @Test(arguments: [
        ("tls: { key: a.key }", "tls.cert"),
        ("tls: { cert: a.pem }", "tls.key"),
        ("tls: { cert: a.pem, key: a.key, min_version: \"1.1\" }", "tls.min_version"),
        ("tls: { cert: a.pem, key: a.key, ciphers: all }", "tls.ciphers"),
        ("backends:\n  - { name: a, kind: sim, url: \"http://x:1\", models: {a: b}, tls: { ca: ca.pem } }", "backends[0].tls"),
        ("backends:\n  - { name: a, kind: sim, url: \"https://x:1\", models: {a: b}, tls: { key: k.pem } }", "backends[0].tls.cert"),
        ("backends:\n  - { name: a, kind: sim, url: \"https://x:1\", models: {a: b}, tls: { cert: c.pem } }", "backends[0].tls.key"),
        ("backends:\n  - { name: a, kind: sim, url: \"https://x:1\", models: {a: b}, tls: { crl: c.pem } }", "backends[0].tls.crl"),
    ])
    func errorsNameTheField(_ yaml: String, _ field: String) {
        expectConfigError(yaml, field: field)
    }
}
