import Foundation
import Testing
@testable import Catalog

@Suite struct CatalogTests {
    @Test func parsesModelsAndAliases() throws {
        let catalog = try CatalogFile.parse("""
        models:
          - id: granite3.3:8b
            developer: IBM
            phase: production
            in_production: 2025-06-13
            end_of_support: 2026-12-31
            aliases: [granite3.3]
            capabilities: [chat, tools]
            context_length: 131072
            prices: { input_eur_per_mtok: 0.9, output_eur_per_mtok: 4, reasoning_eur_per_mtok: 21 }
            energy_kwh_per_mtok: 1.5
        """)
        let e = try #require(catalog.resolve("granite3.3"))
        #expect(e.id == "granite3.3:8b")
        #expect(e.capabilities == [.chat, .tools])
        #expect(e.endOfSupport == Day(year: 2026, month: 12, day: 31))
        #expect(e.prices == .reference)
        #expect(catalog.resolve("nope") == nil)
    }

    @Test(arguments: [
        ("models:\n  - developer: x", "models[0].id"),
        ("models:\n  - id: a\n    phase: beta", "models[0].phase"),
        ("models:\n  - id: a\n    in_production: 2025-13-01", "models[0].in_production"),
        ("models:\n  - id: a\n    capabilities: [chat, telepathy]", "models[0].capabilities[1]"),
        ("models:\n  - id: a\n    colour: red", "models[0].colour"),
        ("models:\n  - id: a\n  - id: a", "models[1]"),
        ("models:\n  - id: a\n    successor: b", "models[0].successor"),
        ("models:\n  - id: a\n    prices: {input_eur_per_mtok: -1}", "models[0].prices.input_eur_per_mtok"),
        ("nothing: here", "models"),
    ])
    func badFilesNameTheField(_ yaml: String, _ path: String) {
        do {
            _ = try CatalogFile.parse(yaml)
            Issue.record("should fail")
        } catch let e as CatalogError {
            #expect(e.path == path)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    /// Issue 17: a model's batch price is its catalog `batch_prices`, each price not given being
    /// half the interactive one; a model without any is priced at half by billing.
    @Test func batchPrices() throws {
        let catalog = try CatalogFile.parse("""
        models:
          - id: a
            prices: { input_eur_per_mtok: 1, output_eur_per_mtok: 5 }
            batch_prices: { output_eur_per_mtok: 2 }
          - id: b
        """)
        let a = try #require(catalog.resolve("a"))
        #expect(a.batchPrices == Prices(inputNanoPerToken: 500, outputNanoPerToken: 2000, reasoningNanoPerToken: 10500))
        #expect(try #require(catalog.resolve("b")).batchPrices == nil)
        #expect(Prices.reference.halved == Prices(inputNanoPerToken: 450, outputNanoPerToken: 2000, reasoningNanoPerToken: 10500))
        #expect(throws: CatalogError.self) { try CatalogFile.parse("models:\n  - id: a\n    batch_prices: {output_eur_per_mtok: -1}") }
    }

    @Test func pricesAreExactIntegers() {
        #expect(CatalogFile.nanoPerToken(fromEurPerMTok: "0.9") == 900)
        #expect(CatalogFile.nanoPerToken(fromEurPerMTok: "4") == 4000)
        #expect(CatalogFile.nanoPerToken(fromEurPerMTok: "21") == 21000)
        #expect(CatalogFile.nanoPerToken(fromEurPerMTok: "0.001") == 1)
        #expect(CatalogFile.nanoPerToken(fromEurPerMTok: "0.0001") == nil)
        #expect(CatalogFile.nanoPerToken(fromEurPerMTok: "abc") == nil)
    }

    @Test func dayArithmetic() {
        #expect(Day("1970-01-01")?.daysSinceEpoch == 0)
        #expect(Day("2026-11-29")?.unixTime == 1_795_910_400)
        #expect(Day("2024-02-29") != nil)
        #expect(Day("2025-02-29") == nil)
    }

    @Test func shippedCatalogLoads() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let catalog = try CatalogFile.load(path: root.appendingPathComponent("deploy/catalog.yaml").path)
        #expect(catalog.entries.count == 50)  // the reference's 47, smollm2, a reranker and a Whisper (issue 17)
        #expect(catalog.resolve("bge-reranker")?.capabilities == [.rerank])
        #expect(catalog.resolve("bge-reranker-v2-m3")?.prices.rerankNanoPerToken == 4000)
        #expect(catalog.resolve("whisper-1")?.id == "whisper-large-v3-turbo")
        #expect(catalog.resolve("whisper-1")?.prices.audioNanoPerMinute == 10_000_000)
        #expect(catalog.resolve("whisper-1")?.energyWhPerAudioMinute == 0.05)
        #expect(catalog.resolve("smollm2")?.id == "smollm2:135m")
        #expect(catalog.resolve("granite3.3")?.id == "granite3.3:8b")
        #expect(catalog.resolve("llama3.3:70b")?.energyKWhPerMTok == 11.75)
    }
}
