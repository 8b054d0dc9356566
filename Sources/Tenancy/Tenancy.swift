import Foundation
import Storage
import Synchronization

/// Who is calling: the authenticated tenant and key. Every tenant-scoped operation takes the
/// tenant from here, never from the request.
public struct Principal: Sendable, Equatable {
    public let tenantID: String
    public let tenantName: String
    public let tier: String
    public let keyID: String
}

public enum TenancyError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    case exists(String)
    case notFound(String)

    public var description: String {
        switch self {
        case .invalid(let m), .exists(let m), .notFound(let m): return m
        }
    }
}

public enum AuthFailure: Error, Equatable {
    case missing, malformed, unknownKey, wrongSecret, revoked, expired, tenantDisabled
}

/// Creates tenants and keys, and authenticates bearer tokens with an in-memory cache so the hot
/// path does no database read for a known key. Cache entries live one second, so a revocation
/// done in the database takes effect within a second on every gateway replica.
public final class KeyAuthority: Sendable {
    let storage: Storage
    let secret: ServerSecret
    let now: @Sendable () -> Int64
    let cacheTTLms: Int64
    private let cache = Mutex<[String: CachedKey]>([:])

    struct CachedKey {
        let key: APIKeyRecord
        let tenant: TenantRecord
        let loadedAt: Int64
    }

    public init(storage: Storage, secret: ServerSecret, cacheTTLms: Int64 = 1000,
                now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) {
        self.storage = storage
        self.secret = secret
        self.cacheTTLms = cacheTTLms
        self.now = now
    }

    // MARK: Administration

    public func createTenant(name: String, tier: String = "tier-1") async throws -> TenantRecord {
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.count <= 100,
              trimmed.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0) }) else {
            throw TenancyError.invalid("tenant name '\(name)' must be 1-100 letters, digits, '-', '_' or '.'")
        }
        if try await storage.tenant(named: trimmed) != nil {
            throw TenancyError.exists("tenant '\(trimmed)' already exists")
        }
        let tenant = TenantRecord(id: "ten_" + Base62.random(16), name: trimmed, tier: tier, createdAt: now())
        try await storage.insertTenant(tenant)
        return tenant
    }

    /// Creates a key for a tenant and returns it with its token. The token is shown once: only its
    /// HMAC is stored.
    public func createKey(tenantName: String, name: String = "default") async throws -> (APIKeyRecord, APIKeyToken) {
        guard let tenant = try await storage.tenant(named: tenantName) else {
            throw TenancyError.notFound("tenant '\(tenantName)' does not exist; create it with 'llmaas tenant create \(tenantName)'")
        }
        let token = APIKeyToken.generate()
        let record = APIKeyRecord(id: token.keyID, tenantID: tenant.id, name: name, secretHash: secret.hash(token.secret), createdAt: now())
        try await storage.insertKey(record)
        return (record, token)
    }

    // MARK: Authentication (hot path)

    /// Checks an `Authorization` header value (`Bearer sk-llm-…`).
    public func authenticate(authorization: String?) async throws(AuthFailure) -> Principal {
        guard let header = authorization?.trimmingCharacters(in: .whitespaces), !header.isEmpty else { throw .missing }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { throw .malformed }
        guard let token = APIKeyToken(parsing: parts[1].drop(while: { $0 == " " })) else { throw .malformed }

        let t = now()
        var entry = cache.withLock { $0[token.keyID] }
        if entry == nil || t - entry!.loadedAt > cacheTTLms {
            let key: APIKeyRecord?
            let tenant: TenantRecord?
            do {
                key = try await storage.key(id: token.keyID)
                tenant = key == nil ? nil : try await storage.tenant(id: key!.tenantID)
            } catch {
                // A database hiccup must not turn into "invalid key" for a key we already know.
                if let stale = entry { return try check(stale, token, t) }
                throw .unknownKey
            }
            guard let key, let tenant else {
                cache.withLock { _ = $0.removeValue(forKey: token.keyID) }
                // Same work as a real comparison, so timing does not tell whether a key id exists.
                _ = constantTimeEquals(secret.hash(token.secret), String(repeating: "0", count: 64))
                throw .unknownKey
            }
            let fresh = CachedKey(key: key, tenant: tenant, loadedAt: t)
            cache.withLock { $0[token.keyID] = fresh }
            entry = fresh
        }
        return try check(entry!, token, t)
    }

    private func check(_ entry: CachedKey, _ token: APIKeyToken, _ t: Int64) throws(AuthFailure) -> Principal {
        guard constantTimeEquals(secret.hash(token.secret), entry.key.secretHash) else { throw .wrongSecret }
        if entry.key.revokedAt.map({ $0 <= t }) == true { throw .revoked }
        if entry.key.expiresAt.map({ $0 <= t }) == true { throw .expired }
        if entry.tenant.disabledAt.map({ $0 <= t }) == true { throw .tenantDisabled }
        return Principal(tenantID: entry.tenant.id, tenantName: entry.tenant.name, tier: entry.tenant.tier, keyID: entry.key.id)
    }
}
