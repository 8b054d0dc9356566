import Logging
import NIOCore
import SQLKit
import Synchronization

/// Counts the database operations in flight, so that closing the storage waits for them and
/// refuses new ones.
///
/// Background work can still reach the storage while it shuts down (a cluster replica returning
/// slices in a task of its own, a late flush). SQLiteNIO runs each query on a thread of its pool
/// and closes its handle on another: a query that started before the close could run against a
/// freed handle (seen as a test run dying with signal 11 in `sqlite3Init`, and as "misuse" errors
/// from late writes). Through the gate, a late operation fails with ``StorageClosedError`` instead,
/// and the close happens once the last running operation has ended.
final class QueryGate: Sendable {
    private struct State {
        var closed = false
        var inFlight = 0
        var drained: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// Counts one operation in; throws once the storage is closing.
    func enter() throws {
        try state.withLock { s in
            if s.closed { throw StorageClosedError() }
            s.inFlight += 1
        }
    }

    /// Counts one operation out (after ``enter()`` succeeded).
    func leave() {
        let waiting = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.inFlight -= 1
            guard s.closed, s.inFlight == 0 else { return [] }
            defer { s.drained = [] }
            return s.drained
        }
        for c in waiting { c.resume() }
    }

    /// Runs `body` as one operation.
    func run<T>(_ body: () async throws -> T) async throws -> T {
        try enter()
        defer { leave() }
        return try await body()
    }

    /// Refuses new operations and returns when the running ones have ended.
    func closeAndDrain() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                s.closed = true
                if s.inFlight == 0 { return true }
                s.drained.append(c)
                return false
            }
            if now { c.resume() }
        }
    }
}

/// An operation reached the storage after it began to close.
public struct StorageClosedError: Error, Sendable, CustomStringConvertible {
    public var description: String { "the database is closed (the gateway is shutting down)" }
}

/// The storage's database with every query counted by its ``QueryGate``; a session (PostgreSQL's
/// transactions) counts as one operation for as long as it lasts.
struct GatedDatabase: SQLDatabase {
    let base: any SQLDatabase
    let gate: QueryGate

    var logger: Logger { base.logger }
    var eventLoop: any EventLoop { base.eventLoop }
    var version: (any SQLDatabaseReportedVersion)? { base.version }
    var dialect: any SQLDialect { base.dialect }
    var queryLogLevel: Logger.Level? { base.queryLogLevel }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> ()) -> EventLoopFuture<Void> {
        do { try gate.enter() } catch { return base.eventLoop.makeFailedFuture(error) }
        let gate = self.gate
        return base.execute(sql: query, onRow).always { _ in gate.leave() }
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> ()) async throws {
        try await gate.run { try await base.execute(sql: query, onRow) }
    }

    func withSession<R>(_ closure: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await gate.run { try await base.withSession(closure) }
    }
}
