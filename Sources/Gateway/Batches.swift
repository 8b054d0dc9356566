import Foundation
import Observability
import OpenAIWire
import Storage
import Tenancy

/// The batch API's files and batches over the platform (issue 17): what the routes and the worker
/// share. File contents are sealed (``RequestStore/sealTenantData``) and kept in
/// `batch.files_dir` (default `data_dir/files`), one file per id; metadata in the database.
struct Batches: Sendable {
    let platform: Platform

    var filesDir: String { platform.config.batch.filesDir ?? (platform.config.dataDir as NSString).appendingPathComponent("files") }

    static func newID(_ prefix: String) -> String {
        prefix + String(RequestIDs.next().dropFirst(4))
    }

    // MARK: Files

    /// Seals and stores a file's content, then its record (a crash in between leaves an
    /// unreferenced ciphertext file only).
    func storeFile(id: String? = nil, tenantID: String, purpose: String, filename: String, content: [UInt8], expiresAt: Int64?,
                   lineCount: Int? = nil, endpoint: String? = nil) async throws -> FileRecord {
        let id = id ?? Self.newID("file-")
        let t = platform.now()
        let (keyID, sealed) = try await platform.requestStore.sealTenantData(content, tenantID: tenantID, at: t, context: "file:" + id)
        try FileManager.default.createDirectory(atPath: filesDir, withIntermediateDirectories: true)
        let path = (filesDir as NSString).appendingPathComponent(id)
        let tmp = path + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: sealed, attributes: [.posixPermissions: 0o600]) else {
            throw APIError.server("The file could not be stored. Retry; if it persists, the operator should check the disk of \(filesDir).")
        }
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        try FileManager.default.moveItem(atPath: tmp, toPath: path)
        let record = FileRecord(id: id, tenantID: tenantID, purpose: purpose, filename: filename, bytes: Int64(content.count), createdAt: t,
                                expiresAt: expiresAt, dataKeyID: keyID, lineCount: lineCount, endpoint: endpoint)
        try await platform.storage.insertFile(record)
        return record
    }

    /// A file's plaintext; nil when its ciphertext is gone or no longer opens (key shredded).
    func content(of f: FileRecord) async throws -> [UInt8]? {
        let path = (filesDir as NSString).appendingPathComponent(f.id)
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try await platform.requestStore.openTenantData(data, tenantID: f.tenantID, dataKeyID: f.dataKeyID, context: "file:" + f.id)
    }

    func deleteFile(_ f: FileRecord) async throws {
        try await platform.storage.deleteFile(id: f.id)
        try? FileManager.default.removeItem(atPath: (filesDir as NSString).appendingPathComponent(f.id))
    }

    static func fileJSON(_ f: FileRecord) -> JSONValue {
        .object([
            ("id", .string(f.id)), ("object", "file"), ("bytes", .number(String(f.bytes))), ("created_at", .number(String(f.createdAt / 1000))),
            ("expires_at", f.expiresAt.map { .number(String($0 / 1000)) } ?? .null),
            ("filename", .string(f.filename)), ("purpose", .string(f.purpose)), ("status", "processed"), ("status_details", .null),
        ])
    }

    // MARK: Batch objects

    static func batchJSON(_ b: BatchRecord, counts: (completed: Int, failed: Int)? = nil) -> JSONValue {
        func time(_ ms: Int64?) -> JSONValue { ms.map { .number(String($0 / 1000)) } ?? .null }
        let errors: JSONValue = b.errors.flatMap { try? JSONValue.parse($0) }.map { .object([("object", "list"), ("data", $0)]) } ?? .null
        let metadata: JSONValue = b.metadata.flatMap { try? JSONValue.parse($0) } ?? .null
        let c = counts ?? (b.completed, b.failed)
        return .object([
            ("id", .string(b.id)), ("object", "batch"), ("endpoint", .string(b.endpoint)), ("errors", errors),
            ("input_file_id", .string(b.inputFileID)), ("completion_window", .string(b.completionWindow)), ("status", .string(b.status)),
            ("output_file_id", b.outputFileID.map(JSONValue.string) ?? .null), ("error_file_id", b.errorFileID.map(JSONValue.string) ?? .null),
            ("created_at", time(b.createdAt)), ("in_progress_at", time(b.inProgressAt)), ("expires_at", time(b.expiresAt)),
            ("finalizing_at", time(b.finalizingAt)), ("completed_at", time(b.completedAt)), ("failed_at", time(b.failedAt)),
            ("expired_at", time(b.expiredAt)), ("cancelling_at", time(b.cancellingAt)), ("cancelled_at", time(b.cancelledAt)),
            ("request_counts", .object([("total", .int(b.total)), ("completed", .int(c.completed)), ("failed", .int(c.failed))])),
            ("metadata", metadata),
        ])
    }

    /// The object a client sees: live counts while the batch runs.
    func batchJSON(_ b: BatchRecord) async throws -> JSONValue {
        if let status = BatchStatus(rawValue: b.status), !status.isTerminal {
            let c = try await platform.storage.batchLineCounts(batchID: b.id)
            return Self.batchJSON(b, counts: (c.completed, c.failed))
        }
        return Self.batchJSON(b)
    }

    /// Creates a batch over a validated input file: its lines all pending, status `validating`.
    func create(principal: Principal, inputFile: FileRecord, endpoint: Endpoint, metadata: String?) async throws -> BatchRecord {
        guard let bytes = try await content(of: inputFile) else {
            throw APIError.invalidRequest("The content of file \(inputFile.id) is no longer readable. Upload the file again.",
                                          param: "input_file_id", code: "invalid_file")
        }
        let input = try BatchInput(jsonl: bytes, maxRequests: platform.config.batch.maxRequests, limits: platform.config.requestLimits)
        let t = platform.now()
        let b = BatchRecord(id: Self.newID("batch_"), tenantID: principal.tenantID, keyID: principal.keyID, endpoint: endpoint.path,
                            inputFileID: inputFile.id, completionWindow: "24h", status: BatchStatus.validating.rawValue,
                            createdAt: t, expiresAt: t + 86_400_000, total: input.lines.count, metadata: metadata)
        try await platform.storage.insertBatch(b, lines: input.lines.map { BatchLineRecord(batchID: b.id, line: $0.number, customID: $0.customID) })
        return b
    }

    // MARK: Results

    /// One line of an output or error file (OpenAI's shape).
    static func resultLine(batchLineID: String, customID: String, status: Int?, requestID: String?, body: JSONValue?, error: (code: String, message: String)?) -> JSONValue {
        let response: JSONValue = status.map {
            .object([("status_code", .int($0)), ("request_id", requestID.map(JSONValue.string) ?? .null), ("body", body ?? .null)])
        } ?? .null
        let err: JSONValue = error.map { .object([("code", .string($0.code)), ("message", .string($0.message))]) } ?? .null
        return .object([("id", .string(batchLineID)), ("custom_id", .string(customID)), ("response", response), ("error", err)])
    }

    func sealLine(_ line: JSONValue, tenantID: String, batchID: String, line number: Int) async throws -> (String, String) {
        let (keyID, sealed) = try await platform.requestStore.sealTenantData(line.serialized(), tenantID: tenantID, at: platform.now(),
                                                                             context: "batch_line:\(batchID):\(number)")
        return (sealed.base64EncodedString(), keyID)
    }

    func openLine(_ l: BatchLineRecord, tenantID: String) async throws -> [UInt8]? {
        guard let result = l.result, let keyID = l.dataKeyID, let data = Data(base64Encoded: result) else { return nil }
        return try await platform.requestStore.openTenantData(data, tenantID: tenantID, dataKeyID: keyID, context: "batch_line:\(l.batchID):\(l.line)")
    }
}
