import Catalog

/// Energy in integer micro-watt-hours (µWh), so sums never drift; `wattHours` is a view.
///
///     Wh = tokens × kWh/Mtok × 1000 / 1e6   ⇒   µWh = tokens × (kWh/Mtok × 1e9 µWh/Mtok) / 1e6
///
/// The catalog's Double rate is converted once to integer µWh per million tokens (exact to
/// 1e-9 kWh/Mtok); each request's energy is then rounded half-up to 1 µWh.
public struct Energy: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var microWattHours: Int64

    public init(microWattHours: Int64) { self.microWattHours = microWattHours }
    public static let zero = Energy(microWattHours: 0)

    /// Watt-hours as a Double, for display and JSON (`energy_wh`).
    public var wattHours: Double { Double(microWattHours) / 1_000_000 }

    /// Exact decimal Wh with six decimals: 1234 µWh → "0.001234".
    public var wattHoursString: String {
        let m = microWattHours.magnitude
        var f = String(m % 1_000_000)
        f = String(repeating: "0", count: 6 - f.count) + f
        return (microWattHours < 0 ? "-" : "") + String(m / 1_000_000) + "." + f
    }

    public var description: String { wattHoursString + " Wh" }

    /// A model's rate as integer µWh per million tokens; nil for a negative, NaN or huge rate.
    public static func microWhPerMTok(kWhPerMTok: Double) -> Int64? {
        let v = (kWhPerMTok * 1e9).rounded()
        guard v.isFinite, v >= 0, v < 9e18 else { return nil }
        return Int64(v)
    }

    /// The energy of `tokens` at `microWhPerMTok`; nil on overflow or negative tokens.
    public static func of(tokens: Int, microWhPerMTok rate: Int64) -> Energy? {
        guard tokens >= 0 else { return nil }
        let (p, o) = Int64(tokens).multipliedReportingOverflow(by: rate)
        if o { return nil }
        return Energy(microWattHours: p / 1_000_000 + (p % 1_000_000 >= 500_000 ? 1 : 0))
    }

    /// The energy of `tokens` at the catalog's `kWhPerMTok`.
    public static func of(tokens: Int, kWhPerMTok: Double) -> Energy? {
        microWhPerMTok(kWhPerMTok: kWhPerMTok).flatMap { of(tokens: tokens, microWhPerMTok: $0) }
    }

    /// The energy of one request: all its tokens (input + output) at the model's rate;
    /// nil when the catalog gives the model no rate.
    public static func of(_ account: TokenAccount, model: CatalogEntry) -> Energy? {
        model.energyKWhPerMTok.flatMap { of(tokens: account.totalTokens, kWhPerMTok: $0) }
    }

    public static func + (a: Energy, b: Energy) -> Energy {
        Energy(microWattHours: a.microWattHours + b.microWattHours)
    }

    public static func < (a: Energy, b: Energy) -> Bool { a.microWattHours < b.microWattHours }
}
