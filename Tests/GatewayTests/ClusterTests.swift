import Clocks
import Foundation
import Logging
import Quotas
import Storage
import StorageTesting
import Testing
@testable import Gateway

/// Replicas' coordinators over one store (the embedded driver here, one process; the same code
/// runs over PostgreSQL from three processes in tests/e2e/test_replicas.py).
@Suite("cluster coordination")
struct ClusterTests {
    static let t0: Int64 = 1_764_000_000_000

    func coordinators(_ n: Int, storage: Storage, clock: ManualClock, config: (inout ClusterConfig) -> Void = { _ in }) -> [ClusterCoordinator] {
        (1...n).map { i in
            var c = ClusterConfig(replicaID: "r\(i)")
            config(&c)
            return ClusterCoordinator(config: c, storage: storage, now: { clock.now() }, logger: Logger(label: "cluster-test"))
        }
    }

    func open(_ driver: TestDatabase = .sqlite) async throws -> Storage {
        let s = try await driver.open()
        try await s.migrate(at: Self.t0)
        return s
    }

    static func limits(rpm: Int = 1_000_000, hour: Int = 1_000_000_000, concurrent: Int = 1_000_000) -> Limits {
        Limits(requestsPerMinute: rpm, outputTokensPerHour: hour, outputTokensPerDay: 1_000_000_000, concurrentRequests: concurrent)
    }

    @Test(arguments: TestDatabase.all) func threeReplicasAdmitExactlyTheLimitOfThreeHundredConcurrentRequests(_ driver: TestDatabase) async throws {
        let storage = try await open(driver)
        let clock = ManualClock(nowMs: Self.t0)
        let replicas = coordinators(3, storage: storage, clock: clock)
        let l = Self.limits(rpm: 50)
        let admitted = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<300 {
                group.addTask {
                    if case .success = try await replicas[i % 3].admit([("tenant:t", l)], expectedOutput: 4) { return true }
                    return false
                }
            }
            var n = 0
            for try await ok in group where ok { n += 1 }
            return n
        }
        #expect(admitted == 50)
        let first = SharedKind.requests.firstBucket(Self.t0)
        #expect(try await storage.chargedSlices(subject: "tenant:t", kind: "requests", firstBucket: first, now: Self.t0) == 50)
        await storage.shutdown()
    }

    @Test func farFromTheLimitMostAdmissionsNeedNoStoreTrip() async throws {
        let storage = try await open()
        let clock = ManualClock(nowMs: Self.t0)
        let r = coordinators(1, storage: storage, clock: clock)[0]
        let l = Self.limits(rpm: 100_000, concurrent: 1_000)
        for _ in 0..<200 {
            guard case .success(let ticket) = try await r.admit([("tenant:t", l)], expectedOutput: 10) else { Issue.record("refused"); return }
            r.settle(ticket, actualOutput: 5)
        }
        #expect(r.stats.local + r.stats.trips == 200)
        #expect(r.stats.trips <= 5, "\(r.stats.trips) store trips for 200 requests")
        await storage.shutdown()
    }

    @Test(arguments: TestDatabase.all) func aSilentReplicasSlotsReturnAfterItsLeaseAndALeavingOneReturnsAtOnce(_ driver: TestDatabase) async throws {
        let storage = try await open(driver)
        let clock = ManualClock(nowMs: Self.t0)
        let rs = coordinators(3, storage: storage, clock: clock) { $0.sliceDivisor = 0; $0.leaseMs = 3_000 }
        let l = Self.limits(concurrent: 4)
        for _ in 0..<3 { guard case .success = try await rs[0].admit([("tenant:t", l)], expectedOutput: 0) else { Issue.record("refused"); return } }
        guard case .success(let held) = try await rs[2].admit([("tenant:t", l)], expectedOutput: 0) else { Issue.record("refused"); return }
        guard case .failure(let refusal) = try await rs[1].admit([("tenant:t", l)], expectedOutput: 0) else { Issue.record("5th admitted"); return }
        #expect(refusal.limit == .concurrentRequests)
        // r1 goes silent (killed): r2 and r3 keep beating; after the lease r1's 3 slots are free.
        clock.advance(byMs: 1_000); await rs[1].beat(); await rs[2].beat()
        clock.advance(byMs: 1_000); await rs[1].beat(); await rs[2].beat()
        clock.advance(byMs: 1_001); await rs[1].beat(); await rs[2].beat()
        for _ in 0..<3 { guard case .success = try await rs[1].admit([("tenant:t", l)], expectedOutput: 0) else { Issue.record("slots not back"); return } }
        guard case .failure = try await rs[1].admit([("tenant:t", l)], expectedOutput: 0) else { Issue.record("over the limit"); return }
        // r3 leaves (drained): its slot is back at once.
        rs[2].settle(held, actualOutput: 0)
        await rs[2].leave()
        try await waitFor { try await storage.chargedSlices(subject: "tenant:t", kind: "concurrent", firstBucket: nil, now: clock.now()) == 3 }
        await storage.shutdown()
    }

    @Test func aRefusalByTheKeyGivesTheTenantsUnitsBack() async throws {
        let storage = try await open()
        let clock = ManualClock(nowMs: Self.t0)
        let r = coordinators(1, storage: storage, clock: clock) { $0.sliceDivisor = 0 }[0]
        let tenant = Self.limits(rpm: 10), key = Self.limits(rpm: 1)
        guard case .success = try await r.admit([("tenant:t", tenant), ("key:k", key)], expectedOutput: 0) else { Issue.record("refused"); return }
        guard case .failure(let refusal) = try await r.admit([("tenant:t", tenant), ("key:k", key)], expectedOutput: 0) else { Issue.record("admitted"); return }
        #expect(refusal.subject == "key:k")
        let first = SharedKind.requests.firstBucket(Self.t0)
        try await waitFor { try await storage.chargedSlices(subject: "tenant:t", kind: "requests", firstBucket: first, now: Self.t0) == 1 }
        await storage.shutdown()
    }

    @Test(arguments: TestDatabase.all) func threeReplicasNeverHoldMoreThanTheCreditAndReleaseAfterTheLedger(_ driver: TestDatabase) async throws {
        let storage = try await open(driver)
        try await storage.insertTenant(TenantRecord(id: "t1", name: "acme", createdAt: 1))
        try await storage.addCredit(id: "c1", tenantID: "t1", amountNano: 1_000, at: Self.t0, note: nil)
        let clock = ManualClock(nowMs: Self.t0)
        let replicas = coordinators(3, storage: storage, clock: clock)
        // 90 concurrent requests whose worst case is 100 n€ against a credit of 1 000 n€: 10 held.
        let held = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<90 {
                group.addTask {
                    if case .success = try await replicas[i % 3].holdMoney(tenantID: "t1", need: 100, prepaid: true, cap: nil) { return true }
                    return false
                }
            }
            var n = 0
            for try await ok in group where ok { n += 1 }
            return n
        }
        #expect(held == 10)
        #expect(try await storage.chargedSlices(subject: "tenant:t1", kind: "money", firstBucket: nil, now: Self.t0) == 1_000)
        // Three of them cost 60 n€ each: ledger rows first, then their holds go back; 1 000 − 180
        // committed − 700 still held leaves 120: one more request of 100, not two.
        try await storage.insertRequests((0..<3).map {
            RequestRecord(id: "r\($0)", createdAt: Self.t0, tenantID: "t1", keyID: "k", model: "m", endpoint: "chat.completions",
                          status: 200, outcome: "ok", latencyMs: 1, costNano: 60)
        })
        for i in 0..<3 { replicas[i].releaseMoney(tenantID: "t1", amount: 100) }
        try await waitFor { try await storage.chargedSlices(subject: "tenant:t1", kind: "money", firstBucket: nil, now: Self.t0) == 700 }
        guard case .success = try await replicas[1].holdMoney(tenantID: "t1", need: 100, prepaid: true, cap: nil) else { Issue.record("refused"); return }
        guard case .failure(let budget) = try await replicas[2].holdMoney(tenantID: "t1", need: 100, prepaid: true, cap: nil) else {
            Issue.record("held beyond the credit"); return
        }
        #expect(budget.creditLeft == 820)
        #expect(budget.held == 800)
        // A monthly cap bounds the same way (the smaller of the two wins).
        guard case .failure(let capped) = try await replicas[0].holdMoney(tenantID: "t1", need: 1, prepaid: false, cap: 900) else {
            Issue.record("held beyond the cap"); return
        }
        #expect(capped.capLeft == 720)
        await storage.shutdown()
    }

    @Test func farFromTheCreditMostHoldsNeedNoStoreTripAndAKilledReplicasHoldsExpire() async throws {
        let storage = try await open()
        try await storage.insertTenant(TenantRecord(id: "t1", name: "acme", createdAt: 1))
        try await storage.addCredit(id: "c1", tenantID: "t1", amountNano: 100_000_000, at: Self.t0, note: nil)
        let clock = ManualClock(nowMs: Self.t0)
        let rs = coordinators(2, storage: storage, clock: clock) { $0.leaseMs = 3_000 }
        for _ in 0..<200 {
            guard case .success = try await rs[0].holdMoney(tenantID: "t1", need: 1_000, prepaid: true, cap: nil) else { Issue.record("refused"); return }
        }
        #expect(rs[0].stats.trips <= 10, "\(rs[0].stats.trips) store trips for 200 holds")
        // r1 goes silent (killed) holding 200 requests' worst cases and its spare: r2 beats on;
        // after the lease r1's holds no longer count.
        let heldBefore = try await storage.chargedSlices(subject: "tenant:t1", kind: "money", firstBucket: nil, now: clock.now())
        #expect(heldBefore >= 200_000)
        clock.advance(byMs: 3_001); await rs[1].beat()
        #expect(try await storage.chargedSlices(subject: "tenant:t1", kind: "money", firstBucket: nil, now: clock.now()) == 0)
        await storage.shutdown()
    }

    /// Returns are sent off the request path: poll (no clock involved, a bounded number of yields).
    func waitFor(_ condition: () async throws -> Bool) async throws {
        for _ in 0..<10_000 {
            if try await condition() { return }
            await Task.yield()
        }
        Issue.record("condition not reached")
    }

    @Test(arguments: [
        ("cluster: { replica_id: \"\" }", "cluster.replica_id"),
        ("cluster: { lease_ms: 1000, heartbeat_ms: 500 }", "cluster.heartbeat_ms"),
        ("cluster: { slice_divisor: -1 }", "cluster.slice_divisor"),
        ("cluster: { headroom: 0 }", "cluster.headroom"),
        ("cluster: { leases: 3 }", "cluster.leases"),
    ])
    func badClusterConfigNamesTheField(_ yaml: String, _ field: String) {
        do {
            _ = try GatewayConfig.parse(yaml)
            Issue.record("accepted: \(yaml)")
        } catch let e as ConfigError {
            #expect(e.field == field)
        } catch { Issue.record("\(error)") }
    }

    @Test func clusterConfigDefaultsAndReplicaIDFromTheEnvironment() throws {
        let yaml = "database: { url: \"postgres://u@127.0.0.1:5432/d\" }\ncluster: { slice_divisor: 0, key_cache_ms: 5000 }"
        let path = NSTemporaryDirectory() + "cluster-\(UUID().uuidString).yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let c = try GatewayConfig.load(path: path, environment: ["LLMAAS_REPLICA_ID": "pod-7"])
        #expect(c.cluster?.replicaID == "pod-7")
        #expect(c.cluster?.sliceDivisor == 0)
        #expect(c.cluster?.keyCacheMs == 1_000)  // never more than the promised second
        #expect(c.cluster?.leaseMs == 3_000)
        #expect(throws: ConfigError.self) { try GatewayConfig.load(path: nil, environment: ["LLMAAS_REPLICA_ID": "x"]) }
        // Replicas share limits through the database: without PostgreSQL, `cluster:` is refused.
        try "cluster: {}".write(toFile: path, atomically: true, encoding: .utf8)
        do { _ = try GatewayConfig.load(path: path, environment: [:]); Issue.record("cluster without database accepted") } catch let e as ConfigError {
            #expect(e.field == "cluster")
        }
        #expect(try GatewayConfig.parse("listen: 127.0.0.1:8080").cluster == nil)
    }
}
