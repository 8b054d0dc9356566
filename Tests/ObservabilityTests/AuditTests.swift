import Foundation
import Logging
import StorageTesting
import Testing
@testable import Observability
@testable import Storage

@Suite struct AuditTests {
    func withLog(_ driver: TestDatabase, _ body: (Storage, AuditLog) async throws -> Void) async throws {
        let storage = try await driver.open()
        try await storage.migrate(at: 1_764_000_000_000)
        let log = AuditLog(storage: storage, logger: Logger(label: "t"))
        do { try await body(storage, log) } catch { await storage.shutdown(); throw error }
        await storage.shutdown()
    }

    func fill(_ log: AuditLog, _ n: Int) async {
        for i in 0..<n {
            log.record(AuditEvent(time: Int64(i * 1000), actor: "key:k\(i % 3)", tenantID: "t\(i % 2)", action: "inference",
                                  outcome: "ok", requestID: "r\(i)", model: "m", status: 200, tokens: i))
        }
        await log.flush()
    }

    @Test(arguments: TestDatabase.all) func intactChainVerifiesAndResumes(_ driver: TestDatabase) async throws { try await withLog(driver) { storage, log in
        await fill(log, 50)
        #expect(try await AuditChain.verify(storage) == (50, nil))
        #expect(try await AuditChain.verify(storage, head: log.head) == (50, nil))
        let again = AuditLog(storage: storage, logger: Logger(label: "t"))
        try await again.resume()
        again.record(AuditEvent(time: 99_000, actor: "system", action: "x", outcome: "ok"))
        await again.flush()
        #expect(try await AuditChain.verify(storage) == (51, nil))
    }}

    @Test func theHeadFileFollowsEveryBatchInPlace() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("audit-head-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let storage = try await TestDatabase.sqlite.open()
        try await storage.migrate(at: 1_764_000_000_000)
        let log = AuditLog(storage: storage, logger: Logger(label: "t"), headPath: path)
        await fill(log, 3)
        #expect(AuditHead.read(path: path) == log.head)
        await fill(log, 12)  // seq 15: one digit more, the same width
        let head = try #require(log.head)
        #expect(head.seq == 15)
        #expect(AuditHead.read(path: path) == head)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text == "00000000000000000015 \(head.hash)\n")
        #expect(try await AuditChain.verify(storage, head: AuditHead.read(path: path)) == (15, nil))
        await storage.shutdown()
    }

    @Test(arguments: TestDatabase.all) func detectsEveryKindOfTampering(_ driver: TestDatabase) async throws {
        // changed
        try await withLog(driver) { storage, log in
            await fill(log, 20)
            try await storage.db.raw("UPDATE audit_log SET status = 500 WHERE seq = 7").run()
            #expect(try await AuditChain.verify(storage).firstBreak?.seq == 7)
        }
        // deleted
        try await withLog(driver) { storage, log in
            await fill(log, 20)
            try await storage.db.raw("DELETE FROM audit_log WHERE seq = 5").run()
            #expect(try await AuditChain.verify(storage).firstBreak?.seq == 6)
        }
        // deleted at the end: the chain alone still verifies, the signed head does not
        try await withLog(driver) { storage, log in
            await fill(log, 20)
            let head = try #require(log.head)
            try await storage.db.raw("DELETE FROM audit_log WHERE seq >= 19").run()
            #expect(try await AuditChain.verify(storage, head: head).firstBreak?.seq == 19)
            #expect(try await AuditChain.verify(storage).firstBreak == nil)
        }
        // inserted (renumbered in)
        try await withLog(driver) { storage, log in
            await fill(log, 20)
            try await storage.db.raw("UPDATE audit_log SET seq = -(seq + 1) WHERE seq >= 10").run()
            try await storage.db.raw("UPDATE audit_log SET seq = -seq WHERE seq < 0").run()
            try await storage.db.raw("INSERT INTO audit_log (seq, time, actor, action, outcome, prev_hash, hash) SELECT 10, time, actor, action, outcome, prev_hash, hash FROM audit_log WHERE seq = 3").run()
            #expect(try await AuditChain.verify(storage).firstBreak?.seq == 10)
        }
        // reordered (two entries' contents swapped)
        try await withLog(driver) { storage, log in
            await fill(log, 20)
            try await storage.db.raw("UPDATE audit_log SET seq = -1 WHERE seq = 12").run()
            try await storage.db.raw("UPDATE audit_log SET seq = 12 WHERE seq = 13").run()
            try await storage.db.raw("UPDATE audit_log SET seq = 13 WHERE seq = -1").run()
            #expect(try await AuditChain.verify(storage).firstBreak?.seq == 12)
        }
    }

    @Test(arguments: TestDatabase.all) func retentionKeepsTheRestVerifiable(_ driver: TestDatabase) async throws { try await withLog(driver) { storage, log in
        await fill(log, 30)
        let cut = try await log.purge(before: 10_000)
        #expect(cut == 10)
        #expect(try await AuditChain.verify(storage) == (20, nil))
        log.record(AuditEvent(time: 50_000, actor: "system", action: "x", outcome: "ok"))
        await log.flush()
        #expect(try await AuditChain.verify(storage) == (21, nil))
    }}

    /// The hash is SHA-256 over the documented encoding (each field as `<byte count>:<bytes>`, a
    /// missing one as NUL); values computed independently (Python's hashlib).
    @Test func hashIsSHA256OfTheLengthPrefixedFields() {
        let e = AuditEvent(time: 1_764_000_000_123, actor: "key:k1", tenantID: "t1", action: "inference", target: "/v1/chat/completions",
                           outcome: "ok", requestID: "r-1", clientIP: "10.0.0.1", userAgent: "curl/8 \u{E9}", model: "m", status: 200, tokens: 42)
        #expect(AuditChain.hash(prev: AuditChain.genesis, seq: 1, e) == "d23a12f104e6911257ebd4667ad590318d9814bf31e071a89053901866f8faad")
        let bare = AuditEvent(time: 5, actor: "system", action: "x", outcome: "ok")
        #expect(AuditChain.hash(prev: AuditChain.genesis, seq: 7, bare) == "f4935b8d5c266fe162feb5b653a1965e8808f1441f0175294caeb079a322615c")
    }

    /// Two writers on one SQLite file (a gateway and the CLI, say): each appends from the tip it
    /// last wrote, checked in the same statement; when the other one moved the tip, the batch is
    /// rebuilt from the database's tip. The result is one chain without gaps.
    @Test func twoWritersOnOneSQLiteFileFormOneChain() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("db.sqlite").path
        let a = try await Storage.openSQLite(path: path)
        let b: Storage
        do { try await a.migrate(at: 1); b = try await Storage.openSQLite(path: path) } catch { await a.shutdown(); throw error }
        let logA = AuditLog(storage: a, logger: Logger(label: "a")), logB = AuditLog(storage: b, logger: Logger(label: "b"))
        for round in 0..<6 {
            for (w, log) in [logA, logB].enumerated() where round % 3 != 2 || w == 0 {
                for i in 0..<(round + 1) {
                    log.record(AuditEvent(time: Int64(round * 100 + i), actor: "key:w\(w)", action: "inference", outcome: "ok", requestID: "\(w)-\(round)-\(i)"))
                }
                await log.flush()
            }
        }
        let total = logA.writtenCount + logB.writtenCount
        #expect(total == (1 + 2 + 3 + 4 + 5 + 6) + (1 + 2 + 4 + 5))
        #expect(try await AuditChain.verify(a) == (total, nil))
        #expect(try await a.lastAudit()?.seq == Int64(total))
        await b.shutdown()
        await a.shutdown()
    }

    /// Everything purged: the chain continues from the retention anchor (the tip the append
    /// checks is then the anchor's).
    @Test(arguments: TestDatabase.all) func afterPurgingEverythingTheChainContinuesFromTheAnchor(_ driver: TestDatabase) async throws {
        try await withLog(driver) { (storage: Storage, log: AuditLog) async throws in
            await fill(log, 5)
            #expect(try await log.purge(before: 1_000_000) == 5)
            log.record(AuditEvent(time: 2_000_000, actor: "system", action: "x", outcome: "ok"))
            await log.flush()
            let again = AuditLog(storage: storage, logger: Logger(label: "t"))  // a writer that did not write the anchor
            again.record(AuditEvent(time: 2_000_001, actor: "system", action: "y", outcome: "ok"))
            await again.flush()
            #expect(try await AuditChain.verify(storage) == (2, nil))
            #expect(try await storage.lastAudit()?.seq == 7)
        }
    }

    /// A NUL in a field (a client's user agent, a model name) is stored as U+FFFD before hashing,
    /// so the entry verifies on both drivers (PostgreSQL text cannot hold NUL; SQLite reads up to it).
    @Test(arguments: TestDatabase.all) func aNulInAFieldStillVerifies(_ driver: TestDatabase) async throws { try await withLog(driver) { storage, log in
        log.record(AuditEvent(time: 1, actor: "anonymous", action: "auth.failure", target: "/v1/x\u{0}y", outcome: "missing",
                              userAgent: "curl\u{0}/8", model: "m\u{0}"))
        await log.flush()
        let verified = try await AuditChain.verify(storage, head: log.head)
        #expect(verified == (1, nil))
        #expect(try await storage.lastAudit()?.userAgent == "curl\u{FFFD}/8")
    }}
}

/// The ledger's group commit (`AuditLog.flush(committingLedger:)`): ledger rows and the entries
/// queued before them in one commit — on a SQLite file one transaction on the storage's dedicated
/// writer; in memory and on PostgreSQL the rows, then the entries.
@Suite struct LedgerGroupCommitTests {
    static func row(_ id: String) -> RequestRecord {
        RequestRecord(id: id, createdAt: 1_764_000_000_000, tenantID: nil, keyID: nil, model: "m", endpoint: "chat.completions", status: 200,
                      outcome: "ok", promptTokens: 1, completionTokens: 2, latencyMs: 3)
    }

    static func event(_ i: Int) -> AuditEvent {
        AuditEvent(time: Int64(i), actor: "key:k", tenantID: "t", action: "inference", outcome: "ok", requestID: "r\(i)", model: "m", status: 200)
    }

    @Test(arguments: TestDatabase.all) func rowsAndQueuedEntriesAreCommittedTogether(_ driver: TestDatabase) async throws {
        try await AuditTests().withLog(driver) { storage, log in
            for i in 0..<3 { log.record(Self.event(i)) }
            try await log.flush(committingLedger: [Self.row("a"), Self.row("b")])
            #expect(log.writtenCount == 3)
            #expect(try await storage.request(id: "a") != nil)
            #expect(try await storage.request(id: "b") != nil)
            #expect(try await AuditChain.verify(storage, head: log.head) == (3, nil))
            // Nothing queued: the rows alone.
            try await log.flush(committingLedger: [Self.row("c")])
            #expect(log.writtenCount == 3)
            #expect(try await storage.request(id: "c") != nil)
            // More than one audit batch queued (2 000 per batch): the first goes with the rows, the
            // rest right after, before the call returns.
            for i in 3..<2503 { log.record(Self.event(i)) }
            try await log.flush(committingLedger: [Self.row("d")])
            #expect(log.writtenCount == 2503)
            #expect(try await AuditChain.verify(storage, head: log.head) == (2503, nil))
            // Another writer moved the tip meanwhile: this writer's next commit continues from it.
            let other = AuditLog(storage: storage, logger: Logger(label: "other"))
            try await other.resume()
            other.record(Self.event(9000))
            await other.flush()
            log.record(Self.event(9001))
            try await log.flush(committingLedger: [Self.row("e")])
            #expect(try await AuditChain.verify(storage, head: log.head) == (2505, nil))
            #expect(log.head?.seq == 2505)
        }
    }

    /// A ledger row that fails (its id already there) fails the commit: the queued entries are kept
    /// and written by the next flush. A failing audit part (a trigger refusing inserts, SQLite) does
    /// not fail the rows: they are committed, the entries kept and written once the audit log
    /// accepts them again.
    @Test(arguments: [TestDatabase.sqlite, .sqliteFile]) func failuresKeepTheEntriesForLater(_ driver: TestDatabase) async throws {
        try await AuditTests().withLog(driver) { storage, log in
            try await log.flush(committingLedger: [Self.row("a")])
            log.record(Self.event(1))
            await #expect(throws: (any Error).self) { try await log.flush(committingLedger: [Self.row("a")]) }
            #expect(log.writtenCount == 0)
            await log.flush()
            #expect(log.writtenCount == 1)
            try await storage.db.raw("CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit refused'); END").run()
            log.record(Self.event(2))
            try await log.flush(committingLedger: [Self.row("b")])
            #expect(try await storage.request(id: "b") != nil)
            #expect(log.writtenCount == 1)
            try await storage.db.raw("DROP TRIGGER refuse_audit").run()
            try await log.flush(committingLedger: [Self.row("c")])
            #expect(log.writtenCount == 2)
            #expect(try await AuditChain.verify(storage, head: log.head) == (2, nil))
        }
    }
}

/// One audit chain across replicas: several writers (each an `AuditLog` with its own `Storage`
/// and connection pool, as separate gateway processes have) append to one PostgreSQL database at
/// the same time; the appends are serialized in the database, so the result is one valid chain —
/// and an edit, a deletion and a reordering are still detected.
@Suite struct SharedAuditChainTests {
    static func writers(_ n: Int) async throws -> (owner: Storage, storages: [Storage], logs: [AuditLog]) {
        let url = try #require(TestDatabase.postgresURL)
        var settings = TestDatabase.scratch(url)
        let owner = try await Storage.openPostgres(settings)
        try await owner.migrate(at: 1)
        settings.dropSchemaAtShutdown = false
        var storages: [Storage] = []
        for _ in 0..<n { storages.append(try await Storage.openPostgres(settings)) }
        let logs = storages.map { AuditLog(storage: $0, logger: Logger(label: "replica")) }
        for log in logs { try await log.resume() }
        return (owner, storages, logs)
    }

    /// 3 writers × 8 rounds × 25 entries, each writer flushing from its own task while the others do.
    static func appendConcurrently(_ logs: [AuditLog]) async {
        await withTaskGroup(of: Void.self) { group in
            for (w, log) in logs.enumerated() {
                group.addTask {
                    for round in 0..<8 {
                        for i in 0..<25 {
                            log.record(AuditEvent(time: Int64(round * 1000 + i), actor: "key:k\(w)", tenantID: "t\(i % 2)", action: "inference",
                                                  outcome: "ok", requestID: "w\(w)-r\(round)-\(i)", model: "m", status: 200, tokens: i))
                        }
                        await log.flush()
                    }
                }
            }
        }
    }

    @Test(.enabled(if: TestDatabase.postgresURL != nil)) func concurrentWritersFormOneValidChain() async throws {
        let (owner, storages, logs) = try await Self.writers(3)
        await Self.appendConcurrently(logs)
        #expect(logs.map(\.writtenCount) == [200, 200, 200])
        #expect(try await AuditChain.verify(owner) == (600, nil))
        // Every writer's own head is a valid position in the shared chain.
        for log in logs { #expect(try await AuditChain.verify(owner, head: log.head) == (600, nil)) }
        // The writers really interleaved (each batch continues from whoever wrote last).
        let actors = try await owner.auditPage(afterSeq: 0, limit: 1000).map(\.actor)
        #expect(Set(actors).count == 3 && actors.count == 600)
        // A writer resumed later continues the same chain.
        let late = AuditLog(storage: storages[0], logger: Logger(label: "late"))
        try await late.resume()
        late.record(AuditEvent(time: 99_000, actor: "system", action: "x", outcome: "ok"))
        await late.flush()
        #expect(try await AuditChain.verify(owner) == (601, nil))
        for s in storages { await s.shutdown() }
        await owner.shutdown()
    }

    @Test(.enabled(if: TestDatabase.postgresURL != nil)) func tamperingWithTheSharedChainIsDetected() async throws {
        // edited
        do {
            let (owner, storages, logs) = try await Self.writers(3)
            await Self.appendConcurrently(logs)
            try await owner.db.raw("UPDATE audit_log SET tokens = 999 WHERE seq = 123").run()
            #expect(try await AuditChain.verify(owner).firstBreak?.seq == 123)
            for s in storages { await s.shutdown() }
            await owner.shutdown()
        }
        // deleted (one in the middle; and the tail, caught by a writer's head)
        do {
            let (owner, storages, logs) = try await Self.writers(3)
            await Self.appendConcurrently(logs)
            try await owner.db.raw("DELETE FROM audit_log WHERE seq = 300").run()
            #expect(try await AuditChain.verify(owner).firstBreak?.seq == 301)
            let last = try #require(logs.compactMap(\.head).max { $0.seq < $1.seq })
            #expect(last.seq == 600)
            try await owner.db.raw("DELETE FROM audit_log WHERE seq >= 590").run()
            #expect(try await AuditChain.verify(owner, head: last).firstBreak?.seq == 301)
            for s in storages { await s.shutdown() }
            await owner.shutdown()
        }
        do {
            let (owner, storages, logs) = try await Self.writers(2)
            await Self.appendConcurrently(logs)
            let last = try #require(logs.compactMap(\.head).max { $0.seq < $1.seq })
            try await owner.db.raw("DELETE FROM audit_log WHERE seq >= 395").run()
            #expect(try await AuditChain.verify(owner).firstBreak == nil)
            #expect(try await AuditChain.verify(owner, head: last).firstBreak?.seq == 395)
            for s in storages { await s.shutdown() }
            await owner.shutdown()
        }
        // reordered (two entries written by different replicas swap places)
        do {
            let (owner, storages, logs) = try await Self.writers(3)
            await Self.appendConcurrently(logs)
            let page = try await owner.auditPage(afterSeq: 0, limit: 1000)
            let i = try #require(page.indices.dropLast().first { page[$0].actor != page[$0 + 1].actor })
            let (a, b) = (page[i].seq, page[i + 1].seq)
            try await owner.db.raw("UPDATE audit_log SET seq = -1 WHERE seq = \(bind: a)").run()
            try await owner.db.raw("UPDATE audit_log SET seq = \(bind: a) WHERE seq = \(bind: b)").run()
            try await owner.db.raw("UPDATE audit_log SET seq = \(bind: b) WHERE seq = -1").run()
            #expect(try await AuditChain.verify(owner).firstBreak?.seq == a)
            for s in storages { await s.shutdown() }
            await owner.shutdown()
        }
    }
}
