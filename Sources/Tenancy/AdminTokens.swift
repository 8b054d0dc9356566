import Foundation
import Storage

/// Who is calling the admin API: an operator token (all tenants) or a tenant's admin token.
public struct AdminPrincipal: Sendable, Equatable {
    public let tokenID: String
    /// nil for the operator; otherwise every admin call is confined to this tenant.
    public let tenantID: String?
}

/// Admin tokens: `adm-<id>-<secret>`, stored as an HMAC under their own purpose label.
extension KeyAuthority {
    static let adminPrefix = "adm-"

    public func createAdminToken(name: String, tenantName: String? = nil) async throws -> (AdminTokenRecord, String) {
        var tenantID: String?
        if let tenantName {
            guard let tenant = try await storage.tenant(named: tenantName) else { throw TenancyError.notFound("tenant '\(tenantName)' does not exist") }
            tenantID = tenant.id
        }
        let id = Base62.random(12), secretPart = Base62.random(43)
        let record = AdminTokenRecord(id: id, tokenHash: secret.hash(secretPart, purpose: "admin"), name: name, tenantID: tenantID, createdAt: now())
        try await storage.insertAdminToken(record)
        return (record, "\(Self.adminPrefix)\(id)-\(secretPart)")
    }

    public func authenticateAdmin(authorization: String?) async -> AdminPrincipal? {
        guard let header = authorization, header.lowercased().hasPrefix("bearer ") else { return nil }
        let token = header.dropFirst(7).trimmingCharacters(in: .whitespaces)
        guard token.hasPrefix(Self.adminPrefix) else { return nil }
        let rest = token.dropFirst(Self.adminPrefix.count)
        guard let dash = rest.firstIndex(of: "-") else { return nil }
        let id = String(rest[..<dash]), secretPart = String(rest[rest.index(after: dash)...])
        guard id.count == 12, let record = try? await storage.adminToken(id: id) else {
            _ = constantTimeEquals(secret.hash(secretPart, purpose: "admin"), String(repeating: "0", count: 64))
            return nil
        }
        guard constantTimeEquals(secret.hash(secretPart, purpose: "admin"), record.tokenHash), record.revokedAt == nil else { return nil }
        return AdminPrincipal(tokenID: record.id, tenantID: record.tenantID)
    }
}
