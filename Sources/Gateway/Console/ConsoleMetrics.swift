import Foundation
import Storage

/// One time bucket of one model's performance: what the console's charts draw.
public struct PerformanceBucket: Sendable, Equatable {
    /// Start of the bucket, ms since the epoch.
    public var start: Int64
    public var requests: Int
    public var errors: Int
    /// Milliseconds; nil when the bucket has no request with the value.
    public var latencyP50: Double?, latencyP95: Double?
    public var ttftP50: Double?, ttftP95: Double?
    /// Output tokens per second of generation (after the first token), averaged over the
    /// bucket's requests that produced more than one token.
    public var tokensPerSecond: Double?
    public var outputTokens: Int
}

public struct ModelPerformance: Sendable, Equatable {
    public var model: String
    public var buckets: [PerformanceBucket]
}

/// Where the console's latency / TTFT / throughput charts come from: the per-minute and per-hour
/// rollups (``RollupPerformanceSource``, the default), or the raw ledger rows
/// (``LedgerPerformanceSource``, exact percentiles, for tests and comparisons).
public protocol PerformanceSource: Sendable {
    /// Per model, buckets of `bucketMs` covering `[from, to)` (every bucket present, empty ones
    /// with nil values); `tenantID` nil = every tenant (operators only).
    func performance(tenantID: String?, from: Int64, to: Int64, bucketMs: Int64) async throws -> [ModelPerformance]
}

/// Performance from the rollups (issue 13 item 2): minute rows for the 1 h and 24 h windows, hour
/// rows for whole hours of the 7 d window. The minutes the rollup pass has not reached yet (the
/// current one, the last `rollups.lag_seconds`, a minute a late ledger row made dirty again) are
/// read from the ledger and folded in with the same ``RollupStats`` arithmetic, so a chart is
/// live and counts every request exactly once. Percentiles come from the rollups' histograms
/// (every answered request, errors included); tokens/s is output tokens over generation time.
/// The 24 h window reads minute rows: with `rollups.minute_retention_hours` under 24 its older
/// part is empty.
public struct RollupPerformanceSource: PerformanceSource {
    let storage: Storage
    /// Writes the request log's buffered rows (a request just answered is charted at once).
    let flush: @Sendable () async -> Void

    public init(storage: Storage, flush: @escaping @Sendable () async -> Void) {
        self.storage = storage
        self.flush = flush
    }

    public func performance(tenantID: String?, from: Int64, to: Int64, bucketMs: Int64) async throws -> [ModelPerformance] {
        await flush()
        let byModel = try await storage.rollupBuckets(tenantID: tenantID, from: from, to: to, bucketMs: bucketMs, groupBy: .model)
        return byModel.keys.sorted().map { model in
            ModelPerformance(model: model, buckets: byModel[model]!.enumerated().map { i, s in
                PerformanceBucket(start: from + Int64(i) * bucketMs, requests: s.requests, errors: s.errors4xx + s.errors5xx,
                                  latencyP50: s.latencyP50, latencyP95: s.latencyP95, ttftP50: s.ttftP50, ttftP95: s.ttftP95,
                                  tokensPerSecond: s.tokensPerSecond, outputTokens: s.outputTokens)
            })
        }
    }
}

/// Performance computed from the ledger rows (exact percentiles; fine for the console's windows
/// of up to 7 days; the rollups make it cheap at scale).
public struct LedgerPerformanceSource: PerformanceSource {
    let rows: @Sendable (_ tenantID: String?, _ from: Int64, _ to: Int64) async throws -> [RequestRecord]

    public init(rows: @escaping @Sendable (_ tenantID: String?, _ from: Int64, _ to: Int64) async throws -> [RequestRecord]) {
        self.rows = rows
    }

    public func performance(tenantID: String?, from: Int64, to: Int64, bucketMs: Int64) async throws -> [ModelPerformance] {
        Self.buckets(try await rows(tenantID, from, to), from: from, to: to, bucketMs: bucketMs)
    }

    /// Nearest-rank percentile of sorted values.
    static func percentile(_ sorted: [Double], _ p: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count - 1, max(0, rank - 1))]
    }

    /// The bucketing itself (pure: tested with hand-made rows).
    public static func buckets(_ rows: [RequestRecord], from: Int64, to: Int64, bucketMs: Int64) -> [ModelPerformance] {
        let count = Int(max(1, (to - from + bucketMs - 1) / bucketMs))
        var byModel: [String: [[RequestRecord]]] = [:]
        for r in rows where r.createdAt >= from && r.createdAt < to {
            let i = Int((r.createdAt - from) / bucketMs)
            byModel[r.model, default: Array(repeating: [], count: count)][i].append(r)
        }
        return byModel.keys.sorted().map { model in
            let buckets = byModel[model]!.enumerated().map { i, rs -> PerformanceBucket in
                let ok = rs.filter { $0.status == 200 }
                let latency = ok.map { Double($0.latencyMs) }.sorted()
                let ttft = ok.compactMap { $0.ttftMs.map(Double.init) }.sorted()
                let speeds = ok.compactMap { r -> Double? in
                    guard let t = r.ttftMs, r.completionTokens > 1, r.latencyMs > t else { return nil }
                    return Double(r.completionTokens - 1) / (Double(r.latencyMs - t) / 1000)
                }
                return PerformanceBucket(start: from + Int64(i) * bucketMs, requests: rs.count, errors: rs.count - ok.count,
                                         latencyP50: percentile(latency, 50), latencyP95: percentile(latency, 95),
                                         ttftP50: percentile(ttft, 50), ttftP95: percentile(ttft, 95),
                                         tokensPerSecond: speeds.isEmpty ? nil : speeds.reduce(0, +) / Double(speeds.count),
                                         outputTokens: ok.reduce(0) { $0 + $1.completionTokens })
            }
            return ModelPerformance(model: model, buckets: buckets)
        }
    }
}

/// The chart windows the console offers: 1 h in minutes, 24 h in quarter hours, 7 d in hours.
public enum ChartWindow: String, Sendable, CaseIterable {
    case hour = "1h", day = "24h", week = "7d"

    public var spanMs: Int64 {
        switch self {
        case .hour: return 3_600_000
        case .day: return 86_400_000
        case .week: return 7 * 86_400_000
        }
    }

    public var bucketMs: Int64 {
        switch self {
        case .hour: return 60_000
        case .day: return 900_000
        case .week: return 3_600_000
        }
    }

    /// `[from, to)` ending with the bucket that holds `now`.
    public func range(now: Int64) -> (from: Int64, to: Int64) {
        let to = (now / bucketMs + 1) * bucketMs
        return (to - spanMs, to)
    }
}
