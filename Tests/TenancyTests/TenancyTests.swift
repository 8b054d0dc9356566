import Synchronization
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
    func withAuthority(_ body: (Storage, KeyAuthority, TestClock) async throws -> Void) async throws {
        let storage = try await Storage.inMemory()
        try await storage.migrate()
        let clock = TestClock()
        let authority = KeyAuthority(storage: storage, secret: ServerSecret(bytes: Array(repeating: 7, count: 32)), now: { clock.now })
        do { try await body(storage, authority, clock) } catch { await storage.shutdown(); throw error }
        await storage.shutdown()
    }

    @Test func keyRoundTripAndOnlyHashStored() async throws { try await withAuthority { storage, authority, _ in
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

    @Test func rejections() async throws { try await withAuthority { _, authority, _ in
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

    @Test func duplicateAndInvalidTenants() async throws { try await withAuthority { _, authority, _ in
        _ = try await authority.createTenant(name: "acme")
        await #expect(throws: TenancyError.self) { try await authority.createTenant(name: "acme") }
        await #expect(throws: TenancyError.self) { try await authority.createTenant(name: "a b; drop") }
        await #expect(throws: TenancyError.self) { try await authority.createKey(tenantName: "nobody") }
    }}

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
}
