import Synchronization
import StorageTesting
import Testing
@testable import Storage
@testable import Tenancy

final class TestClock: Sendable {
    let ms = Mutex<Int64>(1_000_000)
    func advance(_ d: Int64) { ms.withLock { $0 += d } }
    var now: Int64 { ms.withLock { $0 } }
}

@Suite struct TenancyTests {
    /// Runs `body` with a fresh in-memory database, closed afterwards whatever happens.
    func withAuthority(_ driver: TestDatabase, _ body: (Storage, KeyAuthority, TestClock) async throws -> Void) async throws {
        let storage = try await driver.open()
        try await storage.migrate(at: 1_764_000_000_000)
        let clock = TestClock()
        let authority = KeyAuthority(storage: storage, secret: ServerSecret(bytes: Array(repeating: 7, count: 32)), now: { clock.now })
        do { try await body(storage, authority, clock) } catch { await storage.shutdown(); throw error }
        await storage.shutdown()
    }

    /// A secret's hash is HMAC-SHA256 under the server secret, the keyed state reused for every
    /// secret without changing it: RFC 4231's test case 2, twice, and a stored hash of another
    /// secret in between.
    @Test func secretHashIsHMACSHA256AndTheKeyedStateIsReused() {
        let secret = ServerSecret(bytes: Array("Jefe".utf8))
        let vector = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        #expect(secret.hash("what do ya want for nothing?") == vector)
        #expect(secret.hash("something else") != vector)
        #expect(secret.hash("what do ya want for nothing?") == vector)
    }

    @Test(arguments: TestDatabase.all) func keyRoundTripAndOnlyHashStored(_ driver: TestDatabase) async throws { try await withAuthority(driver) { storage, authority, _ in
        _ = try await authority.createTenant(name: "acme")
        let (record, token) = try await authority.createKey(tenantName: "acme")
        #expect(token.text.hasPrefix("sk-llm-"))
        #expect(record.secretHash.count == 64)
        #expect(!record.secretHash.contains(token.secret))
        let stored = try #require(try await storage.key(id: record.id))
        #expect(stored.secretHash != token.secret)
        let p = try await authority.authenticate(authorization: "Bearer \(token.text)")
        #expect(p.tenantName == "acme" && p.keyID == record.id)
    }}

    @Test(arguments: TestDatabase.all) func rejections(_ driver: TestDatabase) async throws { try await withAuthority(driver) { _, authority, _ in
        _ = try await authority.createTenant(name: "acme")
        let (_, token) = try await authority.createKey(tenantName: "acme")
        await #expect(throws: AuthFailure.missing) { try await authority.authenticate(authorization: nil) }
        await #expect(throws: AuthFailure.malformed) { try await authority.authenticate(authorization: "Basic abc") }
        await #expect(throws: AuthFailure.malformed) { try await authority.authenticate(authorization: "Bearer sk-other") }
        var wrong = Array(token.secret)
        wrong[0] = wrong[0] == "a" ? "b" : "a"
        let forged = APIKeyToken(keyID: token.keyID, secret: String(wrong))
        await #expect(throws: AuthFailure.wrongSecret) { try await authority.authenticate(authorization: "Bearer \(forged.text)") }
        let unknown = APIKeyToken.generate()
        await #expect(throws: AuthFailure.unknownKey) { try await authority.authenticate(authorization: "Bearer \(unknown.text)") }
    }}

    @Test(arguments: TestDatabase.all) func duplicateAndInvalidTenants(_ driver: TestDatabase) async throws { try await withAuthority(driver) { _, authority, _ in
        _ = try await authority.createTenant(name: "acme")
        await #expect(throws: TenancyError.self) { try await authority.createTenant(name: "acme") }
        await #expect(throws: TenancyError.self) { try await authority.createTenant(name: "a b; drop") }
        await #expect(throws: TenancyError.self) { try await authority.createKey(tenantName: "nobody") }
    }}

    @Test func headerSpacesAreTrimmedLikeCharacterSetWhitespaces() {
        #expect(KeyAuthority.trimmingSpaces("  Bearer x \t") == "Bearer x")
        #expect(KeyAuthority.trimmingSpaces("\u{00A0}\u{2003}Bearer x\u{3000}") == "Bearer x")  // Zs spaces
        #expect(KeyAuthority.trimmingSpaces("Bearer x\n") == "Bearer x\n")  // newlines are not spaces
        #expect(KeyAuthority.trimmingSpaces(" \t ") == "")
        #expect(KeyAuthority.trimmingSpaces("") == "")
    }

    @Test func constantTimeEquality() {
        #expect(constantTimeEquals("abc", "abc"))
        #expect(!constantTimeEquals("abc", "abd"))
        #expect(!constantTimeEquals("abc", "abcd"))
    }

    @Test func generatedKeysAreUniqueAndParse() {
        var seen = Set<String>()
        for _ in 0..<1000 {
            let t = APIKeyToken.generate()
            #expect(seen.insert(t.text).inserted)
            #expect(APIKeyToken(parsing: Substring(t.text)) == t)
        }
    }

    @Test func tokensOfAnotherShapeDoNotParse() {
        let t = APIKeyToken.generate()
        let id = t.keyID, secret = t.secret
        #expect(APIKeyToken(parsing: Substring("x" + t.text)) == nil)
        #expect(APIKeyToken(parsing: Substring(t.text + "A")) == nil)
        #expect(APIKeyToken(parsing: Substring(t.text + "\u{301}")) == nil)  // a combining mark after the last digit
        #expect(APIKeyToken(parsing: Substring("sk-llm-\(id.dropLast())-\(secret)A")) == nil)  // the dash one digit early
        #expect(APIKeyToken(parsing: Substring("sk-llm-\(id)_\(secret)")) == nil)
        #expect(APIKeyToken(parsing: Substring("sk-llm-\(id)-\(secret.dropLast())!")) == nil)
        #expect(APIKeyToken(parsing: Substring("sk-llm-\(id)-\(secret.dropLast())é")) == nil)
        #expect(APIKeyToken(parsing: Substring("SK-LLM-\(id)-\(secret)")) == nil)
        // A token inside a longer text (the header's value after the scheme) parses as a slice.
        let header = "Bearer  " + t.text
        #expect(APIKeyToken(parsing: header[header.index(header.startIndex, offsetBy: 8)...]) == t)
    }
}

@Suite struct RotationAndGrantsTests {
    static let day: Int64 = 86_400_000

    func withAuthority(_ driver: TestDatabase, _ body: (Storage, KeyAuthority, TestClock) async throws -> Void) async throws {
        let storage = try await driver.open()
        try await storage.migrate(at: 1_764_000_000_000)
        let clock = TestClock()
        let authority = KeyAuthority(storage: storage, secret: ServerSecret(bytes: Array(repeating: 9, count: 32)), cacheTTLms: 0, now: { clock.now })
        do { try await body(storage, authority, clock) } catch { await storage.shutdown(); throw error }
        await storage.shutdown()
    }

    /// A 30-day period with 7 days' grace, walked day by day through 100 days.
    @Test(arguments: TestDatabase.all) func rotationThroughHundredDays(_ driver: TestDatabase) async throws { try await withAuthority(driver) { storage, authority, clock in
        var tenant = try await authority.createTenant(name: "acme")
        tenant.rotationPeriodDays = 30
        tenant.gracePeriodDays = 7
        try await storage.updateTenant(tenant)
        let grants = Grants(models: ["qwen3:*"], endpoints: ["chat"])
        let (_, first) = try await authority.createKey(tenantName: "acme", grants: grants)
        var current = first.text
        var rotations: [RotationEvent] = []
        var previous: (token: String, expires: Int64)?
        for day in 1...100 {
            clock.advance(Self.day)
            let events = try await authority.rotateDueKeys()
            for e in events {
                rotations.append(e)
                // Successor: same grants, secret fetched once.
                let (succ, secretText) = try await authority.takeSuccessorSecret(keyID: e.keyID)
                #expect(Grants.decode(succ.grants) == grants)
                await #expect(throws: TenancyError.self) { _ = try await authority.takeSuccessorSecret(keyID: e.keyID) }
                previous = (current, e.oldKeyExpiresAt)
                current = secretText
            }
            // The current key always works.
            let p = try await authority.authenticate(authorization: "Bearer \(current)")
            #expect(p.grants == grants)
            // The previous key works until the end of its period, announcing its successor; then it is refused.
            if let prev = previous {
                if clock.now < prev.expires {
                    let old = try await authority.authenticate(authorization: "Bearer \(prev.token)")
                    #expect(old.successorID != nil && old.expiresAt == prev.expires)
                } else {
                    do {
                        _ = try await authority.authenticate(authorization: "Bearer \(prev.token)")
                        Issue.record("day \(day): the rotated key still works after its grace period")
                    } catch {
                        guard case AuthFailure.rotated = error else { Issue.record("day \(day): \(error)"); continue }
                    }
                }
            }
        }
        // Each key's successor is due 23 days after the key was made (period 30 minus grace 7):
        // days 23, 46, 69 and 92.
        #expect(rotations.count == 4)
        #expect(rotations.allSatisfy { $0.automatic })
    }}

    @Test(arguments: TestDatabase.all) func manualRotateRevokeAndCacheInvalidation(_ driver: TestDatabase) async throws { try await withAuthority(driver) { _, authority, _ in
        _ = try await authority.createTenant(name: "acme")
        let (key, token) = try await authority.createKey(tenantName: "acme")
        let event = try await authority.rotate(keyID: key.id, graceMs: 0)
        await #expect(throws: AuthFailure.rotated(successorID: event.successorID)) {
            try await authority.authenticate(authorization: "Bearer \(token.text)")
        }
        let (_, next) = try await authority.takeSuccessorSecret(keyID: key.id)
        _ = try await authority.authenticate(authorization: "Bearer \(next)")
        _ = try await authority.revoke(keyID: event.successorID)
        await #expect(throws: AuthFailure.revoked) { try await authority.authenticate(authorization: "Bearer \(next)") }
    }}

    @Test(arguments: TestDatabase.all) func tenantScopeHidesOtherTenantsKeys(_ driver: TestDatabase) async throws { try await withAuthority(driver) { _, authority, _ in
        let a = try await authority.createTenant(name: "a")
        _ = try await authority.createTenant(name: "b")
        let (bKey, _) = try await authority.createKey(tenantName: "b")
        await #expect(throws: TenancyError.self) { _ = try await authority.revoke(keyID: bKey.id, tenantScope: a.id) }
        await #expect(throws: TenancyError.self) { _ = try await authority.rotate(keyID: bKey.id, tenantScope: a.id) }
        await #expect(throws: TenancyError.self) { _ = try await authority.updateGrants(keyID: bKey.id, grants: .all, tenantScope: a.id) }
    }}

    @Test func grantsGlobsEndpointsAndCIDR() throws {
        let g = Grants(models: ["qwen3:*", "!qwen3:235b", "gemma3:?b"], endpoints: ["chat"], clientIPs: ["10.0.0.0/8", "2001:db8::/32"])
        #expect(g.allows(model: ["qwen3:8b"]))
        #expect(!g.allows(model: ["qwen3:235b"]))
        #expect(g.allows(model: ["gemma3:4b"]) && !g.allows(model: ["gemma3:12b"]))
        #expect(!g.allows(model: ["llama3.3:70b"]))
        #expect(g.allows(endpoint: "chat") && !g.allows(endpoint: "embeddings"))
        #expect(g.allows(ip: "10.1.2.3") && !g.allows(ip: "11.0.0.1"))
        #expect(g.allows(ip: "2001:db8::1") && !g.allows(ip: "2001:db9::1"))
        #expect(!g.allows(ip: "127.0.0.1"))
        #expect(Grants.all.allows(ip: nil) && Grants.all.allows(model: ["x"]))
        #expect(Grants.decode(g.json) == g)
        #expect(throws: TenancyError.self) { try Grants(clientIPs: ["10.0.0.0/99"]).validate() }
        #expect(throws: TenancyError.self) { try Grants(endpoints: ["images"]).validate() }
    }
}
