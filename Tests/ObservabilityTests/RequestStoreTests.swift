import Clocks
import Foundation
import Logging
import StorageTesting
import Testing
@testable import Observability
@testable import Sealing
@testable import Storage

/// The request store's cryptography on the injected clock: bodies round-trip, never in clear
/// text in the database, bound to their tenant and request id, and gone once their data key is
/// destroyed (retention or shred).
@Suite struct RequestStoreTests {
    /// 2026-12-05 10:00 UTC.
    static let t0: Int64 = 1_796_464_800_000
    static let day: Int64 = 86_400_000

    struct Env {
        let storage: Storage
        let store: RequestStore
        let clock: ManualClock
        let master: MasterKey
    }

    func withStore(_ driver: TestDatabase, maxBodyBytes: Int = 1 << 16, _ body: (Env) async throws -> Void) async throws {
        let storage = try await driver.open()
        try await storage.migrate(at: Self.t0)
        let clock = ManualClock(nowMs: Self.t0)
        let master = try MasterKey(bytes: (0..<32).map { UInt8($0) })
        let store = RequestStore(storage: storage, master: master, maxBodyBytes: maxBodyBytes, now: { clock.now() }, logger: Logger(label: "t"))
        do { try await body(Env(storage: storage, store: store, clock: clock, master: master)) } catch { await storage.shutdown(); throw error }
        await storage.shutdown()
    }

    static func record(_ id: String, tenant: String, at time: Int64) -> RequestRecord {
        RequestRecord(id: id, createdAt: time, tenantID: tenant, keyID: "k1", model: "m", endpoint: "chat.completions", status: 200,
                      outcome: "ok", latencyMs: 1)
    }

    func capture(_ e: Env, _ id: String, tenant: String = "ten_a", prompt: String, answer: String, at time: Int64? = nil) async {
        e.store.capture(requestID: id, tenantID: tenant, createdAt: time ?? e.clock.now(), prompt: Array(prompt.utf8),
                        response: Array(answer.utf8), responseFormat: "json")
        await e.store.flush()
    }

    @Test(arguments: TestDatabase.all) func bodiesRoundTripAndAreNotInClearText(_ driver: TestDatabase) async throws { try await withStore(driver) { e in
        let prompt = #"{"messages":[{"role":"user","content":"zebra-quasar-7781 ünïcödé"}]}"#
        await capture(e, "req_1", prompt: prompt, answer: "the answer is marmalade-4242")
        let row = try #require(try await e.storage.requestBody(requestID: "req_1"))
        #expect(row.prompt?.contains("zebra") == false && row.response?.contains("marmalade") == false)
        #expect(row.period == "2026-12-05" && row.truncated == 0)
        // The data key is stored wrapped only: its row holds no 32 raw bytes, and it opens only with the master key.
        let key = try #require(try await e.storage.dataKey(id: row.keyID))
        #expect(key.wrappedKey != nil && key.tenantID == "ten_a")
        let b = try await e.store.bodies(of: Self.record("req_1", tenant: "ten_a", at: Self.t0))
        #expect(b.state == .available)
        #expect(b.prompt == prompt && b.response == "the answer is marmalade-4242" && b.responseFormat == "json")
        // Each encryption has its own nonce: the same text twice gives different ciphertext.
        await capture(e, "req_2", prompt: prompt, answer: "x")
        let row2 = try #require(try await e.storage.requestBody(requestID: "req_2"))
        #expect(row2.keyID == row.keyID && row2.prompt != row.prompt)
    }}

    @Test(arguments: TestDatabase.all) func aBodyMovedToAnotherRequestOrTenantDoesNotOpen(_ driver: TestDatabase) async throws { try await withStore(driver) { e in
        await capture(e, "req_1", prompt: "secret prompt", answer: "secret answer")
        let row = try #require(try await e.storage.requestBody(requestID: "req_1"))
        // Copied onto another request's row (same tenant, same key): the associated data differs.
        var copy = row
        copy.requestID = "req_other"
        try await e.storage.insertRequestBodies([copy])
        #expect(try await e.store.bodies(of: Self.record("req_other", tenant: "ten_a", at: Self.t0)).state == .unreadable)
        // Prompt and answer swapped on the same row: each part is bound to its role.
        var swapped = row
        swapped.requestID = "req_swapped"
        (swapped.prompt, swapped.response) = (row.response, row.prompt)
        try await e.storage.insertRequestBodies([swapped])
        #expect(try await e.store.bodies(of: Self.record("req_swapped", tenant: "ten_a", at: Self.t0)).state == .unreadable)
        // The ledger row claims another tenant: refused too.
        #expect(try await e.store.bodies(of: Self.record("req_1", tenant: "ten_b", at: Self.t0)).state == .unreadable)
        // The original still opens.
        #expect(try await e.store.bodies(of: Self.record("req_1", tenant: "ten_a", at: Self.t0)).state == .available)
    }}

    @Test(arguments: TestDatabase.all) func anotherMasterKeyCannotReadAndAMalformedOneIsRefused(_ driver: TestDatabase) async throws { try await withStore(driver) { e in
        await capture(e, "req_1", prompt: "p", answer: "a")
        let other = RequestStore(storage: e.storage, master: try MasterKey(bytes: Array(repeating: 9, count: 32)), maxBodyBytes: 1024,
                                 now: { e.clock.now() }, logger: Logger(label: "t"))
        #expect(try await other.bodies(of: Self.record("req_1", tenant: "ten_a", at: Self.t0)).state == .unreadable)
        #expect(throws: RequestStoreError.self) { try MasterKey.fromBase64("not base64!") }
        #expect(throws: RequestStoreError.self) { try MasterKey.fromBase64(Data(repeating: 1, count: 16).base64EncodedString()) }
        #expect((try? MasterKey.fromBase64(Data(repeating: 1, count: 32).base64EncodedString())) != nil)
    }}

    @Test func masterKeyFileIsCreatedPrivateAndReloaded() async throws {
        let dir = NSTemporaryDirectory() + "llmaas-master-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/request-store.key"
        let first = try MasterKey.loadOrCreate(path: path)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect((attributes[.size] as? NSNumber)?.intValue == 32)
        let again = try MasterKey.loadOrCreate(path: path)
        #expect(first.key == again.key)
        try Data(repeating: 0, count: 5).write(to: URL(fileURLWithPath: path))
        #expect(throws: RequestStoreError.self) { try MasterKey.loadOrCreate(path: path) }
    }

    @Test(arguments: TestDatabase.all) func retentionDestroysPastDaysKeysOnTheInjectedClock(_ driver: TestDatabase) async throws { try await withStore(driver) { e in
        await capture(e, "old", prompt: "old prompt", answer: "old answer")
        let oldKey = try #require(try await e.storage.requestBody(requestID: "old")).keyID
        e.clock.advance(byMs: 2 * Self.day)
        await capture(e, "new", prompt: "new prompt", answer: "new answer")
        let newKey = try #require(try await e.storage.requestBody(requestID: "new")).keyID
        #expect(oldKey != newKey)  // one data key per UTC day
        // Retention 3 days: nothing is due yet.
        #expect(try await e.store.expire(tenantID: "ten_a", retentionDays: 3) == .init(keysDestroyed: 0, bodiesDeleted: 0))
        #expect(try await e.store.bodies(of: Self.record("old", tenant: "ten_a", at: Self.t0)).state == .available)
        // Two more days: the first day is past the retention.
        e.clock.advance(byMs: 2 * Self.day)
        #expect(try await e.store.expire(tenantID: "ten_a", retentionDays: 3) == .init(keysDestroyed: 1, bodiesDeleted: 1))
        let shredded = try #require(try await e.storage.dataKey(id: oldKey))
        #expect(shredded.wrappedKey == nil && shredded.shreddedAt == e.clock.now())
        #expect(try await e.storage.requestBody(requestID: "old") == nil)
        #expect(try await e.store.bodies(of: Self.record("old", tenant: "ten_a", at: Self.t0)).state == .shredded)
        #expect(try await e.store.bodies(of: Self.record("new", tenant: "ten_a", at: Self.t0 + 2 * Self.day)).state == .available)
        // A request that never had a body, on a day whose key lives: not stored.
        #expect(try await e.store.bodies(of: Self.record("none", tenant: "ten_a", at: Self.t0 + 2 * Self.day)).state == .notStored)
    }}

    @Test(arguments: TestDatabase.all) func shreddingTheKeysAloneLeavesCiphertextUnreadable(_ driver: TestDatabase) async throws { try await withStore(driver) { e in
        await capture(e, "r1", prompt: "tenant a prompt", answer: "tenant a answer")
        await capture(e, "r2", tenant: "ten_b", prompt: "tenant b prompt", answer: "tenant b answer")
        let result = try await e.store.shred(tenantID: "ten_a", deleteBodies: false)
        #expect(result == .init(keysDestroyed: 1, bodiesDeleted: 0))
        // The ciphertext is still in the table, and no longer opens.
        #expect(try await e.storage.requestBody(requestID: "r1")?.prompt != nil)
        #expect(try await e.store.bodies(of: Self.record("r1", tenant: "ten_a", at: Self.t0)).state == .shredded)
        // Another tenant is untouched.
        #expect(try await e.store.bodies(of: Self.record("r2", tenant: "ten_b", at: Self.t0)).state == .available)
        // New bodies of the shredded tenant get a fresh key and open.
        await capture(e, "r3", prompt: "after", answer: "after")
        #expect(try await e.store.bodies(of: Self.record("r3", tenant: "ten_a", at: Self.t0)).state == .available)
        #expect(try await e.storage.requestBody(requestID: "r3")?.keyID != e.storage.requestBody(requestID: "r1")?.keyID)
    }}

    @Test(arguments: TestDatabase.all) func longBodiesAreCutAtACharacterBoundaryAndMarked(_ driver: TestDatabase) async throws { try await withStore(driver, maxBodyBytes: 10) { e in
        await capture(e, "r1", prompt: "aaaaaaaaaé" + "tail", answer: "short")
        let b = try await e.store.bodies(of: Self.record("r1", tenant: "ten_a", at: Self.t0))
        #expect(b.state == .available && b.prompt == "aaaaaaaaa" && b.promptTruncated && b.promptBytes == 15)
        #expect(b.response == "short" && !b.responseTruncated)
    }}

    @Test func periodsAreUTCDays() {
        #expect(RequestStore.period(0) == "1970-01-01")
        #expect(RequestStore.period(Self.t0) == "2026-12-05")
        #expect(RequestStore.period(951_782_400_000) == "2000-02-29")
        #expect(RequestStore.period(1_796_515_199_999) == "2026-12-05")
        #expect(RequestStore.period(1_796_515_200_000) == "2026-12-06")
    }
}

extension RequestStoreTests {
    @Test(arguments: TestDatabase.all) func aRequestAfterAShredWithoutABodyIsNotStoredNotShredded(_ driver: TestDatabase) async throws { try await withStore(driver) { e in
        await capture(e, "before", prompt: "p", answer: "a")
        e.clock.advance(byMs: 1000)
        try await e.store.shred(tenantID: "ten_a")
        e.clock.advance(byMs: 1000)
        #expect(try await e.store.bodies(of: Self.record("before", tenant: "ten_a", at: Self.t0)).state == .shredded)
        #expect(try await e.store.bodies(of: Self.record("after", tenant: "ten_a", at: e.clock.now())).state == .notStored)
    }}
}

extension RequestStoreTests {
    /// A replaced master key cannot open the day's data key: that tenant's body is dropped (never
    /// retried forever, never logged), the rest of the batch is written.
    @Test(arguments: TestDatabase.all) func aDataKeyThatDoesNotOpenDropsOnlyItsBody(_ driver: TestDatabase) async throws { try await withStore(driver) { e in
        await capture(e, "r1", prompt: "p", answer: "a")
        let replaced = RequestStore(storage: e.storage, master: try MasterKey(bytes: Array(repeating: 7, count: 32)), maxBodyBytes: 1024,
                                    now: { e.clock.now() }, logger: Logger(label: "t"))
        replaced.capture(requestID: "r2", tenantID: "ten_a", createdAt: e.clock.now(), prompt: [1], response: [2], responseFormat: "json")
        replaced.capture(requestID: "r3", tenantID: "ten_b", createdAt: e.clock.now(), prompt: [1], response: [2], responseFormat: "json")
        await replaced.flush()
        #expect(try await e.storage.requestBody(requestID: "r2") == nil)
        #expect(try await replaced.bodies(of: Self.record("r3", tenant: "ten_b", at: Self.t0)).state == .available)
        #expect(replaced.writer.pendingCount == 0)
    }}
}
