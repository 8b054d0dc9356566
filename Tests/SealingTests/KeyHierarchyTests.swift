import Clocks
import Crypto
import Foundation
import Testing
@testable import Sealing
@testable import Storage

/// The key hierarchy of encryption at rest: values bound to their scope and associated data, data
/// keys wrapped by the master key, a master key rotation that re-wraps everything without touching
/// the sealed values, and a wrong master key refused.
@Suite struct KeyHierarchyTests {
    static let t0: Int64 = 1_796_464_800_000
    let oldMaster = try! MasterKey(bytes: Array(repeating: 1, count: 32))
    let newMaster = try! MasterKey(bytes: Array(repeating: 2, count: 32))

    func withStorage(_ body: (Storage, ManualClock) async throws -> Void) async throws {
        let storage = try await Storage.inMemory()
        try await storage.migrate(at: Self.t0)
        let clock = ManualClock(nowMs: Self.t0)
        do { try await body(storage, clock) } catch { await storage.shutdown(); throw error }
        await storage.shutdown()
    }

    func hierarchy(_ storage: Storage, _ clock: ManualClock, _ primary: MasterKey, previous: [MasterKey] = []) -> KeyHierarchy {
        KeyHierarchy(storage: storage, masters: MasterKeyRing(primary: primary, previous: previous), now: { clock.now() })
    }

    @Test func sealedValuesOpenOnlyInTheirScopeWithTheirAssociatedData() async throws { try await withStorage { storage, clock in
        let keys = hierarchy(storage, clock, oldMaster)
        let scope = SealScope.batchFile(tenantID: "ten_a")
        let sealed = try await keys.seal(Array("the batch file's lines".utf8), scope: scope, aad: Array("file_1".utf8))
        #expect(sealed.hasPrefix(KeyHierarchy.envelopePrefix))
        #expect(!sealed.contains("batch file"))
        #expect(try await keys.open(sealed, scope: scope, aad: Array("file_1".utf8)) == Array("the batch file's lines".utf8))
        // Another row, another tenant, another purpose: refused.
        await #expect(throws: SealingError.self) { try await keys.open(sealed, scope: scope, aad: Array("file_2".utf8)) }
        await #expect(throws: SealingError.self) { try await keys.open(sealed, scope: .batchFile(tenantID: "ten_b"), aad: Array("file_1".utf8)) }
        await #expect(throws: SealingError.self) { try await keys.open(sealed, scope: .webhookSecret(tenantID: "ten_a"), aad: Array("file_1".utf8)) }
        // Tampered: one character of the box changed.
        var chars = Array(sealed)
        chars[chars.count - 5] = chars[chars.count - 5] == "A" ? "B" : "A"
        await #expect(throws: SealingError.self) { try await keys.open(String(chars), scope: scope, aad: Array("file_1".utf8)) }
        // One data key per scope: a second value uses the same one.
        let again = try await keys.seal([1, 2, 3], scope: scope)
        #expect(again.split(separator: ":")[2] == sealed.split(separator: ":")[2])
        // Shredded: gone for good.
        try await keys.shred(purpose: scope.purpose, owner: "ten_a")
        await #expect(throws: SealingError.shredded("the data key \(String(sealed.split(separator: ":")[2])) of \(scope) was destroyed")) {
            try await keys.open(sealed, scope: scope, aad: Array("file_1".utf8))
        }
    }}

    @Test func rotationRewrapsEveryDataKeyAndTheOldMasterAloneNoLongerOpensThem() async throws { try await withStorage { storage, clock in
        let before = hierarchy(storage, clock, oldMaster)
        let scopes: [SealScope] = [.apiKeySecret(tenantID: "ten_a"), .webhookSecret(tenantID: "ten_b"), .batchFile(tenantID: "ten_a")]
        var sealed: [String] = []
        for s in scopes { sealed.append(try await before.seal(Array("secret of \(s)".utf8), scope: s)) }
        let bodyKey = try await before.writingKey(scope: .requestBody(tenantID: "ten_a", day: "2026-12-05"))

        // During the rotation: replicas hold the new master and the old one.
        let during = hierarchy(storage, clock, newMaster, previous: [oldMaster])
        try await during.checkMasters()
        for (s, v) in zip(scopes, sealed) { #expect(try await during.open(v, scope: s) == Array("secret of \(s)".utf8)) }
        let report = try await during.rewrap(batch: 2)
        #expect(report == KeyHierarchy.RewrapReport(rewrapped: 4, unopenable: [], remaining: 0))
        #expect(try await during.rewrap() == KeyHierarchy.RewrapReport(rewrapped: 0, unopenable: [], remaining: 0))

        // After: the new master alone opens everything, sealed values unchanged.
        let after = hierarchy(storage, clock, newMaster)
        try await after.checkMasters()
        for (s, v) in zip(scopes, sealed) { #expect(try await after.open(v, scope: s) == Array("secret of \(s)".utf8)) }
        let reread = try #require(try await after.key(id: bodyKey.id, scope: .requestBody(tenantID: "ten_a", day: "2026-12-05")))
        #expect(reread.bytes == bodyKey.bytes)

        // The old master alone: nothing opens, and start-up is refused.
        let stale = hierarchy(storage, clock, oldMaster)
        for (s, v) in zip(scopes, sealed) { await #expect(throws: SealingError.self) { try await stale.open(v, scope: s) } }
        await #expect(throws: SealingError.self) { try await stale.checkMasters() }
        // Every wrapped key in the table names the new master.
        #expect(try await storage.liveDataKeyMasterIDs() == [newMaster.id])
    }}

    @Test func aKeyShreddedDuringARotationStaysShredded() async throws { try await withStorage { storage, clock in
        let old = hierarchy(storage, clock, oldMaster)
        _ = try await old.seal([1], scope: .batchFile(tenantID: "ten_a"))
        let gone = try await old.seal([2], scope: .batchFile(tenantID: "ten_b"))
        let goneID = String(gone.split(separator: ":")[2])
        let record = try #require(try await storage.dataKey(id: goneID))
        try await old.shred(purpose: "batch_file", owner: "ten_b")
        // The rotation read the row before the shred: its compare-and-set write must not bring it back.
        #expect(try await storage.rewrapDataKey(id: goneID, expected: try #require(record.wrappedKey), wrapped: "x", masterID: newMaster.id) == false)
        let report = try await hierarchy(storage, clock, newMaster, previous: [oldMaster]).rewrap()
        #expect(report.rewrapped == 1)
        #expect(try await storage.dataKey(id: goneID)?.wrappedKey == nil)
    }}

    @Test func aWrongMasterKeyIsRefusedAtTheCheck() async throws { try await withStorage { storage, clock in
        _ = try await hierarchy(storage, clock, oldMaster).seal([1], scope: .apiKeySecret(tenantID: "ten_a"))
        await #expect(throws: SealingError.self) { try await hierarchy(storage, clock, newMaster).checkMasters() }
        try await hierarchy(storage, clock, oldMaster).checkMasters()
        // An empty database accepts any master key.
        let empty = try await Storage.inMemory()
        try await empty.migrate(at: Self.t0)
        try await hierarchy(empty, clock, newMaster).checkMasters()
        await empty.shutdown()
    }}

    /// Request-store keys made before migration 10 (no master id, the v1 associated data) still
    /// open, are checked at start-up, and move under a new master.
    @Test func requestStoreKeysFromBeforeTheHierarchyOpenAndRotate() async throws { try await withStorage { storage, clock in
        let raw = Array(repeating: UInt8(7), count: 32)
        let aad = Array("llmaas data key v1\u{0}ten_a\u{0}2026-12-01\u{0}dk_legacy".utf8)
        let wrapped = try KeyHierarchy.sealBox(raw, key: oldMaster.key, aad: aad)
        try await storage.insertDataKey(DataKeyRecord(id: "dk_legacy", tenantID: "ten_a", period: "2026-12-01", wrappedKey: wrapped, createdAt: Self.t0))
        let scope = SealScope.requestBody(tenantID: "ten_a", day: "2026-12-01")
        #expect(try await hierarchy(storage, clock, oldMaster).key(id: "dk_legacy", scope: scope)?.bytes == raw)
        try await hierarchy(storage, clock, oldMaster).checkMasters()
        await #expect(throws: SealingError.self) { try await hierarchy(storage, clock, newMaster).checkMasters() }
        let report = try await hierarchy(storage, clock, newMaster, previous: [oldMaster]).rewrap()
        #expect(report.rewrapped == 1 && report.remaining == 0)
        #expect(try await hierarchy(storage, clock, newMaster).key(id: "dk_legacy", scope: scope)?.bytes == raw)
        #expect(try await storage.dataKey(id: "dk_legacy")?.masterID == newMaster.id)
    }}

    @Test func binaryEnvelopesForLargePayloads() async throws { try await withStorage { storage, clock in
        let keys = hierarchy(storage, clock, oldMaster)
        let scope = SealScope.batchFile(tenantID: "ten_a")
        let payload = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let sealed = try await keys.sealBinary(payload, scope: scope, aad: Array("file_9".utf8))
        #expect(sealed.count == payload.count + 4 + 1 + 39 + 12 + 16)
        #expect(try await keys.openBinary(sealed, scope: scope, aad: Array("file_9".utf8)) == payload)
        await #expect(throws: SealingError.self) { try await keys.openBinary(sealed, scope: scope, aad: Array("file_8".utf8)) }
        var tampered = sealed
        tampered[tampered.count / 2] ^= 1
        await #expect(throws: SealingError.self) { try await keys.openBinary(tampered, scope: scope, aad: Array("file_9".utf8)) }
        // Re-wrapped by a rotation, still opens under the new master.
        _ = try await hierarchy(storage, clock, newMaster, previous: [oldMaster]).rewrap()
        #expect(try await hierarchy(storage, clock, newMaster).openBinary(sealed, scope: scope, aad: Array("file_9".utf8)) == payload)
    }}

    @Test func masterKeyIdsAreStableAndDistinct() throws {
        #expect(oldMaster.id.count == 16)
        #expect(oldMaster.id == (try MasterKey(bytes: Array(repeating: 1, count: 32))).id)
        #expect(oldMaster.id != newMaster.id)
        #expect(MasterKeyRing(primary: newMaster, previous: [newMaster, oldMaster]).previous.map(\.id) == [oldMaster.id])
    }
}
