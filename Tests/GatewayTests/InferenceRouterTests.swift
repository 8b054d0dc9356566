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
import Quotas
import Storage
import Synchronization
import Tenancy
import Testing
@testable import Gateway

/// The inference path through the gateway's router, in process: a platform built from values
/// (catalog, secret, a manual clock) in front of SIMULATED engines (EngineSim). Each status a
/// client can meet, a stream the engine cuts, and a client that hangs up.
@Suite(.serialized) struct InferenceRouterTests {
    /// 2026-12-05 00:00 UTC: smollm2:135m is in production, deepcoder:14b retired (end of support
    /// 2026-06-30, removed three months later).
    static let day: Int64 = 1_796_428_800_000

    struct Harness: Sendable {
        let platform: Platform
        let sim: EngineSim
        let clock: ManualClock
        let key: String

        var auth: HTTPFields { [.authorization: "Bearer \(key)", .contentType: "application/json"] }

        func body(_ json: String) -> ByteBuffer { ByteBuffer(string: json) }

        /// The request row of `id`, once the ledger has it.
        func row(_ id: String) async throws -> RequestRecord? {
            for _ in 0..<600 {
                if let r = try await platform.storage.request(id: id) { return r }
                try await Task.sleep(for: .milliseconds(50))
            }
            return nil
        }
    }

    static func chat(_ model: String = "smollm2:135m", stream: Bool = false, maxTokens: Int = 8, extra: String = "") -> String {
        #"{"model":"\#(model)","messages":[{"role":"user","content":"hello there"}],"max_tokens":\#(maxTokens),"stream":\#(stream)\#(extra)}"#
    }

    func withGateway(live: Bool = false, maxBodyBytes: Int = 1 << 20, configure: (inout GatewayConfig) -> Void = { _ in },
                     _ body: @Sendable (any TestClientProtocol, Harness) async throws -> Void) async throws {
        let sims = SimFleet(configs: [SimConfig(models: ["sim-chat"], ttftMs: 1, itlMs: 1)])
        let port = try await sims.start()[0]
        var config = GatewayConfig()
        config.host = "127.0.0.1"
        config.port = 0
        config.dataDir = NSTemporaryDirectory() + "llmaas-inference-router-\(UUID().uuidString)"
        config.catalogPath = RouterTests.repo + "/deploy/catalog.yaml"
        config.maxBodyBytes = maxBodyBytes
        config.allowSimulatorFields = true
        config.backends = [BackendConfig(name: "sim0", kind: .sim, url: "http://127.0.0.1:\(port)",
                                         models: ["smollm2:135m": "sim-chat", "deepcoder:14b": "sim-chat"],
                                         timeouts: Timeouts(connectMs: 1000, firstByteMs: 600_000, idleMs: 600_000))]
        config.fleet = FleetOptions(maxAttempts: 1)
        // A tier of one request a minute: its second request meets 429 (the manual clock stands still).
        config.tiers["one-a-minute"] = Tier(name: "one-a-minute", requestsPerMinute: 1, outputTokensPerHour: 1_000_000,
                                            outputTokensPerDay: 10_000_000, monthlyCapNano: nil, priority: 0, prepaid: false)
        configure(&config)
        let clock = ManualClock(nowMs: Self.day)
        let catalog = try CatalogFile.load(path: config.catalogPath)
        let platform = try await Platform.open(config: config, logger: Logger(label: "inference-router-test"), clock: clock, catalog: catalog,
                                               secret: ServerSecret(bytes: Array(repeating: 3, count: 32)))
        do {
            _ = try await platform.authority.createTenant(name: "acme", tier: "monthly")
            let (_, token) = try await platform.authority.createKey(tenantName: "acme", name: "k")
            let harness = Harness(platform: platform, sim: sims.machine(0), clock: clock, key: token.text)
            let app = GatewayServer.application(platform)
            let setup: TestingSetup = live ? .live : .router
            try await app.test(setup) { client in try await body(client, harness) }
        } catch {
            await platform.shutdown()
            await sims.shutdown()
            throw error
        }
        await platform.shutdown()
        await sims.shutdown()
        try? FileManager.default.removeItem(atPath: config.dataDir)
    }

    static func error(_ response: TestResponse) throws -> JSONValue {
        try #require(try JSONValue.parse(Array(response.body.readableBytesView))["error"])
    }

    @Test func answersAndEachRefusalHasItsStatus() async throws {
        try await withGateway { client, h in
            // 200, billed in the ledger.
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h.auth, body: h.body(Self.chat())) { r in
                #expect(r.status == .ok)
                let json = try JSONValue.parse(Array(r.body.readableBytesView))
                #expect(json["object"]?.stringValue == "chat.completion")
                #expect(json["usage"]?["completion_tokens"]?.intValue ?? 0 > 0)
                let id = try #require(r.headers[HTTPField.Name("x-request-id")!])
                let row = try await h.row(id)
                #expect(row?.status == 200 && row?.endpoint == "chat.completions" && row?.createdAt == Self.day)
            }
            // 400: a missing parameter is named.
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h.auth, body: h.body(#"{"model":"smollm2:135m"}"#)) { r in
                #expect(r.status == .badRequest)
                let e = try Self.error(r)
                #expect(e["param"]?.stringValue == "messages")
            }
            // 401: a key that does not exist.
            var wrong = h.auth
            wrong[.authorization] = "Bearer sk-llmaas-nothere_0000000000000000000000"
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: wrong, body: h.body(Self.chat())) { r in
                #expect(r.status == .unauthorized)
                let e = try Self.error(r)
                #expect(e["type"]?.stringValue == "authentication_error")
            }
            // 404: a model the catalog does not have.
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h.auth, body: h.body(Self.chat("no-such-model"))) { r in
                #expect(r.status == .notFound)
                let e = try Self.error(r)
                #expect(e["code"]?.stringValue == "model_not_found")
            }
            // 410: a retired model, on the platform's clock.
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h.auth, body: h.body(Self.chat("deepcoder:14b"))) { r in
                #expect(r.status == .gone)
                let e = try Self.error(r)
                #expect(e["code"]?.stringValue == "model_retired")
            }
            // 5xx: the engine fails; the client gets a 502 in OpenAI's shape.
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h.auth,
                                     body: h.body(Self.chat(extra: #","sim_fault":"500""#))) { r in
                #expect(r.status == .badGateway)
                let e = try Self.error(r)
                #expect(e["message"]?.stringValue?.contains("sim0") == true)
            }
        }
    }

    @Test func permissionRateLimitAndBodySize() async throws {
        try await withGateway(maxBodyBytes: 4096) { client, h in
            // 403: a key granted embeddings only.
            let (_, embeddingsOnly) = try await h.platform.authority.createKey(tenantName: "acme", name: "emb", grants: .init(endpoints: ["embeddings"]))
            var auth = h.auth
            auth[.authorization] = "Bearer \(embeddingsOnly.text)"
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: auth, body: h.body(Self.chat())) { r in
                #expect(r.status == .forbidden)
                let e = try Self.error(r)
                #expect(e["type"]?.stringValue == "permission_error")
            }
            // 413: a body over max_body_bytes.
            let big = Self.chat(extra: #","user":"\#(String(repeating: "x", count: 8000))""#)
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h.auth, body: h.body(big)) { r in
                #expect(r.status == .contentTooLarge)
            }
            // 429: the tier's one request a minute; the clock does not move, so the second is refused.
            _ = try await h.platform.authority.createTenant(name: "slow", tier: "one-a-minute")
            let (_, slowKey) = try await h.platform.authority.createKey(tenantName: "slow", name: "k")
            auth[.authorization] = "Bearer \(slowKey.text)"
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: auth, body: h.body(Self.chat())) { r in
                #expect(r.status == .ok)
            }
            let retryAfter = try await client.execute(uri: "/v1/chat/completions", method: .post, headers: auth, body: h.body(Self.chat())) { r in
                #expect(r.status == .tooManyRequests, "\(String(buffer: r.body))")
                return Int(r.headers[HTTPField.Name("retry-after")!] ?? "") ?? 0
            }
            #expect((1...61).contains(retryAfter), "Retry-After: \(retryAfter)")  // a minute window, rounded up
            // After the Retry-After on the platform's clock, the window has room again.
            h.clock.advance(byMs: Int64(retryAfter) * 1000)
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: auth, body: h.body(Self.chat())) { r in
                #expect(r.status == .ok)
            }
        }
    }

    @Test func aCutStreamEndsWithAnErrorEventAndBillsWhatWasSent() async throws {
        try await withGateway { client, h in
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h.auth,
                                     body: h.body(Self.chat(stream: true, maxTokens: 50, extra: #","sim_fault":"cut""#))) { r in
                #expect(r.status == .ok)  // the head went out with the first token
                let text = String(buffer: r.body)
                #expect(text.contains("chat.completion.chunk"))
                #expect(text.contains("upstream_stream_error"))
                #expect(!text.contains("data: [DONE]"))
                let id = try #require(r.headers[HTTPField.Name("x-request-id")!])
                let row = try #require(try await h.row(id))
                #expect(row.outcome == "upstream_error" && row.errorCode == "upstream_stream_error")
                #expect(row.completionTokens > 0)  // what reached the client is billed
            }
        }
    }

    final class CallCount: Sendable { let n = Atomic<Int>(0) }

    /// An engine that answers a stream's head and then fails its body before any event (a stream
    /// that breaks before its first token). Runs until `body` returns.
    static func withBrokenEngine(_ body: (Int, CallCount) async throws -> Void) async throws {
        let router = Hummingbird.Router()
        let calls = CallCount()
        router.post("/v1/chat/completions") { _, _ -> Response in
            calls.n.add(1, ordering: .relaxed)
            return Response(status: .ok, headers: [.contentType: "text/event-stream"], body: ResponseBody { _ in throw CancellationError() })
        }
        let (ports, cont) = AsyncStream.makeStream(of: Int.self)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { cont.yield($0.localAddress?.port ?? 0) })
        let server = Task { try await app.runService() }
        defer { server.cancel() }
        var it = ports.makeAsyncIterator()
        let port = try #require(await it.next())
        try await body(port, calls)
    }

    /// The wait for a stream's first token runs after the request's task ended (``PendingStream``):
    /// a backend whose stream breaks before it is failed over from, whichever backend is tried
    /// first; with no other backend the client gets the pipeline's 502 with its request id, and the
    /// ledger row says why.
    @Test func aStreamBrokenBeforeItsFirstTokenFailsOverOrAnswersTheError() async throws {
        try await Self.withBrokenEngine { brokenPort, calls in
            let broken = BackendConfig(name: "broken", kind: .openai, url: "http://127.0.0.1:\(brokenPort)", models: ["smollm2:135m": "m"],
                                       timeouts: Timeouts(connectMs: 1000, firstByteMs: 5000, idleMs: 5000))
            try await withGateway(configure: { config in
                config.backends.insert(broken, at: 0)
                config.fleet = FleetOptions(maxAttempts: 2, seed: 7)
            }) { client, h in
                for _ in 0..<4 {
                    try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h.auth,
                                             body: h.body(Self.chat(stream: true))) { r in
                        #expect(r.status == .ok)
                        #expect(r.headers[HTTPField.Name("x-llmaas-backend")!] == "sim/sim0")
                        #expect(r.headers[HTTPField.Name("x-request-id")!] != nil)
                        let text = String(buffer: r.body)
                        #expect(text.contains("chat.completion.chunk") && text.contains("data: [DONE]"))
                        let id = try #require(r.headers[HTTPField.Name("x-request-id")!])
                        let row = try #require(try await h.row(id))
                        #expect(row.status == 200 && row.backend == "sim0")
                    }
                }
            }
            #expect(calls.n.load(ordering: .relaxed) > 0)  // the broken backend was tried first at least once
            try await withGateway(configure: { config in config.backends = [broken] }) { client, h in
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h.auth,
                                         body: h.body(Self.chat(stream: true))) { r in
                    #expect(r.status == .badGateway, "\(String(buffer: r.body))")
                    let id = try #require(r.headers[HTTPField.Name("x-request-id")!])
                    #expect(try Self.error(r)["code"]?.stringValue == "upstream_stream_error")
                    let row = try #require(try await h.row(id))
                    #expect(row.status == 502 && row.errorCode == "upstream_stream_error")
                }
            }
        }
    }

    @Test func aClientThatHangsUpStopsTheEngine() async throws {
        try await withGateway(live: true) { client, h in
            let port = try #require(client.port)
            let raw = TestClient(host: "127.0.0.1", port: port, configuration: .init(), eventLoopGroupProvider: .createNew)
            raw.connect()
            let body = h.body(Self.chat(extra: #","sim_fault":"hang""#))
            var headers = h.auth
            headers[.contentLength] = "\(body.readableBytes)"
            try await raw.executeAndDontWaitForResponse(.init("/v1/chat/completions", method: .post, headers: headers, body: body))
            // The engine has the request; then the client goes away.
            for _ in 0..<600 where h.sim.currentStats.requests < 1 { try await Task.sleep(for: .milliseconds(50)) }
            #expect(h.sim.currentStats.requests == 1)
            try await raw.shutdown()
            // The gateway notices, closes the engine connection, and records 499 client_closed.
            var rows: [RequestRecord] = []
            for _ in 0..<600 {
                rows = try await h.platform.storage.recentRequests(limit: 10)
                if rows.contains(where: { $0.status == 499 }) { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(rows.contains { $0.status == 499 && $0.outcome == "client_closed" }, "\(rows.map { ($0.status, $0.outcome) })")
            // The engine's connection was closed: it stopped working for nobody.
            for _ in 0..<600 where h.sim.currentStats.cancelled < 1 { try await Task.sleep(for: .milliseconds(50)) }
            #expect(h.sim.currentStats.cancelled == 1)
        }
    }

    /// The configured tier `priority` orders the queue, not the tier's name: a custom tier of
    /// priority 0 is served before `monthly` (rank 1 by default), one of priority 2 after it.
    /// One slot, held by a request the engine never answers; the custom tier queues first.
    @Test(arguments: [(0, ["zero", "monthly"]), (2, ["monthly", "zero"])])
    func configuredTierPriorityOrdersTheQueue(customPriority: Int, expected: [String]) async throws {
        try await withGateway(configure: { config in
            config.backends[0].capacity = 1
            config.tiers["zero"] = Tier(name: "zero", outputTokensPerHour: 1_000_000, outputTokensPerDay: 10_000_000, monthlyCapNano: nil,
                                        priority: customPriority, prepaid: false)
        }) { client, h in
            _ = try await h.platform.authority.createTenant(name: "z", tier: "zero")
            let (_, zeroKey) = try await h.platform.authority.createKey(tenantName: "z", name: "k")
            var zeroAuth = h.auth
            zeroAuth[.authorization] = "Bearer \(zeroKey.text)"
            let served = Mutex<[String]>([])
            func queued() -> Int { h.platform.fleet.backendsReport()["queued"]?.intValue ?? 0 }
            let hold = Task {
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h.auth,
                                         body: h.body(Self.chat(extra: #","sim_fault":"hang""#))) { _ in }
            }
            for _ in 0..<1_200 where h.sim.currentStats.requests < 1 { try await Task.sleep(for: .milliseconds(50)) }
            // The custom tier queues first, monthly second.
            let zero = Task {
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: zeroAuth, body: h.body(Self.chat())) { r in
                    #expect(r.status == .ok)
                    served.withLock { $0.append("zero") }
                }
            }
            for _ in 0..<1_200 where queued() < 1 { try await Task.sleep(for: .milliseconds(50)) }
            let monthly = Task {
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h.auth, body: h.body(Self.chat())) { r in
                    #expect(r.status == .ok)
                    served.withLock { $0.append("monthly") }
                }
            }
            for _ in 0..<1_200 where queued() < 2 { try await Task.sleep(for: .milliseconds(50)) }
            try #require(queued() == 2)
            hold.cancel()  // the slot frees: the queue's order decides who goes next
            _ = await (hold.result, try zero.value, try monthly.value)
            #expect(served.withLock { $0 } == expected)
        }
    }

    /// `/v1/models` entries carry `max_model_len`, `aliases` and `permission` (what this key may
    /// do with the model: the endpoints both the model serves and the key is granted).
    @Test func modelEntriesSayWhatTheKeyMayDo() async throws {
        try await withGateway { client, h in
            let (_, embeddingsOnly) = try await h.platform.authority.createKey(tenantName: "acme", name: "emb", grants: .init(endpoints: ["embeddings"]))
            var embAuth = h.auth
            embAuth[.authorization] = "Bearer \(embeddingsOnly.text)"
            // An embedding model also serves rerank (ranked by the gateway from its embeddings, issue 17).
            for (auth, endpoints, sampling) in [(h.auth, ["chat", "completions", "embeddings", "rerank"], true), (embAuth, ["embeddings"], false)] {
                try await client.execute(uri: "/v1/models", method: .get, headers: auth) { r in
                    #expect(r.status == .ok)
                    let list = try JSONValue.parse(Array(r.body.readableBytesView))
                    let smol = try #require(list["data"]?.arrayValue?.first { $0["id"]?.stringValue == "smollm2:135m" })
                    #expect(smol["max_model_len"]?.intValue == 8192 && smol["context_length"]?.intValue == 8192)
                    #expect(smol["aliases"]?.arrayValue?.contains("smollm2") == true)
                    let permission = try #require(smol["permission"]?.arrayValue?.first)
                    #expect(permission["object"]?.stringValue == "model_permission")
                    #expect(permission["endpoints"]?.arrayValue?.compactMap(\.stringValue) == endpoints)
                    #expect(permission["allow_sampling"]?.boolValue == sampling)
                }
                try await client.execute(uri: "/v1/models/smollm2", method: .get, headers: auth) { r in
                    #expect(r.status == .ok)
                    let model = try JSONValue.parse(Array(r.body.readableBytesView))
                    #expect(model["id"]?.stringValue == "smollm2:135m" && model["max_model_len"]?.intValue == 8192)
                    #expect(model["permission"]?.arrayValue?.first?["endpoints"]?.arrayValue?.compactMap(\.stringValue) == endpoints)
                }
            }
        }
    }

    /// `/v1/usage?group_by=endpoint` (issue 17): one row per endpoint id; an unknown grouping is a
    /// 400 that lists the choices.
    @Test func usageGroupsByEndpoint() async throws {
        try await withGateway { client, h in
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h.auth, body: h.body(Self.chat())) { r in
                #expect(r.status == .ok)
                let id = try #require(r.headers[HTTPField.Name("x-request-id")!])
                _ = try await h.row(id)
            }
            try await client.execute(uri: "/v1/embeddings", method: .post, headers: h.auth,
                                     body: h.body(#"{"model":"smollm2:135m","input":["a","b"]}"#)) { r in
                #expect(r.status == .ok)
                let id = try #require(r.headers[HTTPField.Name("x-request-id")!])
                _ = try await h.row(id)
            }
            try await client.execute(uri: "/v1/usage?group_by=endpoint", method: .get, headers: h.auth) { r in
                #expect(r.status == .ok)
                let json = try JSONValue.parse(Array(r.body.readableBytesView))
                #expect(json["group_by"]?.stringValue == "endpoint")
                let rows = json["data"]?.arrayValue ?? []
                #expect(rows.compactMap { $0["endpoint"]?.stringValue } == ["chat.completions", "embeddings"])
                #expect(rows.allSatisfy { $0["requests"]?.intValue == 1 })
            }
            try await client.execute(uri: "/v1/usage?group_by=colour", method: .get, headers: h.auth) { r in
                #expect(r.status == .badRequest)
                let e = try Self.error(r)
                #expect(e["param"]?.stringValue == "group_by" && e["message"]?.stringValue?.contains("endpoint") == true)
            }
        }
    }
}
