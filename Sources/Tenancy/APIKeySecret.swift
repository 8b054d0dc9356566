import Crypto
import Foundation

/// The parts of an API key as the client holds it: `sk-llm-<key id>-<secret>`.
/// The key id is public (it names the key in logs, audit and errors); the secret is 43 base62
/// characters (≈256 bits of entropy) and only its HMAC is ever stored.
public struct APIKeyToken: Sendable, Equatable {
    public static let prefix = "sk-llm-"
    public let keyID: String
    public let secret: String

    public var text: String { "\(Self.prefix)\(keyID)-\(secret)" }

    public init(keyID: String, secret: String) { self.keyID = keyID; self.secret = secret }

    /// Parses a bearer token; nil when it is not shaped like one of our keys.
    /// The prefix, a 12-digit key id, `-`, a 43-digit secret (base62: no digit is `-`), read as
    /// UTF-8 bytes (comparing and counting characters cost a request ≈ 1 µs; issue 16).
    public init?(parsing text: Substring) {
        let bytes = text.utf8, prefix = Self.prefix.utf8
        guard bytes.count == prefix.count + 12 + 1 + 43, bytes.starts(with: prefix) else { return nil }
        let idStart = bytes.index(bytes.startIndex, offsetBy: prefix.count)
        let dash = bytes.index(idStart, offsetBy: 12)
        let secretStart = bytes.index(after: dash)
        guard bytes[dash] == UInt8(ascii: "-"), bytes[idStart..<dash].allSatisfy(Base62.isDigit),
              bytes[secretStart...].allSatisfy(Base62.isDigit) else { return nil }
        self.keyID = String(text[idStart..<dash])
        self.secret = String(text[secretStart...])
    }

    public static func generate() -> APIKeyToken {
        APIKeyToken(keyID: Base62.random(12), secret: Base62.random(43))
    }
}

enum Base62 {
    static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    static func isDigit(_ b: UInt8) -> Bool {
        (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b)
    }

    /// Uniform random base62 text from the system CSPRNG (rejection sampling: no modulo bias).
    static func random(_ count: Int) -> String {
        var rng = SystemRandomNumberGenerator()
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            let byte = UInt8.random(in: 0...255, using: &rng)
            if byte < 248 { out.append(alphabet[Int(byte % 62)]) }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The server secret that keys the HMAC of API key secrets. Kept in `data_dir/server.secret`
/// (created on first start, mode 0600): a stolen database alone does not allow checking guesses.
public struct ServerSecret: Sendable {
    let bytes: [UInt8]
    /// The HMAC keyed once (every authenticated request hashes its secret with it): its inner and
    /// outer hash states after the key's block, copied for each secret instead of hashing the
    /// key's padded block twice again (issue 16: 5 µs of a request at one connection).
    let keyedHMAC: HMAC<SHA256>

    public init(bytes: [UInt8]) {
        self.bytes = bytes
        self.keyedHMAC = HMAC<SHA256>(key: SymmetricKey(data: bytes))
    }

    /// Loads the secret file, creating it with 32 random bytes when absent.
    public static func loadOrCreate(path: String) throws -> ServerSecret {
        let fm = FileManager.default
        if let data = fm.contents(atPath: path) {
            guard data.count >= 32 else { throw TenancyError.invalid("server secret \(path) is shorter than 32 bytes; delete it only if no key was issued yet") }
            return ServerSecret(bytes: Array(data))
        }
        let bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try fm.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        guard fm.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600]) else {
            throw TenancyError.invalid("cannot create server secret file \(path)")
        }
        return ServerSecret(bytes: bytes)
    }

    /// AES-256-GCM with a key derived from the server secret (HKDF-SHA256): for a successor key's
    /// secret, kept only until the tenant's admin fetches it once.
    public func seal(_ text: String) throws -> String {
        let box = try AES.GCM.seal(Array(text.utf8), using: sealingKey)
        return box.combined!.base64EncodedString()
    }

    public func unseal(_ sealed: String) throws -> String {
        guard let data = Data(base64Encoded: sealed) else { throw TenancyError.invalid("sealed secret is not base64") }
        let box = try AES.GCM.SealedBox(combined: data)
        return String(decoding: try AES.GCM.open(box, using: sealingKey), as: UTF8.self)
    }

    var sealingKey: SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: bytes), info: Data("llmaas sealed secrets v1".utf8), outputByteCount: 32)
    }

    /// Hex SHA-256 HMAC under a purpose label (admin tokens use their own label, so an API key
    /// hash can never be replayed as an admin token hash).
    public func hash(_ secret: String, purpose: String) -> String {
        hash(purpose + ":" + secret)
    }

    /// Hex HMAC-SHA256 of a key secret.
    public func hash(_ secret: String) -> String {
        var mac = keyedHMAC
        var text = secret
        text.withUTF8 { mac.update(data: UnsafeRawBufferPointer($0)) }
        return lowercaseHex(mac.finalize())
    }
}

/// Compares two strings in time that depends only on their length, never on where they differ.
@inline(never)
public func constantTimeEquals(_ a: String, _ b: String) -> Bool {
    var a = a, b = b  // withUTF8 reads the strings' own bytes (no copies on every request)
    return a.withUTF8 { x in
        b.withUTF8 { y in
            guard x.count == y.count else { return false }
            var diff: UInt8 = 0
            for i in 0..<x.count { diff |= x[i] ^ y[i] }
            return diff == 0
        }
    }
}

/// Lowercase hex of a digest, without Foundation's String(format:) (this runs on every request).
private func lowercaseHex(_ digest: some ContiguousBytes) -> String {
    digest.withUnsafeBytes { bytes in
        String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            for (i, b) in bytes.enumerated() {
                out[2 * i] = hexDigit(b >> 4)
                out[2 * i + 1] = hexDigit(b & 0x0F)
            }
            return bytes.count * 2
        }
    }
}

private func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? v + 48 : v + 87 }  // 0-9, a-f
