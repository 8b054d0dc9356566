import Foundation
import HTTPTypes
import Hummingbird
import Observability
import OpenAIWire
import Storage
import Tenancy

/// The batch API (issue 17), OpenAI's shapes: `/v1/files` (upload, list, retrieve, content,
/// delete) and `/v1/batches` (create, retrieve, list, cancel). Every file and batch belongs to
/// the caller's tenant: another tenant's id answers 404 exactly like an id that does not exist.
func addBatchRoutes(to router: Hummingbird.Router<GatewayContext>, platform: Platform) {
    let batches = Batches(platform: platform)
    let cfg = platform.config.batch

    @Sendable func audit(_ p: Principal, _ context: GatewayContext, _ action: String, _ target: String, _ outcome: String) {
        platform.audit.record(AuditEvent(time: platform.now(), actor: "key:\(p.keyID)", tenantID: p.tenantID, action: action, target: target,
                                         outcome: outcome, requestID: context.requestID, clientIP: context.clientIP))
    }

    @Sendable func ownFile(_ p: Principal, _ context: GatewayContext) async throws -> FileRecord {
        let id = context.parameters.get("id") ?? ""
        guard let f = try await platform.storage.file(id: id, tenantID: p.tenantID) else {
            throw APIError.notFound("No such file: '\(id.prefix(64))'. List your files with GET /v1/files.")
        }
        return f
    }

    @Sendable func ownBatch(_ p: Principal, _ context: GatewayContext) async throws -> BatchRecord {
        let id = context.parameters.get("id") ?? ""
        guard let b = try await platform.storage.batch(id: id), b.tenantID == p.tenantID else {
            throw APIError.notFound("No such batch: '\(id.prefix(64))'. List your batches with GET /v1/batches.")
        }
        return b
    }

    @Sendable func limitParam(_ request: Request, default d: Int, max m: Int) throws -> Int {
        guard let text = request.uri.queryParameters.get("limit") else { return d }
        guard let n = Int(text), (1...m).contains(n) else { throw APIError.invalidValue("limit", "a whole number between 1 and \(m).") }
        return n
    }

    @Sendable func list(_ items: [JSONValue], ids: [String], more: Bool) -> JSONValue {
        .object([("object", "list"), ("data", .array(items)), ("first_id", ids.first.map(JSONValue.string) ?? .null),
                 ("last_id", ids.last.map(JSONValue.string) ?? .null), ("has_more", .bool(more))])
    }

    // MARK: Files

    router.post("/v1/files") { request, context in
        let p = try await platform.authenticate(request, context)
        guard let type = request.headers[.contentType], Multipart.boundary(contentType: type) != nil else {
            throw APIError.invalidRequest("Upload the file as multipart/form-data with the fields 'purpose' (batch) and 'file'.",
                                          code: "invalid_content_type")
        }
        let bytes: [UInt8]
        do {
            bytes = try await readBody(request, limit: cfg.maxFileBytes + 64 * 1024)  // the form's own bytes on top of the file
        } catch let e as APIError where e.status == 413 {
            throw Batches.tooLarge(cfg.maxFileBytes)
        }
        let parts = try Multipart.parse(bytes, contentType: type)
        guard let purpose = parts.first(where: { $0.name == "purpose" }).map(\.text) else {
            throw APIError.missingParameter("purpose")
        }
        guard purpose == "batch" else {
            throw APIError.invalidValue("purpose", "'\(purpose.prefix(64))' is not supported here; the only purpose accepted is 'batch'.")
        }
        guard let file = parts.first(where: { $0.name == "file" }) else { throw APIError.missingParameter("file") }
        guard file.data.count <= cfg.maxFileBytes else { throw Batches.tooLarge(cfg.maxFileBytes) }
        let input = try BatchInput(jsonl: file.data, maxRequests: cfg.maxRequests, limits: platform.config.requestLimits)
        let name = String((file.filename ?? "batch.jsonl").prefix(255))
        let record = try await batches.storeFile(tenantID: p.tenantID, purpose: "batch", filename: name, content: file.data, expiresAt: nil,
                                                 lineCount: input.lines.count, endpoint: input.endpoint.path)
        audit(p, context, "file.upload", record.id, "purpose=batch bytes=\(record.bytes) requests=\(input.lines.count)")
        return jsonResponse(Batches.fileJSON(record))
    }

    router.get("/v1/files") { request, context in
        let p = try await platform.authenticate(request, context)
        let limit = try limitParam(request, default: 100, max: 10_000)
        let purpose = request.uri.queryParameters.get("purpose").map { String($0) }
        let after = request.uri.queryParameters.get("after").map { String($0) }
        if let order = request.uri.queryParameters.get("order"), order != "desc" {
            throw APIError.invalidValue("order", "only 'desc' (newest first) is supported.")
        }
        var rows = try await platform.storage.files(tenantID: p.tenantID, purpose: purpose, after: after, limit: limit + 1)
        let more = rows.count > limit
        if more { rows.removeLast() }
        return jsonResponse(list(rows.map(Batches.fileJSON), ids: rows.map(\.id), more: more))
    }

    router.get("/v1/files/{id}") { request, context in
        let p = try await platform.authenticate(request, context)
        return jsonResponse(Batches.fileJSON(try await ownFile(p, context)))
    }

    router.get("/v1/files/{id}/content") { request, context in
        let p = try await platform.authenticate(request, context)
        let f = try await ownFile(p, context)
        guard let bytes = try await batches.content(of: f) else {
            throw APIError(status: 410, message: "The content of file \(f.id) is no longer available (its retention ended or its key was destroyed).",
                           type: "invalid_request_error", code: "file_gone")
        }
        return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    router.delete("/v1/files/{id}") { request, context in
        let p = try await platform.authenticate(request, context)
        let f = try await ownFile(p, context)
        let open = [BatchStatus.validating, .inProgress, .finalizing, .cancelling].map(\.rawValue)
        if let user = try await platform.storage.batches(inStatus: open).first(where: { $0.inputFileID == f.id }) {
            throw APIError(status: 409, message: "File \(f.id) is the input of batch \(user.id), which is still \(user.status). Cancel the batch or wait for it to end, then delete the file.",
                           type: "invalid_request_error", code: "file_in_use")
        }
        try await batches.deleteFile(f)
        audit(p, context, "file.delete", f.id, "purpose=\(f.purpose)")
        return jsonResponse(.object([("id", .string(f.id)), ("object", "file"), ("deleted", true)]))
    }

    // MARK: Batches

    router.post("/v1/batches") { request, context in
        let p = try await platform.authenticate(request, context)
        let bytes = try await readBody(request, limit: 1 << 20)
        let body: JSONValue
        do { body = try JSONValue.parse(bytes) } catch { throw APIError.invalidJSON(bytes.isEmpty ? "the body is empty" : "\(error)") }
        guard case .object = body else { throw APIError.invalidRequest("The request body must be a JSON object, but got \(body.typeName).") }
        guard let fileID = body["input_file_id"]?.stringValue else { throw APIError.missingParameter("input_file_id") }
        guard let path = body["endpoint"]?.stringValue else { throw APIError.missingParameter("endpoint") }
        guard let endpoint = BatchInput.endpoints[path] else {
            throw APIError.invalidValue("endpoint", "'\(path.prefix(64))' is not supported; use one of \(BatchInput.endpoints.keys.sorted().joined(separator: ", ")).")
        }
        guard let window = body["completion_window"]?.stringValue else { throw APIError.missingParameter("completion_window") }
        guard window == "24h" else { throw APIError.invalidValue("completion_window", "'\(window.prefix(16))' is not supported; the only window is '24h'.") }
        var metadata: String?
        if let m = body["metadata"], !m.isNull {
            guard let pairs = m.objectValue, pairs.count <= 16,
                  pairs.allSatisfy({ $0.0.count <= 64 && ($0.1.stringValue?.count ?? 513) <= 512 }) else {
                throw APIError.invalidValue("metadata", "an object of at most 16 string values (keys up to 64 characters, values up to 512).")
            }
            metadata = String(decoding: m.serialized(), as: UTF8.self)
        }
        for (k, _) in body.objectValue ?? [] where !["input_file_id", "endpoint", "completion_window", "metadata"].contains(k) {
            throw APIError.invalidRequest("Unknown parameter: '\(k.prefix(64))'.", param: String(k.prefix(64)), code: "unknown_parameter")
        }
        guard p.grants.allows(endpoint: endpoint.grantName) else {
            throw APIError.permissionDenied("API key \(p.keyID) may not use \(endpoint.path). Ask your administrator to grant the '\(endpoint.grantName)' endpoint.")
        }
        guard let f = try await platform.storage.file(id: fileID, tenantID: p.tenantID) else {
            throw APIError(status: 404, message: "No such file: '\(fileID.prefix(64))'. Upload the input with POST /v1/files (purpose 'batch') first.",
                           type: "invalid_request_error", param: "input_file_id", code: "not_found")
        }
        guard f.purpose == "batch" else {
            throw APIError.invalidValue("input_file_id", "file \(f.id) has purpose '\(f.purpose)'; a batch's input must be uploaded with purpose 'batch'.")
        }
        guard f.endpoint == endpoint.path else {
            throw APIError.invalidValue("endpoint", "the requests of file \(f.id) call \(f.endpoint ?? "another endpoint"), not \(endpoint.path). Use the same endpoint as the file's 'url'.")
        }
        let b = try await batches.create(principal: p, inputFile: f, endpoint: endpoint, metadata: metadata)
        audit(p, context, "batch.create", b.id, "input=\(f.id) endpoint=\(endpoint.path) requests=\(b.total)")
        return jsonResponse(Batches.batchJSON(b))
    }

    router.get("/v1/batches") { request, context in
        let p = try await platform.authenticate(request, context)
        let limit = try limitParam(request, default: 20, max: 100)
        let after = request.uri.queryParameters.get("after").map { String($0) }
        var rows = try await platform.storage.batches(tenantID: p.tenantID, after: after, limit: limit + 1)
        let more = rows.count > limit
        if more { rows.removeLast() }
        var items: [JSONValue] = []
        for b in rows { items.append(try await batches.batchJSON(b)) }
        return jsonResponse(list(items, ids: rows.map(\.id), more: more))
    }

    router.get("/v1/batches/{id}") { request, context in
        let p = try await platform.authenticate(request, context)
        return jsonResponse(try await batches.batchJSON(try await ownBatch(p, context)))
    }

    router.post("/v1/batches/{id}/cancel") { request, context in
        let p = try await platform.authenticate(request, context)
        let b = try await ownBatch(p, context)
        let status = BatchStatus(rawValue: b.status)
        if status == .cancelling || status == .cancelled { return jsonResponse(try await batches.batchJSON(b)) }
        guard let status, status.canMove(to: .cancelling),
              try await platform.storage.transitionBatch(id: b.id, from: [status.rawValue], to: BatchStatus.cancelling.rawValue,
                                                         timeColumn: "cancelling_at", at: platform.now()),
              let now = try await platform.storage.batch(id: b.id) else {
            let current = try await platform.storage.batch(id: b.id)?.status ?? b.status
            throw APIError(status: 409, message: "Batch \(b.id) is \(current) and can no longer be cancelled.", type: "invalid_request_error", code: "batch_not_cancellable")
        }
        audit(p, context, "batch.cancel", b.id, "from=\(status.rawValue)")
        return jsonResponse(try await batches.batchJSON(now))
    }
}

extension Batches {
    static func tooLarge(_ limit: Int) -> APIError {
        APIError(status: 413, message: "The file is too large: a batch input file may hold at most \(limit) bytes (\(limit >> 20) MB). Split it into several files.",
                 type: "invalid_request_error", param: "file", code: "file_too_large")
    }
}
