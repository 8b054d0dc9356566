import Crypto
import Foundation
import Sealing

/// Signatures of the gateway's webhooks, so a receiver knows a notice came from the gateway and
/// was not replayed: header `X-LLMaaS-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is
/// HMAC-SHA256(secret, "<t>.<raw body>"). A receiver recomputes the HMAC over the exact bytes it
/// received, compares in constant time, and refuses a `t` too far from its own clock (e.g. more
/// than 5 minutes). The secret is the tenant's webhook signing secret (shown once when created or
/// rotated), or for the operator's webhook `alerts.operator_webhook_secret`.
public enum WebhookSignature {
    public static let header = "X-LLMaaS-Signature"

    /// The header value for `body` sent at `unixSeconds`.
    public static func sign(body: [UInt8], secret: String, unixSeconds: Int64) -> String {
        "t=\(unixSeconds),v1=\(hex(body: body, secret: secret, unixSeconds: unixSeconds))"
    }

    /// The lowercase hex HMAC-SHA256(secret, "<t>.<body>").
    public static func hex(body: [UInt8], secret: String, unixSeconds: Int64) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(unixSeconds).".utf8) + body, using: SymmetricKey(data: Array(secret.utf8)))
        return mac.map { String(format: "%02x", $0) }.joined()
    }

    public enum Failure: Error, Equatable { case malformed, stale, mismatch }

    /// Checks a header value as a receiver does: well formed, `t` within `toleranceSeconds` of
    /// `nowSeconds`, and one `v1` equal (in constant time) to the expected HMAC.
    public static func verify(header value: String, body: [UInt8], secret: String, nowSeconds: Int64,
                              toleranceSeconds: Int64 = 300) throws(Failure) {
        var t: Int64?
        var sigs: [String] = []
        for part in value.split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else { throw .malformed }
            switch kv[0].trimmingCharacters(in: .whitespaces) {
            case "t": t = Int64(kv[1])
            case "v1": sigs.append(String(kv[1]))
            default: continue
            }
        }
        guard let t, !sigs.isEmpty else { throw .malformed }
        guard abs(nowSeconds - t) <= toleranceSeconds else { throw .stale }
        let expected = hex(body: body, secret: secret, unixSeconds: t)
        guard sigs.contains(where: { constantTimeEquals($0, expected) }) else { throw .mismatch }
    }

    /// A new signing secret: `whsec_` and 43 random base62 characters (≈ 256 bits).
    public static func generateSecret() -> String { "whsec_" + Base62.random(43) }
}

extension KeyAuthority {
    /// Seals a tenant's webhook signing secret for storage (AES-256-GCM under the key hierarchy,
    /// bound to the tenant); the gateway must read it back to sign, so it cannot be stored as a hash.
    public func sealWebhookSecret(_ secret: String, tenantID: String) async throws -> String {
        guard let sealer else { return try self.secret.seal(secret) }
        return try await sealer.seal(Array(secret.utf8), scope: .webhookSecret(tenantID: tenantID), aad: Array(tenantID.utf8))
    }

    public func unsealWebhookSecret(_ sealed: String, tenantID: String) async throws -> String {
        guard KeyHierarchy.isSealed(sealed) else { return try self.secret.unseal(sealed) }  // sealed before migration 10
        guard let sealer else { throw TenancyError.invalid("a sealed webhook secret needs the key hierarchy") }
        return String(decoding: try await sealer.open(sealed, scope: .webhookSecret(tenantID: tenantID), aad: Array(tenantID.utf8)), as: UTF8.self)
    }

    /// A successor key's full text, sealed until its tenant's admin fetches it once (bound to the key id).
    func sealSuccessorSecret(_ text: String, tenantID: String, keyID: String) async throws -> String {
        guard let sealer else { return try secret.seal(text) }
        return try await sealer.seal(Array(text.utf8), scope: .apiKeySecret(tenantID: tenantID), aad: Array(keyID.utf8))
    }

    func unsealSuccessorSecret(_ sealed: String, tenantID: String, keyID: String) async throws -> String {
        guard KeyHierarchy.isSealed(sealed) else { return try secret.unseal(sealed) }  // sealed before migration 10
        guard let sealer else { throw TenancyError.invalid("a sealed successor key needs the key hierarchy") }
        return String(decoding: try await sealer.open(sealed, scope: .apiKeySecret(tenantID: tenantID), aad: Array(keyID.utf8)), as: UTF8.self)
    }

    /// Re-seals the values sealed the older way (a key derived from the server secret) under the key
    /// hierarchy, so that a master key rotation covers them too. Idempotent; a value changed
    /// meanwhile (fetched, rotated) is left alone. Returns how many were re-sealed.
    @discardableResult
    public func resealLegacySecrets() async throws -> (successorKeys: Int, webhookSecrets: Int) {
        guard sealer != nil else { return (0, 0) }
        var keys = 0, hooks = 0
        for key in try await storage.keysWithSealedSecret() {
            guard let old = key.sealedSecret, !KeyHierarchy.isSealed(old) else { continue }
            let text = try secret.unseal(old)
            try await storage.replaceSealedSecret(keyID: key.id, expected: old, sealed: try await sealSuccessorSecret(text, tenantID: key.tenantID, keyID: key.id))
            keys += 1
        }
        for row in try await storage.allWebhookSecrets() where !KeyHierarchy.isSealed(row.sealed) {
            let text = try secret.unseal(row.sealed)
            try await storage.replaceWebhookSecret(tenantID: row.tenantID, expected: row.sealed, sealed: try await sealWebhookSecret(text, tenantID: row.tenantID))
            hooks += 1
        }
        return (keys, hooks)
    }
}
