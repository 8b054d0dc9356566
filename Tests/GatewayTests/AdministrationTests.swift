import Clocks
import Foundation
import Logging
import Quotas
import Storage
import Tenancy
import StorageTesting
import Testing
@testable import Gateway

/// The administration service the admin API and the CLI share: the upfront credit given in one
/// place, tiers from the configuration, times from the platform's injected clock.
@Suite(.serialized) struct AdministrationTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    /// A fixed instant far from the wall clock: a time written from Date() cannot equal it.
    static let t0: Int64 = 1_900_000_000_000

    func withPlatform(_ driver: TestDatabase, _ body: (Platform) async throws -> Void) async throws {
        var config = GatewayConfig()
        config.dataDir = NSTemporaryDirectory() + "llmaas-admin-\(UUID().uuidString)"
        config.catalogPath = Self.repo + "/deploy/catalog.yaml"
        config.tiers["gold"] = Tier(name: "gold", outputTokensPerHour: 1_000, outputTokensPerDay: 10_000, monthlyCapNano: nil, priority: 5,
                                    upfrontCreditNano: 7 * Tier.euro)
        try FileManager.default.createDirectory(atPath: config.dataDir, withIntermediateDirectories: true)
        let storage = try await driver.open()
        try await storage.migrate(at: 1_764_000_000_000)
        let platform = try Platform(config: config, storage: storage, logger: Logger(label: "administration-test"), clock: ManualClock(nowMs: Self.t0))
        do {
            try await body(platform)
        } catch {
            await platform.shutdown()
            throw error
        }
        await platform.shutdown()
        try? FileManager.default.removeItem(atPath: config.dataDir)
    }

    @Test(arguments: TestDatabase.all) func newTenantGetsItsTiersCreditAtThePlatformsTime(_ driver: TestDatabase) async throws {
        try await withPlatform(driver) { platform in
            let admin = platform.administration
            #expect(admin.tierNames.contains("gold") && admin.tierNames.contains("monthly"))
            let gold = try await admin.createTenant(name: "acme", tier: "gold")
            let credits = try await platform.storage.credits(tenantID: gold.id)
            #expect(credits.map(\.amountNano) == [7 * Tier.euro])
            #expect(credits.map(\.createdAt) == [Self.t0])
            #expect(gold.createdAt == Self.t0)
            let monthly = try await admin.createTenant(name: "big", tier: "monthly")
            #expect(try await platform.storage.credits(tenantID: monthly.id).isEmpty)
            // Settings applied at creation decide the tier whose credit is given.
            let moved = try await admin.createTenant(name: "moved") { $0.tier = "gold" }
            #expect(try await platform.storage.tenant(named: "moved")?.tier == "gold")
            #expect(try await platform.storage.credits(tenantID: moved.id).map(\.amountNano) == [7 * Tier.euro])
            await #expect(throws: TenancyError.self) { try await admin.createTenant(name: "nope", tier: "platinum") }
            #expect(try await platform.storage.tenant(named: "nope") == nil)
        }
    }

    @Test(arguments: TestDatabase.all) func addedCreditReachesTheBudgetAtOnce(_ driver: TestDatabase) async throws {
        try await withPlatform(driver) { platform in
            let t = try await platform.administration.createTenant(name: "acme", tier: "gold")
            #expect(await platform.billing.budget(t.id).balance == 7 * Tier.euro)  // cached from here on
            let balance = try await platform.administration.addCredit(tenantID: t.id, amountNano: Tier.euro, note: "top-up")
            #expect(balance == 8 * Tier.euro)
            #expect(await platform.billing.budget(t.id).balance == 8 * Tier.euro)
            #expect(try await platform.storage.credits(tenantID: t.id).map(\.createdAt) == [Self.t0, Self.t0])
        }
    }
}
