import Crypto
import Foundation

/// The master key: it wraps the data keys and is never in the database. From the environment
/// (`LLMAAS_MASTER_KEY`, base64 of 32 bytes) or a key file (created with mode 0600 when absent,
/// like the server secret).
public struct MasterKey: Sendable {
    /// Kept as bytes (SymmetricKey is not Sendable); the key is built where it is used.
    private let bytes: [UInt8]
    var key: SymmetricKey { SymmetricKey(data: bytes) }

    public init(bytes: [UInt8]) throws {
        guard bytes.count == 32 else { throw SealingError.masterKey("the master key must be 32 bytes (got \(bytes.count))") }
        self.bytes = bytes
    }

    /// A public identifier of the key (16 hex digits of an HMAC of a fixed label under it): which
    /// master wrapped a data key, without revealing anything about the key.
    public var id: String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("llmaas master key id v1".utf8), using: key)
        return mac.prefix(8).map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    /// Base64 of 32 bytes (what `LLMAAS_MASTER_KEY` holds).
    public static func fromBase64(_ text: String) throws -> MasterKey {
        guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw SealingError.masterKey("LLMAAS_MASTER_KEY is not base64 (make one with: head -c 32 /dev/urandom | base64)")
        }
        guard data.count == 32 else {
            throw SealingError.masterKey("LLMAAS_MASTER_KEY must be base64 of 32 bytes, got \(data.count) bytes")
        }
        return try MasterKey(bytes: Array(data))
    }

    /// Loads a key file (32 raw bytes) that must exist.
    public static func load(path: String) throws -> MasterKey {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SealingError.masterKey("cannot read master key file \(path)")
        }
        guard data.count == 32 else {
            throw SealingError.masterKey("master key file \(path) must hold exactly 32 bytes (it has \(data.count)); restore it from your backup — without it stored data cannot be read")
        }
        return try MasterKey(bytes: Array(data))
    }

    /// Loads the key file (32 raw bytes), creating it with a random key (mode 0600) when absent.
    public static func loadOrCreate(path: String) throws -> MasterKey {
        if FileManager.default.fileExists(atPath: path) { return try load(path: path) }
        return try create(path: path)
    }

    /// Writes a new random key to `path` (mode 0600); refuses to overwrite a file.
    @discardableResult
    public static func create(path: String) throws -> MasterKey {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: path) else { throw SealingError.masterKey("\(path) already exists; a master key file is never overwritten") }
        let bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try fm.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        guard fm.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600]) else {
            throw SealingError.masterKey("cannot create master key file \(path)")
        }
        return try MasterKey(bytes: bytes)
    }
}

/// The master keys a process holds: the primary wraps every new data key (and a rotation
/// re-wraps under it); the previous ones only open keys not re-wrapped yet (during a rotation).
public struct MasterKeyRing: Sendable {
    public let primary: MasterKey
    public let previous: [MasterKey]

    public init(primary: MasterKey, previous: [MasterKey] = []) {
        self.primary = primary
        self.previous = previous.filter { $0.id != primary.id }
    }

    public var all: [MasterKey] { [primary] + previous }

    /// The key with this id, if held.
    public func key(id: String) -> MasterKey? { all.first { $0.id == id } }
}

public enum SealingError: Error, CustomStringConvertible, Equatable {
    /// A master key is malformed, missing, or does not open the data keys in the database.
    case masterKey(String)
    /// A sealed value does not open: tampered, moved to another row or scope, or its data key
    /// is not wrapped by a master key held.
    case unreadable(String)
    /// The data key of a sealed value was destroyed (crypto-shredding).
    case shredded(String)

    public var description: String {
        switch self {
        case .masterKey(let m), .unreadable(let m), .shredded(let m): return m
        }
    }
}
