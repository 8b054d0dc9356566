import Catalog

/// Prices per model over time. A price has an instant from which it is in force; a request is
/// priced with the price in force at its start (`price(model:at:)`), so a change never re-prices
/// past usage: `schedule` refuses any change whose instant is before `now`.
public struct PriceBook: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var model: String
        /// Unix milliseconds from which `prices` apply (inclusive).
        public var effectiveFromMs: Int64
        public var prices: Prices

        public init(model: String, effectiveFromMs: Int64, prices: Prices) {
            self.model = model; self.effectiveFromMs = effectiveFromMs; self.prices = prices
        }
    }

    public enum Failure: Error, Equatable {
        /// The change would apply before `now` and re-price usage already recorded.
        case retroactive(model: String, effectiveFromMs: Int64, nowMs: Int64)
    }

    /// Per model, sorted by `effectiveFromMs`, one entry per instant.
    private var byModel: [String: [Entry]] = [:]

    /// Entries in any order; for one (model, instant) the last one given wins.
    public init(_ entries: [Entry] = []) {
        for e in entries { insert(e) }
    }

    /// Every catalog model at its catalog price, in force from `effectiveFromMs` (default: always).
    public init(catalog: [CatalogEntry], effectiveFromMs: Int64 = .min) {
        self.init(catalog.map { Entry(model: $0.id, effectiveFromMs: effectiveFromMs, prices: $0.prices) })
    }

    /// The prices in force for `model` at the instant `ms`; nil when none is (yet) in force.
    public func price(model: String, at ms: Int64) -> Prices? {
        guard let list = byModel[model] else { return nil }
        // last entry with effectiveFromMs <= ms (binary search)
        var lo = 0, hi = list.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if list[mid].effectiveFromMs <= ms { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? nil : list[lo - 1].prices
    }

    /// As `price(model:at:)`, falling back to `fallback` (e.g. the catalog's or SPEC S3 defaults).
    public func price(model: String, at ms: Int64, default fallback: Prices) -> Prices {
        price(model: model, at: ms) ?? fallback
    }

    /// Schedules a price change from `effectiveFromMs`. Refused when it is before `nowMs`, since it
    /// would change the price of requests already billed. A change at or after `nowMs` replaces any
    /// entry scheduled for the same instant.
    public mutating func schedule(model: String, effectiveFromMs: Int64, prices: Prices, nowMs: Int64) throws(Failure) {
        guard effectiveFromMs >= nowMs else {
            throw .retroactive(model: model, effectiveFromMs: effectiveFromMs, nowMs: nowMs)
        }
        insert(Entry(model: model, effectiveFromMs: effectiveFromMs, prices: prices))
    }

    /// The history of one model, oldest first.
    public func entries(model: String) -> [Entry] { byModel[model] ?? [] }

    /// Every entry, by model then instant.
    public var entries: [Entry] { byModel.keys.sorted().flatMap { byModel[$0]! } }

    private mutating func insert(_ e: Entry) {
        var list = byModel[e.model] ?? []
        if let i = list.firstIndex(where: { $0.effectiveFromMs == e.effectiveFromMs }) {
            list[i] = e
        } else {
            let i = list.firstIndex(where: { $0.effectiveFromMs > e.effectiveFromMs }) ?? list.count
            list.insert(e, at: i)
        }
        byModel[e.model] = list
    }
}
