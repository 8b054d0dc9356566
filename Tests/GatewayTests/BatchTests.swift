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

/// The batch API in process (issue 17): the routes over the router, and the worker driven step by
/// step (claim, run, advance, recover, purge) on a ManualClock in front of a SIMULATED engine
/// (EngineSim).
@Suite(.serialized) struct BatchTests {
    static let day: Int64 = 1_796_428_800_000

    struct Harness: Sendable {
        let platform: Platform
        let clock: ManualClock
        let key: String
        let otherKey: String
        var auth: HTTPFields { [.authorization: "Bearer \(key)"] }
        var otherAuth: HTTPFields { [.authorization: "Bearer \(otherKey)"] }
        var batches: Batches { Batches(platform: platform) }

        func principal() async throws -> Principal {
            let keyID = String(APIKeyToken(parsing: Substring(key))!.keyID)
            return try await platform.authority.principal(keyID: keyID)
        }

        /// A batch of `n` chat lines, created as the route does.
        func batch(_ n: Int) async throws -> BatchRecord {
            let p = try await principal()
            let bytes = Array(BatchTests.jsonl(n).utf8)
            let input = try BatchInput(jsonl: bytes, maxRequests: 100)
            let f = try await batches.storeFile(tenantID: p.tenantID, purpose: "batch", filename: "in.jsonl", content: bytes, expiresAt: nil,
                                                lineCount: input.lines.count, endpoint: input.endpoint.path)
            return try await batches.create(principal: p, inputFile: f, endpoint: .chat, metadata: nil)
        }

        /// Runs claimed jobs to their end, then moves batches on.
        func drain(_ w: BatchWorker) async {
            while true {
                let jobs = await w.claim(limit: 4)
                if jobs.isEmpty { break }
                for j in jobs { await w.run(j) }
            }
            await w.advance()
        }

        func lines(_ b: BatchRecord, of fileID: String?) async throws -> [JSONValue] {
            guard let fileID, let f = try await platform.storage.file(id: fileID, tenantID: b.tenantID),
                  let bytes = try await batches.content(of: f) else { return [] }
            return try String(decoding: bytes, as: UTF8.self).split(separator: "\n").map { try JSONValue.parse(String($0)) }
        }
    }

    static func jsonl(_ n: Int) -> String {
        (0..<n).map { #"{"custom_id":"c\#($0)","method":"POST","url":"/v1/chat/completions","body":{"model":"smollm2:135m","messages":[{"role":"user","content":"n \#($0)"}],"max_tokens":4}}"# }
            .joined(separator: "\n") + "\n"
    }

    func withGateway(_ body: @Sendable (any TestClientProtocol, Harness) async throws -> Void) async throws {
        let sims = SimFleet(configs: [SimConfig(models: ["sim-chat"], ttftMs: 1, itlMs: 1)])
        let port = try await sims.start()[0]
        var config = GatewayConfig()
        config.host = "127.0.0.1"
        config.port = 0
        config.dataDir = NSTemporaryDirectory() + "llmaas-batch-\(UUID().uuidString)"
        config.catalogPath = RouterTests.repo + "/deploy/catalog.yaml"
        config.backends = [BackendConfig(name: "sim0", kind: .sim, url: "http://127.0.0.1:\(port)", models: ["smollm2:135m": "sim-chat"],
                                         timeouts: Timeouts(connectMs: 1000, firstByteMs: 600_000, idleMs: 600_000))]
        config.fleet = FleetOptions(maxAttempts: 1)
        let clock = ManualClock(nowMs: Self.day)
        let catalog = try CatalogFile.load(path: config.catalogPath)
        let platform = try await Platform.open(config: config, logger: Logger(label: "batch-test"), clock: clock, catalog: catalog,
                                               secret: ServerSecret(bytes: Array(repeating: 5, count: 32)))
        do {
            _ = try await platform.authority.createTenant(name: "acme", tier: "monthly")
            _ = try await platform.authority.createTenant(name: "other", tier: "monthly")
            let (_, token) = try await platform.authority.createKey(tenantName: "acme", name: "k")
            let (_, other) = try await platform.authority.createKey(tenantName: "other", name: "k")
            let harness = Harness(platform: platform, clock: clock, key: token.text, otherKey: other.text)
            try await GatewayServer.application(platform).test(.router) { client in try await body(client, harness) }
        } catch {
            await platform.shutdown()
            await sims.shutdown()
            throw error
        }
        await platform.shutdown()
        await sims.shutdown()
        try? FileManager.default.removeItem(atPath: config.dataDir)
    }

    static func multipart(_ content: String, purpose: String = "batch") -> (HTTPFields, ByteBuffer) {
        let b = "XbOuNdArY42"
        let body = "--\(b)\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n\(purpose)\r\n"
            + "--\(b)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n\(content)\r\n--\(b)--\r\n"
        return ([.contentType: "multipart/form-data; boundary=\(b)"], ByteBuffer(string: body))
    }

    static func json(_ r: TestResponse) throws -> JSONValue { try JSONValue.parse(Array(r.body.readableBytesView)) }
    /// The body as JSON (null when it is not): for use inside `#expect`.
    static func j(_ r: TestResponse) -> JSONValue { (try? json(r)) ?? .null }

    @Test func uploadCreateRunAndReadResultsAtTheBatchPrice() async throws {
        try await withGateway { client, h in
            let (headers, body) = Self.multipart(Self.jsonl(3))
            var fileID = ""
            try await client.execute(uri: "/v1/files", method: .post, headers: h.auth + headers, body: body) { r in
                #expect(r.status == .ok)
                let j = try Self.json(r)
                #expect(j["object"]?.stringValue == "file" && j["purpose"]?.stringValue == "batch" && j["filename"]?.stringValue == "in.jsonl")
                fileID = j["id"]?.stringValue ?? ""
            }
            // At rest the file is ciphertext: the plaintext's custom ids are not in it.
            let onDisk = try #require(FileManager.default.contents(atPath: (h.batches.filesDir as NSString).appendingPathComponent(fileID)))
            #expect(!String(decoding: onDisk, as: UTF8.self).contains("custom_id"))
            var batchID = ""
            try await client.execute(uri: "/v1/batches", method: .post, headers: h.auth + [.contentType: "application/json"],
                                     body: ByteBuffer(string: #"{"input_file_id":"\#(fileID)","endpoint":"/v1/chat/completions","completion_window":"24h","metadata":{"a":"b"}}"#)) { r in
                #expect(r.status == .ok)
                let j = try Self.json(r)
                #expect(j["status"]?.stringValue == "validating" && j["request_counts"]?["total"]?.intValue == 3)
                #expect(j["metadata"]?["a"]?.stringValue == "b")
                batchID = j["id"]?.stringValue ?? ""
            }
            let w = BatchWorker(platform: h.platform)
            await h.drain(w)
            let b = try #require(try await h.platform.storage.batch(id: batchID))
            #expect(b.status == "completed" && b.completed == 3 && b.failed == 0 && b.errorFileID == nil)
            let out = try await h.lines(b, of: b.outputFileID)
            #expect(out.compactMap { $0["custom_id"]?.stringValue } == ["c0", "c1", "c2"])
            #expect(out.allSatisfy { $0["response"]?["status_code"]?.intValue == 200 && $0["error"]?.isNull == true })
            // Each line's ledger row: flagged batch, priced at half the interactive price.
            let entry = try #require(h.platform.catalog.current.resolve("smollm2:135m"))
            let half = entry.prices.halved
            for o in out {
                let id = try #require(o["response"]?["request_id"]?.stringValue)
                let row = try #require(try await h.platform.storage.request(id: id))
                #expect(row.batch == 1 && row.status == 200)
                #expect(row.costNano == Int64(row.promptTokens * half.inputNanoPerToken + row.completionTokens * half.outputNanoPerToken))
            }
            // The object over HTTP, and the content route.
            try await client.execute(uri: "/v1/batches/\(batchID)", method: .get, headers: h.auth) { r in
                let j = try Self.json(r)
                #expect(j["status"]?.stringValue == "completed" && j["request_counts"]?["completed"]?.intValue == 3)
                #expect(j["completed_at"]?.intValue == Int(Self.day / 1000))
            }
            try await client.execute(uri: "/v1/files/\(b.outputFileID!)/content", method: .get, headers: h.auth) { r in
                #expect(r.status == .ok && String(buffer: r.body).split(separator: "\n").count == 3)
            }
            // Metrics and the audit log include the batch's activity.
            let metrics = String(decoding: h.platform.metrics.exposition(), as: UTF8.self)
            #expect(metrics.contains(#"llmaas_batch_lines_total{outcome="ok"} 3"#))
            #expect(metrics.contains(#"llmaas_batches_total{status="completed"} 1"#))
            await h.platform.audit.flush()
            let actions = Set(try await h.platform.storage.auditEntries(tenantID: b.tenantID, from: 0, to: .max).map(\.action))
            #expect(actions.isSuperset(of: ["file.upload", "batch.create", "batch.in_progress", "batch.completed", "inference.chat.completions"]), "\(actions)")
            // /v1/usage: the batch share.
            try await client.execute(uri: "/v1/usage", method: .get, headers: h.auth) { r in
                #expect(Self.j(r)["batch"]?["requests"]?.intValue == 3)
            }
        }
    }

    @Test func anotherTenantGets404AndBadInputGetsClearErrors() async throws {
        try await withGateway { client, h in
            let b = try await h.batch(2)
            for (uri, method) in [("/v1/files/\(b.inputFileID)", HTTPRequest.Method.get), ("/v1/files/\(b.inputFileID)/content", .get),
                                  ("/v1/files/\(b.inputFileID)", .delete), ("/v1/batches/\(b.id)", .get), ("/v1/batches/\(b.id)/cancel", .post)] {
                try await client.execute(uri: uri, method: method, headers: h.otherAuth) { r in
                    #expect(r.status == .notFound, "\(method) \(uri)")
                }
            }
            try await client.execute(uri: "/v1/batches", method: .get, headers: h.otherAuth) { r in
                #expect(Self.j(r)["data"]?.arrayValue?.isEmpty == true)
            }
            // A file holding a bad line: 400 naming the line.
            let (headers, body) = Self.multipart(Self.jsonl(2) + "{\"custom_id\":\"c0\"}\n")
            try await client.execute(uri: "/v1/files", method: .post, headers: h.auth + headers, body: body) { r in
                #expect(r.status == .badRequest)
                #expect(Self.j(r)["error"]?["message"]?.stringValue?.contains("Line 3") == true)
            }
            let (h2, b2) = Self.multipart(Self.jsonl(1), purpose: "assistants")
            try await client.execute(uri: "/v1/files", method: .post, headers: h.auth + h2, body: b2) { r in
                #expect(r.status == .badRequest && (Self.j(r)["error"]?["param"]?.stringValue) == "purpose")
            }
            try await client.execute(uri: "/v1/batches", method: .post, headers: h.auth + [.contentType: "application/json"],
                                     body: ByteBuffer(string: #"{"input_file_id":"\#(b.inputFileID)","endpoint":"/v1/chat/completions","completion_window":"1h"}"#)) { r in
                #expect(r.status == .badRequest && (Self.j(r)["error"]?["param"]?.stringValue) == "completion_window")
            }
            // The input of a running batch cannot be deleted.
            try await client.execute(uri: "/v1/files/\(b.inputFileID)", method: .delete, headers: h.auth) { r in
                #expect(r.status == .conflict)
            }
        }
    }

    /// A crash after lines were claimed (sent, result never recorded) and after a line's result
    /// was recorded but before its ledger row was written: the next start requeues the first and
    /// writes the missing ledger row; the batch then completes with every line exactly once.
    @Test func resumeAfterACrashRunsNothingTwiceAndLosesNothing() async throws {
        try await withGateway { _, h in
            let b = try await h.batch(5)
            let before = BatchWorker(platform: h.platform)
            // Line 1 ran completely; its ledger row went through the normal path.
            let first = await before.claim(limit: 1)
            for j in first { await before.run(j) }
            // Line 2: result recorded with its ledger row in the line, the ledger table write "lost".
            let second = try #require(await before.claim(limit: 1).first)
            let record = RequestRecord(id: second.requestID, createdAt: h.clock.now(), tenantID: b.tenantID, keyID: b.keyID, model: "smollm2:135m",
                                       endpoint: "chat.completions", status: 200, outcome: "ok", promptTokens: 3, completionTokens: 4,
                                       latencyMs: 1, costNano: 1, batch: 1)
            let line = Batches.resultLine(batchLineID: "batch_req_x", customID: second.line.customID, status: 200, requestID: second.requestID,
                                          body: .object([("ok", true)]), error: nil)
            let (sealed, keyID) = try await h.batches.sealLine(line, tenantID: b.tenantID, batchID: b.id, line: second.line.line)
            try await h.platform.storage.finishBatchLine(batchID: b.id, line: second.line.line, isError: false, result: sealed, dataKeyID: keyID,
                                                         ledger: String(decoding: try JSONEncoder().encode(record), as: UTF8.self), at: h.clock.now())
            // Lines 3 and 4 claimed (sent), then the crash.
            let inFlight = await before.claim(limit: 2)
            #expect(inFlight.count == 2)
            #expect(try await h.platform.storage.request(id: second.requestID) == nil)

            // Restart: a new worker over the same database.
            let after = BatchWorker(platform: h.platform)
            await after.recover()
            #expect(try await h.platform.storage.request(id: second.requestID)?.batch == 1, "the missing ledger row is written at recovery")
            #expect(try await h.platform.storage.batchLines(batchID: b.id, state: "running").isEmpty)
            await after.recover()  // recovering twice writes nothing twice
            await h.drain(after)
            let done = try #require(try await h.platform.storage.batch(id: b.id))
            #expect(done.status == "completed" && done.completed == 5)
            let out = try await h.lines(done, of: done.outputFileID)
            #expect(out.compactMap { $0["custom_id"]?.stringValue } == ["c0", "c1", "c2", "c3", "c4"])
            // The ledger: exactly the request ids of the output file, each once.
            await h.platform.requestLog.flush()
            let rows = try await h.platform.storage.ledger(tenantID: b.tenantID, from: 0, to: .max).filter { $0.batch == 1 }
            #expect(rows.map(\.id).sorted() == out.compactMap { $0["response"]?["request_id"]?.stringValue }.sorted())
            // The lines in flight at the crash ran once more under new request ids; their first ids never reached the ledger.
            for j in inFlight { #expect(try await h.platform.storage.request(id: j.requestID) == nil) }
        }
    }

    @Test func expiresAfter24HoursAndResultsAreDeletedAfterRetention() async throws {
        try await withGateway { _, h in
            let b = try await h.batch(4)
            let w = BatchWorker(platform: h.platform)
            for j in await w.claim(limit: 1) { await w.run(j) }
            h.clock.advance(byMs: 86_400_000)
            #expect(await w.claim(limit: 4).isEmpty, "no line starts after the window")
            await w.advance()
            let ended = try #require(try await h.platform.storage.batch(id: b.id))
            #expect(ended.status == "expired" && ended.completed == 1 && ended.failed == 3 && ended.expiredAt == h.clock.now())
            let errors = try await h.lines(ended, of: ended.errorFileID)
            #expect(errors.count == 3 && errors.allSatisfy { $0["error"]?["code"]?.stringValue == "batch_expired" && $0["response"]?.isNull == true })
            // Kept 7 days, then deleted by the maintenance pass.
            h.clock.advance(byMs: 7 * 86_400_000 - 1)
            await w.purge()
            #expect(try await h.platform.storage.file(id: ended.errorFileID!, tenantID: b.tenantID) != nil)
            h.clock.advance(byMs: 2)
            await w.purge()
            #expect(try await h.platform.storage.file(id: ended.errorFileID!, tenantID: b.tenantID) == nil)
            #expect(try await h.platform.storage.file(id: ended.outputFileID!, tenantID: b.tenantID) == nil)
            #expect(try await h.platform.storage.batchLines(batchID: b.id).isEmpty)
        }
    }

    @Test func aBatchWhoseInputNoLongerOpensFails() async throws {
        try await withGateway { client, h in
            let b = try await h.batch(2)
            // The ciphertext is gone (as after its data key was destroyed): nothing can run.
            try FileManager.default.removeItem(atPath: (h.batches.filesDir as NSString).appendingPathComponent(b.inputFileID))
            #expect(await BatchWorker(platform: h.platform).claim(limit: 2).isEmpty)
            try await client.execute(uri: "/v1/batches/\(b.id)", method: .get, headers: h.auth) { r in
                let j = Self.j(r)
                #expect(j["status"]?.stringValue == "failed" && j["failed_at"]?.isNull == false)
                #expect(j["errors"]?["data"]?.arrayValue?.first?["code"]?.stringValue == "invalid_file")
            }
        }
    }

    @Test func cancelEndsUnrunLinesAsCancelled() async throws {
        try await withGateway { client, h in
            let b = try await h.batch(3)
            let w = BatchWorker(platform: h.platform)
            for j in await w.claim(limit: 1) { await w.run(j) }
            try await client.execute(uri: "/v1/batches/\(b.id)/cancel", method: .post, headers: h.auth) { r in
                #expect(Self.j(r)["status"]?.stringValue == "cancelling")
            }
            #expect(await w.claim(limit: 3).isEmpty)
            await w.advance()
            let ended = try #require(try await h.platform.storage.batch(id: b.id))
            #expect(ended.status == "cancelled" && ended.completed == 1 && ended.failed == 2)
            #expect(try await h.lines(ended, of: ended.errorFileID).allSatisfy { $0["error"]?["code"]?.stringValue == "batch_cancelled" })
            try await client.execute(uri: "/v1/batches/\(b.id)/cancel", method: .post, headers: h.auth) { r in
                #expect(r.status == .ok && (Self.j(r)["status"]?.stringValue) == "cancelled")
            }
        }
    }
}
