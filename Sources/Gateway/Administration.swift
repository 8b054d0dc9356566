import Foundation
import OpenAIWire
import Quotas
import Storage
import Tenancy

/// The one administration service: the admin API (`AdminRoutes.swift`, `UsageRoutes.swift`) and the
/// CLI (`llmaas tenant|key|credit …`) both go through it. A new tenant gets its tier's upfront
/// credit here and nowhere else; tier names come from the loaded configuration; every time it
/// writes comes from the injected clock. Callers check their own input and audit with their own
/// actor (`admin:<id>` or `cli`).
public struct Administration: Sendable {
    public let storage: Storage
    public let authority: KeyAuthority
    /// The configured tiers by name (SPEC S4's and the config's own).
    public let tiers: [String: Tier]
    /// Milliseconds since the epoch: the platform's clock (tests move it).
    public let now: @Sendable () -> Int64
    /// A tenant's credit or tier changed: the gateway forgets its cached budget.
    let budgetChanged: @Sendable (String) -> Void

    /// The tier of a tenant created without one (SPEC S4's first tier).
    public static let defaultTier = Tier.tier1.name

    public init(config: GatewayConfig, storage: Storage, authority: KeyAuthority, now: @escaping @Sendable () -> Int64,
                budgetChanged: @escaping @Sendable (String) -> Void = { _ in }) {
        self.storage = storage
        self.authority = authority
        self.tiers = config.tiers
        self.now = now
        self.budgetChanged = budgetChanged
    }

    /// The configured tier names, sorted (what error messages and the OpenAPI document list).
    public var tierNames: [String] { tiers.keys.sorted() }
    public static func tierNames(_ config: GatewayConfig) -> [String] { config.tiers.keys.sorted() }

    public func isTier(_ name: String) -> Bool { tiers[name] != nil }

    // MARK: Tenants

    public func tenants() async throws -> [TenantRecord] { try await storage.tenants() }

    public func tenant(named name: String) async throws -> TenantRecord {
        guard let t = try await storage.tenant(named: name) else { throw TenancyError.notFound("tenant '\(name)' does not exist") }
        return t
    }

    /// Creates a tenant on `tier`, lets `configure` set its settings (check them first: a refusal
    /// here leaves the tenant behind), then grants the upfront credit that unlocks its final tier
    /// (SPEC S4).
    public func createTenant(name: String, tier: String = Administration.defaultTier,
                             configure: (inout TenantRecord) throws -> Void = { _ in }) async throws -> TenantRecord {
        guard isTier(tier) else { throw TenancyError.invalid("tier '\(tier)' is not configured (use one of: \(tierNames.joined(separator: ", ")))") }
        let created = try await authority.createTenant(name: name, tier: tier)
        var t = created
        try configure(&t)
        if t != created { try await storage.updateTenant(t) }
        if let credit = tiers[t.tier]?.upfrontCreditNano, credit > 0 {
            try await storage.addCredit(id: Self.creditID(), tenantID: t.id, amountNano: credit, at: now(), note: "upfront credit of \(t.tier)")
        }
        budgetChanged(t.id)
        return t
    }

    /// Stores a changed tenant; its keys see the change at once (a disabled tenant's stop working).
    public func updateTenant(_ t: TenantRecord) async throws {
        try await storage.updateTenant(t)
        authority.invalidate()
        budgetChanged(t.id)
    }

    // MARK: Credit

    /// Adds prepaid credit and returns the balance after it (credit added − all spend).
    @discardableResult
    public func addCredit(tenantID: String, amountNano: Int64, note: String?) async throws -> Int64 {
        try await storage.addCredit(id: Self.creditID(), tenantID: tenantID, amountNano: amountNano, at: now(), note: note)
        budgetChanged(tenantID)
        return try await balance(tenantID: tenantID)
    }

    public func balance(tenantID: String) async throws -> Int64 {
        try await storage.creditTotal(tenantID: tenantID) - storage.spend(tenantID: tenantID, from: 0, to: Int64.max)
    }

    static func creditID() -> String { "cr_" + UUID().uuidString.lowercased() }

    // MARK: Keys

    public func createKey(tenant: TenantRecord, name: String, grants: Grants = .all, expiresAt: Int64? = nil) async throws -> (APIKeyRecord, APIKeyToken) {
        try await authority.createKey(tenant: tenant, name: name, grants: grants, expiresAt: expiresAt)
    }

    public func createKey(tenantName: String, name: String, grants: Grants = .all) async throws -> (APIKeyRecord, APIKeyToken) {
        try await authority.createKey(tenantName: tenantName, name: name, grants: grants)
    }

    public func keys(tenantID: String) async throws -> [APIKeyRecord] { try await storage.keys(tenantID: tenantID) }

    /// A key as the admin API and `llmaas key list --json` show it: never its secret or hash.
    public func keyJSON(_ k: APIKeyRecord) -> JSONValue { AdminJSON.key(k, now: now()) }

    public func keysJSON(_ keys: [APIKeyRecord]) -> JSONValue { AdminJSON.keys(keys, now: now()) }

    public func revoke(keyID: String) async throws -> APIKeyRecord { try await authority.revoke(keyID: keyID) }

    public func rotate(keyID: String, graceMs: Int64?) async throws -> RotationEvent { try await authority.rotate(keyID: keyID, graceMs: graceMs) }

    public func takeSuccessorSecret(keyID: String) async throws -> (APIKeyRecord, String) { try await authority.takeSuccessorSecret(keyID: keyID) }

    public func updateGrants(keyID: String, grants: Grants) async throws -> APIKeyRecord { try await authority.updateGrants(keyID: keyID, grants: grants) }

    public func createAdminToken(name: String, tenantName: String?) async throws -> (AdminTokenRecord, String) {
        try await authority.createAdminToken(name: name, tenantName: tenantName)
    }
}
