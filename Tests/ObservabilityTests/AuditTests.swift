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
}
