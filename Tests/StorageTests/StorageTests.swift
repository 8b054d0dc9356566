import Testing
@testable import Storage
import StorageTesting

@Suite struct StorageTests {
    @Test(arguments: TestDatabase.all) func migratesOnceAndStoresRows(_ driver: TestDatabase) async throws {
        let storage = try await driver.open()
        #expect(try await storage.migrate(at: 1_764_000_000_000) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        #expect(try await storage.migrate(at: 1_764_000_000_000) == [])
        #expect(try await storage.schemaVersion() == 10)

        try await storage.insertTenant(TenantRecord(id: "t1", name: "acme", createdAt: 1))
        #expect(try await storage.tenant(named: "acme")?.id == "t1")
        #expect(try await storage.tenantCount() == 1)

        try await storage.insertKey(APIKeyRecord(id: "k1", tenantID: "t1", name: "ci", secretHash: "ab", createdAt: 2))
        #expect(try await storage.key(id: "k1")?.secretHash == "ab")

        let rows = (0..<2500).map { i in
            RequestRecord(id: "r\(i)", createdAt: Int64(i), tenantID: "t1", keyID: i % 2 == 0 ? "k1" : nil, model: "m",
                          endpoint: "chat.completions", status: 200, outcome: "ok", promptTokens: i, completionTokens: 1,
                          latencyMs: 3, ttftMs: i % 3 == 0 ? nil : 1, backend: "b")
        }
        try await storage.insertRequests(rows)
        #expect(try await storage.request(id: "r2499") == rows[2499])
        #expect(try await storage.request(id: "r3") == rows[3])
        #expect(try await storage.recentRequests(limit: 5).count == 5)
        await storage.shutdown()
    }

    @Test(arguments: TestDatabase.all) func foreignKeysHold(_ driver: TestDatabase) async throws {
        let storage = try await driver.open()
        try await storage.migrate(at: 1_764_000_000_000)
        await #expect(throws: (any Error).self) {
            try await storage.insertKey(APIKeyRecord(id: "k", tenantID: "missing", name: "x", secretHash: "h", createdAt: 0))
        }
        await storage.shutdown()
    }
}

@Suite struct LedgerStorageTests {
    @Test(arguments: TestDatabase.all) func lifecycleNoticesAreClaimedOnce(_ driver: TestDatabase) async throws {
        let storage = try await driver.open()
        try await storage.migrate(at: 1_764_000_000_000)
        try await storage.insertTenant(TenantRecord(id: "t1", name: "acme", createdAt: 1))
        let first = try await storage.claimLifecycleNotice(tenantID: "t1", model: "m", phase: "sunset", at: 5, phaseStarted: "2026-10-02",
                                                           retiresAt: "2027-03-31", payload: "{}")
        let again = try await storage.claimLifecycleNotice(tenantID: "t1", model: "m", phase: "sunset", at: 6, phaseStarted: "2026-10-02",
                                                           retiresAt: "2027-03-31", payload: "{}")
        let nextPhase = try await storage.claimLifecycleNotice(tenantID: "t1", model: "m", phase: "deprecated", at: 7, phaseStarted: "2026-12-31",
                                                               retiresAt: "2027-03-31", payload: "{}")
        #expect(first && !again && nextPhase)
        #expect(try await storage.lifecycleNoticeKeys().count == 2)
        await storage.shutdown()
    }

    @Test(arguments: TestDatabase.all) func budgetNoticesOncePerMonthAndSpendSums(_ driver: TestDatabase) async throws {
        let storage = try await driver.open()
        try await storage.migrate(at: 1_764_000_000_000)
        try await storage.insertTenant(TenantRecord(id: "t1", name: "acme", createdAt: 1))
        #expect(try await storage.recordBudgetNotice(tenantID: "t1", month: "2026-11", threshold: 80, at: 1))
        #expect(!(try await storage.recordBudgetNotice(tenantID: "t1", month: "2026-11", threshold: 80, at: 2)))
        #expect(try await storage.recordBudgetNotice(tenantID: "t1", month: "2026-12", threshold: 80, at: 3))
        try await storage.addCredit(id: "c1", tenantID: "t1", amountNano: 500, at: 1, note: nil)
        try await storage.insertRequests((0..<10).map { i in
            RequestRecord(id: "r\(i)", createdAt: Int64(i * 10), tenantID: "t1", keyID: "k", model: "m", endpoint: "chat.completions",
                          status: 200, outcome: "ok", latencyMs: 1, costNano: 7)
        })
        #expect(try await storage.spend(tenantID: "t1", from: 0, to: 50) == 35)
        #expect(try await storage.creditTotal(tenantID: "t1") == 500)
        #expect(try await storage.modelUsage(since: 0).map(\.model) == ["m"])
        await storage.shutdown()
    }
}
