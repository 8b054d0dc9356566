import Foundation
import Testing
@testable import Storage
import StorageTesting

/// The shared-limit tables (migration 7) on the embedded driver; the same statements run on
/// PostgreSQL (there under an advisory lock per subject), where tests/e2e/test_replicas.py
/// drives them from three processes.
@Suite("cluster storage")
struct ClusterStorageTests {
    let now: Int64 = 1_764_000_000_000

    func open(_ driver: TestDatabase) async throws -> Storage {
        let s = try await driver.open()
        try await s.migrate(at: now)
        return s
    }

    /// A decision like SharedLimits.decide: grant `want` when it fits under `limit`, else refuse.
    static func fit(limit: Int64, want: Int64) -> @Sendable ([String: Int64]) -> ([Int64]?, Bool) {
        { charged in (charged["requests"] ?? 0) + want <= limit ? ([want], true) : (nil, false) }
    }

    @Test(arguments: TestDatabase.all) func concurrentGrantsNeverExceedTheLimit(_ driver: TestDatabase) async throws {
        let s = try await open(driver)
        let req = SliceRequest(kind: "requests", bucket: 100, firstBucket: 40, expiresAt: now + 60_000)
        let granted = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<120 {
                group.addTask {
                    try await s.acquireSlices(subject: "tenant:a", replica: "r\(i % 3)", [req], now: now, decide: Self.fit(limit: 50, want: 1))
                }
            }
            var n = 0
            for try await ok in group where ok { n += 1 }
            return n
        }
        #expect(granted == 50)
        #expect(try await s.chargedSlices(subject: "tenant:a", kind: "requests", firstBucket: 40, now: now) == 50)
        // Another subject is independent; an older bucket leaves the window.
        #expect(try await s.chargedSlices(subject: "tenant:b", kind: "requests", firstBucket: 40, now: now) == 0)
        #expect(try await s.chargedSlices(subject: "tenant:a", kind: "requests", firstBucket: 101, now: now) == 0)
        await s.shutdown()
    }

    @Test(arguments: TestDatabase.all) func returnedUnitsAreGrantedAgainAndWindowsArePurgedWhenPast(_ driver: TestDatabase) async throws {
        let s = try await open(driver)
        let req = SliceRequest(kind: "requests", bucket: 7, firstBucket: 0, expiresAt: now + 1_000)
        #expect(try await s.acquireSlices(subject: "t", replica: "a", [req], now: now, decide: Self.fit(limit: 10, want: 10)))
        #expect(try await !s.acquireSlices(subject: "t", replica: "b", [req], now: now, decide: Self.fit(limit: 10, want: 1)))
        try await s.adjustSlices(replica: "a", [SliceDelta(subject: "t", kind: "requests", bucket: 7, delta: -4, expiresAt: now + 1_000)], leaseKinds: [])
        #expect(try await s.acquireSlices(subject: "t", replica: "b", [req], now: now, decide: Self.fit(limit: 10, want: 4)))
        #expect(try await s.chargedSlices(subject: "t", kind: "requests", firstBucket: 0, now: now) == 10)
        #expect(try await s.purgeSlices(now: now + 999) == 0)
        #expect(try await s.purgeSlices(now: now + 1_000) == 2)
        #expect(try await s.chargedSlices(subject: "t", kind: "requests", firstBucket: 0, now: now) == 0)
        await s.shutdown()
    }

    @Test(arguments: TestDatabase.all) func leasesCountUntilTheyExpireAndHeartbeatsRenewThem(_ driver: TestDatabase) async throws {
        let s = try await open(driver)
        let lease = SliceRequest(kind: "concurrent", bucket: 0, firstBucket: nil, expiresAt: now + 3_000)
        let take: @Sendable ([String: Int64]) -> ([Int64]?, Bool) = { c in (c["concurrent"] ?? 0) + 2 <= 4 ? ([2], true) : (nil, false) }
        #expect(try await s.acquireSlices(subject: "t", replica: "dead", [lease], now: now, decide: take))
        #expect(try await s.acquireSlices(subject: "t", replica: "live", [lease], now: now, decide: take))
        #expect(try await !s.acquireSlices(subject: "t", replica: "live", [lease], now: now + 1, decide: take))
        try await s.renewLeases(replica: "live", kinds: ["concurrent"], until: now + 10_000)
        // "dead" stopped renewing: after its expiry its slots are free again, "live" keeps its own.
        #expect(try await s.chargedSlices(subject: "t", kind: "concurrent", firstBucket: nil, now: now + 3_000) == 2)
        let later = SliceRequest(kind: "concurrent", bucket: 0, firstBucket: nil, expiresAt: now + 6_000)
        #expect(try await s.acquireSlices(subject: "t", replica: "other", [later], now: now + 3_000, decide: take))
        // Returning a lease never goes below zero.
        try await s.adjustSlices(replica: "live", [SliceDelta(subject: "t", kind: "concurrent", bucket: 0, delta: -5, expiresAt: .max)], leaseKinds: ["concurrent"])
        #expect(try await s.chargedSlices(subject: "t", kind: "concurrent", firstBucket: nil, now: now + 3_000) == 2)
        try await s.dropLeases(replica: "other", kinds: ["concurrent"])
        #expect(try await s.chargedSlices(subject: "t", kind: "concurrent", firstBucket: nil, now: now + 3_000) == 0)
        await s.shutdown()
    }

    @Test(arguments: TestDatabase.all) func repetitionCountsAcrossCallersAndResetsOnADifferentPromptOrAge(_ driver: TestDatabase) async throws {
        let s = try await open(driver)
        var counts: [Int] = []
        for i in 0..<3 { counts.append(try await s.observeRepetition(keyID: "k", digest: "d1", now: now + Int64(i), maxAgeMs: 60_000)) }
        #expect(counts == [1, 2, 3])
        #expect(try await s.observeRepetition(keyID: "other", digest: "d1", now: now, maxAgeMs: 60_000) == 1)
        #expect(try await s.observeRepetition(keyID: "k", digest: "d2", now: now + 5, maxAgeMs: 60_000) == 1)
        #expect(try await s.observeRepetition(keyID: "k", digest: "d2", now: now + 100_000, maxAgeMs: 60_000) == 1)
        try await s.purgeRepetitions(before: now + 50_000)
        #expect(try await s.observeRepetition(keyID: "other", digest: "d1", now: now + 1, maxAgeMs: 60_000) == 1)
        await s.shutdown()
    }

    @Test(arguments: TestDatabase.all) func aBudgetNoticeIsClaimedOnceUnderConcurrency(_ driver: TestDatabase) async throws {
        let s = try await open(driver)
        try await s.insertTenant(TenantRecord(id: "ten_1", name: "t", tier: "tier-1", createdAt: now))
        let told = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<6 { group.addTask { try await s.recordBudgetNotice(tenantID: "ten_1", month: "2026-12", threshold: 80, at: now) } }
            var n = 0
            for try await t in group where t { n += 1 }
            return n
        }
        #expect(told == 1)
        await s.shutdown()
    }

    @Test(arguments: TestDatabase.all) func heartbeatsListLiveReplicas(_ driver: TestDatabase) async throws {
        let s = try await open(driver)
        try await s.heartbeat(replica: "a", startedAt: now, now: now, until: now + 3_000, state: "serving")
        try await s.heartbeat(replica: "b", startedAt: now, now: now, until: now + 1_000, state: "serving")
        try await s.heartbeat(replica: "a", startedAt: now, now: now + 500, until: now + 3_500, state: "draining")
        let live = try await s.liveReplicas(now: now + 2_000)
        #expect(live.map(\.id) == ["a"])
        #expect(live.first?.state == "draining")
        await s.shutdown()
    }
}
