import Catalog
import Testing
import TestSupport
@testable import Metering

@Suite("cost")
struct CostTests {
    @Test func referencePricesBillReasoningInsteadOfOutput() throws {
        // 1000 in, 500 out of which 200 reasoning: 1000×900 + 300×4000 + 200×21000
        let a = TokenAccount(inputTokens: 1000, systemPromptTokens: 100, outputTokens: 500, reasoningTokens: 200)
        let b = try Cost.compute(input: 1000, output: 500, reasoning: 200, prices: .reference)
        #expect(b.input.nanoEuros == 900_000)
        #expect(b.output.nanoEuros == 1_200_000)
        #expect(b.reasoning.nanoEuros == 4_200_000)
        #expect(b.total.nanoEuros == 6_300_000)
        #expect(try Cost.of(a, at: .reference) == b.total)
        #expect(b.total.euroString == "0.006300000")
    }

    @Test func oneTokenOfEachClass() throws {
        #expect(try Cost.compute(input: 5, output: 0, reasoning: 0, prices: .reference).total.euroString == "0.000004500")
        #expect(try Cost.compute(input: 0, output: 1, reasoning: 1, prices: .reference).total.nanoEuros == 21_000)
        // reasoning beyond output is clamped (it is a part of the output)
        #expect(try Cost.compute(input: 0, output: 1, reasoning: 5, prices: .reference).total.nanoEuros == 21_000)
    }

    @Test func overflowThrowsInsteadOfTrapping() {
        let huge = Prices(inputNanoPerToken: Int.max / 2, outputNanoPerToken: 1, reasoningNanoPerToken: 1)
        #expect(throws: Cost.Failure.overflow) { try Cost.compute(input: 3, output: 0, reasoning: 0, prices: huge) }
        #expect(throws: Cost.Failure.overflow) { try Cost(nanoEuros: .max).adding(Cost(nanoEuros: 1)) }
        #expect(throws: Cost.Failure.negativeTokens) { try Cost.compute(input: -1, output: 0, reasoning: 0, prices: .reference) }
        #expect(throws: Cost.Failure.overflow) { try Cost.sum([Cost(nanoEuros: .max), Cost(nanoEuros: 1)]) }
    }

    @Test func decimalStrings() {
        let cases: [(Int64, String)] = [
            (0, "0.000000000"), (1, "0.000000001"), (4_500, "0.000004500"), (1_000_000_000, "1.000000000"),
            (-1, "-0.000000001"), (12_345_678_901, "12.345678901"),
            (.max, "9223372036.854775807"), (.min, "-9223372036.854775808"),
        ]
        for (n, s) in cases {
            #expect(Cost(nanoEuros: n).euroString == s)
            #expect(Cost(euroString: s)?.nanoEuros == n)
        }
        #expect(Cost(euroString: "12")?.nanoEuros == 12_000_000_000)
        #expect(Cost(euroString: "0.0000045")?.nanoEuros == 4_500)
        #expect(Cost(euroString: "1.5000000000000")?.nanoEuros == 1_500_000_000)
        #expect(Cost(euroString: "+2.5")?.nanoEuros == 2_500_000_000)
        for bad in ["", ".5", "1.", "1.0000000001", "1e3", " 1", "1,5", "--1", "9223372037", "-9223372036.854775809", "abc"] {
            #expect(Cost(euroString: bad) == nil, "\(bad)")
        }
    }

    /// A million random rows: the sum of per-row costs equals the cost of the summed tokens
    /// (per price class), and every amount survives its decimal string.
    @Test func millionRowsNeverDrift() throws {
        var rng = SeededRandom(state: 0x11_4A_A5)
        let classes: [Prices] = [
            .reference,
            Prices(inputNanoPerToken: 100, outputNanoPerToken: 300, reasoningNanoPerToken: 1_700),
            Prices(inputNanoPerToken: 2_999, outputNanoPerToken: 15_001, reasoningNanoPerToken: 60_007),
        ]
        var sumCost = [Cost](repeating: .zero, count: classes.count)
        var sumTokens = [(Int, Int, Int)](repeating: (0, 0, 0), count: classes.count)
        var sumParsed = Cost.zero
        for row in 0..<1_000_000 {
            let k = Int.random(in: 0..<classes.count, using: &rng)
            let input = Int.random(in: 0...200_000, using: &rng)
            let output = Int.random(in: 0...32_000, using: &rng)
            let reasoning = Int.random(in: 0...output, using: &rng)
            let c = try Cost.compute(input: input, output: output, reasoning: reasoning, prices: classes[k]).total
            sumCost[k] = try sumCost[k].adding(c)
            sumTokens[k].0 += input; sumTokens[k].1 += output; sumTokens[k].2 += reasoning
            if row % 10 == 0 {  // string round trip on a tenth of the rows keeps the test quick
                let parsed = try #require(Cost(euroString: c.euroString))
                #expect(parsed == c)
                sumParsed = try sumParsed.adding(parsed)
            } else {
                sumParsed = try sumParsed.adding(c)
            }
        }
        for k in classes.indices {
            let t = sumTokens[k]
            let whole = try Cost.compute(input: t.0, output: t.1, reasoning: t.2, prices: classes[k]).total
            #expect(whole == sumCost[k])
            #expect(Cost(euroString: whole.euroString) == whole)
        }
        #expect(try Cost.sum(sumCost) == sumParsed)
    }
}

@Suite("price book")
struct PriceBookTests {
    let day: Int64 = 86_400_000
    let later = Prices(inputNanoPerToken: 1_200, outputNanoPerToken: 5_000, reasoningNanoPerToken: 25_000)

    @Test func priceInForceAtAnInstant() throws {
        var book = PriceBook([PriceBook.Entry(model: "m", effectiveFromMs: 0, prices: .reference)])
        try book.schedule(model: "m", effectiveFromMs: 10 * day, prices: later, nowMs: 5 * day)
        #expect(book.price(model: "m", at: -1) == nil)
        #expect(book.price(model: "m", at: 0) == .reference)
        #expect(book.price(model: "m", at: 10 * day - 1) == .reference)
        #expect(book.price(model: "m", at: 10 * day) == later)
        #expect(book.price(model: "m", at: 100 * day) == later)
        #expect(book.price(model: "other", at: 0) == nil)
        #expect(book.price(model: "other", at: 0, default: .reference) == .reference)
        #expect(book.entries(model: "m").map(\.effectiveFromMs) == [0, 10 * day])
    }

    @Test func aChangeNeverRepricesPastUsage() throws {
        var book = PriceBook(catalog: [CatalogEntry(id: "m")])
        let usage = TokenAccount(inputTokens: 1_000, outputTokens: 400, reasoningTokens: 100)
        let at = 3 * day
        let before = try Cost.of(usage, at: #require(book.price(model: "m", at: at)))
        // a change from now on leaves the past alone
        try book.schedule(model: "m", effectiveFromMs: 4 * day, prices: later, nowMs: 4 * day)
        #expect(try Cost.of(usage, at: #require(book.price(model: "m", at: at))) == before)
        // a retroactive change is refused
        #expect(throws: PriceBook.Failure.retroactive(model: "m", effectiveFromMs: 2 * day, nowMs: 4 * day)) {
            try book.schedule(model: "m", effectiveFromMs: 2 * day, prices: later, nowMs: 4 * day)
        }
        #expect(try Cost.of(usage, at: #require(book.price(model: "m", at: at))) == before)
        #expect(try Cost.of(usage, at: #require(book.price(model: "m", at: 5 * day))) != before)
    }

    @Test func sameInstantReplaces() throws {
        var book = PriceBook()
        try book.schedule(model: "m", effectiveFromMs: 100, prices: .reference, nowMs: 0)
        try book.schedule(model: "m", effectiveFromMs: 100, prices: later, nowMs: 50)
        #expect(book.entries(model: "m").count == 1)
        #expect(book.price(model: "m", at: 100) == later)
    }
}

@Suite("energy")
struct EnergyTests {
    @Test func integerMicroWattHours() throws {
        // 1 M tokens at 0.5 kWh/Mtok = 500 Wh
        #expect(Energy.of(tokens: 1_000_000, kWhPerMTok: 0.5)?.microWattHours == 500_000_000)
        // 1234 tokens at 0.3 kWh/Mtok = 0.3702 Wh
        let e = try #require(Energy.of(tokens: 1_234, kWhPerMTok: 0.3))
        #expect(e.microWattHours == 370_200)
        #expect(e.wattHoursString == "0.370200")
        #expect(abs(e.wattHours - 0.3702) < 1e-12)
        // half-up rounding to 1 µWh
        #expect(Energy.of(tokens: 500_000, microWhPerMTok: 1)?.microWattHours == 1)
        #expect(Energy.of(tokens: 499_999, microWhPerMTok: 1)?.microWattHours == 0)
        #expect(Energy.of(tokens: -1, kWhPerMTok: 1) == nil)
        #expect(Energy.microWhPerMTok(kWhPerMTok: .nan) == nil)
        #expect(Energy.of(tokens: Int.max, microWhPerMTok: 10) == nil)
    }

    @Test func requestEnergyFromCatalog() {
        let account = TokenAccount(inputTokens: 700, outputTokens: 300)
        #expect(Energy.of(account, model: CatalogEntry(id: "m", energyKWhPerMTok: 0.2))?.microWattHours == 200_000)
        #expect(Energy.of(account, model: CatalogEntry(id: "m")) == nil)
    }

    @Test func sumsAreExact() {
        var total = Energy.zero
        for _ in 0..<100_000 { total = total + Energy.of(tokens: 1_234, kWhPerMTok: 0.3)! }
        #expect(total.microWattHours == 37_020_000_000)
        #expect(total.wattHoursString == "37020.000000")
    }
}
