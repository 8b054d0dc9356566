import Foundation
import Observability
import OpenAIWire
import ServiceLifecycle
import Storage
import Synchronization
import Tenancy

/// Runs batches (issue 17): each line through the interactive pipeline
/// (``CompletionPipeline/runBatchLine``) at the lowest fleet priority, at most
/// `batch.worker_concurrency` lines at once, oldest batch first.
///
/// **Progress survives a restart, no line is billed or delivered twice, none is lost.** A line is
/// `pending` → `running` (written before any engine sees it) → `done`, and `done` is written in
/// ONE statement together with the line's sealed result and its ledger row (as JSON): a line is
/// either done with both or not done at all. The ledger table row is written right after; if the
/// process dies in between, ``recover()`` writes it at the next start from the line. After a
/// crash, `running` lines (sent, result never recorded) go back to `pending` and run again: that
/// re-run is the only execution whose answer is delivered and billed, so the output file and the
/// ledger hold every line exactly once. The honest limit: an engine cannot be asked whether it
/// already computed a request, so a line in flight at the moment of a crash (at most
/// `worker_concurrency` of them) may have been computed once more by the engine, unbilled and
/// undelivered. Claiming a line never sends it twice while the process lives (the claim is a
/// conditional update from `pending`).
struct BatchWorker: Service {
    let platform: Platform
    var batches: Batches { Batches(platform: platform) }
    /// Decoded input lines per batch (the input file is read once per batch and process).
    let inputs = InputCache()
    /// Per batch: not before this time (the day's budget is used up, or the fleet is busy).
    let backoff = Backoff()

    final class InputCache: Sendable {
        let value = Mutex<[String: (endpoint: Endpoint, bodies: [Int: JSONValue])]>([:])
    }

    final class Backoff: Sendable {
        let value = Mutex<[String: Int64]>([:])
        func withLock<T>(_ body: (inout [String: Int64]) -> T) -> T { value.withLock { body(&$0) } }
    }

    func run() async throws {
        await recover()
        await withGracefulShutdownHandler {
            await loop()
        } onGracefulShutdown: {}
    }

    /// The main loop: keep up to `worker_concurrency` lines in flight; between them, move batches
    /// through their states and apply retention.
    func loop() async {
        let concurrency = platform.config.batch.workerConcurrency
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            var lastPurge: Int64? = nil
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                var jobs: [Job] = []
                if running < concurrency { jobs = await claim(limit: concurrency - running) }
                for job in jobs {
                    group.addTask { await self.run(job) }
                    running += 1
                }
                if !jobs.isEmpty { continue }
                if running > 0 {
                    await group.next()
                    running -= 1
                    continue
                }
                await advance()
                if lastPurge.map({ platform.now() - $0 > 3_600_000 }) ?? true {
                    await purge()
                    lastPurge = platform.now()
                }
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(platform.config.batch.pollIntervalMs)) }
            }
            // Shutdown: let the lines in flight finish (their results are recorded), take no new ones.
            for await _ in group {}
        }
    }

    struct Job: Sendable {
        let batch: BatchRecord
        let line: BatchLineRecord
        let requestID: String
    }

    /// Claims up to `limit` pending lines of the oldest running batches (state `running`,
    /// written before anything is sent). Batches still `validating` start here.
    func claim(limit: Int) async -> [Job] {
        var jobs: [Job] = []
        do {
            for var b in try await platform.storage.batches(inStatus: [BatchStatus.validating.rawValue, BatchStatus.inProgress.rawValue]) {
                if b.status == BatchStatus.validating.rawValue {
                    // The input must still open (its key may have been destroyed since the upload): else the batch fails.
                    if try await loadInput(b) == nil {
                        b.errors = JSONValue.array([.object([("code", "invalid_file"), ("line", .null), ("param", "input_file_id"),
                            ("message", .string("The input file \(b.inputFileID) can no longer be read (deleted or its key destroyed). Upload it again and create a new batch."))])]).jsonString
                        b.status = BatchStatus.failed.rawValue
                        b.failedAt = platform.now()
                        try await platform.storage.updateBatch(b)
                        audit(b, action: "batch.failed", outcome: "input unreadable")
                        platform.metrics.batchFinished(status: "failed")
                        continue
                    }
                    guard try await platform.storage.transitionBatch(id: b.id, from: [b.status], to: BatchStatus.inProgress.rawValue,
                                                                     timeColumn: "in_progress_at", at: platform.now()) else { continue }
                    b.status = BatchStatus.inProgress.rawValue
                    audit(b, action: "batch.in_progress", outcome: "lines=\(b.total)")
                }
                if platform.now() >= b.expiresAt { continue }  // advance() expires it
                if let until = backoff.withLock({ $0[b.id] }), platform.now() < until { continue }
                for l in try await platform.storage.pendingBatchLines(batchID: b.id, limit: limit - jobs.count) {
                    let id = RequestIDs.next()
                    if try await platform.storage.startBatchLine(batchID: b.id, line: l.line, requestID: id) {
                        jobs.append(Job(batch: b, line: l, requestID: id))
                    }
                }
                if jobs.count >= limit { break }
            }
        } catch {
            platform.logger.error("batch worker: claiming lines failed", metadata: ["error": "\(error)"])
        }
        return jobs
    }

    /// Runs one claimed line and records its outcome.
    func run(_ job: Job) async {
        let b = job.batch, l = job.line
        do {
            let principal: Principal
            do {
                principal = try await platform.authority.principal(keyID: b.keyID)
            } catch {
                var e = APIError.invalidAPIKey
                e.message = "The API key that created this batch is no longer valid (revoked, expired, or its tenant disabled); the line was not run."
                try await finish(job, status: e.status, body: e.json, record: nil)
                return
            }
            guard let (endpoint, body) = try await input(b, line: l.line) else {
                try await finish(job, status: nil, body: nil, record: nil,
                                 error: ("invalid_file", "The input file \(b.inputFileID) is no longer readable; the line was not run."))
                return
            }
            switch await CompletionPipeline(platform: platform).runBatchLine(endpoint: endpoint, principal: principal, body: body, requestID: job.requestID) {
            case .done(let status, let answer, let record):
                try await finish(job, status: status, body: answer, record: record)
            case .retryLater(let afterMs, let reason):
                try await platform.storage.releaseBatchLine(batchID: b.id, line: l.line)
                backoff.withLock { $0[b.id] = platform.now() + afterMs }
                platform.logger.debug("batch line deferred", metadata: ["batch": "\(b.id)", "reason": "\(reason)"])
            }
        } catch {
            // The database failed: the line stays `running` and is retried after a restart.
            platform.logger.error("batch worker: recording a line failed", metadata: ["batch": "\(b.id)", "line": "\(l.line)", "error": "\(error)"])
        }
    }

    /// Records a line's result and its ledger row in one statement, then writes the ledger row
    /// (with its audit entry and metrics) through the request log.
    func finish(_ job: Job, status: Int?, body: JSONValue?, record: RequestRecord?, error: (String, String)? = nil) async throws {
        let b = job.batch, l = job.line
        let isError = status != 200
        let line = Batches.resultLine(batchLineID: "batch_req_" + String(job.requestID.dropFirst(4)), customID: l.customID, status: status,
                                      requestID: status == nil ? nil : job.requestID, body: body, error: error.map { (code: $0.0, message: $0.1) })
        let (sealed, keyID) = try await batches.sealLine(line, tenantID: b.tenantID, batchID: b.id, line: l.line)
        let ledger = try record.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        try await platform.storage.finishBatchLine(batchID: b.id, line: l.line, isError: isError, result: sealed, dataKeyID: keyID,
                                                   ledger: ledger, at: platform.now())
        if let record, let principal = try? await platform.authority.principal(keyID: b.keyID) {
            let recorder = RequestRecorder(platform: platform, principal: principal, requestID: record.id, clientIP: nil,
                                           userAgent: "llmaas-batch", started: ContinuousClock.now)
            await recorder.finish(record, durable: true)
        } else if let record {
            await platform.requestLog.appendAndWait(record)
        }
        platform.metrics.batchLine(ok: !isError)
    }

    /// The line's endpoint and body, from the batch's input file (decrypted once per process).
    func input(_ b: BatchRecord, line: Int) async throws -> (Endpoint, JSONValue)? {
        guard let loaded = try await loadInput(b) else { return nil }
        return loaded.bodies[line].map { (loaded.endpoint, $0) }
    }

    /// The batch's input lines by line number, cached; nil when the file no longer opens.
    func loadInput(_ b: BatchRecord) async throws -> (endpoint: Endpoint, bodies: [Int: JSONValue])? {
        if let hit = inputs.value.withLock({ $0[b.id] }) { return hit }
        guard let f = try await platform.storage.file(id: b.inputFileID, tenantID: b.tenantID),
              let bytes = try await batches.content(of: f),
              let parsed = try? BatchInput(jsonl: bytes, maxRequests: Int.max, limits: platform.config.requestLimits) else { return nil }
        let entry = (endpoint: parsed.endpoint, bodies: Dictionary(uniqueKeysWithValues: parsed.lines.map { ($0.number, $0.body) }))
        inputs.value.withLock { $0[b.id] = entry }
        return entry
    }

    // MARK: States

    /// Moves batches whose lines are all done to their end (completed, cancelled, expired), ends
    /// the lines a cancel or the 24 h window left unrun, and writes the output and error files.
    func advance() async {
        do {
            let open = [BatchStatus.inProgress, .finalizing, .cancelling].map(\.rawValue)
            for b in try await platform.storage.batches(inStatus: open) {
                try await advance(b)
            }
        } catch {
            platform.logger.error("batch worker: advancing batches failed", metadata: ["error": "\(error)"])
        }
    }

    func advance(_ b: BatchRecord) async throws {
        let storage = platform.storage
        let now = platform.now()
        var b = b
        if b.status == BatchStatus.inProgress.rawValue && now >= b.expiresAt {
            try await endUnrun(b, code: "batch_expired", message: "This request could not be executed before the completion window of 24h expired.")
            b.status = "expiring"
        }
        if b.status == BatchStatus.cancelling.rawValue {
            try await endUnrun(b, code: "batch_cancelled", message: "The batch was cancelled before this request ran.")
        }
        let counts = try await storage.batchLineCounts(batchID: b.id)
        guard counts.open == 0 else { return }
        // Every line is done: write the files, then the end state.
        let final: BatchStatus
        switch b.status {
        case "expiring": final = .expired
        case BatchStatus.cancelling.rawValue: final = .cancelled
        default:
            final = .completed
            if b.status == BatchStatus.inProgress.rawValue {
                _ = try await storage.transitionBatch(id: b.id, from: [b.status], to: BatchStatus.finalizing.rawValue, timeColumn: "finalizing_at", at: now)
            }
        }
        guard var fresh = try await storage.batch(id: b.id) else { return }
        try await writeFiles(&fresh)
        fresh.completed = counts.completed
        fresh.failed = counts.failed
        let from = fresh.status
        guard BatchStatus(rawValue: from).map({ $0 == final || $0.canMove(to: final) || (final == .expired && $0 == .inProgress) }) == true else { return }
        fresh.status = final.rawValue
        switch final {
        case .completed: fresh.completedAt = platform.now()
        case .cancelled: fresh.cancelledAt = platform.now()
        case .expired: fresh.expiredAt = platform.now()
        default: break
        }
        try await storage.updateBatch(fresh)
        inputs.value.withLock { _ = $0.removeValue(forKey: b.id) }
        backoff.withLock { _ = $0.removeValue(forKey: b.id) }
        audit(fresh, action: "batch.\(final.rawValue)", outcome: "completed=\(counts.completed) failed=\(counts.failed)")
        platform.metrics.batchFinished(status: final.rawValue)
    }

    /// Ends every pending line with an error result (never run, never billed).
    func endUnrun(_ b: BatchRecord, code: String, message: String) async throws {
        for l in try await platform.storage.batchLines(batchID: b.id, state: "pending") {
            let line = Batches.resultLine(batchLineID: "batch_req_" + Batches.newID(""), customID: l.customID, status: nil, requestID: nil, body: nil,
                                          error: (code, message))
            let (sealed, keyID) = try await batches.sealLine(line, tenantID: b.tenantID, batchID: b.id, line: l.line)
            try await platform.storage.failPendingBatchLine(batchID: b.id, line: l.line, result: sealed, dataKeyID: keyID, at: platform.now())
        }
    }

    /// Output file (answered 200) and error file (the rest), in input order, kept
    /// `batch.retention_days`. Their ids derive from the batch's, so writing them again after a
    /// crash replaces them.
    func writeFiles(_ b: inout BatchRecord) async throws {
        var output: [UInt8] = [], errors: [UInt8] = []
        for l in try await platform.storage.batchLines(batchID: b.id) where l.state == "done" {
            guard let text = try await batches.openLine(l, tenantID: b.tenantID) else { continue }
            if l.isError == 1 { errors += text; errors.append(0x0A) } else { output += text; output.append(0x0A) }
        }
        let expires = platform.now() + Int64(platform.config.batch.retentionDays) * 86_400_000
        let suffix = String(b.id.dropFirst("batch_".count))
        for (bytes, purpose, id) in [(output, "batch_output", "file-\(suffix)-output"), (errors, "batch_error", "file-\(suffix)-errors")] where !bytes.isEmpty {
            if let old = try await platform.storage.file(id: id, tenantID: b.tenantID) { try await batches.deleteFile(old) }
            _ = try await batches.storeFile(id: id, tenantID: b.tenantID, purpose: purpose, filename: "\(b.id)_\(purpose == "batch_output" ? "output" : "error").jsonl",
                                            content: bytes, expiresAt: expires)
            if purpose == "batch_output" { b.outputFileID = id } else { b.errorFileID = id }
        }
    }

    // MARK: Recovery and retention

    /// At start: lines sent but never recorded go back to pending; done lines whose ledger row
    /// did not reach the ledger get it now (exactly once: only rows not already there).
    func recover() async {
        do {
            let open = [BatchStatus.validating, .inProgress, .finalizing, .cancelling].map(\.rawValue)
            for b in try await platform.storage.batches(inStatus: open) {
                let reset = try await platform.storage.resetRunningBatchLines(batchID: b.id)
                let done = try await platform.storage.batchLines(batchID: b.id, state: "done")
                let rows = done.compactMap { l in l.ledger.flatMap { try? JSONDecoder().decode(RequestRecord.self, from: Data($0.utf8)) } }
                let present = try await platform.storage.existingRequestIDs(rows.map(\.id))
                let missing = rows.filter { !present.contains($0.id) }
                if !missing.isEmpty { try await platform.storage.insertRequests(missing) }
                if reset > 0 || !missing.isEmpty {
                    audit(b, action: "batch.resumed", outcome: "requeued=\(reset) ledger_rows_recovered=\(missing.count)")
                    platform.logger.info("batch resumed", metadata: ["batch": "\(b.id)", "requeued": "\(reset)", "ledger_rows_recovered": "\(missing.count)"])
                }
            }
        } catch {
            platform.logger.error("batch worker: recovery failed", metadata: ["error": "\(error)"])
        }
    }

    /// Retention: output and error files past their expiry, and the sealed line results of
    /// batches that ended more than `retention_days` ago, are deleted.
    func purge() async {
        do {
            let now = platform.now()
            for f in try await platform.storage.expiredFiles(now: now) {
                try await batches.deleteFile(f)
                platform.audit.record(AuditEvent(time: now, actor: "system", tenantID: f.tenantID, action: "file.expired", target: f.id, outcome: f.purpose))
            }
            let cutoff = now - Int64(platform.config.batch.retentionDays) * 86_400_000
            for id in try await platform.storage.batchesWithLinesEndedBefore(cutoff) {
                try await platform.storage.deleteBatchLines(batchID: id)
            }
        } catch {
            platform.logger.error("batch worker: retention failed", metadata: ["error": "\(error)"])
        }
    }

    func audit(_ b: BatchRecord, action: String, outcome: String) {
        platform.audit.record(AuditEvent(time: platform.now(), actor: "key:\(b.keyID)", tenantID: b.tenantID, action: action, target: b.id, outcome: outcome))
    }
}
