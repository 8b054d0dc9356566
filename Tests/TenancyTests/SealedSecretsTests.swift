import Foundation
import Testing
@testable import Sealing
@testable import Storage
@testable import Tenancy

/// Successor keys and webhook secrets sealed under the key hierarchy: bound to their key or
/// tenant, and the values sealed the older way (server secret) re-sealed without loss.
@Suite struct SealedSecretsTests {
    let serverSecret = ServerSecret(bytes: Array(repeating: 7, count: 32))

    func withStorage(_ body: (Storage, TestClock) async throws -> Void) async throws {
        let storage = try await Storage.inMemory()
        try await storage.migrate(at: 1_764_000_000_000)
        let clock = TestClock()
        do { try await body(storage, clock) } catch { await storage.shutdown(); throw error }
        await storage.shutdown()
    }

    @Test func successorAndWebhookSecretsAreSealedUnderTheHierarchyAndLegacyOnesResealed() async throws { try await withStorage { storage, clock in
        let master = try MasterKey(bytes: Array(repeating: 3, count: 32))
        let keys = KeyHierarchy(storage: storage, masters: MasterKeyRing(primary: master), now: { clock.now })
        // Before: the older scheme (no hierarchy), as a database from before migration 10 holds it.
        let legacy = KeyAuthority(storage: storage, secret: serverSecret, now: { clock.now })
        let tenant = try await legacy.createTenant(name: "acme")
        let (key, _) = try await legacy.createKey(tenantName: "acme")
        let oldRotation = try await legacy.rotate(keyID: key.id)
        let legacyHook = try await legacy.sealWebhookSecret("whsec_legacy", tenantID: tenant.id)
        try await storage.setWebhookSecret(tenantID: tenant.id, sealed: legacyHook, at: clock.now)
        #expect(!KeyHierarchy.isSealed(try #require(try await storage.key(id: oldRotation.successorID)?.sealedSecret)))

        let authority = KeyAuthority(storage: storage, secret: serverSecret, now: { clock.now }, sealer: keys)
        let counts = try await authority.resealLegacySecrets()
        #expect(counts.successorKeys == 1 && counts.webhookSecrets == 1)
        let again = try await authority.resealLegacySecrets()
        #expect(again.successorKeys == 0 && again.webhookSecrets == 0)
        let resealed = try #require(try await storage.key(id: oldRotation.successorID)?.sealedSecret)
        #expect(KeyHierarchy.isSealed(resealed))
        let hook = try #require(try await storage.webhookSecret(tenantID: tenant.id))
        #expect(KeyHierarchy.isSealed(hook))
        #expect(try await authority.unsealWebhookSecret(hook, tenantID: tenant.id) == "whsec_legacy")
        // Another tenant's row: refused.
        await #expect(throws: SealingError.self) { try await authority.unsealWebhookSecret(hook, tenantID: "ten_other") }
        let (successor, text) = try await authority.takeSuccessorSecret(keyID: key.id)
        #expect(successor.id == oldRotation.successorID && text.hasPrefix("sk-llm-"))

        // New ones go straight under the hierarchy, bound to their key.
        let (second, _) = try await authority.createKey(tenantName: "acme", name: "second")
        let rotation = try await authority.rotate(keyID: second.id)
        let sealed = try #require(try await storage.key(id: rotation.successorID)?.sealedSecret)
        #expect(KeyHierarchy.isSealed(sealed))
        await #expect(throws: SealingError.self) { try await keys.open(sealed, scope: .apiKeySecret(tenantID: tenant.id), aad: Array(second.id.utf8)) }
        let (_, secondText) = try await authority.takeSuccessorSecret(keyID: second.id)
        #expect(secondText.hasPrefix("sk-llm-") && !sealed.contains(secondText))
    }}
}
