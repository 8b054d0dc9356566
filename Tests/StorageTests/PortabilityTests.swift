import Foundation
import SQLKit
import Testing
@testable import Storage
import StorageTesting

/// One schema, two drivers: what could differ between SQLite and PostgreSQL (types, text order,
/// sums, upserts, NUL, concurrency) behaves the same on both.
@Suite struct PortabilityTests {
    static func migrated(_ driver: TestDatabase) async throws -> Storage {
        let s = try await driver.open()
        do { try await s.migrate(at: 1) } catch { await s.shutdown(); throw error }
        return s
    }

    /// In CI a missing or unreachable PostgreSQL is a failure, not a quiet SQLite-only run.
    @Test func postgresIsThereInCI() async throws {
        guard TestDatabase.postgresRequired || TestDatabase.postgresURL != nil else { return }
        #expect(TestDatabase.postgresURL != nil, "CI=true but LLMAAS_TEST_POSTGRES_URL is not set (scripts/test.sh runs scripts/setup-postgres.sh)")
        #expect(TestDatabase.all.contains(.postgres))
        let s = try await TestDatabase.postgres.open()
        #expect(s.driver == .postgres)
        await s.shutdown()
    }

    /// Guards every migration, also those added later: on PostgreSQL no 32-bit integer or float,
    /// no NUMERIC, and every text column compares bytes (collation "C"), as on SQLite.
    @Test(.enabled(if: TestDatabase.postgresURL != nil)) func postgresSchemaUsesThePortableTypes() async throws {
        let s = try await Self.migrated(.postgres)
        let rows = try await s.db.raw("""
            SELECT table_name, column_name, data_type, collation_name FROM information_schema.columns
            WHERE table_schema = current_schema() ORDER BY table_name, column_name
            """).all()
        #expect(rows.count > 100)
        for row in rows {
            let table = try row.decode(column: "table_name", as: String.self)
            let column = try row.decode(column: "column_name", as: String.self)
            let type = try row.decode(column: "data_type", as: String.self)
            let collation = try row.decode(column: "collation_name", as: String?.self)
            #expect(["bigint", "text", "double precision"].contains(type), "\(table).\(column) is \(type): use .int/.bigint, .real or .text")
            if type == "text" { #expect(collation == "C", "\(table).\(column) has collation \(collation ?? "default")") }
        }
        await s.shutdown()
    }

    @Test(arguments: TestDatabase.all) func everyRecordRoundTripsExactly(_ driver: TestDatabase) async throws {
        let s = try await Self.migrated(driver)
        let big = 3_000_000_000  // beyond 32 bits, in a column declared .int
        let tenant = TenantRecord(id: "t1", name: "Acme ünï", tier: "tier-2", createdAt: 1_900_000_000_123, disabledAt: nil,
                                  rotationPeriodDays: 30, gracePeriodDays: 7, webhookURL: "https://x.example/h?a=1&b=2",
                                  shieldMode: "monitor", experimentalOptIn: 1, storeBodies: 1, storeRetentionDays: big)
        try await s.insertTenant(tenant)
        #expect(try await s.tenant(id: "t1") == tenant)
        let key = APIKeyRecord(id: "k1", tenantID: "t1", name: "ci", secretHash: String(repeating: "ab", count: 32), createdAt: 2,
                               expiresAt: Int64.max / 3, revokedAt: nil, grants: #"{"models":["qwen3:*"]}"#, lastUsedAt: 5,
                               successorID: "k2", predecessorID: nil, rotatedAt: 6, sealedSecret: "c2VhbGVk")
        try await s.insertKey(key)
        #expect(try await s.key(id: "k1") == key)
        let token = AdminTokenRecord(id: "a1", tokenHash: "h", name: "ops", tenantID: nil, createdAt: 3)
        try await s.insertAdminToken(token)
        #expect(try await s.adminToken(id: "a1") == token)
        let row = RequestRecord(id: "r1", createdAt: 10, tenantID: "t1", keyID: "k1", model: "m", endpoint: "chat.completions", status: 200,
                                outcome: "ok", errorCode: nil, promptTokens: big, completionTokens: 2, latencyMs: 3, ttftMs: 1, backend: "b",
                                modelRequested: "alias", systemTokens: 1, reasoningTokens: 0, costNano: 4_000_000_000_000,
                                energyMicroWh: 9, estimated: 1)
        try await s.insertRequests([row])
        #expect(try await s.request(id: "r1") == row)
        // Doubles stay doubles (PostgreSQL's REAL would be 32-bit).
        let rule = AlertRuleRecord(id: "ar1", tenantID: "t1", name: "p95", kind: "latency_p95", model: "m", backend: nil,
                                   threshold: 0.1 + 0.2, resolveThreshold: 1e-7, forPeriods: 3, createdAt: 4)
        try await s.insertAlertRule(rule)
        #expect(try await s.alertRule(id: "ar1") == rule)
        var incident = IncidentRecord(id: "i1", ruleID: "ar1", tenantID: nil, kind: "latency_p95", subject: "model:m", model: "m",
                                      backend: nil, threshold: 0.95, value: 1234.5678901234, peak: nil, message: "slow", startedAt: 7)
        try await s.insertIncident(incident)
        incident.resolvedAt = 9; incident.resolvedValue = 0.3333333333333333
        try await s.updateIncident(incident)
        #expect(try await s.incident(id: "i1") == incident)
        #expect(try await s.activeIncidents().isEmpty)
        let dataKey = DataKeyRecord(id: "dk1", tenantID: "t1", period: "2026-12-05", wrappedKey: "d3JhcHBlZA==", createdAt: 8)
        try await s.insertDataKey(dataKey)
        #expect(try await s.dataKey(id: "dk1") == dataKey)
        let bodyRow = RequestBodyRecord(requestID: "r1", tenantID: "t1", keyID: "dk1", period: "2026-12-05", createdAt: 10, prompt: "cA==",
                                        response: nil, responseFormat: "json", promptBytes: 1, responseBytes: 0, truncated: 2)
        try await s.insertRequestBodies([bodyRow, bodyRow])  // a repeat is ignored
        #expect(try await s.requestBody(requestID: "r1") == bodyRow)
        await s.shutdown()
    }

    /// Sums are 64-bit integers on both (PostgreSQL's SUM(bigint) is NUMERIC).
    @Test(arguments: TestDatabase.all) func sumsAreIntegersBeyond32Bits(_ driver: TestDatabase) async throws {
        let s = try await Self.migrated(driver)
        try await s.insertTenant(TenantRecord(id: "t1", name: "acme", createdAt: 1))
        #expect(try await s.spend(tenantID: "t1", from: 0, to: 100) == 0)
        #expect(try await s.creditTotal(tenantID: "t1") == 0)
        try await s.insertRequests((0..<3).map {
            RequestRecord(id: "r\($0)", createdAt: Int64($0), tenantID: "t1", keyID: "k", model: "m", endpoint: "chat.completions",
                          status: 200, outcome: "ok", latencyMs: 1, costNano: 3_000_000_000_000_000)
        })
        #expect(try await s.spend(tenantID: "t1", from: 0, to: 100) == 9_000_000_000_000_000)
        try await s.addCredit(id: "c1", tenantID: "t1", amountNano: 5_000_000_000_000, at: 1, note: nil)
        try await s.addCredit(id: "c2", tenantID: "t1", amountNano: -1, at: 2, note: "refund")
        #expect(try await s.creditTotal(tenantID: "t1") == 4_999_999_999_999)
        await s.shutdown()
    }

    /// Text compares as bytes on both drivers: the request browser's keyset cursor pages through
    /// ids that differ in case, punctuation and non-ASCII without a row lost or repeated.
    @Test(arguments: TestDatabase.all) func textOrderIsByteOrderOnBothDrivers(_ driver: TestDatabase) async throws {
        let s = try await Self.migrated(driver)
        let ids = ["a", "B", "_x", "Z", "é", "a-b", "ab", "A", "~", "0", "É", "a b"]
        try await s.insertRequests(ids.map {
            RequestRecord(id: $0, createdAt: 5, tenantID: nil, keyID: nil, model: "m", endpoint: "e", status: 200, outcome: "ok", latencyMs: 1)
        })
        let expected = ids.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }.reversed().map { $0 }
        var seen: [String] = []
        var after: (Int64, String)?
        while true {
            let page = try await s.requestRows(RequestFilter(after: after.map { (createdAt: $0.0, id: $0.1) }, limit: 5))
            if page.isEmpty { break }
            seen += page.map(\.id)
            after = (page.last!.createdAt, page.last!.id)
        }
        #expect(seen == expected)
        await s.shutdown()
    }

    /// PostgreSQL text cannot hold NUL: a client's NUL must not wedge the ledger's batch. It is
    /// stored as U+FFFD there (SQLite stores it, and SQLiteNIO reads the text up to it).
    @Test(arguments: TestDatabase.all) func nulInTextIsStored(_ driver: TestDatabase) async throws {
        let s = try await Self.migrated(driver)
        try await s.insertRequests([RequestRecord(id: "r1", createdAt: 1, tenantID: nil, keyID: nil, model: "bad\u{0}model", endpoint: "e",
                                                  status: 404, outcome: "rejected", latencyMs: 1)])
        let model = try #require(try await s.request(id: "r1")).model
        #expect(driver == .postgres ? model == "bad\u{FFFD}model" : model.hasPrefix("bad"))
        await s.shutdown()
    }

    /// Of many concurrent claims of one budget notice, exactly one wins (the insert's RETURNING).
    @Test(arguments: TestDatabase.all) func aBudgetNoticeIsClaimedOnceUnderConcurrency(_ driver: TestDatabase) async throws {
        let s = try await Self.migrated(driver)
        try await s.insertTenant(TenantRecord(id: "t1", name: "acme", createdAt: 1))
        let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<16 { group.addTask { try await s.recordBudgetNotice(tenantID: "t1", month: "2026-12", threshold: 80, at: Int64(i)) } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(wins == 1)
        await s.shutdown()
    }

    /// Replicas starting together on one PostgreSQL database migrate it once (advisory lock).
    @Test(.enabled(if: TestDatabase.postgresURL != nil)) func replicasMigrateTogetherOnce() async throws {
        let url = try #require(TestDatabase.postgresURL)
        var settings = TestDatabase.scratch(url)
        let owner = try await Storage.openPostgres(settings)
        settings.dropSchemaAtShutdown = false
        var others: [Storage] = []
        for _ in 0..<3 { others.append(try await Storage.openPostgres(settings)) }
        let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
            for s in others { group.addTask { try await s.migrate(at: 1) } }
            return try await group.reduce(into: [Int]()) { $0 += $1 }
        }
        #expect(applied.sorted() == Schema.migrations.map(\.version))
        #expect(try await owner.schemaVersion() == Schema.migrations.last?.version)
        for s in others { await s.shutdown() }
        await owner.shutdown()
    }

    /// A bad URL and an unreachable server are told apart, and the password never shows.
    @Test func postgresErrorsNameTheProblemWithoutThePassword() async throws {
        for bad in ["mysql://u:p@h/db", "postgres://u:p@/db", "postgres://h:5432/db", "postgres://u:hunter2@h:5432", "postgres://u:p@h/db?x=1",
                    "postgres://u:p@h:99999/db", "not a url"] {
            #expect(throws: StorageError.self) { try PostgresSettings.validate(url: bad) }
        }
        // Port 1 on loopback: nothing listens there.
        do {
            _ = try await Storage.openPostgres(PostgresSettings(url: "postgres://llmaas:hunter2@127.0.0.1:1/llmaas"))
            Issue.record("connected to port 1")
        } catch let e as StorageError {
            guard case .unreachable(let message) = e else { Issue.record("\(e)"); return }
            #expect(message.contains("127.0.0.1:1/llmaas") && !message.contains("hunter2"))
        }
        #expect(PostgresSettings.redacted("postgres://llmaas:hunter2@h:5432/db") == "postgres://llmaas:***@h:5432/db")
    }
}
