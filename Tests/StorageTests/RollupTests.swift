import Foundation
import SQLKit
import Testing
@testable import Storage
import StorageTesting

/// Rollups: the histogram's math, merging, and the pass's idempotence, late rows and retention.
@Suite struct RollupTests {
    static let t0: Int64 = 1_900_000_020_000 - (1_900_000_020_000 % 3_600_000)  // an hour boundary
    static let minute: Int64 = 60_000

    static func row(_ id: String, at t: Int64, tenant: String = "t1", model: String = "m", key: String? = "k1", status: Int = 200,
                    latency: Int = 100, ttft: Int? = 20, prompt: Int = 10, completion: Int = 40) -> RequestRecord {
        RequestRecord(id: id, createdAt: t, tenantID: tenant, keyID: key, model: model, endpoint: "chat.completions", status: status,
                      outcome: status == 200 ? "ok" : "upstream_error", promptTokens: prompt, completionTokens: completion, latencyMs: latency,
                      ttftMs: ttft, backend: "b1", systemTokens: 3, reasoningTokens: 5, costNano: 1000, energyMicroWh: 7)
    }

    static func storage(_ driver: TestDatabase) async throws -> Storage {
        let s = try await driver.open()
        try await s.migrate(at: 1)
        try await s.insertTenant(TenantRecord(id: "t1", name: "acme", createdAt: 1))
        try await s.insertTenant(TenantRecord(id: "t2", name: "beta", createdAt: 1))
        return s
    }

    // MARK: Histogram

    @Test func bucketsAreLogScaleAndContiguous() {
        #expect(LatencyHistogram.bucket(0) == 0)
        #expect(LatencyHistogram.bucket(1) == 0)
        #expect(LatencyHistogram.bucket(2) == 4)  // 2^(4/4)
        #expect(LatencyHistogram.bucket(1000) == 40)  // 2^9.75 = 861 < 1000 ≤ 2^10 = 1024
        #expect(LatencyHistogram.bucket(1e12) == LatencyHistogram.bucketCount - 1)
        for i in 1..<(LatencyHistogram.bucketCount - 1) {
            let (lo, hi) = LatencyHistogram.bounds(i)
            #expect(LatencyHistogram.bounds(i + 1).lower == hi)
            #expect(LatencyHistogram.bucket(hi) == i)
            #expect(LatencyHistogram.bucket(lo * 1.0001) == i)
        }
    }

    @Test func percentilesInterpolateInsideTheirBucket() throws {
        var h = LatencyHistogram()
        #expect(h.percentile(0.5) == nil)
        for v in 1...100 { h.record(Double(v)) }
        #expect(h.total == 100)
        // Each percentile lies within one bucket (≈ 19 %) of the exact value.
        for (q, exact) in [(0.5, 50.0), (0.95, 95.0), (0.99, 99.0)] {
            let p = try #require(h.percentile(q))
            #expect(abs(p - exact) / exact < 0.19, "p\(q) = \(p), exact \(exact)")
        }
        // One value: every percentile is inside its bucket.
        var one = LatencyHistogram()
        one.record(500)
        let (lo, hi) = LatencyHistogram.bounds(LatencyHistogram.bucket(500))
        #expect(try #require(one.percentile(0.99)) <= hi && one.percentile(0.01)! > lo)
        // Exact for the first bucket's uniform interpolation: 4 values in [0, 1] → p50 = 0.5.
        var zeros = LatencyHistogram()
        zeros.record(0, count: 4)
        #expect(zeros.percentile(0.5) == 0.5)
    }

    @Test func mergingEqualsRecordingEverything() {
        var a = LatencyHistogram(), b = LatencyHistogram(), all = LatencyHistogram()
        for v in stride(from: 3.0, to: 5000, by: 7.3) { a.record(v); all.record(v) }
        for v in stride(from: 900.0, to: 90000, by: 313) { b.record(v); all.record(v) }
        var merged = a
        merged.merge(b)
        #expect(merged == all)
        #expect(LatencyHistogram.merged([a, b]) == all)
        #expect(merged.percentile(0.95) == all.percentile(0.95))
        #expect(LatencyHistogram(encoded: all.encoded) == all)
        #expect(LatencyHistogram(encoded: "x,3:-1,999:2,4:2").counts == [4: 2])  // junk ignored
    }

    @Test func statsCountErrorsTokensAndThroughput() throws {
        var s = RollupStats()
        s.add(Self.row("a", at: 0, latency: 1020, ttft: 20, completion: 50))   // 50 tokens in 1000 ms
        s.add(Self.row("b", at: 0, status: 429, latency: 5, ttft: nil, completion: 0))
        s.add(Self.row("c", at: 0, status: 502, latency: 30, ttft: nil, completion: 0))
        s.add(Self.row("d", at: 0, latency: 2000, ttft: nil, completion: 150))  // no TTFT: the whole latency
        #expect(s.requests == 4 && s.errors4xx == 1 && s.errors5xx == 1)
        #expect(s.inputTokens == 40 && s.outputTokens == 200 && s.reasoningTokens == 20 && s.systemTokens == 12)
        #expect(s.costNano == 4000 && s.energyMicroWh == 28)
        #expect(s.ttftCount == 1 && s.ttftSumMs == 20)
        #expect(s.tokensPerSecond == 200.0 * 1000 / 3000)
        #expect(s.availability == 0.75)
        #expect(s.errorRatePercent == 25)
    }

    // MARK: The pass

    @Test(arguments: TestDatabase.all) func rollsUpCompletedMinutesOnceAndIsIdempotent(_ driver: TestDatabase) async throws {
        let s = try await Self.storage(driver)
        let t = Self.t0
        var rows: [RequestRecord] = []
        for i in 0..<30 { rows.append(Self.row("a\(i)", at: t + Int64(i) * 1000, latency: 100 + i)) }
        for i in 0..<10 { rows.append(Self.row("b\(i)", at: t + Self.minute + Int64(i), tenant: "t2", model: "x", key: nil, status: 503)) }
        rows.append(Self.row("now", at: t + 2 * Self.minute + 5))
        try await s.insertRequests(rows)
        // The third minute has not ended lagMs ago: not rolled up yet.
        let now = t + 3 * Self.minute + 1000
        let r1 = try await s.rollUp(now: now, lagMs: 5000, minuteRetentionMs: 48 * 3_600_000, hourRetentionMs: 400 * 86_400_000)
        #expect(r1.minutesRolled == 2 && r1.hoursRolled == 1)
        #expect(try await s.rollupBacklog() == 1)
        let minutes = try await s.rollupRows(resolution: .minute, from: t, to: t + 3_600_000, filter: RollupFilter())
        #expect(minutes.count == 2)
        let first = try #require(minutes.first { $0.tenantID == "t1" })
        #expect(first.bucketStart == t && first.stats.requests == 30 && first.keyID == "k1" && first.backend == "b1")
        #expect(first.stats.latency.total == 30)
        let second = try #require(minutes.first { $0.tenantID == "t2" })
        #expect(second.keyID == "" && second.stats.errors5xx == 10 && second.model == "x")
        // The hour row is the merge of its minutes.
        let hour = try await s.rollupRows(resolution: .hour, from: t, to: t + 3_600_000, filter: RollupFilter())
        #expect(hour.count == 2 && hour.map(\.stats.requests).reduce(0, +) == 40)

        // Running again (nothing dirty) changes nothing; marking the minutes dirty again and
        // recomputing gives the same rows.
        let r2 = try await s.rollUp(now: now, lagMs: 5000, minuteRetentionMs: 48 * 3_600_000, hourRetentionMs: 400 * 86_400_000)
        #expect(r2.minutesRolled == 0)
        try await s.markRollupDirty(rows)
        _ = try await s.rollUp(now: now + Self.minute, lagMs: 5000, minuteRetentionMs: 48 * 3_600_000, hourRetentionMs: 400 * 86_400_000)
        let again = try await s.rollupRows(resolution: .minute, from: t, to: t + 2 * Self.minute, filter: RollupFilter())
        #expect(again == minutes)
        let totals = try await s.rollupTotals(from: t, to: t + 3 * Self.minute, groupBy: .none)
        #expect(totals[""]?.requests == 41)  // the third minute is rolled up now too
        await s.shutdown()
    }

    /// The pass computes its minute rows in the database: they equal what adding every ledger row
    /// gives (``RollupStats/add(_:)``), over rows with and without each optional column.
    @Test(arguments: TestDatabase.all) func minuteRowsFromTheDatabaseEqualAddingEveryLedgerRow(_ driver: TestDatabase) async throws {
        let s = try await Self.storage(driver)
        let t = Self.t0
        var rows: [RequestRecord] = []
        for i in 0..<400 {
            let status = [200, 200, 200, 429, 400, 502, 503, 200][i % 8]
            var r = Self.row("r\(i)", at: t + Int64(i) * 450, tenant: i % 5 == 0 ? "t2" : "t1", model: ["m", "x", "y"][i % 3],
                             key: i % 7 == 0 ? nil : "k\(i % 2)", status: status, latency: (i * 7919) % 6000,
                             ttft: i % 4 == 0 ? nil : (i * 31) % 900, prompt: i % 50, completion: status == 200 ? (i * 13) % 300 : 0)
            r.backend = i % 6 == 0 ? nil : "b\(i % 3)"
            r.costNano = status == 429 || status == 400 ? nil : Int64(i * 17)
            r.energyMicroWh = i % 9 == 0 ? nil : Int64(i)
            r.systemTokens = i % 10 == 0 ? nil : i % 4
            r.reasoningTokens = i % 11 == 0 ? nil : i % 6
            rows.append(r)
        }
        try await s.insertRequests(rows)
        let byMinute = try await s.minuteRollups(from: t, to: t + 4 * Self.minute)
        #expect(byMinute.keys.sorted() == [t, t + Self.minute, t + 2 * Self.minute])
        for m in [t, t + Self.minute, t + 2 * Self.minute] {
            #expect(byMinute[m] == RollupRow.rollUp(rows, resolution: .minute, bucketStart: m))
        }
        // A range inside the rows: only those created in it.
        let part = try await s.minuteRollups(from: t + Self.minute, to: t + 2 * Self.minute)
        #expect(part.keys.sorted() == [t + Self.minute] && part[t + Self.minute] == byMinute[t + Self.minute])
        // One tenant's rows.
        let t2 = try await s.minuteRollups(from: t, to: t + 4 * Self.minute, tenantID: "t2")
        let t2Rows = rows.filter { $0.tenantID == "t2" }
        for m in [t, t + Self.minute, t + 2 * Self.minute] {
            #expect(t2[m] == RollupRow.rollUp(t2Rows, resolution: .minute, bucketStart: m))
        }
        await s.shutdown()
    }

    @Test(arguments: TestDatabase.all) func aLateRowIsCountedOnceInItsMinuteAndHour(_ driver: TestDatabase) async throws {
        let s = try await Self.storage(driver)
        let t = Self.t0
        try await s.insertRequests([Self.row("a", at: t + 10)])
        let retain = (minute: Int64(48 * 3_600_000), hour: Int64(400 * 86_400_000))
        _ = try await s.rollUp(now: t + 10 * Self.minute, lagMs: 5000, minuteRetentionMs: retain.minute, hourRetentionMs: retain.hour)
        // A long request started in that minute lands in the ledger ten minutes later.
        try await s.insertRequests([Self.row("late", at: t + 20, latency: 600_000)])
        _ = try await s.rollUp(now: t + 11 * Self.minute, lagMs: 5000, minuteRetentionMs: retain.minute, hourRetentionMs: retain.hour)
        let m = try await s.rollupRows(resolution: .minute, from: t, to: t + Self.minute, filter: RollupFilter())
        #expect(m.count == 1 && m[0].stats.requests == 2)
        let h = try await s.rollupRows(resolution: .hour, from: t, to: t + 3_600_000, filter: RollupFilter())
        #expect(h.count == 1 && h[0].stats.requests == 2)
        #expect(try #require(h[0].stats.latencyP99) > 400_000)
        await s.shutdown()
    }

    @Test(arguments: TestDatabase.all) func retentionDropsOldMinutesButKeepsTheirHours(_ driver: TestDatabase) async throws {
        let s = try await Self.storage(driver)
        let t = Self.t0
        try await s.insertRequests((0..<5).map { Self.row("r\($0)", at: t + Int64($0) * Self.minute) })
        let minuteRetention: Int64 = 2 * 3_600_000
        _ = try await s.rollUp(now: t + 10 * Self.minute, lagMs: 0, minuteRetentionMs: minuteRetention, hourRetentionMs: 2 * 86_400_000)
        #expect(try await s.rollupRows(resolution: .minute, from: 0, to: .max, filter: RollupFilter()).count == 5)
        // Three hours later the minutes are gone, the hour stays.
        let later = t + 3 * 3_600_000
        let r = try await s.rollUp(now: later, lagMs: 0, minuteRetentionMs: minuteRetention, hourRetentionMs: 2 * 86_400_000)
        #expect(r.minuteRowsPurged == 5)
        #expect(try await s.rollupRows(resolution: .minute, from: 0, to: .max, filter: RollupFilter()).isEmpty)
        let hours = try await s.rollupRows(resolution: .hour, from: 0, to: .max, filter: RollupFilter())
        #expect(hours.count == 1 && hours[0].stats.requests == 5)
        // A row arriving now for that old hour: the whole hour is recomputed from the ledger (its
        // other minutes' rows are gone), so the hour row stays exact.
        try await s.insertRequests([Self.row("old", at: t + 30 * Self.minute)])
        _ = try await s.rollUp(now: later + 1, lagMs: 0, minuteRetentionMs: minuteRetention, hourRetentionMs: 2 * 86_400_000)
        #expect(try await s.rollupRows(resolution: .hour, from: 0, to: .max, filter: RollupFilter()).map(\.stats.requests) == [6])
        // After the hour retention, the hour goes too.
        let r3 = try await s.rollUp(now: t + 3 * 86_400_000, lagMs: 0, minuteRetentionMs: minuteRetention, hourRetentionMs: 2 * 86_400_000)
        #expect(r3.hourRowsPurged == 1)
        await s.shutdown()
    }

    @Test(arguments: TestDatabase.all) func seriesAndTotalsByModelAndTenant(_ driver: TestDatabase) async throws {
        let s = try await Self.storage(driver)
        let t = Self.t0
        var rows: [RequestRecord] = []
        for i in 0..<6 { rows.append(Self.row("a\(i)", at: t + Int64(i) * Self.minute, model: "m")) }
        for i in 0..<3 { rows.append(Self.row("b\(i)", at: t + Int64(i) * Self.minute, tenant: "t2", model: "x")) }
        try await s.insertRequests(rows)
        _ = try await s.rollUp(now: t + 3_600_000, lagMs: 0, minuteRetentionMs: 48 * 3_600_000, hourRetentionMs: 400 * 86_400_000)
        let series = try await s.rollupSeries(window: .hour, now: t + 3_600_000)
        #expect(Set(series.keys) == ["m", "x"])
        #expect(series["m"]?.count == 60)
        #expect(series["m"]?.prefix(6).map(\.stats.requests) == [1, 1, 1, 1, 1, 1])
        #expect(series["m"]?[6].stats.requests == 0)
        let onlyT2 = try await s.rollupSeries(window: .hour, now: t + 3_600_000, filter: RollupFilter(tenantID: "t2"))
        #expect(Set(onlyT2.keys) == ["x"])
        let week = try await s.rollupSeries(window: .week, now: t + 3_600_000)
        #expect(week["m"]?.map(\.stats.requests).reduce(0, +) == 6)
        let byKey = try await s.rollupTotals(from: t, to: t + 3_600_000, filter: RollupFilter(tenantID: "t1"), groupBy: .key)
        #expect(byKey["k1"]?.requests == 6 && byKey["k1"]?.outputTokens == 240)
        let byTenant = try await s.rollupTotals(from: t, to: t + 3_600_000, groupBy: .tenant, resolution: .hour)
        #expect(byTenant["t1"]?.requests == 6 && byTenant["t2"]?.requests == 3)
        await s.shutdown()
    }

    @Test(arguments: TestDatabase.all) func migrationMarksTheExistingLedgerForTheFirstPass(_ driver: TestDatabase) async throws {
        // A database at version 3 with a ledger: migration 4 marks its minutes, the first pass rolls them up.
        let s = try await driver.open()
        try await s.db.create(table: "schema_migrations").column("version", type: .int, .primaryKey(autoIncrement: false))
            .column("name", type: .text, .notNull).column("applied_at", type: .bigint, .notNull).run()
        for m in Schema.migrations where m.version < 4 {
            try await m.run(s.db)
            try await s.db.insert(into: "schema_migrations").columns("version", "name", "applied_at")
                .values(SQLBind(m.version), SQLBind(m.name), SQLBind(1)).run()
        }
        // The version-3 columns only (later migrations add tenant columns the record now has).
        try await s.db.insert(into: "tenants").columns("id", "name", "tier", "created_at")
            .values(SQLBind("t1"), SQLBind("acme"), SQLBind("tier-1"), SQLBind(Int64(1))).run()
        for (i, at) in [Self.t0 + 5, Self.t0 + 50, Self.t0 + 3 * Self.minute].enumerated() {
            // Nil fields left out: the columns of later migrations (reranked_tokens, audio_ms) do not exist yet.
            try await s.db.insert(into: "requests").model(Self.row("old\(i)", at: at), nilEncodingStrategy: .default).run()
        }
        #expect(try await s.migrate(at: 2).first == 4)  // then the later ones
        #expect(try await s.rollupBacklog() == 2)
        let r = try await s.rollUp(now: Self.t0 + 3_600_000, lagMs: 0, minuteRetentionMs: 48 * 3_600_000, hourRetentionMs: 400 * 86_400_000)
        #expect(r.minutesRolled == 2)
        #expect(try await s.rollupTotals(from: 0, to: .max, groupBy: .none)[""]?.requests == 3)
        await s.shutdown()
    }

    /// `rollupBuckets` (the merge behind the charts and `/v1/usage` buckets): hour buckets read the
    /// hour rows after the minute rows are gone, the minutes not rolled up yet come from the ledger,
    /// each row counts once, and another tenant's rows never show.
    @Test(arguments: TestDatabase.all) func rollupBucketsReadHourRowsPastTheMinuteRetentionAndTheLedgerAfterTheBoundary(_ driver: TestDatabase) async throws {
        let s = try await Self.storage(driver)
        let t = Self.t0
        let hour: Int64 = 3_600_000
        try await s.insertRequests((0..<5).map { Self.row("r\($0)", at: t + Int64($0) * Self.minute, key: $0 % 2 == 0 ? "k1" : "k2") }
                                   + [Self.row("other", at: t + Self.minute, tenant: "t2")])
        let later = t + 3 * hour
        _ = try await s.rollUp(now: later, lagMs: 0, minuteRetentionMs: 2 * hour, hourRetentionMs: 2 * 86_400_000)
        _ = try await s.rollUp(now: later, lagMs: 0, minuteRetentionMs: 2 * hour, hourRetentionMs: 2 * 86_400_000)
        #expect(try await s.rollupRows(resolution: .minute, from: 0, to: .max, filter: RollupFilter()).isEmpty)
        #expect(try await s.oldestUnrolledMinute() == nil)
        // A row of the current hour, not rolled up yet: from the ledger.
        try await s.insertRequests([Self.row("new", at: later + 1_000)])
        #expect(try await s.oldestUnrolledMinute() == later)
        let byKey = try await s.rollupBuckets(tenantID: "t1", from: t, to: later + hour, bucketMs: hour, groupBy: .key)
        #expect(byKey["k1"]?.map(\.requests) == [3, 0, 0, 1])
        #expect(byKey["k2"]?.map(\.requests) == [2, 0, 0, 0])
        #expect(byKey["k1"]?[0].inputTokens == 30 && byKey["k1"]?[0].costNano == 3000)
        // Minute buckets over that old hour are empty (its minute rows are gone); the ledger part is there.
        let minutes = try await s.rollupBuckets(tenantID: "t1", from: later - Self.minute, to: later + Self.minute, bucketMs: Self.minute, groupBy: .none)
        #expect(minutes[""]?.map(\.requests) == [0, 1])
        var fresh = RollupStats()
        fresh.add(Self.row("new", at: later + 1_000))
        #expect(minutes[""]?[1] == fresh)  // the database's sums and histograms of that minute, as adding the row gives
        await s.shutdown()
    }
}
