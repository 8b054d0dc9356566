import Crypto
import Foundation
import Synchronization
import Tenancy

/// A console login: who it is (the admin token it was exchanged for, and the tenant that token
/// is confined to, nil for an operator), its CSRF token, and when it was last used.
public struct ConsoleSession: Sendable, Equatable {
    /// The admin token's identity, as the admin API would see it.
    public let principal: AdminPrincipal
    public var tokenID: String { principal.tokenID }
    /// nil: an operator (every tenant); else the only tenant this session may see.
    public var tenantID: String? { principal.tenantID }
    /// Sent back in every form; checked in constant time on every POST.
    public let csrf: String
    public let createdAt: Int64
    public var lastSeenAt: Int64
}

/// Console sessions, **in memory**: a restart logs every console user out, and replicas do not
/// share them (a load balancer in front of several gateways needs sticky sessions for /console).
/// Only the SHA-256 of a session id is kept, so the table (or a heap dump) does not hold a
/// usable cookie. Idle sessions expire on the platform's clock.
public final class ConsoleSessions: Sendable {
    private let sessions = Mutex<[String: ConsoleSession]>([:])
    public let idleMs: Int64
    let now: @Sendable () -> Int64
    /// Above this many sessions, the expired ones are dropped before a new one is added.
    static let sweepAbove = 10_000

    public init(idleMs: Int64, now: @escaping @Sendable () -> Int64) {
        self.idleMs = idleMs
        self.now = now
    }

    /// 32 random bytes, base64url without padding (256 bits: not guessable).
    static func randomToken() -> String {
        var bytes = [UInt8](repeating: 0, count: 32)
        var rng = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: .min ... .max, using: &rng) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// What the table is keyed by: never the session id itself.
    static func digest(_ id: String) -> String {
        SHA256.hash(data: Data(id.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// A new session for an authenticated admin token; returns the id to put in the cookie
    /// (the only place it exists) and the session.
    public func create(for principal: AdminPrincipal) -> (id: String, session: ConsoleSession) {
        let id = Self.randomToken()
        let t = now()
        let session = ConsoleSession(principal: principal, csrf: Self.randomToken(), createdAt: t, lastSeenAt: t)
        sessions.withLock { s in
            if s.count >= Self.sweepAbove { s = s.filter { t - $0.value.lastSeenAt < idleMs } }
            s[Self.digest(id)] = session
        }
        return (id, session)
    }

    /// The session of a cookie value, touched (its idle time starts again) unless `touch` is
    /// false (a page's background refresh is not activity); nil when unknown or idle for longer
    /// than `idleMs` (then it is removed).
    public func resume(_ id: String, touch: Bool = true) -> ConsoleSession? {
        let key = Self.digest(id), t = now()
        return sessions.withLock { s in
            guard var session = s[key] else { return nil }
            guard t - session.lastSeenAt < idleMs else {
                s.removeValue(forKey: key)
                return nil
            }
            if touch {
                session.lastSeenAt = t
                s[key] = session
            }
            return session
        }
    }

    public func end(_ id: String) { sessions.withLock { _ = $0.removeValue(forKey: Self.digest(id)) } }

    /// Ends every session of an admin token (it was revoked).
    public func end(tokenID: String) { sessions.withLock { s in s = s.filter { $0.value.tokenID != tokenID } } }

    /// The keys of the table (tests check that no cookie value is among them).
    var storedKeys: [String] { sessions.withLock { Array($0.keys) } }

    public var count: Int { sessions.withLock { $0.count } }
}
