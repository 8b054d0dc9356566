import Foundation
import OpenAIWire
import Testing
@testable import Catalog

@Suite struct ModelJSONTests {
    @Test func openAIFieldsLifecyclePricingEnergy() throws {
        var e = walker
        e.aliases = ["walker"]
        e.capabilities = [.tools, .chat]
        e.contextLength = 32768
        e.energyKWhPerMTok = 0.15
        e.prices = Prices(inputNanoPerToken: 900, outputNanoPerToken: 4000, reasoningNanoPerToken: 1)
        let json = e.modelJSON(on: day("2026-11-29"))
        #expect(json.jsonString == #"{"id":"walker:7b","object":"model","created":1768003200,"owned_by":"Test Lab","aliases":["walker"],"lifecycle":{"phase":"production","status":"sunset","in_production":"2026-01-10","end_of_support":"2026-12-31","retires_at":"2027-03-31","extended_support_until":null,"days_until_retirement":122,"successor":"runner:8b"},"capabilities":["chat","tools"],"context_length":32768,"max_model_len":32768,"pricing":{"currency":"EUR","input_eur_per_mtok":"0.9","output_eur_per_mtok":"4","reasoning_eur_per_mtok":"0.001","input_nano_eur_per_token":900,"output_nano_eur_per_token":4000,"reasoning_nano_eur_per_token":1},"energy_kwh_per_mtok":0.15}"#)
        // The tenant with an extension sees its own retirement date.
        let acme = e.modelJSON(on: day("2026-11-29"), tenant: "acme")
        #expect(acme["lifecycle"]?["retires_at"] == .string("2027-07-01"))
        #expect(acme["lifecycle"]?["extended_support_until"] == .string("2027-06-30"))
    }

    @Test func eurosAreExactDecimals() {
        #expect(Prices.eurPerMTok(nanoPerToken: 900) == "0.9")
        #expect(Prices.eurPerMTok(nanoPerToken: 21000) == "21")
        #expect(Prices.eurPerMTok(nanoPerToken: 1050) == "1.05")
        #expect(Prices.eurPerMTok(nanoPerToken: 0) == "0")
        for n in [0, 1, 10, 99, 900, 1001, 123456] {
            #expect(CatalogFile.nanoPerToken(fromEurPerMTok: Prices.eurPerMTok(nanoPerToken: n)) == n)
        }
    }

    @Test func listingHidesRetiredAndNotYetAvailable() throws {
        let catalog = try shippedCatalog()
        let list = catalog.modelsJSON(on: day("2026-11-29"))
        let ids = (list["data"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
        #expect(ids.contains("gemma3:4b"))
        #expect(!ids.contains("llama3.1:8b"))
        #expect(!ids.contains("deepcoder:14b"))
        let served = catalog.modelsJSON(on: day("2026-11-29"), include: { $0.id == "smollm2:135m" })
        #expect(served["data"]?.arrayValue?.count == 1)

        let early = try Catalog(entries: [walker, CatalogEntry(id: "runner:8b", phase: .experimental, inProduction: day("2027-01-01"))])
        let names = { (v: JSONValue) in (v["data"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue } }
        #expect(names(early.modelsJSON(on: day("2026-11-29"))) == ["walker:7b"])
        #expect(names(early.modelsJSON(on: day("2026-11-29"), experimentalOptIn: true)) == ["walker:7b", "runner:8b"])
        #expect(names(early.modelsJSON(on: day("2027-03-31"))) == ["runner:8b"])
        #expect(names(early.modelsJSON(on: day("2027-03-31"), tenant: "acme")) == ["walker:7b", "runner:8b"])
    }
}

@Suite struct NoticePlannerTests {
    let catalog = try! Catalog(entries: [
        CatalogEntry(id: "walker:7b", inProduction: day("2026-01-10"), endOfSupport: day("2026-12-31"), successor: "runner:8b", aliases: ["walker"]),
        CatalogEntry(id: "runner:8b", inProduction: day("2026-01-10"), endOfSupport: day("2028-12-31")),
        CatalogEntry(id: "idle:1b", inProduction: day("2026-01-10"), endOfSupport: day("2026-12-31")),
    ])

    @Test func exactlyOncePerModelAndPhaseAcrossAWalkOfTheClock() {
        var sent: Set<NoticeKey> = []
        var log: [(Day, NoticeKey)] = []
        var today = day("2026-09-01")
        while today <= day("2027-05-01") {
            // The tenant uses the model by id and by alias, every day, and never touches idle:1b.
            let plan = NoticePlanner.plan(tenant: "t1", modelsUsed: ["walker", "walker:7b", "runner:8b", "unknown:0b"],
                                          catalog: catalog, on: today, alreadySent: sent)
            for n in plan {
                #expect(!sent.contains(n.key))
                sent.insert(n.key)
                log.append((today, n.key))
            }
            today = today.adding(days: 1)
        }
        #expect(log.map(\.0) == [day("2026-10-02"), day("2026-12-31")])
        #expect(log.map(\.1) == [NoticeKey(tenant: "t1", model: "walker:7b", phase: .sunset),
                                 NoticeKey(tenant: "t1", model: "walker:7b", phase: .deprecated)])
    }

    @Test func contentOfANotice() throws {
        let n = try #require(NoticePlanner.plan(tenant: "t1", modelsUsed: ["walker"], catalog: catalog, on: day("2026-10-02"), alreadySent: []).first)
        #expect(n.phase == .sunset)
        #expect(n.phaseStarted == day("2026-10-02"))
        #expect(n.removal == day("2027-03-31"))
        #expect(n.namesUsed == ["walker"])
        #expect(n.message == "Model 'walker:7b' reaches its end of support on 2026-12-31 and will be removed on 2027-03-31. Move to 'runner:8b' before then.")
        #expect(n.json["type"] == .string("model.lifecycle"))
        #expect(n.json["retires_at"] == .string("2027-03-31"))
    }

    @Test func lateStartGetsOnlyTheCurrentPhase() {
        let plan = NoticePlanner.plan(tenant: "t1", modelsUsed: ["walker:7b"], catalog: catalog, on: day("2027-01-15"), alreadySent: [])
        #expect(plan.map(\.key) == [NoticeKey(tenant: "t1", model: "walker:7b", phase: .deprecated)])
        // Another tenant's notice does not count as this tenant's.
        let other = NoticePlanner.plan(tenant: "t2", modelsUsed: ["walker:7b"], catalog: catalog, on: day("2027-01-15"),
                                       alreadySent: [NoticeKey(tenant: "t1", model: "walker:7b", phase: .deprecated)])
        #expect(other.count == 1)
        // Nothing once retired, nothing for unused models.
        #expect(NoticePlanner.plan(tenant: "t1", modelsUsed: ["walker:7b"], catalog: catalog, on: day("2027-03-31"), alreadySent: []).isEmpty)
        #expect(NoticePlanner.plan(tenant: "t1", modelsUsed: [], catalog: catalog, on: day("2027-01-15"), alreadySent: []).isEmpty)
    }
}

@Suite struct LifecycleReportTests {
    @Test func tableAndJSON() throws {
        let catalog = try Catalog(entries: [
            CatalogEntry(id: "runner:8b", developer: "Lab", inProduction: day("2026-01-10"), endOfSupport: day("2028-12-31")),
            walker,
            CatalogEntry(id: "old:1b", developer: "Lab", inProduction: day("2025-01-01"), endOfSupport: day("2025-12-31"), successor: "runner:8b"),
        ])
        let report = LifecycleReport(catalog: catalog, on: day("2026-11-29"))
        #expect(report.rows.map(\.id) == ["old:1b", "walker:7b", "runner:8b"])
        #expect(report.rows.map(\.daysLeft) == [0, 122, 853])
        #expect(report.rows.map(\.state.name) == ["retired", "sunset", "production"])
        let lines = report.table.split(separator: "\n").map(String.init)
        #expect(lines.count == 5)
        #expect(lines[1].hasPrefix("MODEL      DEVELOPER  PHASE       STATUS"))
        #expect(lines[2].contains("retired") && lines[2].hasSuffix("runner:8b"))
        #expect(lines[3].contains("2027-03-31        122  runner:8b"))
        let json = report.json
        #expect(json["date"] == .string("2026-11-29"))
        let walkerRow = try #require(json["data"]?.arrayValue?[1])
        #expect(walkerRow.jsonString == #"{"id":"walker:7b","owned_by":"Test Lab","phase":"production","status":"sunset","in_production":"2026-01-10","end_of_support":"2026-12-31","retires_at":"2027-03-31","days_to_end_of_support":32,"days_left":122,"successor":"runner:8b"}"#)
        // Extensions are private: never in the public report.
        #expect(!json.jsonString.contains("acme"))
    }
}
