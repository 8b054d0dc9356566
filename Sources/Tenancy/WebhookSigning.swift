import Crypto
import Foundation

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
    /// Seals a webhook signing secret for storage (AES-256-GCM under the server secret); the
    /// gateway must read it back to sign, so it cannot be stored as a hash.
    public func sealWebhookSecret(_ secret: String) throws -> String { try self.secret.seal(secret) }

    public func unsealWebhookSecret(_ sealed: String) throws -> String { try self.secret.unseal(sealed) }
}
