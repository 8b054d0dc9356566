import Storage

extension KeyAuthority {
    /// The principal of key `keyID` as it is now, without its secret: for work a key started
    /// earlier and the gateway carries on (issue 17: the lines of a batch run with the grants,
    /// tier and settings of the key that created it). The same checks as a request's: a key
    /// revoked, expired or rotated past its grace, or a disabled tenant, fails.
    public func principal(keyID: String) async throws -> Principal {
        guard let key = try await storage.key(id: keyID), let tenant = try await storage.tenant(id: key.tenantID) else {
            throw AuthFailure.unknownKey
        }
        let t = now()
        if key.revokedAt.map({ $0 <= t }) == true { throw AuthFailure.revoked }
        if key.expiresAt.map({ $0 <= t }) == true {
            if let successor = key.successorID { throw AuthFailure.rotated(successorID: successor) }
            throw AuthFailure.expired
        }
        if tenant.disabledAt.map({ $0 <= t }) == true { throw AuthFailure.tenantDisabled }
        return Principal(tenantID: tenant.id, tenantName: tenant.name, tier: tenant.tier, keyID: key.id,
                         grants: Grants.decode(key.grants), expiresAt: key.expiresAt,
                         successorID: key.successorID, shieldMode: tenant.shieldMode ?? "enforce",
                         experimentalOptIn: (tenant.experimentalOptIn ?? 0) != 0, storeBodies: (tenant.storeBodies ?? 0) != 0)
    }
}
