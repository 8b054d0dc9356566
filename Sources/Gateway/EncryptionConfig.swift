import Foundation
import Sealing

/// `encryption:` — where the master key of the key hierarchy comes from, and, during a master key
/// rotation, the previous master keys still accepted for opening data keys not re-wrapped yet.
public struct EncryptionConfig: Sendable, Equatable {
    /// Key file of the master key (32 raw bytes). nil: `request_store.master_key_file`, else
    /// `data_dir/request-store.key` (created 0600 on first start).
    public var masterKeyFile: String?
    /// Key files of previous master keys (must exist): open only, never wrap.
    public var previousMasterKeyFiles: [String] = []
    /// Previous master keys from `LLMAAS_PREVIOUS_MASTER_KEYS` (comma-separated base64 of 32 bytes).
    public var previousMasterKeys: [[UInt8]] = []

    public init() {}

    mutating func read(_ r: inout Reader, resolve: (String) -> String) throws {
        if let file = try r.string("master_key_file") {
            guard !file.isEmpty else { throw ConfigError(field: "encryption.master_key_file", message: "must be a file path (or leave it out: data_dir/request-store.key)") }
            masterKeyFile = resolve(file)
        }
        if let list = try r.list("previous_master_key_files") {
            previousMasterKeyFiles = try list.enumerated().map { i, item in
                guard let path = item as? String, !path.isEmpty else {
                    throw ConfigError(field: "encryption.previous_master_key_files[\(i)]", message: "must be the path of a master key file")
                }
                return resolve(path)
            }
        }
        try r.finish()
    }

    static func parsePreviousKeys(_ text: String) throws -> [[UInt8]] {
        try text.split(separator: ",").enumerated().map { i, part in
            guard let data = Data(base64Encoded: part.trimmingCharacters(in: .whitespacesAndNewlines)), data.count == 32 else {
                throw ConfigError(field: "LLMAAS_PREVIOUS_MASTER_KEYS", message: "entry \(i + 1) must be base64 of exactly 32 bytes (comma-separated list)")
            }
            return Array(data)
        }
    }
}

extension GatewayConfig {
    /// The field an operator fixes when the master key is wrong.
    var masterKeyField: String {
        if requestStore.masterKey != nil { return "LLMAAS_MASTER_KEY" }
        return encryption.masterKeyFile != nil || requestStore.masterKeyFile == nil ? "encryption.master_key_file" : "request_store.master_key_file"
    }

    /// The master keys: `LLMAAS_MASTER_KEY`, else the key file (created on first start); and the
    /// previous ones of a rotation. Errors name the field.
    public func masterKeyRing() throws -> MasterKeyRing {
        let primary: MasterKey
        do {
            primary = try requestStore.masterKey.map { try MasterKey(bytes: $0) } ?? MasterKey.loadOrCreate(path: masterKeyPath)
        } catch let e as SealingError {
            throw ConfigError(field: masterKeyField, message: e.description)
        }
        var previous: [MasterKey] = []
        for (i, path) in encryption.previousMasterKeyFiles.enumerated() {
            do { previous.append(try MasterKey.load(path: path)) } catch let e as SealingError {
                throw ConfigError(field: "encryption.previous_master_key_files[\(i)]", message: e.description)
            }
        }
        for bytes in encryption.previousMasterKeys { previous.append(try MasterKey(bytes: bytes)) }
        return MasterKeyRing(primary: primary, previous: previous)
    }
}
