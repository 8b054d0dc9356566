import Foundation
import SQLKit

/// How long one rollup row covers.
public enum RollupResolution: Int64, Sendable, CaseIterable {
    case minute = 60_000
    case hour = 3_600_000

    public var ms: Int64 { rawValue }

    /// The start of the bucket holding `ms`.
    public func bucket(_ ms: Int64) -> Int64 { (ms / rawValue) * rawValue }
}

/// Sums over a set of ledger rows: what a rollup row stores, and what merging rows gives.
/// Everything adds, so any set of rows merges into one (histograms included).
public struct RollupStats: Sendable, Equatable {
    public var requests = 0
    /// Of `requests`, those answered with an error before anything was billed (`RequestRecord.isBilled`).
    public var rejected = 0
    public var errors4xx = 0
    public var errors5xx = 0
    public var inputTokens = 0
    public var outputTokens = 0
    public var reasoningTokens = 0
    public var systemTokens = 0
    public var costNano: Int64 = 0
    public var energyMicroWh: Int64 = 0
    public var latencySumMs: Int64 = 0
    /// Requests with a time to first token, and the sum of those times.
    public var ttftCount = 0
    public var ttftSumMs: Int64 = 0
    /// Output tokens and generation time (latency − TTFT, or the latency without a TTFT) of the
    /// requests that produced output: tokens/s = genTokens / genMs × 1000.
    public var genTokens = 0
    public var genMs: Int64 = 0
    public var latency = LatencyHistogram()
    public var ttft = LatencyHistogram()

    public init() {}

    /// Adds one ledger row.
    public mutating func add(_ r: RequestRecord) {
        requests += 1
        if !r.isBilled { rejected += 1 }
        if (400..<500).contains(r.status) { errors4xx += 1 }
        if r.status >= 500 { errors5xx += 1 }
        inputTokens += r.promptTokens
        outputTokens += r.completionTokens
        reasoningTokens += r.reasoningTokens ?? 0
        systemTokens += r.systemTokens ?? 0
        costNano += r.costNano ?? 0
        energyMicroWh += r.energyMicroWh ?? 0
        latencySumMs += Int64(r.latencyMs)
        latency.record(Double(r.latencyMs))
        if let t = r.ttftMs {
            ttftCount += 1
            ttftSumMs += Int64(t)
            ttft.record(Double(t))
        }
        if r.completionTokens > 0 {
            let gen = r.ttftMs.map { r.latencyMs - $0 } ?? r.latencyMs
            if gen > 0 {
                genTokens += r.completionTokens
                genMs += Int64(gen)
            }
        }
    }

    public mutating func merge(_ o: RollupStats) {
        requests += o.requests; rejected += o.rejected; errors4xx += o.errors4xx; errors5xx += o.errors5xx
        inputTokens += o.inputTokens; outputTokens += o.outputTokens; reasoningTokens += o.reasoningTokens; systemTokens += o.systemTokens
        costNano += o.costNano; energyMicroWh += o.energyMicroWh; latencySumMs += o.latencySumMs
        ttftCount += o.ttftCount; ttftSumMs += o.ttftSumMs; genTokens += o.genTokens; genMs += o.genMs
        latency.merge(o.latency); ttft.merge(o.ttft)
    }

    // Derived values (nil without data).

    /// Share of requests that did not fail on the server side (non-5xx), 0…1.
    public var availability: Double? { requests == 0 ? nil : Double(requests - errors5xx) / Double(requests) }
    /// Share of requests answered 5xx, in percent.
    public var errorRatePercent: Double? { requests == 0 ? nil : Double(errors5xx) * 100 / Double(requests) }
    public var latencyP50: Double? { latency.percentile(0.50) }
    public var latencyP95: Double? { latency.percentile(0.95) }
    public var latencyP99: Double? { latency.percentile(0.99) }
    public var ttftP50: Double? { ttft.percentile(0.50) }
    public var ttftP95: Double? { ttft.percentile(0.95) }
    public var ttftP99: Double? { ttft.percentile(0.99) }
    public var tokensPerSecond: Double? { genMs == 0 ? nil : Double(genTokens) * 1000 / Double(genMs) }
}

/// One rollup row: a (tenant, model, key, backend) over one minute or one hour. A missing tenant,
/// key or backend in the ledger is "" here.
public struct RollupRow: Sendable, Equatable {
    public var resolution: RollupResolution
    public var bucketStart: Int64
    public var tenantID: String
    public var model: String
    public var keyID: String
    public var backend: String
    public var stats: RollupStats

    public init(resolution: RollupResolution, bucketStart: Int64, tenantID: String, model: String, keyID: String, backend: String,
                stats: RollupStats = RollupStats()) {
        self.resolution = resolution; self.bucketStart = bucketStart; self.tenantID = tenantID; self.model = model
        self.keyID = keyID; self.backend = backend; self.stats = stats
    }

    struct Dimensions: Hashable { let tenant, model, key, backend: String }
    var dimensions: Dimensions { Dimensions(tenant: tenantID, model: model, key: keyID, backend: backend) }

    /// The rows of one bucket from its ledger rows (those outside the bucket are ignored).
    public static func rollUp(_ records: [RequestRecord], resolution: RollupResolution, bucketStart: Int64) -> [RollupRow] {
        var by: [Dimensions: RollupStats] = [:]
        for r in records where resolution.bucket(r.createdAt) == bucketStart {
            by[Dimensions(tenant: r.tenantID ?? "", model: r.model, key: r.keyID ?? "", backend: r.backend ?? ""), default: RollupStats()].add(r)
        }
        return Self.rows(by, resolution: resolution, bucketStart: bucketStart)
    }

    /// One bucket's rows from their stats per dimensions, in the dimensions' order.
    static func rows(_ by: [Dimensions: RollupStats], resolution: RollupResolution, bucketStart: Int64) -> [RollupRow] {
        by.map { RollupRow(resolution: resolution, bucketStart: bucketStart, tenantID: $0.key.tenant, model: $0.key.model,
                           keyID: $0.key.key, backend: $0.key.backend, stats: $0.value) }
            .sorted { ($0.tenantID, $0.model, $0.keyID, $0.backend) < ($1.tenantID, $1.model, $1.keyID, $1.backend) }
    }

    /// Rows of finer buckets merged into the rows of one coarser bucket, per dimensions.
    public static func merge(_ rows: [RollupRow], into resolution: RollupResolution, bucketStart: Int64) -> [RollupRow] {
        var by: [Dimensions: RollupStats] = [:]
        for r in rows where resolution.bucket(r.bucketStart) == bucketStart { by[r.dimensions, default: RollupStats()].merge(r.stats) }
        return Self.rows(by, resolution: resolution, bucketStart: bucketStart)
    }
}

/// Which rows a query reads (nil: all).
public struct RollupFilter: Sendable, Equatable {
    public var tenantID: String?
    public var model: String?
    public var keyID: String?
    public var backend: String?
    public init(tenantID: String? = nil, model: String? = nil, keyID: String? = nil, backend: String? = nil) {
        self.tenantID = tenantID; self.model = model; self.keyID = keyID; self.backend = backend
    }
}

/// What totals and series are grouped by.
public enum RollupDimension: String, Sendable, CaseIterable {
    case tenant, model, key, backend, none

    func value(_ r: RollupRow) -> String {
        switch self {
        case .tenant: return r.tenantID
        case .model: return r.model
        case .key: return r.keyID
        case .backend: return r.backend
        case .none: return ""
        }
    }

    /// The same dimension of a ledger row (a missing tenant, key or backend is "", as in the rollups).
    func value(_ r: RequestRecord) -> String {
        switch self {
        case .tenant: return r.tenantID ?? ""
        case .model: return r.model
        case .key: return r.keyID ?? ""
        case .backend: return r.backend ?? ""
        case .none: return ""
        }
    }
}

/// The chart windows of the console and the status page.
public enum RollupWindow: String, Sendable, CaseIterable {
    case hour = "1h", day = "24h", week = "7d"

    public var ms: Int64 {
        switch self {
        case .hour: return 3_600_000
        case .day: return 86_400_000
        case .week: return 7 * 86_400_000
        }
    }

    /// The points' width: 1 min over an hour, 15 min over a day, 1 h over a week.
    public var stepMs: Int64 {
        switch self {
        case .hour: return 60_000
        case .day: return 15 * 60_000
        case .week: return 3_600_000
        }
    }

    /// Which rows it reads: minutes for the hour and the day, hours for the week.
    public var resolution: RollupResolution { self == .week ? .hour : .minute }
}

/// One point of a series: the merged stats of the buckets in [start, start + step).
public struct RollupPoint: Sendable, Equatable {
    public var start: Int64
    public var stats: RollupStats
}

/// What one rollup pass did.
public struct RollupReport: Sendable, Equatable {
    public var minutesRolled = 0
    public var hoursRolled = 0
    public var rowsWritten = 0
    public var minuteRowsPurged = 0
    public var hourRowsPurged = 0
}

extension Storage {
    // MARK: Rollups — writing

    /// Every batch of ledger rows marks its minutes dirty (same statement sequence as the insert):
    /// the rollup pass recomputes exactly those, however late a row arrives.
    func markRollupDirty(_ rows: [RequestRecord]) async throws {
        try await Self.markRollupDirty(rows, in: db)
    }

    /// In ascending order: concurrent ledger transactions (replicas on PostgreSQL) lock the rows
    /// they mark in the same order, so they cannot deadlock.
    static func markRollupDirty(_ rows: [RequestRecord], in db: any SQLDatabase) async throws {
        for minute in Set(rows.map { RollupResolution.minute.bucket($0.createdAt) }).sorted() {
            try await db.insert(into: "rollup_dirty").columns("bucket_start", "version").values(SQLBind(minute), SQLBind(1))
                .onConflict(with: ["bucket_start"]) {
                    $0.set(SQLColumn("version"), to: SQLBinaryExpression(SQLColumn("version", table: "rollup_dirty"), .add, SQLLiteral.numeric("1")))
                }
                .run()
        }
    }

    /// One rollup pass at `now` (ms):
    /// 1. every dirty minute that ended at least `lagMs` ago is recomputed from the ledger (its
    ///    rows deleted and rewritten: running a pass twice changes nothing); a minute whose hour is
    ///    older than the minute retention gets its whole hour recomputed, since the other minutes'
    ///    rows may be gone;
    /// 2. the hour rows of those minutes are rebuilt by merging their minute rows;
    /// 3. the dirty marks are cleared, unless a new ledger row marked the minute again meanwhile;
    /// 4. minute rows older than `minuteRetentionMs` and hour rows older than `hourRetentionMs`
    ///    are deleted.
    /// A ledger row written after its minute was rolled up marks the minute dirty again, and the
    /// next pass recomputes it (minute and hour): late rows are never lost nor counted twice.
    @discardableResult
    public func rollUp(now: Int64, lagMs: Int64, minuteRetentionMs: Int64, hourRetentionMs: Int64) async throws -> RollupReport {
        var report = RollupReport()
        let dirty = try await db.select().columns("bucket_start", "version").from("rollup_dirty")
            .where("bucket_start", .lessThanOrEqual, SQLBind(now - lagMs - RollupResolution.minute.ms))
            .orderBy("bucket_start").all()
            .map { (try $0.decode(column: "bucket_start", as: Int64.self), try $0.decode(column: "version", as: Int64.self)) }
        let minuteCutoff = now - minuteRetentionMs
        var byHour: [Int64: Set<Int64>] = [:]
        for (minute, _) in dirty { byHour[RollupResolution.hour.bucket(minute), default: []].insert(minute) }
        for (hour, minutes) in byHour.sorted(by: { $0.key < $1.key }) {
            let recompute: [Int64] = hour < minuteCutoff
                ? stride(from: hour, to: hour + RollupResolution.hour.ms, by: Int(RollupResolution.minute.ms)).map { $0 }
                : minutes.sorted()
            let byMinute = try await minuteRollups(from: recompute.first!, to: recompute.last! + RollupResolution.minute.ms)
            for minute in recompute {
                let rows = byMinute[minute] ?? []
                try await replaceRollups(resolution: .minute, bucketStart: minute, rows)
                report.minutesRolled += 1
                report.rowsWritten += rows.count
            }
            let minuteRows = try await rollupRows(resolution: .minute, from: hour, to: hour + RollupResolution.hour.ms, filter: RollupFilter())
            let hourRows = RollupRow.merge(minuteRows, into: .hour, bucketStart: hour)
            try await replaceRollups(resolution: .hour, bucketStart: hour, hourRows)
            report.hoursRolled += 1
            report.rowsWritten += hourRows.count
        }
        for (minute, version) in dirty {
            try await db.delete(from: "rollup_dirty").where("bucket_start", .equal, SQLBind(minute)).where("version", .equal, SQLBind(version)).run()
        }
        report.minuteRowsPurged = try await purgeRollups(.minute, before: minuteCutoff)
        report.hourRowsPurged = try await purgeRollups(.hour, before: now - hourRetentionMs)
        return report
    }

    /// The minute rows of the ledger rows created in [from, to), by minute: what
    /// ``RollupRow/rollUp(_:resolution:bucketStart:)`` makes of those rows, computed by the
    /// database — the sums per (minute, tenant, model, key, backend), and the latency and TTFT
    /// histograms from a count per distinct value. Decoding every ledger row instead cost the pass
    /// tens of µs per row on an event loop (issue 16); this reads one row per group and value.
    /// `tenantID`: only that tenant's rows.
    func minuteRollups(from: Int64, to: Int64, tenantID: String? = nil) async throws -> [Int64: [RollupRow]] {
        let minute = RollupResolution.minute.ms
        // Every column is named (PostgreSQL names each unnamed expression `?column?`).
        let group = [("(created_at / \(minute)) * \(minute)", "g_minute"), ("COALESCE(tenant_id, '')", "g_tenant"), ("model", "g_model"),
                     ("COALESCE(key_id, '')", "g_key"), ("COALESCE(backend, '')", "g_backend")]
        // The generation time as `RollupStats.add` counts it.
        let gen = "latency_ms - COALESCE(ttft_ms, 0)"
        let sums = [
            "COUNT(*)", "SUM(CASE WHEN cost_nano IS NULL AND status <> 200 THEN 1 ELSE 0 END)",
            "SUM(CASE WHEN status >= 400 AND status < 500 THEN 1 ELSE 0 END)", "SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END)",
            "SUM(prompt_tokens)", "SUM(completion_tokens)", "SUM(COALESCE(reasoning_tokens, 0))", "SUM(COALESCE(system_tokens, 0))",
            "SUM(COALESCE(cost_nano, 0))", "SUM(COALESCE(energy_uwh, 0))", "SUM(latency_ms)",
            "SUM(CASE WHEN ttft_ms IS NULL THEN 0 ELSE 1 END)", "SUM(COALESCE(ttft_ms, 0))",
            "SUM(CASE WHEN completion_tokens > 0 AND \(gen) > 0 THEN completion_tokens ELSE 0 END)",
            "SUM(CASE WHEN completion_tokens > 0 AND \(gen) > 0 THEN \(gen) ELSE 0 END)",
        ]
        /// `values` after the group's columns, as v0, v1, …; `perValue`: grouped by `values`' first one too.
        func select(_ values: [String], perValue: Bool = false, filter: String = "") -> SQLQueryString {
            let columns = group.map { "\($0.0) AS \($0.1)" } + values.enumerated().map { "CAST(\($0.element) AS BIGINT) AS v\($0.offset)" }
            var q = SQLQueryString("SELECT \(unsafeRaw: columns.joined(separator: ", ")) FROM \"requests\" WHERE created_at >= \(bind: from) AND created_at < \(bind: to)\(unsafeRaw: filter)")
            if let tenantID { q.appendInterpolation(unsafeRaw: " AND tenant_id = "); q.appendInterpolation(bind: tenantID) }
            q.appendInterpolation(unsafeRaw: " GROUP BY 1, 2, 3, 4, 5" + (perValue ? ", 6" : ""))
            return q
        }
        /// A row's minute and dimensions, and its stats there.
        var stats: [Int64: [RollupRow.Dimensions: RollupStats]] = [:]
        func slot(_ row: any SQLRow, _ change: (inout RollupStats) throws -> Void) throws {
            let dimensions = RollupRow.Dimensions(tenant: try row.decode(column: "g_tenant", as: String.self), model: try row.decode(column: "g_model", as: String.self),
                                                  key: try row.decode(column: "g_key", as: String.self), backend: try row.decode(column: "g_backend", as: String.self))
            try change(&stats[try row.decode(column: "g_minute", as: Int64.self), default: [:]][dimensions, default: RollupStats()])
        }
        func value(_ row: any SQLRow, _ i: Int) throws -> Int64 { try row.decode(column: "v\(i)", as: Int64.self) }
        for row in try await db.raw(select(sums)).all() {
            try slot(row) { s in
                s.requests = Int(try value(row, 0)); s.rejected = Int(try value(row, 1))
                s.errors4xx = Int(try value(row, 2)); s.errors5xx = Int(try value(row, 3))
                s.inputTokens = Int(try value(row, 4)); s.outputTokens = Int(try value(row, 5))
                s.reasoningTokens = Int(try value(row, 6)); s.systemTokens = Int(try value(row, 7))
                s.costNano = try value(row, 8); s.energyMicroWh = try value(row, 9); s.latencySumMs = try value(row, 10)
                s.ttftCount = Int(try value(row, 11)); s.ttftSumMs = try value(row, 12)
                s.genTokens = Int(try value(row, 13)); s.genMs = try value(row, 14)
            }
        }
        for row in try await db.raw(select(["latency_ms", "COUNT(*)"], perValue: true)).all() {
            try slot(row) { $0.latency.record(Double(try value(row, 0)), count: Int(try value(row, 1))) }
        }
        for row in try await db.raw(select(["ttft_ms", "COUNT(*)"], perValue: true, filter: " AND ttft_ms IS NOT NULL")).all() {
            try slot(row) { $0.ttft.record(Double(try value(row, 0)), count: Int(try value(row, 1))) }
        }
        return stats.reduce(into: [:]) { $0[$1.key] = RollupRow.rows($1.value, resolution: .minute, bucketStart: $1.key) }
    }

    func replaceRollups(resolution: RollupResolution, bucketStart: Int64, _ rows: [RollupRow]) async throws {
        try await db.delete(from: "rollups").where("resolution", .equal, SQLBind(resolution.ms)).where("bucket_start", .equal, SQLBind(bucketStart)).run()
        for chunk in stride(from: 0, to: rows.count, by: 500).map({ Array(rows[$0..<min($0 + 500, rows.count)]) }) {
            var insert = db.insert(into: "rollups").columns(Self.rollupColumns)
            for r in chunk { insert = insert.values(Self.rollupValues(r)) }
            try await insert.run()
        }
    }

    func purgeRollups(_ resolution: RollupResolution, before cutoff: Int64) async throws -> Int {
        let n = try await db.select().column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n").from("rollups")
            .where("resolution", .equal, SQLBind(resolution.ms)).where("bucket_start", .lessThan, SQLBind(cutoff))
            .first(decodingColumn: "n", as: Int.self) ?? 0
        if n > 0 {
            try await db.delete(from: "rollups").where("resolution", .equal, SQLBind(resolution.ms)).where("bucket_start", .lessThan, SQLBind(cutoff)).run()
        }
        return n
    }

    static let rollupColumns = [
        "resolution", "bucket_start", "tenant_id", "model", "key_id", "backend", "requests", "rejected", "errors_4xx", "errors_5xx",
        "input_tokens", "output_tokens", "reasoning_tokens", "system_tokens", "cost_nano", "energy_uwh", "latency_sum_ms",
        "ttft_count", "ttft_sum_ms", "gen_tokens", "gen_ms", "latency_p50", "latency_p95", "latency_p99", "ttft_p50", "ttft_p95",
        "ttft_p99", "tokens_per_second", "latency_hist", "ttft_hist",
    ]

    static func rollupValues(_ r: RollupRow) -> [any SQLExpression] {
        let s = r.stats
        let values: [any Encodable & Sendable] = [
            r.resolution.ms, r.bucketStart, r.tenantID, r.model, r.keyID, r.backend, s.requests, s.rejected, s.errors4xx, s.errors5xx,
            s.inputTokens, s.outputTokens, s.reasoningTokens, s.systemTokens, s.costNano, s.energyMicroWh, s.latencySumMs,
            s.ttftCount, s.ttftSumMs, s.genTokens, s.genMs, s.latencyP50, s.latencyP95, s.latencyP99, s.ttftP50, s.ttftP95,
            s.ttftP99, s.tokensPerSecond, s.latency.encoded, s.ttft.encoded,
        ]
        return values.map { SQLBind($0) }
    }

    // MARK: Rollups — reading (the console's charts, the status page)

    /// Rollup rows of one resolution whose bucket starts in [from, to), oldest first.
    public func rollupRows(resolution: RollupResolution, from: Int64, to: Int64, filter: RollupFilter) async throws -> [RollupRow] {
        var q = db.select().columns("*").from("rollups").where("resolution", .equal, SQLBind(resolution.ms))
            .where("bucket_start", .greaterThanOrEqual, SQLBind(from)).where("bucket_start", .lessThan, SQLBind(to))
        if let t = filter.tenantID { q = q.where("tenant_id", .equal, SQLBind(t)) }
        if let m = filter.model { q = q.where("model", .equal, SQLBind(m)) }
        if let k = filter.keyID { q = q.where("key_id", .equal, SQLBind(k)) }
        if let b = filter.backend { q = q.where("backend", .equal, SQLBind(b)) }
        return try await q.orderBy("bucket_start").all().map { row in
            var s = RollupStats()
            s.requests = try row.decode(column: "requests", as: Int.self)
            s.rejected = try row.decode(column: "rejected", as: Int.self)
            s.errors4xx = try row.decode(column: "errors_4xx", as: Int.self)
            s.errors5xx = try row.decode(column: "errors_5xx", as: Int.self)
            s.inputTokens = try row.decode(column: "input_tokens", as: Int.self)
            s.outputTokens = try row.decode(column: "output_tokens", as: Int.self)
            s.reasoningTokens = try row.decode(column: "reasoning_tokens", as: Int.self)
            s.systemTokens = try row.decode(column: "system_tokens", as: Int.self)
            s.costNano = try row.decode(column: "cost_nano", as: Int64.self)
            s.energyMicroWh = try row.decode(column: "energy_uwh", as: Int64.self)
            s.latencySumMs = try row.decode(column: "latency_sum_ms", as: Int64.self)
            s.ttftCount = try row.decode(column: "ttft_count", as: Int.self)
            s.ttftSumMs = try row.decode(column: "ttft_sum_ms", as: Int64.self)
            s.genTokens = try row.decode(column: "gen_tokens", as: Int.self)
            s.genMs = try row.decode(column: "gen_ms", as: Int64.self)
            s.latency = LatencyHistogram(encoded: try row.decode(column: "latency_hist", as: String.self))
            s.ttft = LatencyHistogram(encoded: try row.decode(column: "ttft_hist", as: String.self))
            return RollupRow(resolution: resolution, bucketStart: try row.decode(column: "bucket_start", as: Int64.self),
                             tenantID: try row.decode(column: "tenant_id", as: String.self), model: try row.decode(column: "model", as: String.self),
                             keyID: try row.decode(column: "key_id", as: String.self), backend: try row.decode(column: "backend", as: String.self),
                             stats: s)
        }
    }

    /// A chart's series over the `window` ending at `now`, one series per value of `groupBy`
    /// (e.g. per model), each with one point per `window.stepMs` (empty points included, so the
    /// x axis is regular). Reads minute rows for 1 h and 24 h, hour rows for 7 d.
    public func rollupSeries(window: RollupWindow, now: Int64, filter: RollupFilter = RollupFilter(),
                             groupBy: RollupDimension = .model) async throws -> [String: [RollupPoint]] {
        try await rollupSeries(from: now - window.ms, to: now, stepMs: window.stepMs, resolution: window.resolution, filter: filter, groupBy: groupBy)
    }

    /// The same over any range: points of `stepMs` (a multiple of the resolution) from `from`,
    /// aligned down to the resolution.
    public func rollupSeries(from: Int64, to: Int64, stepMs: Int64, resolution: RollupResolution, filter: RollupFilter = RollupFilter(),
                             groupBy: RollupDimension = .model) async throws -> [String: [RollupPoint]] {
        let start = resolution.bucket(from)
        let step = max(resolution.ms, (stepMs / resolution.ms) * resolution.ms)
        let count = Int((to - start + step - 1) / step)
        var out: [String: [RollupPoint]] = [:]
        for r in try await rollupRows(resolution: resolution, from: start, to: to, filter: filter) {
            let key = groupBy.value(r)
            if out[key] == nil { out[key] = (0..<count).map { RollupPoint(start: start + Int64($0) * step, stats: RollupStats()) } }
            let i = Int((r.bucketStart - start) / step)
            if i >= 0 && i < count { out[key]![i].stats.merge(r.stats) }
        }
        return out
    }

    /// Totals over [from, to) per value of `groupBy` (tenant, model, key, backend, or one total
    /// under ""), from minute rows when the range is within the minute retention (`minuteRows`),
    /// else from hour rows (whole hours).
    public func rollupTotals(from: Int64, to: Int64, filter: RollupFilter = RollupFilter(), groupBy: RollupDimension,
                             resolution: RollupResolution = .minute) async throws -> [String: RollupStats] {
        var out: [String: RollupStats] = [:]
        for r in try await rollupRows(resolution: resolution, from: resolution.bucket(from), to: to, filter: filter) {
            out[groupBy.value(r), default: RollupStats()].merge(r.stats)
        }
        return out
    }

    /// The oldest minute with ledger rows not yet rolled up (nil: the rollups hold every ledger
    /// row). Every minute before it is final in the rollups (minute and hour rows): a reader merges
    /// rollups before it with ledger rows from it (the console's charts).
    public func oldestUnrolledMinute() async throws -> Int64? {
        try await db.select().column(SQLFunction("MIN", args: SQLColumn("bucket_start")), as: "m").from("rollup_dirty")
            .first(decodingColumn: "m", as: Int64?.self) ?? nil
    }

    /// Live buckets of `bucketMs` covering `[from, to)` (the last one may end after `to`), per value
    /// of `groupBy`, every bucket present (empty ones with zero stats): the one merge behind the
    /// console's charts and `/v1/usage?bucket_width=`. Every minute before the oldest minute not
    /// rolled up yet (``oldestUnrolledMinute()``) is read from the rollups — hour rows for whole
    /// hours when `bucketMs` and `from` are whole hours (so it reaches past the minute retention),
    /// else minute rows —, every later one from the ledger, folded in with the same
    /// ``RollupStats`` arithmetic: each ledger row counts exactly once, however late it arrived.
    /// Minute rows start on a minute: `from` and `bucketMs` should be whole minutes (a minute row
    /// starting before `from` is left out).
    public func rollupBuckets(tenantID: String?, from: Int64, to: Int64, bucketMs: Int64,
                              groupBy: RollupDimension) async throws -> [String: [RollupStats]] {
        precondition(bucketMs > 0)
        // Every minute before `boundary` is final in the rollups; from it on, the ledger.
        let boundary = min(to, max(from, try await oldestUnrolledMinute() ?? to))
        let count = Int(max(1, (to - from + bucketMs - 1) / bucketMs))
        var out: [String: [RollupStats]] = [:]
        func add(_ key: String, _ at: Int64, _ stats: RollupStats) {
            guard at >= from && at < to else { return }
            out[key, default: Array(repeating: RollupStats(), count: count)][Int((at - from) / bucketMs)].merge(stats)
        }
        let filter = RollupFilter(tenantID: tenantID)
        var minuteFrom = from
        if bucketMs % RollupResolution.hour.ms == 0 && from % RollupResolution.hour.ms == 0 {
            let hoursEnd = RollupResolution.hour.bucket(boundary)
            for r in try await rollupRows(resolution: .hour, from: from, to: hoursEnd, filter: filter) { add(groupBy.value(r), r.bucketStart, r.stats) }
            minuteFrom = max(from, hoursEnd)
        }
        for r in try await rollupRows(resolution: .minute, from: minuteFrom, to: boundary, filter: filter) { add(groupBy.value(r), r.bucketStart, r.stats) }
        if from % RollupResolution.minute.ms == 0 && bucketMs % RollupResolution.minute.ms == 0 {
            // Whole minutes: every ledger row of a minute falls in that minute's bucket, so the
            // database's minute sums do (no ledger row decoded: a minute under load is ~10⁴ rows).
            for rows in try await minuteRollups(from: boundary, to: to, tenantID: tenantID).values {
                for r in rows { add(groupBy.value(r), r.bucketStart, r.stats) }
            }
        } else {
            for record in try await ledger(tenantID: tenantID, from: boundary, to: to) {
                var s = RollupStats()
                s.add(record)
                add(groupBy.value(record), record.createdAt, s)
            }
        }
        return out
    }

    /// Minutes with ledger rows not yet rolled up (what the next passes will do).
    public func rollupBacklog() async throws -> Int {
        try await db.select().column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n").from("rollup_dirty")
            .first(decodingColumn: "n", as: Int.self) ?? 0
    }
}
