import Catalog

/// An amount of money in integer nano-euros (1 € = 1_000_000_000 n€; 1 €/M tokens = 1 n€ per
/// token). Never a Double (DESIGN §3). All arithmetic is overflow-checked.
public struct Cost: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var nanoEuros: Int64

    public init(nanoEuros: Int64) { self.nanoEuros = nanoEuros }
    public static let zero = Cost(nanoEuros: 0)
    public static let nanoPerEuro: Int64 = 1_000_000_000

    public enum Failure: Error, Equatable {
        case overflow
        case negativeTokens
    }

    /// The cost of one request's tokens at `prices` (SPEC S3):
    ///
    ///     cost = input × inputPrice
    ///          + (output − reasoning) × outputPrice
    ///          + reasoning × reasoningPrice
    ///
    /// Reasoning tokens are a part of the output (`completion_tokens_details.reasoning_tokens`);
    /// they are billed at the reasoning price *instead of* the output price, never both.
    /// System-prompt tokens are input and billed at the input price.
    public static func of(_ account: TokenAccount, at prices: Prices) throws(Failure) -> Cost {
        try compute(input: account.inputTokens, output: account.outputTokens,
                    reasoning: account.reasoningTokens, prices: prices).total
    }

    /// The cost split by price class; `total` = input + output + reasoning.
    public struct Breakdown: Sendable, Hashable {
        public var input: Cost
        /// Non-reasoning output only.
        public var output: Cost
        public var reasoning: Cost
        public var total: Cost
    }

    /// See `of(_:at:)`; `reasoning` must not exceed `output` (it is clamped).
    public static func compute(input: Int, output: Int, reasoning: Int, prices: Prices) throws(Failure) -> Breakdown {
        guard input >= 0, output >= 0, reasoning >= 0 else { throw .negativeTokens }
        let r = min(reasoning, output)
        let i = try multiply(input, prices.inputNanoPerToken)
        let o = try multiply(output - r, prices.outputNanoPerToken)
        let rc = try multiply(r, prices.reasoningNanoPerToken)
        let total = try i.adding(o).adding(rc)
        return Breakdown(input: i, output: o, reasoning: rc, total: total)
    }

    static func multiply(_ tokens: Int, _ nanoPerToken: Int) throws(Failure) -> Cost {
        let (p, overflow) = Int64(tokens).multipliedReportingOverflow(by: Int64(nanoPerToken))
        if overflow { throw .overflow }
        return Cost(nanoEuros: p)
    }

    public func adding(_ other: Cost) throws(Failure) -> Cost {
        let (s, overflow) = nanoEuros.addingReportingOverflow(other.nanoEuros)
        if overflow { throw .overflow }
        return Cost(nanoEuros: s)
    }

    public func subtracting(_ other: Cost) throws(Failure) -> Cost {
        let (s, overflow) = nanoEuros.subtractingReportingOverflow(other.nanoEuros)
        if overflow { throw .overflow }
        return Cost(nanoEuros: s)
    }

    /// Sum of many costs; throws on overflow instead of trapping.
    public static func sum<S: Sequence>(_ costs: S) throws(Failure) -> Cost where S.Element == Cost {
        var total = Cost.zero
        for c in costs { total = try total.adding(c) }
        return total
    }

    public static func < (a: Cost, b: Cost) -> Bool { a.nanoEuros < b.nanoEuros }

    // MARK: decimal euros

    /// Exact decimal euros with nine decimals: 4500 n€ → "0.000004500", −1 n€ → "-0.000000001".
    public var euroString: String { Cost.euroString(nanoEuros) }

    public var description: String { euroString + " €" }

    public static func euroString(_ nano: Int64) -> String {
        let negative = nano < 0
        // magnitude as UInt64 so Int64.min formats too
        let m = nano.magnitude
        let whole = m / UInt64(nanoPerEuro), frac = m % UInt64(nanoPerEuro)
        var f = String(frac)
        f = String(repeating: "0", count: 9 - f.count) + f
        return (negative ? "-" : "") + String(whole) + "." + f
    }

    /// Parses a decimal euro string exactly: "12", "0.0000045", "-1.5", "0.000004500".
    /// Nil for anything else: more than nine significant decimals, exponents, spaces, overflow.
    public init?(euroString text: String) {
        var s = Substring(text)
        var negative = false
        if s.first == "-" { negative = true; s = s.dropFirst() } else if s.first == "+" { s = s.dropFirst() }
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let wholeText = parts.first, !wholeText.isEmpty,
              wholeText.allSatisfy(\.isASCIIDigit) else { return nil }
        var fracText = parts.count == 2 ? parts[1] : ""
        guard fracText.allSatisfy(\.isASCIIDigit), parts.count == 1 || !fracText.isEmpty else { return nil }
        while fracText.count > 9, fracText.last == "0" { fracText = fracText.dropLast() }
        guard fracText.count <= 9 else { return nil }
        let padded = String(fracText) + String(repeating: "0", count: 9 - fracText.count)
        guard let whole = UInt64(wholeText), let frac = UInt64(padded) else { return nil }
        let (w, o1) = whole.multipliedReportingOverflow(by: UInt64(Cost.nanoPerEuro))
        let (m, o2) = w.addingReportingOverflow(frac)
        guard !o1, !o2 else { return nil }
        if negative {
            guard m <= UInt64(Int64.max) + 1 else { return nil }
            self.nanoEuros = m == UInt64(Int64.max) + 1 ? Int64.min : -Int64(m)
        } else {
            guard m <= UInt64(Int64.max) else { return nil }
            self.nanoEuros = Int64(m)
        }
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
