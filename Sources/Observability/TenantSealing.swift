import Crypto
import Foundation

/// Encryption at rest of tenant data other than request bodies (issue 17: batch files and batch
/// results), through the request store's key hierarchy: AES-256-GCM under a per-tenant, per-day
/// data key that is stored only wrapped by the master key. Batch data uses its own day keys
/// (`batch-YYYY-MM-DD`), so the request store's retention (which destroys `YYYY-MM-DD` keys of
/// opted-in tenants) never touches them, while a tenant shred destroys them too.
///
/// These two functions are the only place batch code encrypts: when the key hierarchy is
/// generalised (issue 14), switch their bodies to it.
extension RequestStore {
    /// Seals `plaintext` for `tenantID`; `context` (e.g. the file id) is bound as associated data,
    /// so ciphertext moved to another file or tenant does not open. Returns the data key's id and
    /// nonce ‖ ciphertext ‖ tag.
    public func sealTenantData(_ plaintext: [UInt8], tenantID: String, at time: Int64, context: String) async throws -> (dataKeyID: String, sealed: Data) {
        let (id, key) = try await writingKey(tenantID: tenantID, period: "batch-" + Self.period(time))
        let box = try AES.GCM.seal(plaintext, using: key, authenticating: Self.tenantDataAAD(tenantID: tenantID, context: context))
        return (id, box.combined!)
    }

    /// Opens what ``sealTenantData(_:tenantID:at:context:)`` sealed; nil when the data key was
    /// destroyed or the ciphertext does not authenticate.
    public func openTenantData(_ sealed: Data, tenantID: String, dataKeyID: String, context: String) async throws -> [UInt8]? {
        guard let record = try await storage.dataKey(id: dataKeyID), record.tenantID == tenantID,
              let key = unwrap(record, tenantID: tenantID),
              let box = try? AES.GCM.SealedBox(combined: sealed),
              let plain = try? AES.GCM.open(box, using: key, authenticating: Self.tenantDataAAD(tenantID: tenantID, context: context))
        else { return nil }
        return Array(plain)
    }

    static func tenantDataAAD(tenantID: String, context: String) -> [UInt8] {
        Array("llmaas tenant data v1\u{0}\(tenantID)\u{0}\(context)".utf8)
    }
}
