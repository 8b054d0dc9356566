import Crypto
import Foundation
import Logging
import ServiceLifecycle
import Storage
import Synchronization

/// An audit event as the request path reports it (no hash yet, never prompt text).
public struct AuditEvent: Sendable, Equatable {
    public var time: Int64
    public var actor: String
    public var tenantID: String?
    public var action: String
    public var target: String?
    public var outcome: String
    public var requestID: String?
    public var clientIP: String?
    public var userAgent: String?
    public var model: String?
    public var status: Int?
    public var tokens: Int?

    public init(time: Int64, actor: String, tenantID: String? = nil, action: String, target: String? = nil, outcome: String,
                requestID: String? = nil, clientIP: String? = nil, userAgent: String? = nil, model: String? = nil,
                status: Int? = nil, tokens: Int? = nil) {
        self.time = time; self.actor = actor; self.tenantID = tenantID; self.action = action; self.target = target
        self.outcome = outcome; self.requestID = requestID; self.clientIP = clientIP
        self.userAgent = userAgent.map { String($0.prefix(256)) }; self.model = model; self.status = status; self.tokens = tokens
    }
}

/// The hash chain: each entry's hash is SHA-256 over the previous hash and the entry's canonical
/// bytes (fields in a fixed order, length-prefixed so no two entries share an encoding).
public enum AuditChain {
    public static let genesis = String(repeating: "0", count: 64)

    public static func hash(prev: String, seq: Int64, _ e: AuditEvent) -> String {
        // The fields' bytes are gathered in one buffer and hashed at once (same bytes as one update
        // per field: a buffer per field cost several allocations per entry on the request path).
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256)
        func field(_ s: String?) {
            let utf8 = (s ?? "\u{0}").utf8
            bytes.append(contentsOf: String(utf8.count).utf8)
            bytes.append(0x3A)
            bytes.append(contentsOf: utf8)
        }
        field(prev)
        field(String(seq))
        field(String(e.time))
        field(e.actor)
        field(e.tenantID)
        field(e.action)
        field(e.target)
        field(e.outcome)
        field(e.requestID)
        field(e.clientIP)
        field(e.userAgent)
        field(e.model)
        field(e.status.map(String.init))
        field(e.tokens.map(String.init))
        return lowercaseHex(SHA256.hash(data: bytes))
    }

    /// The event as it can be stored on every driver: PostgreSQL text cannot hold NUL, so NUL is
    /// replaced with U+FFFD before hashing (the hash then matches what is stored).
    static func storable(_ e: AuditEvent) -> AuditEvent {
        func clean(_ s: String?) -> String? {
            guard let s, s.utf8.contains(0) else { return s }
            return s.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}")
        }
        var out = e
        out.actor = clean(e.actor) ?? ""
        out.tenantID = clean(e.tenantID); out.action = clean(e.action) ?? ""; out.target = clean(e.target)
        out.outcome = clean(e.outcome) ?? ""; out.requestID = clean(e.requestID); out.clientIP = clean(e.clientIP)
        out.userAgent = clean(e.userAgent); out.model = clean(e.model)
        return out
    }

    public static func event(of r: AuditRecord) -> AuditEvent {
        var e = AuditEvent(time: r.time, actor: r.actor, tenantID: r.tenantID, action: r.action, target: r.target, outcome: r.outcome,
                           requestID: r.requestID, clientIP: r.clientIP, model: r.model, status: r.status, tokens: r.tokens)
        e.userAgent = r.userAgent
        return e
    }

    /// The first entry that breaks the chain, and why; nil when the log is intact.
    public struct Break: Sendable, Equatable, CustomStringConvertible {
        public let seq: Int64
        public let reason: String
        public var description: String { "audit entry \(seq): \(reason)" }
    }

    /// Walks the whole log (from the retention anchor) in pages. With the writer's `head` (the last
    /// sequence number and hash it wrote), entries deleted from the end are caught too.
    public static func verify(_ storage: Storage, head: AuditHead? = nil) async throws -> (checked: Int, firstBreak: Break?) {
        var prevSeq: Int64 = 0
        var prevHash = genesis
        if let anchor = try await storage.auditAnchor() {
            prevSeq = anchor.seq
            prevHash = anchor.hash
        }
        var checked = 0
        while true {
            let page = try await storage.auditPage(afterSeq: prevSeq, limit: 5000)
            if page.isEmpty {
                if let head, head.seq > prevSeq {
                    return (checked, Break(seq: prevSeq + 1, reason: "the log ends at entry \(prevSeq) but \(head.seq) entries were written: entries were deleted from the end"))
                }
                if let head, head.seq == prevSeq, head.hash != prevHash {
                    return (checked, Break(seq: prevSeq, reason: "the last entry is not the one the writer wrote"))
                }
                return (checked, nil)
            }
            for r in page {
                if r.seq != prevSeq + 1 {
                    return (checked, Break(seq: r.seq, reason: "expected entry \(prevSeq + 1) next: entries were deleted or renumbered"))
                }
                if r.prevHash != prevHash {
                    return (checked, Break(seq: r.seq, reason: "its previous-hash does not match entry \(prevSeq): an entry was deleted, inserted or reordered before it"))
                }
                if hash(prev: r.prevHash, seq: r.seq, event(of: r)) != r.hash {
                    return (checked, Break(seq: r.seq, reason: "its content does not match its hash: the entry was changed"))
                }
                // With several writers (replicas) the head is one writer's last entry, not always the
                // log's last: the entry at its position must still be the one that writer wrote.
                if let head, r.seq == head.seq, r.hash != head.hash {
                    return (checked, Break(seq: r.seq, reason: "it is not the entry the writer wrote at this position (the log was rewritten)"))
                }
                prevSeq = r.seq
                prevHash = r.hash
                checked += 1
            }
        }
    }
}

/// The last entry the writer appended: kept outside the database (a file next to it), so that
/// cutting entries off the end of the log is detected.
public struct AuditHead: Sendable, Equatable {
    public let seq: Int64
    public let hash: String

    public init(seq: Int64, hash: String) { self.seq = seq; self.hash = hash }

    public static func read(path: String) -> AuditHead? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let parts = text.split(separator: " ")
        guard parts.count == 2, let seq = Int64(parts[0]) else { return nil }
        return AuditHead(seq: seq, hash: String(parts[1].trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    /// The file's line, fixed width (seq padded to 20 digits, then the hash), so that each new head
    /// overwrites the last in place. Written in a buffer on the stack: built from strings, it cost
    /// five allocations per commit (issue 16).
    func withLine<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var hash = hash
        return try hash.withUTF8 { h in
            try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 22 + h.count) { out in
                var n = UInt64(max(0, seq))
                for i in (0..<20).reversed() {
                    out[i] = UInt8(ascii: "0") + UInt8(n % 10)
                    n /= 10
                }
                out[20] = UInt8(ascii: " ")
                for i in 0..<h.count { out[21 + i] = h[i] }
                out[21 + h.count] = UInt8(ascii: "\n")
                return try body(UnsafeRawBufferPointer(out))
            }
        }
    }
}

/// The head file, kept open by its writer: each batch overwrites it in place with one pwrite of
/// a fixed-width line (a write-to-temp-and-rename per batch cost ≈ 0.3 ms on the request path
/// once the audit entry became part of the ledger's group commit).
final class AuditHeadFile: Sendable {
    let path: String
    private let fd: Mutex<Int32>

    init(path: String) {
        self.path = path
        self.fd = Mutex(-1)
    }

    deinit { fd.withLock { if $0 >= 0 { close($0) } } }

    func write(_ head: AuditHead) throws {
        try fd.withLock { fd in
            if fd < 0 {
                fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
                guard fd >= 0 else { throw CocoaError(.fileWriteNoPermission) }
            }
            let whole = head.withLine { line in pwrite(fd, line.baseAddress, line.count, 0) == line.count }
            guard whole else { throw CocoaError(.fileWriteUnknown) }
        }
    }
}

/// Appends events to the chain off the request path: `record` only queues; the writer assigns
/// sequence numbers and hashes in order and inserts each batch in one statement. Flushed at
/// graceful shutdown, after the HTTP server has drained (nothing lost on SIGTERM).
public final class AuditLog: Service, Sendable {
    let storage: Storage
    let logger: Logger
    let enabled: Bool
    private let queue = Mutex<[AuditEvent]>([])
    private let chain = Mutex<(seq: Int64, hash: String)>((0, AuditChain.genesis))
    private let writing = Mutex(false)
    private let written = Atomic<Int>(0)

    let headFile: AuditHeadFile?

    public init(storage: Storage, logger: Logger, enabled: Bool = true, headPath: String? = nil) {
        self.storage = storage
        self.logger = logger
        self.enabled = enabled
        self.headFile = headPath.map(AuditHeadFile.init(path:))
    }

    /// The last entry written so far.
    public var head: AuditHead? {
        let c = chain.withLock { $0 }
        return c.seq == 0 ? nil : AuditHead(seq: c.seq, hash: c.hash)
    }

    /// Continues the chain where the database ends.
    public func resume() async throws {
        let anchor = try await storage.auditAnchor()
        if let last = try await storage.lastAudit() {
            chain.withLock { $0 = (last.seq, last.hash) }
        } else if let anchor {
            chain.withLock { $0 = (anchor.seq, anchor.hash) }
        }
    }

    public func record(_ event: AuditEvent) {
        guard enabled else { return }
        queue.withLock { $0.append(event) }
    }

    public var writtenCount: Int { written.load(ordering: .relaxed) }

    /// Writes everything queued so far (one writer at a time keeps the chain in order; a flush
    /// waits for one already running, so that on return every entry queued before the call is
    /// written — the ledger's group commit relies on it).
    public func flush() async {
        await acquireWriting()
        defer { writing.withLock { $0 = false } }
        await writeQueued()
    }

    /// The ledger's group commit: `rows` (ledger rows) and the entries queued so far in one commit
    /// (``Storage/commitGroup(requests:auditContinuingFrom:_:)``: on a SQLite file one transaction),
    /// then, if the queue held more than one batch, the rest. Throws when the rows were not
    /// committed; the entries of that commit are then queued again. A failure of the audit part
    /// alone is logged and its entries retried, as ``flush()`` does: it does not fail the rows.
    ///
    /// Entries queued while the commit ran are left for the next group commit (or the periodic
    /// flush): each row's entry is queued before the row, so every entry of `rows` is in this
    /// commit, and writing the later ones at once cost an audit-only transaction after nearly every
    /// group commit under load (issue 16).
    public func flush(committingLedger rows: [RequestRecord]) async throws {
        await acquireWriting()
        defer { writing.withLock { $0 = false } }
        let events = takeBatch()
        if events.isEmpty { return try await storage.insertRequests(rows) }
        let more = events.count == Self.batchLimit  // the queue may hold entries of `rows` still
        let mine = chain.withLock { $0 }
        let result: Result<[AuditRecord], any Error>
        do {
            result = try await storage.commitGroup(requests: rows, auditContinuingFrom: mine.seq == 0 ? nil : mine,
                                                   Self.builder(events, continuing: mine))
        } catch {
            requeue(events)
            throw error
        }
        switch result {
        case .success(let records): appended(records)
        case .failure(let error):
            logger.error("audit write failed; will retry", metadata: ["entries": "\(events.count)", "error": "\(error)"])
            requeue(events)
            return
        }
        if more { await writeQueued() }
    }

    /// The periodic flush: writes what is queued unless a write is running (the ledger's group
    /// commit writes the whole queue: see ``flush(committingLedger:)``), instead of polling every
    /// millisecond until it ends — under load, nearly all the time (issue 16).
    func flushIfIdle() async {
        guard queue.withLock({ !$0.isEmpty }), tryAcquireWriting() else { return }
        defer { writing.withLock { $0 = false } }
        await writeQueued()
    }

    /// Takes the writing flag if no write is running.
    private func tryAcquireWriting() -> Bool {
        writing.withLock { w -> Bool in if w { return false }; w = true; return true }
    }

    private func acquireWriting() async {
        while !tryAcquireWriting() {
            try? await Task.sleep(for: .milliseconds(1))
        }
    }

    /// Entries per write.
    static let batchLimit = 2000

    private func takeBatch() -> [AuditEvent] {
        queue.withLock { q -> [AuditEvent] in
            let batch = Array(q.prefix(Self.batchLimit))
            q.removeFirst(batch.count)
            return batch
        }
    }

    private func requeue(_ events: [AuditEvent]) {
        queue.withLock { $0.insert(contentsOf: events, at: 0) }
    }

    /// Numbers and hashes `events` from the chain's tip. The chain continues from the database's
    /// tip, read inside the database's serialization (on PostgreSQL a transaction under an advisory
    /// lock; on a SQLite file the writer's transaction): other writers — the CLI, other replicas —
    /// may have appended since. Never from below what this writer wrote itself (`mine`): entries cut
    /// off the end are then a gap that verification reports.
    static func builder(_ events: [AuditEvent], continuing mine: (seq: Int64, hash: String)) -> @Sendable ((seq: Int64, hash: String)?) -> [AuditRecord] {
        { tip in
            var seq = mine.seq, prev = mine.hash
            if let tip, tip.seq >= seq { (seq, prev) = tip }
            var records: [AuditRecord] = []
            records.reserveCapacity(events.count)
            for event in events {
                let e = AuditChain.storable(event)
                seq += 1
                let h = AuditChain.hash(prev: prev, seq: seq, e)
                records.append(AuditRecord(seq: seq, time: e.time, actor: e.actor, tenantID: e.tenantID, action: e.action, target: e.target,
                                           outcome: e.outcome, requestID: e.requestID, clientIP: e.clientIP, userAgent: e.userAgent,
                                           model: e.model, status: e.status, tokens: e.tokens, prevHash: prev, hash: h))
                prev = h
            }
            return records
        }
    }

    /// After a batch is in the database: this writer's tip and the head file follow it.
    private func appended(_ records: [AuditRecord]) {
        guard let last = records.last else { return }
        chain.withLock { $0 = (last.seq, last.hash) }
        written.add(records.count, ordering: .relaxed)
        if let headFile {
            do { try headFile.write(AuditHead(seq: last.seq, hash: last.hash)) } catch {
                logger.error("cannot write the audit head file", metadata: ["path": "\(headFile.path)", "error": "\(error)"])
            }
        }
    }

    /// Appends what is queued, 2 000 entries per batch, until the queue is empty (the caller holds
    /// `writing`). On SQLite the batch is first built from this writer's own tip and inserted only
    /// if the database's tip is still that one (see Storage.appendAuditChain(continuingFrom:_:)).
    private func writeQueued() async {
        while true {
            let events = takeBatch()
            if events.isEmpty { return }
            let mine = chain.withLock { $0 }
            do {
                appended(try await storage.appendAuditChain(continuingFrom: mine.seq == 0 ? nil : mine, Self.builder(events, continuing: mine)))
            } catch {
                logger.error("audit write failed; will retry", metadata: ["entries": "\(events.count)", "error": "\(error)"])
                requeue(events)
                return
            }
        }
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
                await flushIfIdle()
            }
        } onGracefulShutdown: {}
        for _ in 0..<20 where queue.withLock({ !$0.isEmpty }) {
            await flush()
            if queue.withLock({ !$0.isEmpty }) { try? await Task.sleep(for: .milliseconds(100)) }
        }
    }

    /// Retention: drops entries older than `before` and anchors the chain at the last one dropped.
    @discardableResult
    public func purge(before time: Int64) async throws -> Int64? {
        await flush()
        guard let last = try await storage.lastAudit(before: time) else { return nil }
        try await storage.purgeAudit(throughSeq: last.seq, anchorHash: last.hash)
        return last.seq
    }
}

/// Lowercase hex of a digest, without Foundation's String(format:) (this runs on every request).
private func lowercaseHex<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(64)
    for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0x0F)]) }
    return String(decoding: out, as: UTF8.self)
}
