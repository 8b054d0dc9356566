import Foundation

/// A fixed log-scale histogram of milliseconds. Every rollup row carries one for latency and one
/// for TTFT, with the same buckets everywhere, so rows merge by adding counts: an hour is the sum
/// of its minutes, any window the sum of its rows, and percentiles of the merged histogram are as
/// good as those of one row.
///
/// Buckets: 0 holds [0, 1] ms; bucket i (1…`last`-1) holds (2^((i-1)/4), 2^(i/4)] ms (four per
/// doubling, each ≈ 19 % wide); the last bucket holds everything above 2^((last-1)/4) ms
/// (≈ 3.3 h). A percentile is interpolated linearly inside its bucket, so its error is below one
/// bucket's width (≈ 19 %, usually far less).
public struct LatencyHistogram: Sendable, Equatable {
    public static let bucketCount = 96
    static let perDoubling = 4.0

    /// Counts by bucket index; absent = 0.
    public private(set) var counts: [Int: Int] = [:]

    public init() {}

    public var total: Int { counts.values.reduce(0, +) }
    public var isEmpty: Bool { counts.isEmpty }

    /// The bucket of a value in ms.
    public static func bucket(_ ms: Double) -> Int {
        guard ms > 1 else { return 0 }
        // The tolerance keeps a bound itself (2^(i/4), inexact in binary) in the bucket it closes.
        let i = Int((log2(ms) * perDoubling - 1e-9).rounded(.up))
        return min(max(i, 1), bucketCount - 1)
    }

    /// The range of values bucket `i` holds (the last one is open above; its upper bound is
    /// reported as its lower bound × 2^(1/4)).
    public static func bounds(_ i: Int) -> (lower: Double, upper: Double) {
        if i <= 0 { return (0, 1) }
        return (pow(2, Double(i - 1) / perDoubling), pow(2, Double(i) / perDoubling))
    }

    public mutating func record(_ ms: Double, count: Int = 1) {
        guard count > 0 else { return }
        counts[Self.bucket(ms), default: 0] += count
    }

    public mutating func merge(_ other: LatencyHistogram) {
        for (i, n) in other.counts { counts[i, default: 0] += n }
    }

    public static func merged(_ list: [LatencyHistogram]) -> LatencyHistogram {
        var h = LatencyHistogram()
        for x in list { h.merge(x) }
        return h
    }

    /// The q-quantile (0 < q ≤ 1) in ms: the bucket holding the value of rank ⌈q·n⌉, interpolated
    /// linearly inside it. nil when empty.
    public func percentile(_ q: Double) -> Double? {
        let n = total
        guard n > 0 else { return nil }
        let rank = max(1, Int((q * Double(n)).rounded(.up)))
        var before = 0
        for i in counts.keys.sorted() {
            let c = counts[i]!
            if before + c >= rank {
                let (lo, hi) = Self.bounds(i)
                return lo + (hi - lo) * Double(rank - before) / Double(c)
            }
            before += c
        }
        return Self.bounds(counts.keys.max()!).upper
    }

    /// Compact text: `index:count` pairs by index, comma-separated (what the database stores).
    public var encoded: String {
        counts.keys.sorted().map { "\($0):\(counts[$0]!)" }.joined(separator: ",")
    }

    public init(encoded text: String) {
        for pair in text.split(separator: ",") {
            let parts = pair.split(separator: ":")
            guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), (0..<Self.bucketCount).contains(i), n > 0 else { continue }
            counts[i, default: 0] += n
        }
    }
}
