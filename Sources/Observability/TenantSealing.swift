import Crypto
import Foundation
import Sealing

/// Encryption at rest of tenant data other than request bodies (issue 17: batch files and batch
/// results), through the gateway's one key hierarchy (``KeyHierarchy``, issue 14): AES-256-GCM
/// under the tenant's `batch_file` data key, stored only wrapped by the master key. Batch data has
/// its own scope, so the request store's retention (which destroys `request_body` day keys) never
/// touches it; `llmaas keys rotate-master` re-wraps it with every other data key.
extension RequestStore {
    /// Seals `plaintext` for `tenantID`; `context` (e.g. the file id) is bound as associated data,
    /// so ciphertext moved to another file or tenant does not open. Returns the data key's id and
    /// nonce ‖ ciphertext ‖ tag.
    public func sealTenantData(_ plaintext: [UInt8], tenantID: String, at time: Int64, context: String) async throws -> (dataKeyID: String, sealed: Data) {
        let key = try await keys.writingKey(scope: .batchFile(tenantID: tenantID))
        let box = try AES.GCM.seal(plaintext, using: key.symmetricKey, authenticating: Self.tenantDataAAD(tenantID: tenantID, context: context))
        return (key.id, box.combined!)
    }

    /// Opens what ``sealTenantData(_:tenantID:at:context:)`` sealed; nil when the data key was
    /// destroyed or the ciphertext does not authenticate.
    public func openTenantData(_ sealed: Data, tenantID: String, dataKeyID: String, context: String) async throws -> [UInt8]? {
        guard let key = try await keys.key(id: dataKeyID, scope: .batchFile(tenantID: tenantID)),
              let box = try? AES.GCM.SealedBox(combined: sealed),
              let plain = try? AES.GCM.open(box, using: key.symmetricKey, authenticating: Self.tenantDataAAD(tenantID: tenantID, context: context))
        else { return nil }
        return Array(plain)
    }

    static func tenantDataAAD(tenantID: String, context: String) -> [UInt8] {
        Array("llmaas tenant data v1\u{0}\(tenantID)\u{0}\(context)".utf8)
    }
}
