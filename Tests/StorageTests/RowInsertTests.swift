import Foundation
import SQLKit
import Testing
@testable import Storage
import StorageTesting

/// The write path's inserts (RowInserts.swift: statement texts reused per shape, values bound
/// without Codable) store exactly what the records hold, on both drivers.
@Suite struct RowInsertTests {
    static func row(_ i: Int, minute: Int64) -> RequestRecord {
        var r = RequestRecord(id: "r\(i)", createdAt: minute * 60_000 + Int64(i % 60_000), tenantID: i % 3 == 0 ? nil : "t\(i % 2)",
                              keyID: i % 4 == 0 ? nil : "k\(i)", model: "m\u{00E9}\(i % 5)", endpoint: "chat.completions",
                              status: i % 7 == 0 ? 502 : 200, outcome: i % 7 == 0 ? "upstream_error" : "ok",
                              errorCode: i % 7 == 0 ? "engine_unavailable" : nil, promptTokens: 3_000_000_000 + i,
                              completionTokens: i, latencyMs: i * 2, ttftMs: i % 2 == 0 ? i : nil, backend: i % 5 == 0 ? nil : "b",
                              modelRequested: i % 6 == 0 ? "alias" : nil, systemTokens: i % 3 == 0 ? 1 : nil,
                              reasoningTokens: i % 8 == 0 ? 5 : nil, costNano: i % 7 == 0 ? nil : Int64(i) * 1_000_000_000_000,
                              energyMicroWh: i % 9 == 0 ? nil : Int64(i), estimated: i % 10 == 0 ? 1 : nil)
        // The later optional columns, in every combination (rows of different shapes in one batch).
        if i % 11 == 1 { r.batch = 1 }
        if i % 13 == 2 { r.rerankedTokens = i }
        if i % 17 == 3 { r.audioMs = i * 10 }
        if i % 19 == 4 { r.batch = 1; r.rerankedTokens = 7; r.audioMs = 61_000 }
        return r
    }

    @Test(arguments: TestDatabase.all) func ledgerRowsOfEveryShapeRoundTripExactly(_ driver: TestDatabase) async throws {
        let s = try await PortabilityTests.migrated(driver)
        do {
            var expected: [RequestRecord] = []
            var marksPerMinute: [Int64: Int64] = [:]
            var next = 0
            // Sizes repeat (statement texts reused) and exceed what is kept (built each time), and
            // the biggest batch is split into several statements.
            for (n, minute) in [(1, Int64(10)), (3, 10), (1, 11), (3, 11), (300, 12), (1_200, 14), (3, 10)] {
                let rows = (next..<(next + n)).map { Self.row($0, minute: minute + Int64($0 % 2)) }
                next += n
                try await s.insertRequests(rows)
                expected += rows
                for m in Set(rows.map { $0.createdAt / 60_000 }) { marksPerMinute[m, default: 0] += 1 }
            }
            let stored = try await s.ledger(tenantID: nil, from: 0, to: .max)
            #expect(stored.count == expected.count)
            let byID = Dictionary(uniqueKeysWithValues: stored.map { ($0.id, $0) })
            for r in expected { #expect(byID[r.id] == r) }
            // Every batch marked each of its minutes once (inserted with version 1, then incremented).
            let marks = try await s.db.select().columns("bucket_start", "version").from("rollup_dirty").orderBy("bucket_start").all()
                .map { (try $0.decode(column: "bucket_start", as: Int64.self) / 60_000, try $0.decode(column: "version", as: Int64.self)) }
            #expect(marks.map(\.0) == marksPerMinute.keys.sorted())
            #expect(marks.map(\.1) == marksPerMinute.keys.sorted().map { marksPerMinute[$0]! })
            #expect(marks.contains { $0.1 > 1 })
        } catch { await s.shutdown(); throw error }
        await s.shutdown()
    }

    @Test(arguments: TestDatabase.all) func aFailedBatchInsertsNothingOfItsStatement(_ driver: TestDatabase) async throws {
        let s = try await PortabilityTests.migrated(driver)
        do {
            // Rows 5 and 6 have the same shape (one statement).
            try await s.insertRequests([Self.row(5, minute: 1)])
            // The same id again: the statement fails as a whole (primary key), the other row is not kept.
            await #expect(throws: (any Error).self) { try await s.insertRequests([Self.row(6, minute: 1), Self.row(5, minute: 1)]) }
            #expect(try await s.request(id: "r6") == nil)
            #expect(try await s.request(id: "r5") == Self.row(5, minute: 1))
        } catch { await s.shutdown(); throw error }
        await s.shutdown()
    }
}
