import Foundation
import Storage

/// Automatic rotation (SPEC S2.1). With a tenant policy of period P and grace G (days), a key's
/// successor is created G days before the key's period ends; both work during that overlap, and
/// the old key stops at the end of its period with "key rotated; use its successor".
public struct RotationPolicy: Sendable, Equatable {
    public var periodDays: Int
    public var graceDays: Int

    public init(periodDays: Int, graceDays: Int) {
        self.periodDays = periodDays
        self.graceDays = graceDays
    }

    public init?(tenant: TenantRecord) {
        guard let p = tenant.rotationPeriodDays, p > 0 else { return nil }
        self.init(periodDays: p, graceDays: min(max(0, tenant.gracePeriodDays ?? 7), p))
    }

    static let dayMs: Int64 = 86_400_000

    /// When the key stops working (end of its period).
    public func periodEnd(of key: APIKeyRecord) -> Int64 { key.createdAt + Int64(periodDays) * Self.dayMs }

    /// When the successor is due.
    public func dueAt(_ key: APIKeyRecord) -> Int64 { periodEnd(of: key) - Int64(graceDays) * Self.dayMs }
}

/// What a rotation did, for the audit log and the tenant's webhook (no secret inside).
public struct RotationEvent: Sendable, Equatable {
    public let tenantID: String
    public let keyID: String
    public let successorID: String
    public let oldKeyExpiresAt: Int64
    public let automatic: Bool
}

extension KeyAuthority {
    /// Rotates one key now: a successor with the same grants (its secret sealed until fetched once),
    /// and the old key working until `oldKeyExpiresAt`.
    public func rotate(keyID: String, tenantScope: String? = nil, graceMs: Int64? = nil, automatic: Bool = false) async throws -> RotationEvent {
        guard var key = try await storage.key(id: keyID), tenantScope == nil || key.tenantID == tenantScope,
              let tenant = try await storage.tenant(id: key.tenantID) else {
            throw TenancyError.notFound("key '\(keyID)' does not exist")
        }
        guard key.revokedAt == nil else { throw TenancyError.exists("key '\(keyID)' is revoked; create a new key instead") }
        guard key.successorID == nil else { throw TenancyError.exists("key '\(keyID)' was already rotated to '\(key.successorID ?? "?")'") }
        let t = now()
        let policy = RotationPolicy(tenant: tenant)
        let grace = graceMs ?? policy.map { automatic ? $0.periodEnd(of: key) - t : Int64($0.graceDays) * RotationPolicy.dayMs }
            ?? 7 * RotationPolicy.dayMs
        let (successor, _) = try await createKey(tenant: tenant, name: key.name, grants: Grants.decode(key.grants),
                                                 predecessorID: key.id, sealed: true)
        key.successorID = successor.id
        key.rotatedAt = t
        key.expiresAt = min(key.expiresAt ?? .max, t + max(0, grace))
        try await storage.updateKey(key)
        invalidate(keyID: key.id)
        return RotationEvent(tenantID: tenant.id, keyID: key.id, successorID: successor.id, oldKeyExpiresAt: key.expiresAt!, automatic: automatic)
    }

    /// One pass of the background job: rotates every key whose successor is due.
    public func rotateDueKeys() async throws -> [RotationEvent] {
        var events: [RotationEvent] = []
        var tenants: [String: TenantRecord] = [:]
        for key in try await storage.rotationCandidates() {
            if tenants[key.tenantID] == nil { tenants[key.tenantID] = try await storage.tenant(id: key.tenantID) }
            guard let tenant = tenants[key.tenantID], let policy = RotationPolicy(tenant: tenant), now() >= policy.dueAt(key) else { continue }
            events.append(try await rotate(keyID: key.id, automatic: true))
        }
        return events
    }

    /// The successor's full key, once: it is erased from the database as it is returned.
    public func takeSuccessorSecret(keyID: String, tenantScope: String? = nil) async throws -> (APIKeyRecord, String) {
        guard let key = try await storage.key(id: keyID), tenantScope == nil || key.tenantID == tenantScope,
              let successorID = key.successorID, var successor = try await storage.key(id: successorID) else {
            throw TenancyError.notFound("key '\(keyID)' has no successor")
        }
        guard let sealed = successor.sealedSecret else {
            throw TenancyError.exists("the secret of successor '\(successorID)' was already fetched; rotate again or create a new key")
        }
        successor.sealedSecret = nil
        try await storage.updateKey(successor)
        return (successor, try await unsealSuccessorSecret(sealed, tenantID: successor.tenantID, keyID: successor.id))
    }

    public func revoke(keyID: String, tenantScope: String? = nil) async throws -> APIKeyRecord {
        guard var key = try await storage.key(id: keyID), tenantScope == nil || key.tenantID == tenantScope else {
            throw TenancyError.notFound("key '\(keyID)' does not exist")
        }
        if key.revokedAt == nil {
            key.revokedAt = now()
            try await storage.updateKey(key)
        }
        invalidate(keyID: keyID)
        return key
    }

    public func updateGrants(keyID: String, grants: Grants, tenantScope: String? = nil) async throws -> APIKeyRecord {
        try grants.validate()
        guard var key = try await storage.key(id: keyID), tenantScope == nil || key.tenantID == tenantScope else {
            throw TenancyError.notFound("key '\(keyID)' does not exist")
        }
        key.grants = grants == .all ? nil : grants.json
        try await storage.updateKey(key)
        invalidate(keyID: keyID)
        return key
    }
}
