import Foundation
import SQLKit

/// One kind of shared limit as the store sees it: a window (sum over buckets from `firstBucket`)
/// or a lease (sum over rows not expired at `now`).
public struct SliceRequest: Sendable, Hashable {
    public var kind: String
    public var bucket: Int64
    /// Window kinds: the oldest bucket counted. Nil: a lease kind, counted while unexpired.
    public var firstBucket: Int64?
    public var expiresAt: Int64

    public init(kind: String, bucket: Int64, firstBucket: Int64?, expiresAt: Int64) {
        self.kind = kind; self.bucket = bucket; self.firstBucket = firstBucket; self.expiresAt = expiresAt
    }
}

/// A change to one replica's charged units (negative: returned).
public struct SliceDelta: Sendable, Hashable {
    public var subject: String
    public var kind: String
    public var bucket: Int64
    public var delta: Int64
    public var expiresAt: Int64

    public init(subject: String, kind: String, bucket: Int64, delta: Int64, expiresAt: Int64) {
        self.subject = subject; self.kind = kind; self.bucket = bucket; self.delta = delta; self.expiresAt = expiresAt
    }
}

/// Serializes the read-decide-write of a grant within this process (SQLite, tests); across
/// processes PostgreSQL's advisory lock does it.
actor SliceLock {
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func lock() async {
        if !busy { busy = true; return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func unlock() {
        if waiters.isEmpty { busy = false } else { waiters.removeFirst().resume() }
    }
}

extension Storage {
    static let sliceLock = SliceLock()

    // MARK: Shared limits (issue 14): slices of windows and leases of slots, per replica

    /// Grants slices to `replica` for `subject`: under a lock per subject (PostgreSQL: an advisory
    /// transaction lock, so every replica's grants for one tenant are serialized), reads what is
    /// charged per kind, lets `decide` choose the units to add per request (nil: refuse, nothing
    /// written), and adds them to the replica's rows. All requests or none.
    public func acquireSlices<R: Sendable>(subject: String, replica: String, _ requests: [SliceRequest], now: Int64,
                                           decide: @escaping @Sendable ([String: Int64]) -> ([Int64]?, R)) async throws -> R {
        let body: @Sendable (any SQLDatabase) async throws -> R = { db in
            var charged: [String: Int64] = [:]
            for r in requests {
                charged[r.kind] = try await Self.charged(db, subject: subject, kind: r.kind, firstBucket: r.firstBucket, now: now)
            }
            let (grants, result) = decide(charged)
            if let grants {
                for (r, g) in zip(requests, grants) where g != 0 {
                    try await Self.addSlice(db, SliceDelta(subject: subject, kind: r.kind, bucket: r.bucket, delta: g, expiresAt: r.expiresAt),
                                            replica: replica, lease: r.firstBucket == nil)
                }
            }
            return result
        }
        return try await withSubjectLock(subject, body)
    }

    /// Runs `body` in one transaction holding the per-subject lock of the shared limits
    /// (PostgreSQL: an advisory transaction lock on the subject; SQLite: this process's lock).
    func withSubjectLock<R: Sendable>(_ subject: String, _ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        if driver == .postgres {
            return try await db.withSession { conn in
                try await conn.raw("BEGIN").run()
                do {
                    try await conn.raw("SELECT pg_advisory_xact_lock(hashtext(\(bind: subject)))").run()
                    let r = try await body(conn)
                    try await conn.raw("COMMIT").run()
                    return r
                } catch {
                    try? await conn.raw("ROLLBACK").run()
                    throw error
                }
            }
        }
        await Self.sliceLock.lock()
        do {
            let r = try await body(db)
            await Self.sliceLock.unlock()
            return r
        } catch {
            await Self.sliceLock.unlock()
            throw error
        }
    }

    /// What bounds a tenant's money at a grant: the prepaid credit left (credits − all committed
    /// spend; nil when not prepaid), the monthly cap left (cap − the month's committed spend; nil
    /// without a cap), and what every replica holds for requests not yet in the ledger.
    public struct MoneyBudget: Error, Sendable, Hashable {
        public var creditLeft: Int64?
        public var capLeft: Int64?
        public var held: Int64
        /// The smaller of the two (Int64.max when neither applies).
        public var left: Int64 { min(creditLeft ?? .max, capLeft ?? .max) }
    }

    /// Holds money for `replica` (kind `money`, a lease row renewed by the heartbeat): under the
    /// subject's lock, reads the ledger's committed spend, the credits and every replica's holds,
    /// lets `decide` choose the amount (nil: refuse, nothing written) and adds it to the hold.
    public func acquireMoney<R: Sendable>(subject: String, tenantID: String, replica: String, prepaid: Bool, cap: Int64?,
                                          monthStart: Int64, now: Int64, expiresAt: Int64,
                                          decide: @escaping @Sendable (MoneyBudget) -> (Int64?, R)) async throws -> R {
        try await withSubjectLock(subject) { db in
            let held = try await Self.charged(db, subject: subject, kind: "money", firstBucket: nil, now: now)
            func spend(from: Int64) async throws -> Int64 {
                try await db.select().column(PortableSQL.integerSum("cost_nano"), as: "s").from("requests")
                    .where("tenant_id", .equal, tenantID).where("created_at", .greaterThanOrEqual, from)
                    .first(decodingColumn: "s", as: Int64.self) ?? 0
            }
            var budget = MoneyBudget(creditLeft: nil, capLeft: nil, held: held)
            if prepaid {
                let credit = try await db.select().column(PortableSQL.integerSum("amount_nano"), as: "s").from("credits")
                    .where("tenant_id", .equal, tenantID).first(decodingColumn: "s", as: Int64.self) ?? 0
                budget.creditLeft = credit - (try await spend(from: .min))
            }
            if let cap { budget.capLeft = cap - (try await spend(from: monthStart)) }
            let (grant, result) = decide(budget)
            if let grant, grant > 0 {
                try await Self.addSlice(db, SliceDelta(subject: subject, kind: "money", bucket: 0, delta: grant, expiresAt: expiresAt),
                                        replica: replica, lease: true)
            }
            return result
        }
    }

    /// Adds `delta` to a replica's row (creating it). Lease rows keep the later expiry.
    static func addSlice(_ db: any SQLDatabase, _ d: SliceDelta, replica: String, lease: Bool) async throws {
        let expiry: SQLQueryString = lease ? "CASE WHEN cluster_slices.expires_at > excluded.expires_at THEN cluster_slices.expires_at ELSE excluded.expires_at END"
                                           : "cluster_slices.expires_at"
        try await db.raw("""
            INSERT INTO cluster_slices (subject, kind, bucket, replica, amount, expires_at)
            VALUES (\(bind: d.subject), \(bind: d.kind), \(bind: d.bucket), \(bind: replica), \(bind: d.delta), \(bind: d.expiresAt))
            ON CONFLICT (subject, kind, bucket, replica) DO UPDATE SET amount = cluster_slices.amount + excluded.amount, expires_at = \(expiry)
            """).run()
    }

    /// Applies returns and settlements of one replica (window rows: their expiry stays; lease rows
    /// named by `leaseKinds` never go below zero).
    public func adjustSlices(replica: String, _ deltas: [SliceDelta], leaseKinds: Set<String>) async throws {
        for d in deltas where d.delta != 0 {
            if leaseKinds.contains(d.kind) {
                try await db.raw("""
                    UPDATE cluster_slices SET amount = CASE WHEN amount + \(bind: d.delta) < 0 THEN 0 ELSE amount + \(bind: d.delta) END
                    WHERE subject = \(bind: d.subject) AND kind = \(bind: d.kind) AND bucket = \(bind: d.bucket) AND replica = \(bind: replica)
                    """).run()
            } else {
                try await Self.addSlice(db, d, replica: replica, lease: false)
            }
        }
    }

    /// Renews every lease row of `replica` until `until` (its heartbeat).
    public func renewLeases(replica: String, kinds: [String], until: Int64) async throws {
        try await db.update("cluster_slices").set("expires_at", to: until)
            .where("replica", .equal, replica).where("kind", .in, kinds).run()
    }

    /// Deletes rows no longer counted: windows that passed, leases that expired (a dead replica's
    /// slots), and empty lease rows. Returns how many.
    @discardableResult
    public func purgeSlices(now: Int64) async throws -> Int {
        // A row at zero counts nothing: dropping it is safe even while a grant or a return for it
        // runs (that one re-inserts its own amount).
        try await db.delete(from: "cluster_slices").where("expires_at", .lessThanOrEqual, now).orWhere("amount", .equal, 0)
            .returning("subject").all().count
    }

    /// Removes a replica's lease rows (a drained replica holds nothing).
    public func dropLeases(replica: String, kinds: [String]) async throws {
        try await db.delete(from: "cluster_slices").where("replica", .equal, replica).where("kind", .in, kinds).run()
    }

    /// What every replica has charged for `subject` and `kind` from `firstBucket` (windows) or
    /// still leased at `now` (leases): for tests and `llmaas` diagnostics.
    public func chargedSlices(subject: String, kind: String, firstBucket: Int64?, now: Int64) async throws -> Int64 {
        try await Self.charged(db, subject: subject, kind: kind, firstBucket: firstBucket, now: now)
    }

    /// The sum as a 64-bit integer on both drivers (PortableSQL.integerSum).
    static func charged(_ db: any SQLDatabase, subject: String, kind: String, firstBucket: Int64?, now: Int64) async throws -> Int64 {
        let q = db.select().column(PortableSQL.integerSum("amount"), as: "n")
            .from("cluster_slices").where("subject", .equal, subject).where("kind", .equal, kind)
        if let firstBucket { q.where("bucket", .greaterThanOrEqual, firstBucket) } else { q.where("expires_at", .greaterThan, now) }
        return try await q.first(decodingColumn: "n", as: Int64.self) ?? 0
    }

    // MARK: Replicas

    /// Records that `replica` is alive (and whether it is draining) until `until`.
    public func heartbeat(replica: String, startedAt: Int64, now: Int64, until: Int64, state: String) async throws {
        try await db.raw("""
            INSERT INTO cluster_replicas (id, started_at, seen_at, expires_at, state)
            VALUES (\(bind: replica), \(bind: startedAt), \(bind: now), \(bind: until), \(bind: state))
            ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, expires_at = excluded.expires_at, state = excluded.state
            """).run()
    }

    public struct ReplicaRow: Codable, Sendable, Equatable {
        public var id: String
        public var startedAt: Int64
        public var seenAt: Int64
        public var expiresAt: Int64
        public var state: String
        enum CodingKeys: String, CodingKey {
            case id, state
            case startedAt = "started_at", seenAt = "seen_at", expiresAt = "expires_at"
        }
    }

    /// Replicas whose heartbeat has not expired at `now`.
    public func liveReplicas(now: Int64) async throws -> [ReplicaRow] {
        try await db.select().columns("*").from("cluster_replicas").where("expires_at", .greaterThan, now).orderBy("id")
            .all(decoding: ReplicaRow.self)
    }

    // MARK: Shared behavior window (repetition)

    /// Counts consecutive identical prompts of a key across replicas: the new count for `digest`
    /// (1 when it differs from the key's previous prompt or that one is older than `maxAgeMs`).
    /// One atomic upsert; only a digest is stored, never prompt text.
    public func observeRepetition(keyID: String, digest: String, now: Int64, maxAgeMs: Int64) async throws -> Int {
        let row = try await db.raw("""
            INSERT INTO behavior_repeats (key_id, digest, count, last_seen) VALUES (\(bind: keyID), \(bind: digest), 1, \(bind: now))
            ON CONFLICT (key_id) DO UPDATE SET
              count = CASE WHEN behavior_repeats.digest = excluded.digest AND behavior_repeats.last_seen >= \(bind: now - maxAgeMs)
                           THEN behavior_repeats.count + 1 ELSE 1 END,
              digest = excluded.digest,
              last_seen = CASE WHEN behavior_repeats.last_seen > excluded.last_seen THEN behavior_repeats.last_seen ELSE excluded.last_seen END
            RETURNING count
            """).first()
        return try row?.decode(column: "count", as: Int.self) ?? 1
    }

    /// Forgets repetition counts not updated since `before`.
    public func purgeRepetitions(before: Int64) async throws {
        try await db.delete(from: "behavior_repeats").where("last_seen", .lessThan, before).run()
    }
}
