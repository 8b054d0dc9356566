import Foundation
import Sealing
import Storage
import Synchronization

/// Who is calling: the authenticated tenant and key. Every tenant-scoped operation takes the
/// tenant from here, never from the request.
public struct Principal: Sendable, Equatable {
    public let tenantID: String
    public let tenantName: String
    public let tier: String
    public let keyID: String
    public let grants: Grants
    /// Set while the key is in its rotation grace period: when it stops working, and its successor.
    public let expiresAt: Int64?
    public let successorID: String?
    public let shieldMode: String
    public let experimentalOptIn: Bool
    /// The tenant opted in to the request store keeping its prompts and answers (encrypted).
    public let storeBodies: Bool
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
    /// The key was rotated and its grace period is over.
    case rotated(successorID: String)
    /// The key may not be used from this client address.
    case ipNotAllowed(keyID: String)
}

/// Creates tenants and keys, and authenticates bearer tokens with an in-memory cache so the hot
/// path does no database read for a known key. Cache entries live one second, so a revocation
/// done in the database takes effect within a second on every gateway replica.
public final class KeyAuthority: Sendable {
    let storage: Storage
    let secret: ServerSecret
    /// Seals the values the gateway must read back (successor keys, webhook secrets) under the
    /// key hierarchy (AES-256-GCM, data keys wrapped by the master key). nil: the older scheme, a
    /// key derived from the server secret (tests of this module alone).
    public let sealer: KeyHierarchy?
    let now: @Sendable () -> Int64
    let cacheTTLms: Int64
    private let cache = Mutex<[String: CachedKey]>([:])

    /// A class: a cache hit hands out a reference rather than a copy of both records (issue 16).
    final class CachedKey: Sendable {
        let key: APIKeyRecord
        let tenant: TenantRecord
        let loadedAt: Int64
        /// Built once when the key is loaded (its grants decoded from JSON then), not per request.
        let principal: Principal

        init(key: APIKeyRecord, tenant: TenantRecord, loadedAt: Int64) {
            self.key = key
            self.tenant = tenant
            self.loadedAt = loadedAt
            self.principal = Principal(tenantID: tenant.id, tenantName: tenant.name, tier: tenant.tier, keyID: key.id,
                                       grants: Grants.decode(key.grants), expiresAt: key.expiresAt,
                                       successorID: key.successorID, shieldMode: tenant.shieldMode ?? "enforce",
                                       experimentalOptIn: (tenant.experimentalOptIn ?? 0) != 0, storeBodies: (tenant.storeBodies ?? 0) != 0)
        }
    }

    private let lastUsed = Mutex<[String: Int64]>([:])

    public init(storage: Storage, secret: ServerSecret, cacheTTLms: Int64 = 1000,
                now: @escaping @Sendable () -> Int64, sealer: KeyHierarchy? = nil) {
        self.storage = storage
        self.secret = secret
        self.sealer = sealer
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
    public func createKey(tenantName: String, name: String = "default", grants: Grants = .all,
                          expiresAt: Int64? = nil) async throws -> (APIKeyRecord, APIKeyToken) {
        guard let tenant = try await storage.tenant(named: tenantName) else {
            throw TenancyError.notFound("tenant '\(tenantName)' does not exist; create it with 'llmaas tenant create \(tenantName)'")
        }
        return try await createKey(tenant: tenant, name: name, grants: grants, expiresAt: expiresAt)
    }

    public func createKey(tenant: TenantRecord, name: String, grants: Grants = .all, expiresAt: Int64? = nil,
                          predecessorID: String? = nil, sealed: Bool = false) async throws -> (APIKeyRecord, APIKeyToken) {
        try grants.validate()
        let token = APIKeyToken.generate()
        let record = APIKeyRecord(id: token.keyID, tenantID: tenant.id, name: name, secretHash: secret.hash(token.secret), createdAt: now(),
                                  expiresAt: expiresAt, grants: grants == .all ? nil : grants.json, predecessorID: predecessorID,
                                  sealedSecret: sealed ? try await sealSuccessorSecret(token.text, tenantID: tenant.id, keyID: token.keyID) : nil)
        try await storage.insertKey(record)
        return (record, token)
    }

    // MARK: Authentication (hot path)

    /// Forgets cached keys so a change made here takes effect at once (other replicas: within the TTL).
    public func invalidate(keyID: String? = nil) {
        cache.withLock { c in
            if let keyID { c.removeValue(forKey: keyID) } else { c.removeAll() }
        }
    }

    /// Last-use times collected since the previous call (written in one batch, not per request).
    public func drainLastUsed() -> [String: Int64] {
        lastUsed.withLock { m in
            defer { m.removeAll() }
            return m
        }
    }

    /// Checks an `Authorization` header value (`Bearer sk-llm-…`) from a client address.
    public func authenticate(authorization: String?, clientIP: String? = nil) async throws(AuthFailure) -> Principal {
        let principal = try await authenticate(authorization: authorization)
        guard principal.grants.allows(ip: clientIP) else { throw .ipNotAllowed(keyID: principal.keyID) }
        lastUsed.withLock { $0[principal.keyID] = now() }
        return principal
    }

    private func authenticate(authorization: String?) async throws(AuthFailure) -> Principal {
        guard let header = authorization.map(Self.trimmingSpaces), !header.isEmpty else { throw .missing }
        // "Bearer <token>", the scheme in any case.
        let bytes = header.utf8
        guard let space = bytes.firstIndex(of: UInt8(ascii: " ")), Self.isBearer(header[..<space]) else { throw .malformed }
        guard let start = bytes[space...].firstIndex(where: { $0 != UInt8(ascii: " ") }),
              let token = APIKeyToken(parsing: header[start...]) else { throw .malformed }

        let t = now()
        let entry = cache.withLock { $0[token.keyID] }
        if let entry, t - entry.loadedAt <= cacheTTLms { return try check(entry, token, t) }
        let key: APIKeyRecord?
        let tenant: TenantRecord?
        do {
            key = try await storage.key(id: token.keyID)
            if let key { tenant = try await storage.tenant(id: key.tenantID) } else { tenant = nil }
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
        return try check(fresh, token, t)
    }

    private func check(_ entry: CachedKey, _ token: APIKeyToken, _ t: Int64) throws(AuthFailure) -> Principal {
        guard constantTimeEquals(secret.hash(token.secret), entry.key.secretHash) else { throw .wrongSecret }
        let key = entry.key, tenant = entry.tenant
        if key.revokedAt.map({ $0 <= t }) == true { throw .revoked }
        if key.expiresAt.map({ $0 <= t }) == true {
            if let successor = key.successorID { throw .rotated(successorID: successor) }
            throw .expired
        }
        if tenant.disabledAt.map({ $0 <= t }) == true { throw .tenantDisabled }
        return entry.principal
    }

    static func isBearer(_ scheme: Substring) -> Bool {
        scheme.utf8.count == 6 && zip(scheme.utf8, "bearer".utf8).allSatisfy { ($0 | 0x20) == $1 }
    }

    /// `text` without leading and trailing spaces and tabs (what `CharacterSet.whitespaces` holds:
    /// category Zs and U+0009), without Foundation's bridging on every request.
    static func trimmingSpaces(_ text: String) -> Substring {
        // The usual header: printable ASCII at both ends, nothing to trim.
        if let first = text.utf8.first, let last = text.utf8.last, (0x21..<0x7F).contains(first), (0x21..<0x7F).contains(last) {
            return text[...]
        }
        func isSpace(_ c: Unicode.Scalar) -> Bool { c == "\t" || c.properties.generalCategory == .spaceSeparator }
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isSpace($0) }) else { return "" }
        let last = scalars.lastIndex(where: { !isSpace($0) })!
        return Substring(scalars[first...last])
    }
}
