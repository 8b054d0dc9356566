import Foundation
import Testing
@testable import Gateway

/// `encryption:` and `LLMAAS_PREVIOUS_MASTER_KEYS`: the master key ring's sources, bad values named.
@Suite struct EncryptionConfigTests {
    @Test func parsesTheMasterAndPreviousKeyFiles() throws {
        let c = try GatewayConfig.parse("""
        data_dir: /srv/llmaas
        encryption:
          master_key_file: keys/master-2.key
          previous_master_key_files: [keys/master-1.key, /old/master-0.key]
        """, baseDir: "/etc/llmaas")
        #expect(c.masterKeyPath == "/etc/llmaas/keys/master-2.key")
        #expect(c.encryption.previousMasterKeyFiles == ["/etc/llmaas/keys/master-1.key", "/old/master-0.key"])
        #expect(try GatewayConfig.parse("data_dir: /srv/llmaas").masterKeyPath == "/srv/llmaas/request-store.key")
        // The same file under both names is one master key.
        _ = try GatewayConfig.parse("encryption: {master_key_file: /k}\nrequest_store: {master_key_file: /k}")
    }

    @Test(arguments: [
        ("encryption: {master_key_file: \"\"}", "encryption.master_key_file"),
        ("encryption: {previous_master_key_files: [\"\"]}", "encryption.previous_master_key_files[0]"),
        ("encryption: {master_key_file: /a}\nrequest_store: {master_key_file: /b}", "encryption.master_key_file"),
        ("encryption: {master_keys: /a}", "encryption.master_keys"),
    ])
    func errorsNameTheField(_ yaml: String, _ field: String) {
        expectConfigError(yaml, field: field)
    }

    @Test func previousKeysFromTheEnvironment() throws {
        let a = Data(repeating: 1, count: 32).base64EncodedString(), b = Data(repeating: 2, count: 32).base64EncodedString()
        let c = try GatewayConfig.load(path: nil, environment: ["LLMAAS_PREVIOUS_MASTER_KEYS": "\(a), \(b)", "LLMAAS_MASTER_KEY": Data(repeating: 3, count: 32).base64EncodedString()])
        #expect(c.encryption.previousMasterKeys == [Array(repeating: 1, count: 32), Array(repeating: 2, count: 32)])
        let ring = try c.masterKeyRing()
        #expect(ring.previous.count == 2 && ring.primary.id != ring.previous[0].id)
        do {
            _ = try GatewayConfig.load(path: nil, environment: ["LLMAAS_PREVIOUS_MASTER_KEYS": "\(a),short"])
            Issue.record("should fail")
        } catch let e as ConfigError {
            #expect(e.field == "LLMAAS_PREVIOUS_MASTER_KEYS" && !e.description.contains(a))
        }
    }

    @Test func aMissingPreviousKeyFileIsNamed() throws {
        var c = try GatewayConfig.parse("encryption: {previous_master_key_files: [/nonexistent/llmaas-master.key]}")
        c.requestStore.masterKey = Array(repeating: 5, count: 32)
        #expect(throws: ConfigError.self) { try c.masterKeyRing() }
        do { _ = try c.masterKeyRing() } catch let e as ConfigError { #expect(e.field == "encryption.previous_master_key_files[0]") }
    }
}
