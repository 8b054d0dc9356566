import Foundation
import OpenAIWire
import Testing
@testable import Catalog

func day(_ s: String) -> Day { Day(s)! }

/// The shipped catalog, read from the repository.
func shippedCatalog() throws -> Catalog {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return try CatalogFile.load(path: root.appendingPathComponent("deploy/catalog.yaml").path)
}

/// The APIError `body` throws, or nil when it returns.
func apiError(_ body: () throws -> Any) -> APIError? {
    do {
        _ = try body()
        return nil
    } catch let e as APIError {
        return e
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}

/// DMP 2026-01-10, DSP 2026-12-31 → sunset warnings from 2026-10-02, removal 2027-03-31.
let walker = CatalogEntry(id: "walker:7b", developer: "Test Lab", inProduction: day("2026-01-10"), endOfSupport: day("2026-12-31"),
                          successor: "runner:8b", extendedSupport: ["acme": day("2027-06-30")])

@Suite struct DayArithmeticTests {
    @Test func roundTripsUnixTime() {
        for s in ["1970-01-01", "2000-02-29", "2026-11-29", "2027-03-31", "1969-12-31"] {
            let d = day(s)
            #expect(Day(daysSinceEpoch: d.daysSinceEpoch) == d)
            #expect(Day(unixTime: d.unixTime) == d)
            #expect(Day(unixTime: d.unixTime + 86399) == d)
        }
        #expect(Day(unixTime: -1) == day("1969-12-31"))
    }

    @Test func monthsClampToTheMonthEnd() {
        #expect(day("2025-12-31").adding(months: 3) == day("2026-03-31"))
        #expect(day("2025-11-30").adding(months: 3) == day("2026-02-28"))
        #expect(day("2023-11-30").adding(months: 3) == day("2024-02-29"))
        #expect(day("2026-06-30").adding(months: 3) == day("2026-09-30"))
        #expect(day("2026-10-15").adding(months: 3) == day("2027-01-15"))
        #expect(day("2026-12-31").adding(days: -90) == day("2026-10-02"))
        #expect(day("2026-11-29").days(until: day("2027-03-31")) == 122)
    }

    @Test func httpDates() {
        #expect(day("2027-03-31").httpDate == "Wed, 31 Mar 2027 00:00:00 GMT")
        #expect(day("2026-12-31").httpDate == "Thu, 31 Dec 2026 00:00:00 GMT")
        #expect(day("2026-10-02").httpDate == "Fri, 02 Oct 2026 00:00:00 GMT")
        #expect(day("1970-01-01").httpDate == "Thu, 01 Jan 1970 00:00:00 GMT")
    }
}

@Suite struct LifecycleTests {
    @Test(arguments: [
        ("2026-01-09", LifecycleState.notYetAvailable(until: day("2026-01-10"))),
        ("2026-01-10", .production),
        ("2026-01-11", .production),
        ("2026-10-01", .production),
        ("2026-10-02", .sunsetWindow(removal: day("2027-03-31"))),
        ("2026-10-03", .sunsetWindow(removal: day("2027-03-31"))),
        ("2026-12-30", .sunsetWindow(removal: day("2027-03-31"))),
        ("2026-12-31", .deprecated(since: day("2026-12-31"), removal: day("2027-03-31"))),
        ("2027-01-01", .deprecated(since: day("2026-12-31"), removal: day("2027-03-31"))),
        ("2027-03-30", .deprecated(since: day("2026-12-31"), removal: day("2027-03-31"))),
        ("2027-03-31", .retired(on: day("2027-03-31"))),
        ("2027-04-01", .retired(on: day("2027-03-31"))),
    ])
    func walksEveryBoundary(_ today: String, _ expected: LifecycleState) {
        #expect(walker.lifecycle(on: day(today)) == expected)
    }

    @Test func extensionMovesRemovalForOneTenantOnly() {
        #expect(walker.extendedUntil(tenant: "acme") == day("2027-06-30"))
        #expect(walker.extendedUntil(tenant: "other") == nil)
        #expect(walker.extendedUntil(tenant: nil) == nil)
        let ext = walker.extendedUntil(tenant: "acme")
        #expect(walker.lifecycle(on: day("2026-10-02"), extendedUntil: ext) == .sunsetWindow(removal: day("2027-07-01")))
        #expect(walker.lifecycle(on: day("2027-03-31"), extendedUntil: ext) == .deprecated(since: day("2026-12-31"), removal: day("2027-07-01")))
        #expect(walker.lifecycle(on: day("2027-06-30"), extendedUntil: ext) == .deprecated(since: day("2026-12-31"), removal: day("2027-07-01")))
        #expect(walker.lifecycle(on: day("2027-07-01"), extendedUntil: ext) == .retired(on: day("2027-07-01")))
        // An "extension" earlier than the standard removal never shortens support.
        #expect(walker.lifecycle(on: day("2027-03-01"), extendedUntil: day("2027-01-01")) == .deprecated(since: day("2026-12-31"), removal: day("2027-03-31")))

        #expect(throws: APIError.self) {
            try Lifecycle.admit(walker, on: day("2027-04-01"), tenant: "other", experimentalOptIn: false, baseURL: "https://x")
        }
        let h = try? Lifecycle.admit(walker, on: day("2027-04-01"), tenant: "acme", experimentalOptIn: false, baseURL: "https://x")
        #expect(h?.first { $0.0 == "Sunset" }?.1 == "Thu, 01 Jul 2027 00:00:00 GMT")
    }

    @Test func headersAreExact() {
        let base = "https://llm.example.eu"
        #expect(Lifecycle.headers(for: walker, state: walker.lifecycle(on: day("2026-10-01")), baseURL: base).isEmpty)
        let sunset = Lifecycle.headers(for: walker, state: walker.lifecycle(on: day("2026-10-02")), baseURL: base)
        #expect(sunset.map(\.0) == ["Sunset", "Link"])
        #expect(sunset.map(\.1) == ["Wed, 31 Mar 2027 00:00:00 GMT", "<https://llm.example.eu/v1/models/runner:8b>; rel=\"successor-version\""])
        let deprecated = Lifecycle.headers(for: walker, state: walker.lifecycle(on: day("2026-12-31")), baseURL: base + "/v1/")
        #expect(deprecated.map(\.0) == ["Deprecation", "Sunset", "Link"])
        #expect(deprecated.map(\.1) == ["@1798675200", "Wed, 31 Mar 2027 00:00:00 GMT", "<https://llm.example.eu/v1/models/runner:8b>; rel=\"successor-version\""])
        #expect(Lifecycle.headers(for: walker, state: walker.lifecycle(on: day("2027-03-31")), baseURL: base).isEmpty)

        var orphan = walker
        orphan.successor = nil
        #expect(Lifecycle.headers(for: orphan, state: orphan.lifecycle(on: day("2026-11-01")), baseURL: base).map(\.0) == ["Sunset"])
        #expect(Lifecycle.modelURL("a b/c", baseURL: "http://h:1") == "http://h:1/v1/models/a%20b%2Fc")
    }

    @Test func admitRefusesBeforeDMPUnlessExperimentalOptIn() throws {
        let base = "https://x"
        let error = try #require(apiError { try Lifecycle.admit(walker, requested: "walker", on: day("2026-01-09"), tenant: nil, experimentalOptIn: true, baseURL: base) })
        #expect(error.status == 404)
        #expect(error.code == "model_not_found")
        #expect(error.message.contains("'walker'"))
        var beta = walker
        beta.phase = .experimental
        #expect(throws: APIError.self) {
            try Lifecycle.admit(beta, on: day("2026-01-09"), tenant: nil, experimentalOptIn: false, baseURL: base)
        }
        #expect(try Lifecycle.admit(beta, on: day("2026-01-09"), tenant: nil, experimentalOptIn: true, baseURL: base).isEmpty)
        #expect(try Lifecycle.admit(walker, on: day("2026-01-10"), tenant: nil, experimentalOptIn: false, baseURL: base).isEmpty)
    }

    @Test func retiredIs410WithDateAndSuccessor() throws {
        let error = try #require(apiError { try Lifecycle.admit(walker, requested: "walker", on: day("2027-03-31"), tenant: nil, experimentalOptIn: false, baseURL: "https://x") })
        #expect(error.status == 410)
        #expect(error.code == "model_retired")
        #expect(error.type == "invalid_request_error")
        #expect(error.param == "model")
        #expect(error.message == "Model 'walker' (walker:7b) was retired on 2027-03-31 (end of support 2026-12-31, then 3 months' notice). Use its successor 'runner:8b' instead.")
        #expect(error.headers.map(\.0) == ["Link"])
        #expect(error.headers.first?.1 == "<https://x/v1/models/runner:8b>; rel=\"successor-version\"")
        let ext = APIError.modelRetired(walker, on: day("2027-07-01"))
        #expect(ext.message == "Model 'walker:7b' was retired on 2027-07-01 (end of support 2026-12-31; the extended support of your account ended 2027-06-30). Use its successor 'runner:8b' instead.")
    }

    /// The issue's example: on 2026-11-29 with the reference table.
    @Test func referenceCatalogOn20261129() throws {
        let catalog = try shippedCatalog()
        let today = day("2026-11-29")
        for id in ["llama3.1:8b", "deepcoder:14b"] {
            let e = try #require(catalog.resolve(id))
            guard case .retired = e.lifecycle(on: today) else { Issue.record("\(id) should be retired"); continue }
            let error = try #require(apiError { try Lifecycle.admit(e, on: today, tenant: nil, experimentalOptIn: false, baseURL: "https://x") })
            #expect(error.status == 410)
            #expect(error.message.contains(e.removalDate.description))
            if let s = e.successor { #expect(error.message.contains("'\(s)'")) }
        }
        #expect(catalog.resolve("llama3.1:8b")?.lifecycle(on: today) == .retired(on: day("2026-03-31")))
        #expect(catalog.resolve("deepcoder:14b")?.lifecycle(on: today) == .retired(on: day("2026-09-30")))
        let gemma = try #require(catalog.resolve("gemma3"))
        #expect(gemma.lifecycle(on: today) == .sunsetWindow(removal: day("2027-03-31")))
        let headers = try Lifecycle.admit(gemma, requested: "gemma3", on: today, tenant: nil, experimentalOptIn: false, baseURL: "https://x")
        #expect(headers.first { $0.0 == "Sunset" }?.1 == "Wed, 31 Mar 2027 00:00:00 GMT")
        #expect(headers.contains { $0.0 == "Deprecation" } == false)
        #expect(catalog.resolve("smollm2")?.lifecycle(on: today) == .production)
    }
}
