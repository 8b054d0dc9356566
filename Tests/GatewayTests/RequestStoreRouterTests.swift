import Catalog
import Clocks
import EngineSim
import Fleet
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import OpenAIWire
import Storage
import Tenancy
import Testing
@testable import Gateway

/// The request store through the gateway's router, in process, in front of EngineSim: bodies of
/// an opted-in tenant are captured (streamed and not), never in clear text in the database file,
/// browsable and readable through the admin API by that tenant and the operator only, and gone
/// after retention (on the injected clock) or a shred, while the ledger rows stay.
@Suite(.serialized) struct RequestStoreRouterTests {
    static let day: Int64 = InferenceRouterTests.day

    struct Harness: Sendable {
        let platform: Platform
        let clock: ManualClock
        let operatorAuth: HTTPFields
        /// acme opted in; globex did not.
        let acme: TenantRecord, globex: TenantRecord
        let acmeKey: String, acmeKeyID: String, globexKey: String
        let acmeAdmin: HTTPFields, globexAdmin: HTTPFields

        func auth(_ key: String) -> HTTPFields { [.authorization: "Bearer \(key)", .contentType: "application/json"] }
    }

    func withGateway(_ body: @Sendable (any TestClientProtocol, Harness) async throws -> Void) async throws {
        let sims = SimFleet(configs: [SimConfig(models: ["sim-chat"], ttftMs: 1, itlMs: 1)])
        let port = try await sims.start()[0]
        var config = GatewayConfig()
        config.host = "127.0.0.1"
        config.port = 0
        config.dataDir = NSTemporaryDirectory() + "llmaas-request-store-\(UUID().uuidString)"
        config.catalogPath = RouterTests.repo + "/deploy/catalog.yaml"
        config.backends = [BackendConfig(name: "sim0", kind: .sim, url: "http://127.0.0.1:\(port)", models: ["smollm2:135m": "sim-chat"],
                                         timeouts: Timeouts(connectMs: 1000, firstByteMs: 600_000, idleMs: 600_000))]
        config.fleet = FleetOptions(maxAttempts: 1)
        let clock = ManualClock(nowMs: Self.day)
        let platform = try await Platform.open(config: config, logger: Logger(label: "request-store-test"), clock: clock,
                                               catalog: try CatalogFile.load(path: config.catalogPath),
                                               secret: ServerSecret(bytes: Array(repeating: 5, count: 32)))
        do {
            let acme = try await platform.authority.createTenant(name: "acme", tier: "monthly")
            let globex = try await platform.authority.createTenant(name: "globex", tier: "monthly")
            let (acmeRecord, acmeToken) = try await platform.authority.createKey(tenantName: "acme", name: "k")
            let (_, globexToken) = try await platform.authority.createKey(tenantName: "globex", name: "k")
            let (_, op) = try await platform.authority.createAdminToken(name: "operator", tenantName: nil)
            let (_, acmeAdmin) = try await platform.authority.createAdminToken(name: "acme-admin", tenantName: "acme")
            let (_, globexAdmin) = try await platform.authority.createAdminToken(name: "globex-admin", tenantName: "globex")
            func bearer(_ t: String) -> HTTPFields { [.authorization: "Bearer \(t)", .contentType: "application/json"] }
            let h = Harness(platform: platform, clock: clock, operatorAuth: bearer(op), acme: acme, globex: globex,
                            acmeKey: acmeToken.text, acmeKeyID: acmeRecord.id, globexKey: globexToken.text,
                            acmeAdmin: bearer(acmeAdmin), globexAdmin: bearer(globexAdmin))
            try await GatewayServer.application(platform).test(.router) { client in try await body(client, h) }
        } catch {
            await platform.shutdown()
            await sims.shutdown()
            throw error
        }
        await platform.shutdown()
        await sims.shutdown()
        try? FileManager.default.removeItem(atPath: config.dataDir)
    }

    static func chat(_ text: String, stream: Bool = false) -> ByteBuffer {
        ByteBuffer(string: #"{"model":"smollm2:135m","messages":[{"role":"user","content":"\#(text)"}],"max_tokens":12,"stream":\#(stream)}"#)
    }

    static func json(_ r: TestResponse) throws -> JSONValue { try JSONValue.parse(Array(r.body.readableBytesView)) }

    /// Sends a chat; returns (request id, the answer's text).
    static func send(_ client: any TestClientProtocol, key: HTTPFields, _ text: String, stream: Bool = false) async throws -> (String, String) {
        try await client.execute(uri: "/v1/chat/completions", method: .post, headers: key, body: chat(text, stream: stream)) { r in
            #expect(r.status == .ok)
            let id = try #require(r.headers[HTTPField.Name("x-request-id")!])
            if !stream { return (id, try json(r)["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue ?? "") }
            var answer = ""
            for line in String(buffer: r.body).split(separator: "\n") where line.hasPrefix("data: {") {
                let event = try JSONValue.parse(Array(line.dropFirst(6).utf8))
                answer += event["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue ?? ""
            }
            return (id, answer)
        }
    }

    func get(_ client: any TestClientProtocol, _ uri: String, _ auth: HTTPFields) async throws -> (HTTPResponse.Status, JSONValue) {
        try await client.execute(uri: uri, method: .get, headers: auth) { r in (r.status, try Self.json(r)) }
    }

    @Test func optedInBodiesAreEncryptedBrowsableAndScopedToTheirTenant() async throws {
        try await withGateway { client, h in
            // Opting in is a tenant setting the tenant's own admin may change; default off.
            try await client.execute(uri: "/admin/v1/tenants/\(h.acme.id)", method: .get, headers: h.acmeAdmin) { r in
                let j = try Self.json(r)
                #expect(j["settings"]?["store_bodies"]?.boolValue == false)
            }
            try await client.execute(uri: "/admin/v1/tenants/\(h.acme.id)", method: .patch, headers: h.acmeAdmin,
                                     body: ByteBuffer(string: #"{"settings":{"store_bodies":true,"store_retention_days":2}}"#)) { r in
                #expect(r.status == .ok)
                let s = try Self.json(r)["settings"]
                #expect(s?["store_bodies"]?.boolValue == true && s?["store_retention_days"]?.intValue == 2)
            }
            try await client.execute(uri: "/admin/v1/tenants/\(h.acme.id)", method: .patch, headers: h.acmeAdmin,
                                     body: ByteBuffer(string: #"{"settings":{"store_retention_days":0}}"#)) { r in
                #expect(r.status == .badRequest)
                let j = try Self.json(r)
                #expect(j["error"]?["param"]?.stringValue == "settings.store_retention_days")
            }
            h.platform.authority.invalidate()
            let (plainID, plainAnswer) = try await Self.send(client, key: h.auth(h.acmeKey), "zebra-quasar-7781 plain")
            let (streamID, streamAnswer) = try await Self.send(client, key: h.auth(h.acmeKey), "zebra-quasar-7781 streamed", stream: true)
            let (globexID, _) = try await Self.send(client, key: h.auth(h.globexKey), "globex-private-5150")
            #expect(!plainAnswer.isEmpty && !streamAnswer.isEmpty)

            // The operator reads both of acme's bodies, decrypted.
            let (s1, plain) = try await get(client, "/admin/v1/requests/\(plainID)", h.operatorAuth)
            #expect(s1 == .ok && plain["tenant_id"]?.stringValue == h.acme.id && plain["body_stored"]?.boolValue == true)
            #expect(plain["bodies"]?["state"]?.stringValue == "available" && plain["bodies"]?["response_format"]?.stringValue == "json")
            #expect(plain["bodies"]?["prompt"]?.stringValue?.contains("zebra-quasar-7781 plain") == true)
            let answerJSON = try JSONValue.parse(Array((plain["bodies"]?["response"]?.stringValue ?? "").utf8))
            #expect(answerJSON["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue == plainAnswer && answerJSON["id"]?.stringValue == plainID)
            let (_, streamed) = try await get(client, "/admin/v1/requests/\(streamID)", h.acmeAdmin)
            #expect(streamed["bodies"]?["state"]?.stringValue == "available" && streamed["bodies"]?["response_format"]?.stringValue == "text")
            #expect(streamed["bodies"]?["response"]?.stringValue == streamAnswer)
            #expect(streamed["bodies"]?["prompt"]?.stringValue?.contains("zebra-quasar-7781 streamed") == true)
            // globex did not opt in: its row is browsable, its bodies were never stored.
            let (_, g) = try await get(client, "/admin/v1/requests/\(globexID)", h.operatorAuth)
            #expect(g["bodies"]?["state"]?.stringValue == "not_stored" && g["body_stored"]?.boolValue == false)

            // Neither the prompt nor the answer is in the database file (nor its WAL) in clear text.
            let dbPath = h.platform.config.databasePath
            for path in [dbPath, dbPath + "-wal"] {
                let bytes = FileManager.default.contents(atPath: path) ?? Data()
                #expect(bytes.range(of: Data("zebra-quasar-7781".utf8)) == nil, "prompt in clear text in \(path)")
                #expect(bytes.range(of: Data(streamAnswer.utf8)) == nil, "answer in clear text in \(path)")
                #expect(bytes.range(of: Data("globex-private-5150".utf8)) == nil)
            }

            // Tenant isolation: another tenant's ids and filters answer 404, never 403 (ids do not leak).
            let (s2, e2) = try await get(client, "/admin/v1/requests/\(globexID)", h.acmeAdmin)
            #expect(s2 == .notFound && e2["error"]?["code"]?.stringValue == "not_found")
            let (s3, _) = try await get(client, "/admin/v1/requests/\(plainID)", h.globexAdmin)
            #expect(s3 == .notFound)
            let (s4, _) = try await get(client, "/admin/v1/requests?tenant=\(h.globex.id)", h.acmeAdmin)
            #expect(s4 == .notFound)
            let (_, byID) = try await get(client, "/admin/v1/requests?request_id=\(globexID)", h.acmeAdmin)
            #expect(byID["data"]?.arrayValue?.isEmpty == true)
            let (_, mine) = try await get(client, "/admin/v1/requests", h.acmeAdmin)
            #expect(Set(mine["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []) == [plainID, streamID])
            let (_, all) = try await get(client, "/admin/v1/requests", h.operatorAuth)
            #expect(all["data"]?.arrayValue?.count == 3)
            let (_, onlyGlobex) = try await get(client, "/admin/v1/requests?tenant=\(h.globex.id)", h.operatorAuth)
            #expect(onlyGlobex["data"]?.arrayValue?.map { $0["id"]?.stringValue } == [globexID])
            // Another tenant cannot shred acme.
            try await client.execute(uri: "/admin/v1/tenants/\(h.acme.id)/request-store/shred", method: .post, headers: h.globexAdmin) { r in
                #expect(r.status == .notFound)
            }
        }
    }

    @Test func filtersAndCursorPages() async throws {
        try await withGateway { client, h in
            var ids: [String] = []
            for i in 0..<5 {
                ids.append(try await Self.send(client, key: h.auth(h.acmeKey), "row \(i)").0)
                h.clock.advance(byMs: 1000)
            }
            // One refusal (404: unknown model) for the status filters.
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h.auth(h.acmeKey),
                                     body: ByteBuffer(string: #"{"model":"no-such","messages":[{"role":"user","content":"x"}]}"#)) { r in
                #expect(r.status == .notFound)
            }
            let (_, ok) = try await get(client, "/admin/v1/requests?status=2xx", h.operatorAuth)
            #expect(ok["data"]?.arrayValue?.count == 5)
            let (_, four) = try await get(client, "/admin/v1/requests?status=404", h.operatorAuth)
            #expect(four["data"]?.arrayValue?.count == 1 && four["data"]?.arrayValue?.first?["body_stored"]?.boolValue == false)
            let (_, byKey) = try await get(client, "/admin/v1/requests?key=\(h.acmeKeyID)&model=smollm2:135m", h.operatorAuth)
            #expect(byKey["data"]?.arrayValue?.count == 5)
            let (_, window) = try await get(client, "/admin/v1/requests?from=\(Self.day + 1000)&to=\(Self.day + 3000)", h.operatorAuth)
            #expect(window["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == [ids[2], ids[1]])
            // Pages of two, newest first, until the end.
            var seen: [String] = []
            var uri = "/admin/v1/requests?status=200&limit=2"
            while true {
                let (status, page) = try await get(client, uri, h.acmeAdmin)
                #expect(status == .ok)
                seen += page["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
                guard let next = page["next_cursor"]?.stringValue else { #expect(page["has_more"]?.boolValue == false); break }
                uri = "/admin/v1/requests?status=200&limit=2&cursor=\(next)"
            }
            #expect(seen == ids.reversed())
            // Bad input names the parameter.
            for (query, param) in [("status=abc", "status"), ("status=6xx", "status"), ("limit=0", "limit"), ("limit=501", "limit"),
                                   ("cursor=garbage", "cursor"), ("from=-1", "from"), ("colour=red", "colour"), ("model=", "model")] {
                let (status, e) = try await get(client, "/admin/v1/requests?\(query)", h.operatorAuth)
                #expect(status == .badRequest, "\(query)")
                #expect(e["error"]?["param"]?.stringValue == param, "\(query)")
            }
            let (s, _) = try await get(client, "/admin/v1/requests/nothing-here", h.operatorAuth)
            #expect(s == .notFound)
        }
    }

    @Test func retentionAndShredDestroyBodiesButKeepTheLedger() async throws {
        try await withGateway { client, h in
            var acme = h.acme
            acme.storeBodies = 1
            acme.storeRetentionDays = 2
            try await h.platform.administration.updateTenant(acme)
            let (oldID, _) = try await Self.send(client, key: h.auth(h.acmeKey), "an old prompt")
            let (_, old) = try await get(client, "/admin/v1/requests/\(oldID)", h.operatorAuth)
            #expect(old["bodies"]?["state"]?.stringValue == "available")
            // Three days later (the manual clock), maintenance runs retention: the day's key is destroyed.
            h.clock.advance(byMs: 3 * 86_400_000)
            let (newID, _) = try await Self.send(client, key: h.auth(h.acmeKey), "a new prompt")
            _ = try await get(client, "/admin/v1/requests/\(newID)", h.operatorAuth)  // flushes the bodies
            await Maintenance(platform: h.platform).tick(purge: true)
            let (s, expired) = try await get(client, "/admin/v1/requests/\(oldID)", h.acmeAdmin)
            #expect(s == .ok && expired["status"]?.intValue == 200)  // the ledger row stays
            #expect(expired["bodies"]?["state"]?.stringValue == "shredded" && expired["bodies"]?["prompt"] == .null)
            let (_, fresh) = try await get(client, "/admin/v1/requests/\(newID)", h.acmeAdmin)
            #expect(fresh["bodies"]?["state"]?.stringValue == "available")
            // The tenant's own admin shreds everything: every key destroyed, ledger rows kept.
            try await client.execute(uri: "/admin/v1/tenants/\(h.acme.id)/request-store/shred", method: .post, headers: h.acmeAdmin) { r in
                #expect(r.status == .ok)
                let j = try Self.json(r)
                #expect(j["keys_destroyed"]?.intValue == 1 && j["bodies_deleted"]?.intValue == 1)
            }
            let (_, gone) = try await get(client, "/admin/v1/requests/\(newID)", h.acmeAdmin)
            #expect(gone["bodies"]?["state"]?.stringValue == "shredded" && gone["prompt_tokens"]?.intValue ?? 0 > 0)
            // Both shreds are in the audit log.
            await h.platform.audit.flush()
            let actions = try await h.platform.storage.auditEntries(tenantID: h.acme.id, from: 0, to: Int64.max).map(\.action)
            #expect(actions.contains("request_store.retention") && actions.contains("request_store.shred") && actions.contains("request.body.read"))
        }
    }
}
