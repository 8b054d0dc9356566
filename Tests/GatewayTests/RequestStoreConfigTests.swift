import Foundation
import Testing
@testable import Gateway

/// `request_store:` and `LLMAAS_MASTER_KEY`: parsed into typed values, bad values named.
@Suite struct RequestStoreConfigTests {
    @Test func defaultsAndSection() throws {
        let d = try GatewayConfig.parse("data_dir: /srv/llmaas")
        #expect(d.masterKeyPath == "/srv/llmaas/request-store.key")
        #expect(d.requestStore.maxBodyBytes == 256 << 10 && d.requestStore.defaultRetentionDays == 30 && d.requestStore.masterKey == nil)
        let c = try GatewayConfig.parse("""
        request_store:
          master_key_file: keys/master.key
          max_body_bytes: 4096
          default_retention_days: 7
        """, baseDir: "/etc/llmaas")
        #expect(c.masterKeyPath == "/etc/llmaas/keys/master.key")
        #expect(c.requestStore.maxBodyBytes == 4096 && c.requestStore.defaultRetentionDays == 7)
    }

    @Test(arguments: [
        ("request_store: {max_body_bytes: 10}", "request_store.max_body_bytes"),
        ("request_store: {max_body_bytes: 999999999}", "request_store.max_body_bytes"),
        ("request_store: {default_retention_days: 0}", "request_store.default_retention_days"),
        ("request_store: {default_retention_days: 4000}", "request_store.default_retention_days"),
        ("request_store: {master_key_file: \"\"}", "request_store.master_key_file"),
        ("request_store: {retention: 3}", "request_store.retention"),
        ("request_store: yes", "request_store"),
    ])
    func errorsNameTheField(_ yaml: String, _ field: String) {
        do {
            _ = try GatewayConfig.parse(yaml)
            Issue.record("should fail: \(yaml)")
        } catch let e as ConfigError {
            #expect(e.field == field)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func masterKeyFromTheEnvironment() throws {
        let key = Data((0..<32).map { UInt8($0) })
        let c = try GatewayConfig.load(path: nil, environment: ["LLMAAS_MASTER_KEY": key.base64EncodedString()])
        #expect(c.requestStore.masterKey == Array(key))
        for bad in ["not base64 at all!", Data(repeating: 1, count: 16).base64EncodedString()] {
            do {
                _ = try GatewayConfig.load(path: nil, environment: ["LLMAAS_MASTER_KEY": bad])
                Issue.record("should fail: \(bad)")
            } catch let e as ConfigError {
                #expect(e.field == "LLMAAS_MASTER_KEY" && !e.description.contains(bad))
            }
        }
    }
}
