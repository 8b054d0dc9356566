import Catalog
import Testing
@testable import Metering

/// Rerank and audio prices (issue 17): per reranked token and per started minute, exact n€.
@Suite struct UnitsTests {
    @Test func rerankIsPricedPerToken() throws {
        let prices = Prices.reference  // rerank 4 €/M tokens = 4000 n€ per token
        #expect(try MeteredWork.rerankedTokens(250).cost(at: prices).nanoEuros == 1_000_000)
        #expect(try MeteredWork.rerankedTokens(1_000_000).cost(at: prices).euroString == "4.000000000")
        var custom = prices
        custom.rerankNanoPerToken = 1500
        #expect(try MeteredWork.rerankedTokens(2).cost(at: custom).nanoEuros == 3000)
        #expect(MeteredWork.rerankedTokens(5).outputTokens == 0)
    }

    @Test func audioIsPricedPerStartedMinute() throws {
        let prices = Prices.reference  // 0.01 € per started minute
        #expect(try MeteredWork.audio(durationMs: 1).cost(at: prices).euroString == "0.010000000")
        #expect(try MeteredWork.audio(durationMs: 60_000).cost(at: prices).euroString == "0.010000000")
        #expect(try MeteredWork.audio(durationMs: 60_001).cost(at: prices).euroString == "0.020000000")
        #expect(try MeteredWork.audio(durationMs: 3_600_000).cost(at: prices).euroString == "0.600000000")
        #expect(MeteredWork.startedMinutes(durationMs: 119_999) == 2)
        #expect(throws: Cost.Failure.self) { try MeteredWork.audio(durationMs: -1).cost(at: prices) }
    }

    @Test func energyOfEachUnit() {
        var model = CatalogEntry(id: "m", energyKWhPerMTok: 2)
        #expect(MeteredWork.rerankedTokens(1000).energy(model: model)?.microWattHours == 2_000_000)  // 2 kWh/M × 1000 = 2 Wh
        #expect(MeteredWork.audio(durationMs: 1000).energy(model: model) == nil)
        model.energyWhPerAudioMinute = 0.06
        // 0.06 Wh per minute × 30 s = 0.03 Wh = 30 000 µWh.
        #expect(MeteredWork.audio(durationMs: 30_000).energy(model: model)?.microWattHours == 30_000)
    }

    @Test func cataloguePricesParse() throws {
        #expect(CatalogFile.nanoEuros(fromEuros: "0.01") == 10_000_000)
        #expect(CatalogFile.nanoEuros(fromEuros: "1.000000001") == 1_000_000_001)
        #expect(CatalogFile.nanoEuros(fromEuros: "0.0000000001") == nil)
        #expect(CatalogFile.nanoEuros(fromEuros: "-1") == nil)
        let catalog = try CatalogFile.parse("""
        models:
          - id: r
            capabilities: [rerank]
            prices: { rerank_eur_per_mtok: 2.5, audio_eur_per_minute: 0.006 }
        """)
        #expect(catalog.entries[0].prices.rerankNanoPerToken == 2500)
        #expect(catalog.entries[0].prices.audioNanoPerMinute == 6_000_000)
        #expect(throws: CatalogError.self) { try CatalogFile.parse("models:\n  - id: r\n    prices: { audio_eur_per_minute: abc }\n") }
    }
}
