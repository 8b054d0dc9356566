import Foundation
import SQLKit
import Testing
@testable import Storage
import StorageTesting

/// The file layer that writes a commit's WAL frames in one call (Storage/WALWriteBuffer.swift):
/// every commit is as visible, as durable and as intact as with SQLite's own frame-by-frame writes,
/// also when the writer and the main connection take turns on the WAL (frames the buffer did not
/// see), and when one transaction is larger than the buffer.
@Suite struct WALWriteBufferTests {
    static func integrity(_ s: Storage) async throws -> String {
        try await s.db.raw("PRAGMA integrity_check").first()?.decode(column: "integrity_check", as: String.self) ?? "no answer"
    }

    static func mainInsert(_ s: Storage, _ id: String, at ms: Int64) async throws {
        try await s.db.raw("INSERT INTO requests (id, created_at, model, endpoint, status, outcome, prompt_tokens, completion_tokens, latency_ms) VALUES (\(bind: id), \(bind: ms), 'm', 'chat.completions', 200, 'ok', 1, 1, 1)").run()
    }

    @Test func commitsAreVisibleDurableAndIntactThroughTheBuffer() async throws {
        let path = TestDatabase.scratchFile()
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        var expected: [String] = []

        let s = try await Storage.openSQLite(path: path)
        do { try await s.migrate(at: 1) } catch { await s.shutdown(); throw error }
        do {
            // The writer's first commit follows the migrations' frames, which its buffer did not
            // see: written through. From its commit frame on, the writer knows where the WAL ends:
            // the next lone row's frames go out in one write when its commit frame is complete, and
            // the main connection reads the row as soon as the commit returns.
            _ = try await s.commitGroup(requests: [SQLiteWriterTests.row("a", at: 1)], auditContinuingFrom: nil, SQLiteWriterTests.builder("w", 1)).get()
            let before = WALWriteBuffer.bufferedCommits.load(ordering: .relaxed)
            _ = try await s.commitGroup(requests: [SQLiteWriterTests.row("b", at: 2)], auditContinuingFrom: (1, "w-1"), SQLiteWriterTests.builder("w", 1)).get()
            expected += ["a", "b"]
            #expect(WALWriteBuffer.bufferedCommits.load(ordering: .relaxed) > before)
            #expect(try await s.ledger(tenantID: nil, from: 0, to: .max).map(\.id) == expected)

            // Turns: each main-connection commit appends frames the writer's buffer did not see,
            // so the writer's next commit starts elsewhere than it expects and is written through
            // (then buffering resumes after its commit frame).
            var tip: Storage.AuditTip = (2, "w-2")
            for i in 0..<20 {
                try await Self.mainInsert(s, "m\(i)", at: Int64(100 + 2 * i))
                let records = try await s.commitGroup(requests: [SQLiteWriterTests.row("w\(i)", at: Int64(101 + 2 * i))], auditContinuingFrom: tip,
                                                      SQLiteWriterTests.builder("w", 1)).get()
                tip = (records.last!.seq, records.last!.hash)
                expected += ["m\(i)", "w\(i)"]
            }
            #expect(try await s.ledger(tenantID: nil, from: 0, to: .max).map(\.id) == expected)

            // One transaction far larger than the buffer (64 KB): written in several parts.
            let many = (0..<3_000).map { SQLiteWriterTests.row(String(format: "z%05d", $0), at: 10_000 + Int64($0)) }
            try await s.insertRequests(many)
            expected += many.map(\.id)
            #expect(try await s.ledger(tenantID: nil, from: 0, to: .max).count == expected.count)
            #expect(try await Self.integrity(s) == "ok")
        } catch {
            await s.shutdown()
            throw error
        }
        await s.shutdown()

        // Opened again: everything committed is there, the file is intact, and the chain continues.
        let again = try await Storage.openSQLite(path: path)
        do {
            #expect(try await again.ledger(tenantID: nil, from: 0, to: .max).map(\.id) == expected)
            #expect(try await Self.integrity(again) == "ok")
            try await SQLiteWriterTests.expectOneChain(again, count: 22)
        } catch {
            await again.shutdown()
            throw error
        }
        await again.shutdown()
    }
}
