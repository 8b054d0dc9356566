import Logging
import ServiceLifecycle
import Synchronization

/// Collects rows off the request path and writes them in batches (one statement, one commit per
/// batch). Runs as a service: it flushes every `interval` and once more at graceful shutdown,
/// after the HTTP server has drained, so no row of a finished request is lost on SIGTERM.
public final class BatchWriter<Row: Sendable>: Service, Sendable {
    let name: String
    let interval: Duration
    let maxBatch: Int
    let write: @Sendable ([Row]) async throws -> Void
    let logger: Logger
    private let pending = Mutex<[Row]>([])
    private let written = Atomic<Int>(0)

    public init(name: String, interval: Duration = .milliseconds(100), maxBatch: Int = 1000, logger: Logger,
                write: @escaping @Sendable ([Row]) async throws -> Void) {
        self.name = name
        self.interval = interval
        self.maxBatch = maxBatch
        self.logger = logger
        self.write = write
    }

    /// Queues a row; never blocks on the database.
    public func append(_ row: Row) {
        pending.withLock { $0.append(row) }
    }

    public var writtenCount: Int { written.load(ordering: .relaxed) }
    public var pendingCount: Int { pending.withLock { $0.count } }

    /// Writes everything queued so far. A failed batch is put back and retried on the next flush.
    public func flush() async {
        while true {
            let batch = pending.withLock { rows -> [Row] in
                let n = min(rows.count, maxBatch)
                let batch = Array(rows.prefix(n))
                rows.removeFirst(n)
                return batch
            }
            if batch.isEmpty { return }
            do {
                try await write(batch)
                written.add(batch.count, ordering: .relaxed)
            } catch {
                logger.error("batch write failed; will retry", metadata: ["writer": "\(name)", "rows": "\(batch.count)", "error": "\(error)"])
                pending.withLock { $0.insert(contentsOf: batch, at: 0) }
                return
            }
        }
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                try? await Task.sleep(for: interval)
                await flush()
            }
        } onGracefulShutdown: {}
        // Shutdown: drain what the last requests queued (retry a few times on a failing database).
        for _ in 0..<20 where pendingCount > 0 {
            await flush()
            if pendingCount > 0 { try? await Task.sleep(for: .milliseconds(100)) }
        }
    }
}
