import Logging
import ServiceLifecycle
import Storage
import Synchronization

/// Collects rows off the request path and writes them in batches (one statement, one commit per
/// batch). Two ways in:
/// - ``append(_:)`` queues a row; a periodic flush writes it (no wait on the request path).
/// - ``appendAndWait(_:)`` is a group commit: it returns once the row is committed. A flush starts
///   at once if none is running; rows that arrive meanwhile share the next commit, so under load
///   many requests pay for one write.
/// Runs as a service: it flushes once more at graceful shutdown, after the HTTP server drained,
/// so no row of a finished request is lost on SIGTERM.
///
/// The functions on a group commit's path are specialized for the ledger's rows (``RequestRecord``),
/// which every completion writes: called from another module, the generic code went through
/// value witnesses and looked type metadata up on every call (issue 16).
public final class BatchWriter<Row: Sendable>: Service, Sendable {
    let name: String
    let interval: Duration
    let maxBatch: Int
    let write: @Sendable ([Row]) async throws -> Void
    let logger: Logger
    /// Told after each committed batch: its rows and how long the write took.
    let onCommit: (@Sendable (Int, Duration) -> Void)?
    private let state = Mutex(State())
    private let written = Atomic<Int>(0)

    struct State {
        var rows: [(Row, CheckedContinuation<Void, Never>?)] = []
        var flushing = false
        /// Rows in the last batch written: more than one means writers overlap, and a group
        /// commit's flush then gathers in a task of its own (see ``appendAndWait(_:preferring:)``).
        var lastBatch = 1
    }

    typealias Waiting = (Row, CheckedContinuation<Void, Never>?)

    public init(name: String, interval: Duration = .milliseconds(100), maxBatch: Int = 1000, logger: Logger,
                onCommit: (@Sendable (Int, Duration) -> Void)? = nil,
                write: @escaping @Sendable ([Row]) async throws -> Void) {
        self.onCommit = onCommit
        self.name = name
        self.interval = interval
        self.maxBatch = maxBatch
        self.logger = logger
        self.write = write
    }

    /// Queues a row; never blocks on the database.
    @_specialize(where Row == RequestRecord)
    public func append(_ row: Row) {
        state.withLock { $0.rows.append((row, nil)) }
    }

    /// Queues a row and waits until it is committed (group commit). `executor`: where the flush
    /// runs if this call starts one (e.g. the caller's event loop, so that the commit resumes there
    /// and the caller after it without a wake-up of another thread); nil: the global executor.
    ///
    /// When no flush is running and the last batch was a single row (nothing overlapped it), the
    /// caller writes its row itself, with whatever is queued: a flush in a task of its own cost the
    /// task, its start and the caller's resumption on the event loop for every request at one
    /// connection (issue 16). When writers overlap, the flush is a task of its own, as before: its
    /// first turn comes after what was ready on the executor, whose rows then share its commit.
    @_specialize(where Row == RequestRecord)
    public func appendAndWait(_ row: Row, preferring executor: (any TaskExecutor)? = nil) async {
        if !Task.isCancelled, let queued = takeLead(), await lead(row, with: queued, executor) { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let start = state.withLock { s -> Bool in
                s.rows.append((row, continuation))
                if s.flushing { return false }
                s.flushing = true
                return true
            }
            if start { Task(executorPreference: executor) { await self.drain() } }
        }
    }

    /// Takes the flush for the caller when none is running and the last batch was one row, with the
    /// rows queued so far (up to a batch with the caller's); nil otherwise.
    @_specialize(where Row == RequestRecord)
    private func takeLead() -> [Waiting]? {
        state.withLock { s -> [Waiting]? in
            guard !s.flushing, s.lastBatch <= 1 else { return nil }
            s.flushing = true
            let n = min(s.rows.count, maxBatch - 1)
            let queued = Array(s.rows.prefix(n))
            s.rows.removeFirst(n)
            return queued
        }
    }

    /// Writes `row` and `queued` in the caller's task, then hands what came in meanwhile to a flush
    /// task. False when the write failed: the queued rows are back in the queue, the flush is
    /// released, and the caller waits for a flush that retries them all, as any waiting row does.
    @_specialize(where Row == RequestRecord)
    private func lead(_ row: Row, with queued: [Waiting], _ executor: (any TaskExecutor)?) async -> Bool {
        var rows = [row]
        rows.reserveCapacity(queued.count + 1)
        for (r, _) in queued { rows.append(r) }
        do {
            try await commit(rows)
        } catch {
            logger.error("batch write failed; will retry", metadata: ["writer": "\(name)", "rows": "\(rows.count)", "error": "\(error)"])
            state.withLock { s in
                s.rows.insert(contentsOf: queued, at: 0)
                s.flushing = false
                s.lastBatch = 2  // the retries go through a flush task, with its back-off
            }
            return false
        }
        for (_, c) in queued { c?.resume() }
        let more = state.withLock { s -> Bool in
            s.lastBatch = rows.count
            if s.rows.isEmpty { s.flushing = false; return false }
            return true
        }
        if more { Task(executorPreference: executor) { await self.drain(rowsArrived: true) } }
        return true
    }

    /// Writes one batch, timed for `onCommit`, and counts it.
    @_specialize(where Row == RequestRecord)
    private func commit(_ rows: [Row]) async throws {
        let started = ContinuousClock.now
        try await write(rows)
        onCommit?(rows.count, ContinuousClock.now - started)
        written.add(rows.count, ordering: .relaxed)
    }

    public var writtenCount: Int { written.load(ordering: .relaxed) }
    public var pendingCount: Int { state.withLock { $0.rows.count } }

    /// Writes everything queued so far (waits for a flush already running to finish first).
    /// `maxFailures` bounds the retries of a failing database (at shutdown); nil retries forever.
    public func flush(maxFailures: Int? = nil) async {
        while true {
            let start = state.withLock { s -> Bool in
                if s.flushing { return false }
                s.flushing = true
                return true
            }
            if start { break }
            try? await Task.sleep(for: .milliseconds(1))
        }
        await drain(maxFailures: maxFailures)
    }

    /// The periodic flush: writes what is queued unless a flush is already running — that one
    /// drains the queue until it is empty, so there is nothing to wait for. (Waiting, as ``flush(maxFailures:)``
    /// does, polled every millisecond while the group commit ran, which under load is nearly all
    /// the time: a timer wake-up on Dispatch's threads and one on an event loop per millisecond,
    /// issue 16.)
    func flushIfIdle() async {
        let start = state.withLock { s -> Bool in
            if s.flushing || s.rows.isEmpty { return false }
            s.flushing = true
            return true
        }
        if start { await drain() }
    }

    /// The single flusher: takes batches until the queue is empty, then clears `flushing` under the
    /// same lock, so a row appended concurrently is never stranded.
    /// `rowsArrived`: rows came in while the caller wrote a batch (they are gathered with a yield first).
    @_specialize(where Row == RequestRecord)
    private func drain(maxFailures: Int? = nil, rowsArrived: Bool = false) async {
        var failures = 0
        var more = rowsArrived
        var lastBatch = 0
        while true {
            if more {
                // Done when nothing came in meanwhile: a turn of the loop to find that out cost a
                // yield's two jobs on the event loop per request at one connection (issue 16).
                let done = state.withLock { s -> Bool in
                    if lastBatch > 0 { s.lastBatch = lastBatch }
                    if s.rows.isEmpty { s.flushing = false; return true }
                    return false
                }
                if done { return }
                // Rows came in while the last batch was written: lets what is ready on this executor
                // (other requests' last steps) queue its rows too, so they share the next commit
                // (issue 16: 4.9 → 6.4 rows per commit at 32 connections). The first batch needs no
                // yield: a group commit's flush starts in a task of its own, whose first turn already
                // comes after what was ready when it was started.
                await Task.yield()
            }
            more = true
            let batch = state.withLock { s -> [Waiting] in
                let n = min(s.rows.count, maxBatch)
                if n == 0 { s.flushing = false; return [] }
                let batch = Array(s.rows.prefix(n))
                s.rows.removeFirst(n)
                return batch
            }
            if batch.isEmpty { return }
            do {
                // A closure, not `\.0`: in this generic type a key path is instantiated at run time
                // on every batch (`_swift_getKeyPath`, ~1 % of the gateway's CPU per request).
                try await commit(batch.map { $0.0 })
                for (_, c) in batch { c?.resume() }
                failures = 0
                lastBatch = batch.count
            } catch {
                logger.error("batch write failed; will retry", metadata: ["writer": "\(name)", "rows": "\(batch.count)", "error": "\(error)"])
                failures += 1
                if let maxFailures, failures >= maxFailures {
                    // Giving up (shutdown with a broken database): say how much is lost, release waiters.
                    let dropped = batch + state.withLock { s -> [(Row, CheckedContinuation<Void, Never>?)] in
                        defer { s.rows.removeAll(); s.flushing = false }
                        return s.rows
                    }
                    logger.critical("rows could not be written and are lost", metadata: ["writer": "\(name)", "rows": "\(dropped.count)"])
                    for (_, c) in dropped { c?.resume() }
                    return
                }
                state.withLock { $0.rows.insert(contentsOf: batch, at: 0) }
                try? await Task.sleep(for: .milliseconds(min(1000, 50 * failures)))
            }
        }
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                try? await Task.sleep(for: interval)
                await flushIfIdle()
            }
        } onGracefulShutdown: {}
        // A database that keeps failing must not hold the process forever at shutdown.
        await flush(maxFailures: 20)
    }
}
