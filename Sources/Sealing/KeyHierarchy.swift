import Crypto
import Foundation
import Storage
import Synchronization

/// What a data key encrypts: a purpose (`request_body`, `api_key_secret`, `webhook_secret`,
/// `batch_file`, …), the owner (a tenant id, or `platform`) and a period (a UTC day
/// `YYYY-MM-DD` for keys that retention destroys day by day, `-` for one key per owner). One live
/// data key per scope; destroying it (``KeyHierarchy/shred``) makes everything sealed under it
/// unreadable.
public struct SealScope: Hashable, Sendable, CustomStringConvertible {
    public let purpose: String
    public let owner: String
    public let period: String

    public init(purpose: String, owner: String, period: String = "-") {
        self.purpose = purpose
        self.owner = owner
        self.period = period
    }

    public var description: String { "\(purpose)/\(owner)/\(period)" }

    public static func requestBody(tenantID: String, day: String) -> SealScope { .init(purpose: DataKeyRecord.requestBody, owner: tenantID, period: day) }
    public static func apiKeySecret(tenantID: String) -> SealScope { .init(purpose: "api_key_secret", owner: tenantID) }
    public static func webhookSecret(tenantID: String) -> SealScope { .init(purpose: "webhook_secret", owner: tenantID) }
    public static func batchFile(tenantID: String) -> SealScope { .init(purpose: "batch_file", owner: tenantID) }
}

/// An unwrapped data key (never stored unwrapped, never logged).
public struct DataKey: Sendable {
    public let id: String
    let bytes: [UInt8]
    public var symmetricKey: SymmetricKey { SymmetricKey(data: bytes) }
}

/// The one key hierarchy of the gateway's encryption at rest (AES-256-GCM throughout):
///
///     master key (file or env, never in the database)
///       └─ wraps data keys (random, one per scope; table request_data_keys, with purpose and master id)
///            └─ seal values: request bodies, sealed successor keys, webhook secrets, batch files
///
/// Every store calls it with its scope instead of keeping its own copy of the scheme. A data key
/// is bound to its scope by the associated data of its wrapping; a sealed value is bound to its
/// scope and to the caller's `aad` (e.g. a row id), so ciphertext moved elsewhere does not open.
/// ``rewrap(batch:)`` moves every data key under the primary master (`llmaas keys rotate-master`).
public final class KeyHierarchy: Sendable {
    public let storage: Storage
    public let masters: MasterKeyRing
    let now: @Sendable () -> Int64
    /// Unwrapped keys for writing, by scope (kept `cacheMs`: another replica's shred is seen within that time).
    private let writing = Mutex<[SealScope: (key: DataKey, loadedAt: Int64)]>([:])
    /// Unwrapped keys for reading, by id.
    private let reading = Mutex<[String: (key: DataKey, scope: SealScope, loadedAt: Int64)]>([:])
    let cacheMs: Int64

    /// Prefix of a sealed value (``seal(_:scope:aad:)``): `llmaas:v2:<data key id>:<base64 of nonce ‖ ciphertext ‖ tag>`.
    public static let envelopePrefix = "llmaas:v2:"

    public init(storage: Storage, masters: MasterKeyRing, now: @escaping @Sendable () -> Int64, cacheMs: Int64 = 60_000) {
        self.storage = storage
        self.masters = masters
        self.now = now
        self.cacheMs = cacheMs
    }

    // MARK: Sealing values

    /// Seals `plaintext` under the scope's data key (created on first use). The result is text,
    /// safe to store in any column; it names its data key, so ``open(_:scope:aad:)`` needs only the
    /// same scope and `aad`.
    public func seal(_ plaintext: [UInt8], scope: SealScope, aad: [UInt8] = []) async throws -> String {
        let key = try await writingKey(scope: scope)
        let box = try Self.sealBox(plaintext, key: key.symmetricKey, aad: Self.valueAAD(scope: scope, aad: aad))
        return Self.envelopePrefix + key.id + ":" + box
    }

    /// Opens what ``seal(_:scope:aad:)`` made. Throws ``SealingError/shredded(_:)`` when its data key
    /// was destroyed, ``SealingError/unreadable(_:)`` when it does not authenticate (other scope,
    /// other `aad`, tampered, or a master key not held).
    public func open(_ sealed: String, scope: SealScope, aad: [UInt8] = []) async throws -> [UInt8] {
        guard sealed.hasPrefix(Self.envelopePrefix) else { throw SealingError.unreadable("not a sealed value of this gateway") }
        let rest = sealed.dropFirst(Self.envelopePrefix.count)
        guard let colon = rest.firstIndex(of: ":") else { throw SealingError.unreadable("malformed sealed value") }
        let keyID = String(rest[..<colon]), box = String(rest[rest.index(after: colon)...])
        let key = try await readingKey(id: keyID, scope: scope)
        guard let plain = Self.openBox(box, key: key.symmetricKey, aad: Self.valueAAD(scope: scope, aad: aad)) else {
            throw SealingError.unreadable("a sealed \(scope.purpose) value does not authenticate (tampered, or moved from another row)")
        }
        return plain
    }

    /// Binary form of ``seal(_:scope:aad:)`` for large payloads kept as bytes (batch files on disk
    /// or in a blob column): `LLS2` ‖ key id length (1 byte) ‖ key id ‖ nonce ‖ ciphertext ‖ tag.
    public func sealBinary(_ plaintext: [UInt8], scope: SealScope, aad: [UInt8] = []) async throws -> [UInt8] {
        let key = try await writingKey(scope: scope)
        let box = try AES.GCM.seal(plaintext, using: key.symmetricKey, authenticating: Self.valueAAD(scope: scope, aad: aad))
        let id = Array(key.id.utf8)
        return Self.binaryMagic + [UInt8(id.count)] + id + Array(box.combined!)
    }

    /// Opens what ``sealBinary(_:scope:aad:)`` made; the same errors as ``open(_:scope:aad:)``.
    public func openBinary(_ sealed: [UInt8], scope: SealScope, aad: [UInt8] = []) async throws -> [UInt8] {
        guard sealed.count > 5, Array(sealed.prefix(4)) == Self.binaryMagic else { throw SealingError.unreadable("not a sealed value of this gateway") }
        let idLength = Int(sealed[4])
        guard sealed.count > 5 + idLength else { throw SealingError.unreadable("malformed sealed value") }
        let keyID = String(decoding: sealed[5..<(5 + idLength)], as: UTF8.self)
        let key = try await readingKey(id: keyID, scope: scope)
        guard let box = try? AES.GCM.SealedBox(combined: sealed[(5 + idLength)...]),
              let plain = try? AES.GCM.open(box, using: key.symmetricKey, authenticating: Self.valueAAD(scope: scope, aad: aad)) else {
            throw SealingError.unreadable("a sealed \(scope.purpose) value does not authenticate (tampered, or moved from another row)")
        }
        return Array(plain)
    }

    static let binaryMagic: [UInt8] = Array("LLS2".utf8)

    /// Whether a stored value is in this hierarchy's format (older values are re-sealed at start-up).
    public static func isSealed(_ value: String) -> Bool { value.hasPrefix(envelopePrefix) }

    // MARK: Data keys (for stores that keep the key id in their own column, like the request store)

    /// The live data key of a scope, created (random, wrapped by the primary master) on first use.
    /// When two replicas create one at once, both end up using the oldest.
    public func writingKey(scope: SealScope) async throws -> DataKey {
        let t = now()
        if let hit = writing.withLock({ $0[scope] }), t - hit.loadedAt < cacheMs { return hit.key }
        if try await storage.liveDataKey(tenantID: scope.owner, period: scope.period, purpose: scope.purpose) == nil {
            let id = "dk_" + UUID().uuidString.lowercased()
            let raw = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
            let wrapped = try Self.sealBox(raw, key: masters.primary.key, aad: Self.keyAAD(scope: scope, keyID: id))
            try await storage.insertDataKey(DataKeyRecord(id: id, tenantID: scope.owner, period: scope.period, wrappedKey: wrapped, createdAt: t,
                                                          purpose: scope.purpose, masterID: masters.primary.id))
        }
        guard let record = try await storage.liveDataKey(tenantID: scope.owner, period: scope.period, purpose: scope.purpose) else {
            throw SealingError.shredded("the data key of \(scope) was destroyed while being created")
        }
        guard let key = unwrap(record) else {
            throw SealingError.masterKey("data key \(record.id) (\(scope)) does not open with the master key(s) held (was the master key replaced?)")
        }
        writing.withLock { $0[scope] = (key, t) }
        return key
    }

    /// A data key by id for reading, checked to belong to `scope`. nil when it does not exist or
    /// was shredded; throws when it exists but no master key held opens it.
    public func key(id: String, scope: SealScope) async throws -> DataKey? {
        do { return try await readingKey(id: id, scope: scope) } catch SealingError.shredded { return nil }
    }

    func readingKey(id: String, scope: SealScope) async throws -> DataKey {
        let t = now()
        if let hit = reading.withLock({ $0[id] }), t - hit.loadedAt < cacheMs {
            guard hit.scope == scope else { throw SealingError.unreadable("data key \(id) belongs to another scope") }
            return hit.key
        }
        guard let record = try await storage.dataKey(id: id), record.wrappedKey != nil else {
            throw SealingError.shredded("the data key \(id) of \(scope) was destroyed")
        }
        guard record.purpose == scope.purpose, record.tenantID == scope.owner, record.period == scope.period else {
            throw SealingError.unreadable("data key \(id) belongs to another scope")
        }
        guard let key = unwrap(record) else {
            throw SealingError.unreadable("data key \(id) (\(scope)) does not open with the master key(s) held")
        }
        reading.withLock { $0[id] = (key, scope, t) }
        return key
    }

    /// The key of a stored record, with the master it names (or, for keys older than master ids,
    /// each master held).
    func unwrap(_ record: DataKeyRecord) -> DataKey? {
        guard let wrapped = record.wrappedKey else { return nil }
        let scope = SealScope(purpose: record.purpose, owner: record.tenantID, period: record.period)
        let aad = Self.keyAAD(scope: scope, keyID: record.id)
        let candidates = record.masterID.flatMap { masters.key(id: $0) }.map { [$0] } ?? (record.masterID == nil ? masters.all : [])
        for master in candidates {
            if let bytes = Self.openBox(wrapped, key: master.key, aad: aad), bytes.count == 32 { return DataKey(id: record.id, bytes: bytes) }
        }
        return nil
    }

    /// Destroys the live data keys of an owner's `purpose` with a period before `beforePeriod`
    /// (all when nil): what was sealed under them is gone for good. Returns the key ids.
    @discardableResult
    public func shred(purpose: String, owner: String, beforePeriod: String? = nil) async throws -> [String] {
        let ids = try await storage.shredDataKeys(tenantID: owner, beforePeriod: beforePeriod, at: now(), purpose: purpose)
        forget(owner: owner)
        return ids
    }

    /// Drops the cached keys of an owner (after a shred).
    public func forget(owner: String) {
        writing.withLock { cache in for k in Array(cache.keys) where k.owner == owner { cache.removeValue(forKey: k) } }
        reading.withLock { cache in for (id, v) in Array(cache) where v.scope.owner == owner { cache.removeValue(forKey: id) } }
    }

    // MARK: Master key rotation

    public struct RewrapReport: Sendable, Equatable {
        /// Data keys moved under the primary master by this call.
        public var rewrapped = 0
        /// Live data keys that no master key held opens (they stay as they are; see the message).
        public var unopenable: [String] = []
        /// Live data keys still not under the primary master after the call (0 when done).
        public var remaining = 0
    }

    /// Re-wraps every live data key not under the primary master: unwrap with the master it names
    /// (or any held), wrap under the primary, write only if the row did not change meanwhile (a key
    /// shredded during the rotation stays shredded). Values sealed under the data keys do not
    /// change, so replicas keep reading and writing throughout; those that hold both masters open
    /// either wrapping.
    public func rewrap(batch: Int = 500) async throws -> RewrapReport {
        var report = RewrapReport()
        var skipped = Set<String>()
        while true {
            let rows = try await storage.liveDataKeys(notWrappedUnder: masters.primary.id, limit: batch + skipped.count)
                .filter { !skipped.contains($0.id) }
            if rows.isEmpty { break }
            for record in rows {
                guard let old = record.wrappedKey, let key = unwrap(record) else {
                    skipped.insert(record.id)
                    report.unopenable.append(record.id)
                    continue
                }
                let scope = SealScope(purpose: record.purpose, owner: record.tenantID, period: record.period)
                let wrapped = try Self.sealBox(key.bytes, key: masters.primary.key, aad: Self.keyAAD(scope: scope, keyID: record.id))
                if try await storage.rewrapDataKey(id: record.id, expected: old, wrapped: wrapped, masterID: masters.primary.id) {
                    report.rewrapped += 1
                } else {
                    skipped.insert(record.id)  // shredded or re-wrapped meanwhile: look again below
                }
            }
        }
        report.remaining = try await storage.liveDataKeys(notWrappedUnder: masters.primary.id, limit: 1_000_000).count
        return report
    }

    /// Start-up check: every live data key must be wrapped by a master key held. A data key
    /// named by an unknown master (or, for keys older than master ids, one none of ours opens)
    /// means the wrong master key was given: refuse to start rather than fail request by request.
    public func checkMasters() async throws {
        let held = Set(masters.all.map(\.id))
        for id in try await storage.liveDataKeyMasterIDs() {
            if let id, !held.contains(id) {
                throw SealingError.masterKey("the database holds data keys wrapped by master key \(id), which was not given (this one is \(masters.primary.id)); give that key (or, during a rotation, as a previous master key)")
            }
        }
        // Keys from before master ids: the oldest must open with one of ours.
        for record in try await storage.liveDataKeys(notWrappedUnder: masters.primary.id, limit: 50) where record.masterID == nil {
            if unwrap(record) == nil {
                throw SealingError.masterKey("the master key given does not open the data keys in the database (key \(record.id)); give the master key they were made with")
            }
        }
    }

    // MARK: AES-256-GCM

    static func keyAAD(scope: SealScope, keyID: String) -> [UInt8] {
        // The request store's keys keep the associated data they were wrapped with before migration 10.
        if scope.purpose == DataKeyRecord.requestBody {
            return Array("llmaas data key v1\u{0}\(scope.owner)\u{0}\(scope.period)\u{0}\(keyID)".utf8)
        }
        return Array("llmaas data key v2\u{0}\(scope.purpose)\u{0}\(scope.owner)\u{0}\(scope.period)\u{0}\(keyID)".utf8)
    }

    static func valueAAD(scope: SealScope, aad: [UInt8]) -> [UInt8] {
        Array("llmaas sealed v2\u{0}\(scope.purpose)\u{0}\(scope.owner)\u{0}\(scope.period)\u{0}".utf8) + aad
    }

    /// Seals with AES-256-GCM: base64 of nonce ‖ ciphertext ‖ tag.
    public static func sealBox(_ plaintext: [UInt8], key: SymmetricKey, aad: [UInt8]) throws -> String {
        try AES.GCM.seal(plaintext, using: key, authenticating: aad).combined!.base64EncodedString()
    }

    /// Opens what ``sealBox(_:key:aad:)`` made; nil when it does not authenticate.
    public static func openBox(_ sealed: String, key: SymmetricKey, aad: [UInt8]) -> [UInt8]? {
        guard let data = Data(base64Encoded: sealed), let box = try? AES.GCM.SealedBox(combined: data),
              let plain = try? AES.GCM.open(box, using: key, authenticating: aad) else { return nil }
        return Array(plain)
    }
}
