import Crypto
import Foundation
import Logging
@_exported import Sealing
import Storage
import Synchronization

/// The request store's master key and its errors are the key hierarchy's (module Sealing).
public typealias RequestStoreError = SealingError

/// A request's bodies as captured on the request path, before encryption (held in memory until
/// the next batch, at most ~100 ms). Already cut to the size bound.
public struct CapturedBody: Sendable {
    public let requestID: String
    public let tenantID: String
    public let createdAt: Int64
    public let prompt: [UInt8]
    public let response: [UInt8]
    /// `json` (a non-streamed answer) or `text` (a stream's assembled text).
    public let responseFormat: String
    public let promptBytes: Int
    public let responseBytes: Int
    public let promptTruncated: Bool
    public let responseTruncated: Bool
}

/// What a reader gets for one request's bodies.
public struct StoredBodies: Sendable, Equatable {
    public enum State: String, Sendable {
        /// Decrypted: `prompt` and `response` hold the text.
        case available
        /// Nothing was stored (the tenant had not opted in, or the request never reached capture).
        case notStored = "not_stored"
        /// The data key is destroyed (retention or an explicit shred): the bodies are gone for good.
        case shredded
        /// Ciphertext present but it does not open (tampered, or copied from another request).
        case unreadable
    }

    public let state: State
    public let prompt: String?
    public let response: String?
    public let responseFormat: String?
    public let promptBytes: Int?
    public let responseBytes: Int?
    public let promptTruncated: Bool
    public let responseTruncated: Bool

    public init(state: State, prompt: String? = nil, response: String? = nil, responseFormat: String? = nil, promptBytes: Int? = nil,
                responseBytes: Int? = nil, promptTruncated: Bool = false, responseTruncated: Bool = false) {
        self.state = state; self.prompt = prompt; self.response = response; self.responseFormat = responseFormat
        self.promptBytes = promptBytes; self.responseBytes = responseBytes
        self.promptTruncated = promptTruncated; self.responseTruncated = responseTruncated
    }
}

/// The request store's bodies (SPEC S8): prompt and answer of opted-in tenants, encrypted with
/// AES-256-GCM under a random data key per tenant and UTC day (scope `request_body/<tenant>/<day>`
/// of the ``KeyHierarchy``); each data key is stored only wrapped by the master key. The
/// associated data binds a body to its tenant, request id and part (prompt or answer), so
/// ciphertext moved to another row does not open. Destroying a data
/// key (retention, shred) makes every body under it unreadable: crypto-shredding.
///
/// Capture is off the request path: ``capture(…)`` only queues; the batch writer encrypts and
/// writes every ~100 ms. Never logs a body.
public final class RequestStore: Sendable {
    public let storage: Storage
    /// The data keys (shared with the other stores that seal values).
    public let keys: KeyHierarchy
    /// Bound on each stored part (prompt, answer), in bytes; longer ones are cut and marked.
    public let maxBodyBytes: Int
    let now: @Sendable () -> Int64
    let logger: Logger
    /// Encrypts and writes captured bodies in batches (run it as a service).
    public let writer: BatchWriter<CapturedBody>

    /// A store with its own key hierarchy over one master key (tests, tools).
    public convenience init(storage: Storage, master: MasterKey, maxBodyBytes: Int, now: @escaping @Sendable () -> Int64, logger: Logger) {
        self.init(keys: KeyHierarchy(storage: storage, masters: MasterKeyRing(primary: master), now: now), maxBodyBytes: maxBodyBytes, now: now, logger: logger)
    }

    public init(keys: KeyHierarchy, maxBodyBytes: Int, now: @escaping @Sendable () -> Int64, logger: Logger) {
        self.storage = keys.storage
        self.keys = keys
        self.maxBodyBytes = maxBodyBytes
        self.now = now
        self.logger = logger
        let box = WriterBox()
        self.writer = BatchWriter(name: "request_bodies", logger: logger) { rows in try await box.store?.write(rows) }
        box.store = self
    }

    /// Lets the writer call back into the store without a retain cycle at init time.
    private final class WriterBox: @unchecked Sendable {
        weak var store: RequestStore?
    }

    // MARK: Capture (request path)

    /// Queues a request's bodies; never waits on the database or on encryption.
    public func capture(requestID: String, tenantID: String, createdAt: Int64, prompt: [UInt8], response: [UInt8], responseFormat: String) {
        let (p, pCut) = Self.bounded(prompt, maxBodyBytes)
        let (r, rCut) = Self.bounded(response, maxBodyBytes)
        writer.append(CapturedBody(requestID: requestID, tenantID: tenantID, createdAt: createdAt, prompt: p, response: r,
                                   responseFormat: responseFormat, promptBytes: prompt.count, responseBytes: response.count,
                                   promptTruncated: pCut, responseTruncated: rCut))
    }

    /// The first `limit` bytes, not splitting a UTF-8 character; whether anything was cut.
    static func bounded(_ bytes: [UInt8], _ limit: Int) -> ([UInt8], Bool) {
        guard bytes.count > limit else { return (bytes, false) }
        var end = max(0, limit)
        while end > 0 && end < bytes.count && (bytes[end] & 0xC0) == 0x80 { end -= 1 }
        return (Array(bytes[..<end]), true)
    }

    /// Writes everything captured so far (tests, shutdown, before a shred).
    public func flush() async { await writer.flush() }

    // MARK: Encryption

    static func bodyAAD(tenantID: String, requestID: String, part: String) -> [UInt8] {
        Array("llmaas request body v1\u{0}\(tenantID)\u{0}\(requestID)\u{0}\(part)".utf8)
    }

    /// Seals `plaintext`: base64 of nonce ‖ ciphertext ‖ tag.
    static func seal(_ plaintext: [UInt8], key: SymmetricKey, aad: [UInt8]) throws -> String {
        try KeyHierarchy.sealBox(plaintext, key: key, aad: aad)
    }

    /// Opens a sealed text; nil when it does not authenticate (wrong key, wrong associated data, tampered).
    static func open(_ sealed: String, key: SymmetricKey, aad: [UInt8]) -> [UInt8]? {
        KeyHierarchy.openBox(sealed, key: key, aad: aad)
    }

    /// The UTC day of a time, `YYYY-MM-DD` (civil date from days since 1970, proleptic Gregorian).
    public static func period(_ ms: Int64) -> String {
        let days = Int(ms >= 0 ? ms / 86_400_000 : (ms - 86_399_999) / 86_400_000)
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(y)-\(two(m))-\(two(d))"
    }

    /// The data key that encrypts a tenant's bodies of `period`, created (random, wrapped) on first use.
    func writingKey(tenantID: String, period: String) async throws -> (id: String, key: SymmetricKey) {
        let key = try await keys.writingKey(scope: .requestBody(tenantID: tenantID, day: period))
        return (key.id, key.symmetricKey)
    }

    /// The batch writer's work: encrypt each captured body under its tenant's data key, insert.
    func write(_ rows: [CapturedBody]) async throws {
        var out: [RequestBodyRecord] = []
        out.reserveCapacity(rows.count)
        for b in rows {
            let period = Self.period(b.createdAt)
            let keyID: String, key: SymmetricKey
            do {
                (keyID, key) = try await writingKey(tenantID: b.tenantID, period: period)
            } catch let e as RequestStoreError {
                // A data key that does not open with this master key will not open on a retry
                // either: drop the body (never logged), keep the batch going.
                logger.error("request body dropped", metadata: ["request_id": "\(b.requestID)", "error": "\(e)"])
                continue
            }
            out.append(RequestBodyRecord(
                requestID: b.requestID, tenantID: b.tenantID, keyID: keyID, period: period, createdAt: b.createdAt,
                prompt: try Self.seal(b.prompt, key: key, aad: Self.bodyAAD(tenantID: b.tenantID, requestID: b.requestID, part: "prompt")),
                response: try Self.seal(b.response, key: key, aad: Self.bodyAAD(tenantID: b.tenantID, requestID: b.requestID, part: "response")),
                responseFormat: b.responseFormat, promptBytes: b.promptBytes, responseBytes: b.responseBytes,
                truncated: (b.promptTruncated ? 1 : 0) | (b.responseTruncated ? 2 : 0)))
        }
        try await storage.insertRequestBodies(out)
    }

    // MARK: Reading

    /// The decrypted bodies of a ledger row (the caller checked the reader may see its tenant).
    /// The associated data comes from the ledger row, so a body copied onto another row does not open.
    public func bodies(of record: RequestRecord) async throws -> StoredBodies {
        guard let tenantID = record.tenantID else { return StoredBodies(state: .notStored) }
        guard let row = try await storage.requestBody(requestID: record.id) else {
            // Deleted by retention or a shred after the request (its period's key is a tombstone), or never stored.
            let shredded = try await storage.shreddedDataKeyExists(tenantID: tenantID, period: Self.period(record.createdAt), since: record.createdAt)
            return StoredBodies(state: shredded ? .shredded : .notStored)
        }
        let pCut = row.truncated & 1 != 0, rCut = row.truncated & 2 != 0
        let dataKey: DataKey?
        do { dataKey = try await keys.key(id: row.keyID, scope: .requestBody(tenantID: tenantID, day: row.period)) } catch { dataKey = nil }
        guard let keyRecord = try await storage.dataKey(id: row.keyID), keyRecord.wrappedKey != nil else {
            return StoredBodies(state: .shredded, responseFormat: row.responseFormat, promptBytes: row.promptBytes, responseBytes: row.responseBytes,
                                promptTruncated: pCut, responseTruncated: rCut)
        }
        guard let key = dataKey?.symmetricKey,
              let prompt = row.prompt.flatMap({ Self.open($0, key: key, aad: Self.bodyAAD(tenantID: tenantID, requestID: record.id, part: "prompt")) }),
              let response = row.response.flatMap({ Self.open($0, key: key, aad: Self.bodyAAD(tenantID: tenantID, requestID: record.id, part: "response")) })
        else {
            return StoredBodies(state: .unreadable, responseFormat: row.responseFormat, promptBytes: row.promptBytes, responseBytes: row.responseBytes,
                                promptTruncated: pCut, responseTruncated: rCut)
        }
        return StoredBodies(state: .available, prompt: String(decoding: prompt, as: UTF8.self), response: String(decoding: response, as: UTF8.self),
                            responseFormat: row.responseFormat, promptBytes: row.promptBytes, responseBytes: row.responseBytes,
                            promptTruncated: pCut, responseTruncated: rCut)
    }

    // MARK: Shredding

    public struct ShredResult: Sendable, Equatable {
        public let keysDestroyed: Int
        public let bodiesDeleted: Int
    }

    /// Retention: destroys the data keys of the tenant's days that ended before `now − days`, and
    /// deletes the bodies older than that.
    @discardableResult
    public func expire(tenantID: String, retentionDays: Int) async throws -> ShredResult {
        let t = now()
        let cutoff = t - Int64(retentionDays) * 86_400_000
        let cutoffPeriod = Self.period(cutoff)
        // Keys first: once a key is gone its bodies are unreadable whatever happens next.
        let destroyed = try await keys.shred(purpose: DataKeyRecord.requestBody, owner: tenantID, beforePeriod: cutoffPeriod)
        let deleted = try await storage.deleteRequestBodies(tenantID: tenantID, before: cutoff)
        return ShredResult(keysDestroyed: destroyed.count, bodiesDeleted: deleted)
    }

    /// Destroys every data key of a tenant (what deleting it, or an explicit shred, does) and, with
    /// `deleteBodies`, the ciphertext too. Bodies captured before the call are written first so none
    /// escapes the shred.
    @discardableResult
    public func shred(tenantID: String, deleteBodies: Bool = true) async throws -> ShredResult {
        await flush()
        let destroyed = try await keys.shred(purpose: DataKeyRecord.requestBody, owner: tenantID)
        let deleted = deleteBodies ? try await storage.deleteRequestBodies(tenantID: tenantID, before: nil) : 0
        return ShredResult(keysDestroyed: destroyed.count, bodiesDeleted: deleted)
    }

    func forget(tenantID: String) { keys.forget(owner: tenantID) }
}
