import Foundation
import SQLKit
import Synchronization
import Testing
@testable import Storage
import StorageTesting

/// The dedicated write connection of a SQLite file (Storage/SQLiteWriter.swift, GroupCommit.swift):
/// the group commit — ledger rows, rollup marks, an audit batch with the chain's tip check — is one
/// transaction beside the main (SQLiteNIO) connection, which keeps every other query.
@Suite struct SQLiteWriterTests {
    static func fileStorage(path: String = TestDatabase.scratchFile(), migrate: Bool = true) async throws -> Storage {
        let s = try await Storage.openSQLite(path: path, deleteAtShutdown: true)
        if migrate { do { try await s.migrate(at: 1) } catch { await s.shutdown(); throw error } }
        return s
    }

    /// Runs `body` with a fresh, migrated file storage and shuts it down afterwards, also when
    /// `body` throws.
    static func withFileStorage(_ body: (Storage) async throws -> Void) async throws {
        let s = try await fileStorage()
        do { try await body(s) } catch { await s.shutdown(); throw error }
        await s.shutdown()
    }

    static func row(_ id: String, at ms: Int64, tenant: String? = nil) -> RequestRecord {
        RequestRecord(id: id, createdAt: ms, tenantID: tenant, keyID: nil, model: "m", endpoint: "chat.completions", status: 200, outcome: "ok",
                      promptTokens: 3, completionTokens: 4, latencyMs: 5, backend: "b", costNano: 7, energyMicroWh: 1, estimated: 0)
    }

    /// Numbers and hashes `n` entries from the tip (a stand-in for AuditLog's builder: the storage
    /// only needs seq/prev_hash to chain; the chain's hash function is tested in AuditTests).
    static func builder(_ label: String, _ n: Int) -> @Sendable (Storage.AuditTip?) -> [AuditRecord] {
        { tip in
            var seq = tip?.seq ?? 0, prev = tip?.hash ?? "genesis"
            return (0..<n).map { i in
                seq += 1
                let h = "\(label)-\(seq)"
                defer { prev = h }
                return AuditRecord(seq: seq, time: Int64(i), actor: "system", tenantID: nil, action: "x", target: nil, outcome: "ok", requestID: nil,
                                   clientIP: nil, userAgent: nil, model: nil, status: nil, tokens: nil, prevHash: prev, hash: h)
            }
        }
    }

    /// Every entry's prev_hash is its predecessor's hash, sequence numbers without a gap.
    static func expectOneChain(_ s: Storage, count: Int) async throws {
        let page = try await s.auditPage(afterSeq: 0, limit: 100_000)
        #expect(page.count == count)
        #expect(page.map(\.seq) == (0..<Int64(count)).map { $0 + 1 })
        for (a, b) in zip(page, page.dropFirst()) { #expect(b.prevHash == a.hash, "entry \(b.seq) does not continue entry \(a.seq)") }
    }

    /// A new database file is made with 1 KB pages (a commit's WAL frames are whole pages); one
    /// made with SQLite's 4 KB keeps them when opened again, and its group commits still land.
    @Test func aNewDatabaseHasSmallPagesAndAnOldOneKeepsItsOwn() async throws {
        func pageSize(_ s: Storage) async throws -> Int {
            try await s.db.raw("PRAGMA page_size").first()?.decode(column: "page_size", as: Int.self) ?? 0
        }
        try await Self.withFileStorage { s in
            let size = try await pageSize(s)
            #expect(size == Storage.sqlitePageSize)
            #expect(Storage.sqlitePageSize == 1024)
        }
        let path = TestDatabase.scratchFile()
        let old = try await Storage.openSQLite(path: path, dedicatedWriter: false)
        // As a database made before the setting: 4 KB pages, fixed once the WAL mode is on.
        try await old.db.raw("PRAGMA journal_mode=DELETE").run()
        try await old.db.raw("PRAGMA page_size=4096").run()
        try await old.db.raw("VACUUM").run()
        try await old.db.raw("PRAGMA journal_mode=WAL").run()
        let oldSize = try await pageSize(old)
        #expect(oldSize == 4096)
        try await old.migrate(at: 1)
        await old.shutdown()
        let reopened = try await Self.fileStorage(path: path, migrate: false)
        do {
            let reopenedSize = try await pageSize(reopened)
            #expect(reopenedSize == 4096)
            _ = try await reopened.commitGroup(requests: [Self.row("p1", at: 60_000), Self.row("p2", at: 60_001)],
                                               auditContinuingFrom: nil, Self.builder("p", 1)).get()
            #expect(try await reopened.ledger(tenantID: nil, from: 0, to: 120_000).map(\.id).sorted() == ["p1", "p2"])
            try await Self.expectOneChain(reopened, count: 1)
        } catch {
            await reopened.shutdown()
            throw error
        }
        await reopened.shutdown()
    }

    /// Shutting down while queries still run (background work such as a cluster replica returning
    /// slices) waits for them and refuses later ones with `StorageClosedError`; before the gate, a
    /// query could run on SQLiteNIO's handle after another thread had closed it (signal 11).
    @Test func shutdownWaitsForRunningQueriesAndRefusesLaterOnes() async throws {
        for round in 0..<20 {
            let s = try await Self.fileStorage()
            let started = Atomic<Int>(0)
            let refused = Atomic<Int>(0)
            let workers = (0..<8).map { w in
                Task {
                    for i in 0..<1_000 {
                        do {
                            started.add(1, ordering: .relaxed)
                            if i % 2 == 0 {
                                _ = try await s.auditPage(afterSeq: 0, limit: 10)
                            } else {
                                try await s.insertRequests([Self.row("r\(round)-\(w)-\(i)", at: Int64(i))])
                            }
                        } catch is StorageClosedError {
                            refused.add(1, ordering: .relaxed)
                            return
                        } catch {
                            Issue.record("unexpected error: \(error)")
                            return
                        }
                    }
                }
            }
            // Shut down once every worker is under way (a condition, not a sleep).
            for _ in 0..<6_000 where started.load(ordering: .relaxed) < 16 { try await Task.sleep(for: .milliseconds(5)) }
            await s.shutdown()
            for t in workers { await t.value }
            do {
                _ = try await s.auditPage(afterSeq: 0, limit: 1)
                Issue.record("a query after shutdown must be refused")
            } catch is StorageClosedError {}
        }
    }

    @Test func fileStorageHasTheWriterAndMemoryDoesNot() async throws {
        let file = try await Self.fileStorage(migrate: false)
        #expect(file.writer != nil)
        await file.shutdown()
        let memory = try await Storage.inMemory()
        #expect(memory.writer == nil)
        await memory.shutdown()
        let plain = try await Storage.openSQLite(path: TestDatabase.scratchFile(), dedicatedWriter: false, deleteAtShutdown: true)
        #expect(plain.writer == nil)
        await plain.shutdown()
    }

    /// Rows, their minutes' marks and the audit batch land together; the batch built from the
    /// known tip is the one stored.
    @Test func groupCommitWritesRowsMarksAndTheAuditBatch() async throws {
        try await Self.withFileStorage { s in
            let rows = [Self.row("a", at: 60_000), Self.row("b", at: 60_500), Self.row("c", at: 180_000)]
            let first = try await s.commitGroup(requests: rows, auditContinuingFrom: nil, Self.builder("w", 2)).get()
            #expect(first.map(\.seq) == [1, 2])
            let second = try await s.commitGroup(requests: [Self.row("d", at: 60_001)], auditContinuingFrom: (2, "w-2"), Self.builder("w", 1)).get()
            #expect(second.map(\.seq) == [3] && second[0].prevHash == "w-2")
            #expect(try await s.ledger(tenantID: nil, from: 0, to: .max).map(\.id) == ["a", "d", "b", "c"])
            #expect(try await s.request(id: "b") == rows[1])
            let marks = try await s.db.select().columns("bucket_start", "version").from("rollup_dirty").orderBy("bucket_start").all()
                .map { (try $0.decode(column: "bucket_start", as: Int64.self), try $0.decode(column: "version", as: Int64.self)) }
            #expect(marks.map(\.0) == [60_000, 180_000])
            #expect(marks.map(\.1) == [2, 1])
            try await Self.expectOneChain(s, count: 3)
        }
    }

    /// Another connection moved the tip: the prebuilt batch is not inserted, the batch is built
    /// again from the tip read under the write lock (no fork, no gap).
    @Test func aMovedTipIsReadAgainUnderTheWriteLock() async throws {
        try await Self.withFileStorage { s in
            _ = try await s.commitGroup(requests: [], auditContinuingFrom: nil, Self.builder("a", 3)).get()
            // Another writer on the main connection (as the CLI or an admin path would) appends 2.
            try await s.db.raw("INSERT INTO audit_log (seq, time, actor, action, outcome, prev_hash, hash) VALUES (4, 0, 'system', 'x', 'ok', 'a-3', 'other-4'), (5, 0, 'system', 'x', 'ok', 'other-4', 'other-5')").run()
            let stale = try await s.commitGroup(requests: [Self.row("r", at: 1)], auditContinuingFrom: (3, "a-3"), Self.builder("a", 2)).get()
            #expect(stale.map(\.seq) == [6, 7] && stale[0].prevHash == "other-5")
            let alone = try await s.appendAuditChain(continuingFrom: (3, "a-3"), Self.builder("b", 1))
            #expect(alone.map(\.seq) == [8] && alone[0].prevHash == "a-7")
            try await Self.expectOneChain(s, count: 8)
            // Everything purged: the anchor is the tip.
            try await s.purgeAudit(throughSeq: 8, anchorHash: "b-8")
            let afterPurge = try await s.appendAuditChain(continuingFrom: nil, Self.builder("c", 1))
            #expect(afterPurge.map(\.seq) == [9] && afterPurge[0].prevHash == "b-8")
        }
    }

    /// A ledger row that cannot be inserted fails the whole group: no row, no mark, no audit entry.
    @Test func aFailedLedgerRowCommitsNothingOfTheGroup() async throws {
        try await Self.withFileStorage { s in
            try await s.insertRequests([Self.row("dup", at: 60_000)])
            await #expect(throws: SQLiteWriteError.self) {
                _ = try await s.commitGroup(requests: [Self.row("new", at: 120_000), Self.row("dup", at: 120_000)], auditContinuingFrom: nil,
                                            Self.builder("w", 1))
            }
            #expect(try await s.request(id: "new") == nil)
            #expect(try await s.db.select().column("bucket_start").from("rollup_dirty").all().count == 1)
            #expect(try await s.lastAudit() == nil)
            // The writer is usable after the rollback.
            _ = try await s.commitGroup(requests: [Self.row("new", at: 120_000)], auditContinuingFrom: nil, Self.builder("w", 1)).get()
            #expect(try await s.request(id: "new") != nil)
            try await Self.expectOneChain(s, count: 1)
        }
    }

    /// A failing audit part (here a trigger refusing inserts) does not undo the ledger rows: they are
    /// committed and the audit failure is returned. The writer's kept statements survive the schema
    /// changes (SQLite prepares them again).
    @Test func aFailedAuditPartKeepsTheRows() async throws {
        try await Self.withFileStorage { s in
            _ = try await s.commitGroup(requests: [Self.row("a", at: 1)], auditContinuingFrom: nil, Self.builder("w", 1)).get()
            try await s.db.raw("CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit refused'); END").run()
            let result = try await s.commitGroup(requests: [Self.row("b", at: 2)], auditContinuingFrom: (1, "w-1"), Self.builder("w", 2))
            guard case .failure(let error) = result else { Issue.record("the audit part should have failed"); throw CancellationError() }
            #expect("\(error)".contains("audit refused"))
            #expect(try await s.request(id: "b") != nil)
            try await Self.expectOneChain(s, count: 1)
            await #expect(throws: SQLiteWriteError.self) { try await s.appendAuditChain(continuingFrom: (1, "w-1"), Self.builder("w", 1)) }
            try await s.db.raw("DROP TRIGGER refuse_audit").run()
            _ = try await s.commitGroup(requests: [Self.row("c", at: 3)], auditContinuingFrom: (1, "w-1"), Self.builder("w", 2)).get()
            try await Self.expectOneChain(s, count: 3)
            #expect(try await s.ledger(tenantID: nil, from: 0, to: .max).map(\.id) == ["a", "b", "c"])
        }
    }

    /// A single audit entry is appended without a savepoint: refused, it leaves the rows committed and
    /// the chain as it was. A batch of two whose second entry is refused keeps neither (its savepoint).
    @Test func anAuditPartIsAllOrNothingWithOrWithoutASavepoint() async throws {
        try await Self.withFileStorage { s in
            _ = try await s.commitGroup(requests: [Self.row("a", at: 1)], auditContinuingFrom: nil, Self.builder("w", 1)).get()
            try await s.db.raw("CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log WHEN NEW.seq >= 3 BEGIN SELECT RAISE(ABORT, 'audit refused'); END").run()
            // One entry (seq 2) is accepted, then one entry (seq 3) alone is refused.
            _ = try await s.commitGroup(requests: [Self.row("b", at: 2)], auditContinuingFrom: (1, "w-1"), Self.builder("w", 1)).get()
            let alone = try await s.commitGroup(requests: [Self.row("c", at: 3)], auditContinuingFrom: (2, "w-2"), Self.builder("w", 1))
            guard case .failure(let error) = alone else { Issue.record("the audit part should have failed"); throw CancellationError() }
            #expect("\(error)".contains("audit refused"))
            #expect(try await s.request(id: "c") != nil)
            try await Self.expectOneChain(s, count: 2)
            // Two entries (seq 3, 4): both refused; after dropping the trigger only seq 3 onwards is written.
            try await s.db.raw("DROP TRIGGER refuse_audit").run()
            try await s.db.raw("CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log WHEN NEW.seq = 4 BEGIN SELECT RAISE(ABORT, 'audit refused'); END").run()
            let pair = try await s.commitGroup(requests: [Self.row("d", at: 4)], auditContinuingFrom: (2, "w-2"), Self.builder("w", 2))
            guard case .failure = pair else { Issue.record("the audit part should have failed"); throw CancellationError() }
            #expect(try await s.request(id: "d") != nil)
            try await Self.expectOneChain(s, count: 2)  // seq 3 was undone with seq 4
            try await s.db.raw("DROP TRIGGER refuse_audit").run()
            _ = try await s.commitGroup(requests: [Self.row("e", at: 5)], auditContinuingFrom: (2, "w-2"), Self.builder("w", 1)).get()
            try await Self.expectOneChain(s, count: 3)
            #expect(try await s.ledger(tenantID: nil, from: 0, to: .max).map(\.id) == ["a", "b", "c", "d", "e"])
        }
    }

    /// Group commits on the writer while the main connection writes too (tenants, credits, rollup
    /// passes clearing marks, raw ledger rows): every write lands, each side waits for the other's
    /// write lock instead of failing.
    @Test func writerAndMainConnectionWriteConcurrently() async throws {
        try await Self.withFileStorage { s in
            try await s.insertTenant(TenantRecord(id: "t", name: "t", createdAt: 1))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for w in 0..<3 {
                    group.addTask {
                        for b in 0..<20 {
                            let rows = (0..<5).map { Self.row("w\(w)-\(b)-\($0)", at: Int64(b * 60_000 + $0), tenant: "t") }
                            try await s.insertRequests(rows)
                        }
                    }
                }
                group.addTask {
                    for i in 0..<40 {
                        try await s.addCredit(id: "c\(i)", tenantID: "t", amountNano: 1, at: Int64(i), note: nil)
                        try await s.insertTenant(TenantRecord(id: "t\(i)", name: "t\(i)", createdAt: Int64(i)))
                    }
                }
                group.addTask {
                    for i in 0..<20 {
                        try await s.db.raw("INSERT INTO requests (id, created_at, model, endpoint, status, outcome, prompt_tokens, completion_tokens, latency_ms) VALUES (\(bind: "main-\(i)"), \(bind: Int64(1_000 * 60_000 + i)), 'm', 'chat.completions', 200, 'ok', 1, 1, 1)").run()
                        try await s.rollUp(now: 100 * 60_000, lagMs: 0, minuteRetentionMs: 1_000_000_000, hourRetentionMs: 1_000_000_000)
                    }
                }
                group.addTask {
                    var tip: Storage.AuditTip?
                    for _ in 0..<20 {
                        let records = try await s.appendAuditChain(continuingFrom: tip, Self.builder("w", 2))
                        tip = (records.last!.seq, records.last!.hash)
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await s.ledger(tenantID: nil, from: 0, to: .max).count == 3 * 20 * 5 + 20)
            #expect(try await s.creditTotal(tenantID: "t") == 40)
            #expect(try await s.tenantCount() == 41)
            try await Self.expectOneChain(s, count: 40)
            // A last pass sees every row of the group commits (the marks of rows committed during a
            // pass were kept). The raw rows (minute 1000, not marked) are not rolled up.
            try await s.rollUp(now: 100 * 60_000, lagMs: 0, minuteRetentionMs: 1_000_000_000, hourRetentionMs: 1_000_000_000)
            let total = try await s.rollupRows(resolution: .minute, from: 0, to: .max, filter: RollupFilter()).reduce(0) { $0 + $1.stats.requests }
            #expect(total == 3 * 20 * 5)
        }
    }

    /// A lone row commits on the caller's thread; several, or one while another connection holds
    /// the write lock, go to the writer's thread, which waits for the lock instead of failing (an
    /// event loop never waits there). Every row lands, in one audit chain.
    @Test func aLoneRowCommitsHereAndABusyDatabaseHandsItToTheWriter() async throws {
        try await Self.withFileStorage { s in
            let writer = try #require(s.writer)
            _ = try await s.commitGroup(requests: [Self.row("a", at: 1)], auditContinuingFrom: nil, Self.builder("w", 1)).get()
            #expect(writer.handedOverCount == 0)
            _ = try await s.commitGroup(requests: [Self.row("b", at: 2), Self.row("c", at: 3)], auditContinuingFrom: (1, "w-1"),
                                        Self.builder("w", 1)).get()
            #expect(writer.handedOverCount == 1)

            // The main connection holds the write lock: the lone row's commit cannot start here.
            try await s.db.raw("BEGIN IMMEDIATE").run()
            try await s.insertTenant(TenantRecord(id: "t", name: "t", createdAt: 1))
            let committing = Task { try await s.commitGroup(requests: [Self.row("d", at: 4)], auditContinuingFrom: (2, "w-2"), Self.builder("w", 1)).get() }
            var polls = 0
            while writer.handedOverCount < 2, polls < 2_000 {
                try await Task.sleep(for: .milliseconds(5))
                polls += 1
            }
            #expect(writer.handedOverCount == 2)
            try await s.db.raw("COMMIT").run()
            _ = try await committing.value
            #expect(try await s.ledger(tenantID: nil, from: 0, to: .max).map(\.id) == ["a", "b", "c", "d"])
            #expect(try await s.tenantCount() == 1)
            try await Self.expectOneChain(s, count: 3)
        }
    }

    /// A write on the main connection while a long read of that same connection is still stepping,
    /// after the writer committed since the read began: the write waits for the read and lands. (When
    /// the connection's statements could interleave on two threads, the write joined the read's
    /// stale snapshot and SQLite refused it at once with SQLITE_BUSY_SNAPSHOT.)
    @Test func aMainConnectionWriteWaitsForItsOwnLongRead() async throws {
        try await Self.withFileStorage { s in
            try await s.insertTenant(TenantRecord(id: "t", name: "t", createdAt: 1))
            let (rows, seen) = AsyncStream.makeStream(of: Void.self)
            let reading = Task {
                defer { seen.finish() }
                try await s.db.raw("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT x FROM c, tenants WHERE x % 300000 = 0")
                    .run { _ in seen.yield() }
            }
            var it = rows.makeAsyncIterator()
            _ = await it.next()
            _ = try await s.commitGroup(requests: [Self.row("a", at: 1, tenant: "t")], auditContinuingFrom: nil, Self.builder("w", 1)).get()
            try await s.insertTenant(TenantRecord(id: "t2", name: "t2", createdAt: 2))
            try await s.addCredit(id: "c", tenantID: "t2", amountNano: 5, at: 3, note: nil)
            try await reading.value
            #expect(try await s.tenantCount() == 2)
            #expect(try await s.creditTotal(tenantID: "t2") == 5)
            #expect(try await s.request(id: "a") != nil)
        }
    }

    /// Two storages on one file (a gateway and the CLI, say), each with its writer, plus appends
    /// through a storage without a writer, all at once: one chain, no fork, no gap. The writers'
    /// group commits never fail (the tip is read under the write lock); the storage without a writer
    /// may be refused by the primary key when another writer appended between its read of the tip
    /// and its insert (the chain is not forked), and retries as AuditLog does.
    @Test func concurrentWritersOnOneFileFormOneChain() async throws {
        let path = TestDatabase.scratchFile()
        let a = try await Self.fileStorage(path: path)
        let b = try await Storage.openSQLite(path: path)
        let c = try await Storage.openSQLite(path: path, dedicatedWriter: false)
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (w, s) in [a, b].enumerated() {
                    group.addTask {
                        var tip: Storage.AuditTip?
                        for round in 0..<15 {
                            let records = try await s.commitGroup(requests: [Self.row("s\(w)-\(round)", at: Int64(round))], auditContinuingFrom: tip,
                                                                  Self.builder("s\(w)", 1 + round % 3)).get()
                            tip = (records.last!.seq, records.last!.hash)
                        }
                    }
                }
                group.addTask {
                    var tip: Storage.AuditTip?
                    for round in 0..<15 {
                        var attempts = 0
                        while true {
                            attempts += 1
                            do {
                                let records = try await c.appendAuditChain(continuingFrom: tip, Self.builder("c", 1 + round % 3))
                                tip = (records.last!.seq, records.last!.hash)
                                break
                            } catch where attempts < 100 {
                                tip = try await c.lastAudit().map { ($0.seq, $0.hash) }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            try await Self.expectOneChain(a, count: 3 * (5 * (1 + 2 + 3)))
            #expect(try await a.ledger(tenantID: nil, from: 0, to: .max).count == 30)
        } catch { await c.shutdown(); await b.shutdown(); await a.shutdown(); throw error }
        await c.shutdown()
        await b.shutdown()
        await a.shutdown()
    }

    /// The writer checkpoints between commits, never inside one: the commit that takes the WAL to
    /// the threshold returns with the WAL as it is, and a checkpoint job queued behind it (the next
    /// job on the writer's one thread) copies it; the WAL file stays bounded; `close()` checkpoints.
    @Test func checkpointsRunBetweenCommitsAndKeepTheWALBounded() async throws {
        let path = TestDatabase.scratchFile()
        let s = try await Storage.openSQLite(path: path, dedicatedWriter: false, deleteAtShutdown: true)
        let threshold: Int32 = 20
        let w: SQLiteWriter
        do {
            try await s.migrate(at: 1)
            w = try await SQLiteWriter.open(path: path, checkpointPages: threshold)
        } catch { await s.shutdown(); throw error }
        do {
            // The migration's pages (written by the main connection) out of the way first; the WAL
            // file keeps its size (a checkpoint does not truncate it), the next write starts it over.
            try await w.run { c in c.checkpoint() }
            let walFile = { (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0 }
            let walBytesBefore = walFile()
            var maxPages: Int32 = 0, crossings = 0
            for i in 0..<200 {
                let row = Self.row("r\(1000 + i)", at: Int64(i) * 1000)
                // Inside the commit's own job: no checkpoint, whatever the WAL's size.
                let (before, after, pages) = try await w.run { c in
                    let before = c.checkpoints
                    _ = try Storage.groupCommit(on: c, rows: [row], audit: nil)
                    return (before, c.checkpoints, c.walPages)
                }
                #expect(after == before, "a checkpoint ran inside commit \(i)")
                #expect(pages > 0)
                maxPages = max(maxPages, pages)
                // The next job on the writer's thread comes after the queued checkpoint.
                let (checkpoints, pagesNow) = try await w.run { c in (c.checkpoints, c.walPages) }
                if pages >= threshold {
                    crossings += 1
                    #expect(checkpoints == after + 1, "no checkpoint after commit \(i) left \(pages) pages")
                    #expect(pagesNow == 0)
                } else {
                    #expect(checkpoints == after)
                }
            }
            #expect(crossings >= 5)
            // Each commit adds a few pages; after a complete checkpoint the WAL starts over.
            #expect(maxPages < threshold + 20)
            #expect(walFile() <= max(walBytesBefore, Int(threshold + 20) * (4096 + 24) + 32))
            let copied = try await w.run { c in c.checkpointedPages }
            #expect(copied > 0)
            #expect(try await s.ledger(tenantID: nil, from: 0, to: .max).count == 200)
        } catch { await w.close(); await s.shutdown(); throw error }
        await w.close()
        await s.shutdown()
    }

    /// `shutdown()` closes both connections: the last close checkpoints and removes the WAL, and
    /// what was committed is there when the file is opened again.
    @Test func shutdownClosesTheWriterAndKeepsWhatWasCommitted() async throws {
        let path = TestDatabase.scratchFile()
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let s = try await Storage.openSQLite(path: path)
        try await s.migrate(at: 1)
        _ = try await s.commitGroup(requests: [Self.row("kept", at: 1)], auditContinuingFrom: nil, Self.builder("w", 1)).get()
        await s.shutdown()
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
        await #expect(throws: (any Error).self) { try await s.insertRequests([Self.row("late", at: 2)]) }
        let again = try await Storage.openSQLite(path: path)
        #expect(try await again.request(id: "kept") != nil)
        #expect(try await again.lastAudit()?.hash == "w-1")
        await again.shutdown()
    }
}
