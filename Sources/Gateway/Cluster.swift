import Foundation
import Logging
import Quotas
import ServiceLifecycle
import Storage
import Synchronization
import UnixSignals

/// `cluster:` in the config: this gateway is one of several replicas on one shared database.
/// Absent: a single gateway (limits in process, as before).
public struct ClusterConfig: Sendable, Equatable {
    /// This replica's name in the shared tables (`LLMAAS_REPLICA_ID` overrides; default host-pid).
    public var replicaID: String
    /// Spare units asked for with a grant: limit / slice_divisor (0: a database trip per request).
    public var sliceDivisor = 20
    /// Spare units are granted only while the room left is at least headroom × the spare.
    public var headroom = 4
    /// Concurrency slots are leased this long; a replica that stops renewing loses them after it.
    public var leaseMs = 3_000
    /// Heartbeat: renews leases, returns unused slices of past buckets, records liveness.
    public var heartbeatMs = 500
    /// Keys, tenants, grants and shield modes are re-read at most this long after a change.
    public var keyCacheMs = 500
    /// Spend and credit of a tenant are re-read at most this long after another replica's usage.
    public var budgetCacheMs = 500
    /// The behavior window's repetition count is kept in the database (shared by replicas).
    public var sharedBehavior = true

    public init(replicaID: String? = nil) {
        self.replicaID = replicaID ?? "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
    }
}

extension GatewayConfig {
    static func parseCluster(_ r: inout Reader, into config: inout GatewayConfig) throws {
        guard var m = try r.mapping("cluster") else { return }
        var c = ClusterConfig(replicaID: try m.string("replica_id"))
        guard !c.replicaID.isEmpty, c.replicaID.count <= 100 else {
            throw ConfigError(field: "cluster.replica_id", message: "must be 1-100 characters, unique per replica (e.g. the pod name)")
        }
        if let n = try m.int("slice_divisor", min: 0) { c.sliceDivisor = n }
        if let n = try m.int("headroom", min: 1) { c.headroom = n }
        if let n = try m.int("lease_ms", min: 200) { c.leaseMs = n }
        if let n = try m.int("heartbeat_ms", min: 50) { c.heartbeatMs = n }
        if let n = try m.int("key_cache_ms", min: 0) { c.keyCacheMs = min(n, 1_000) }
        if let n = try m.int("budget_cache_ms", min: 0) { c.budgetCacheMs = min(n, 1_000) }
        if let b = try m.bool("shared_behavior") { c.sharedBehavior = b }
        try m.finish()
        if c.heartbeatMs * 3 > c.leaseMs {
            throw ConfigError(field: "cluster.heartbeat_ms", message: "must be at most a third of lease_ms (\(c.leaseMs)): a live replica must renew its leases well before they expire")
        }
        config.cluster = c
    }
}

/// A request's claim on the shared limits, settled or released once.
struct ClusterTicket: Sendable {
    let subjects: [(subject: String, limits: Limits)]
    let admittedAt: Int64
    let reserved: Int64
    /// A batch line: charged to the day's output budget only (no request, hour or concurrency units).
    var batch = false
}

/// This replica's side of the shared limits: spends its slices locally when it can, asks the
/// shared store (one transaction, all subjects' kinds at once) when it cannot, gives back what
/// it does not use, and renews its leases. See `SharedLimits` for the rules.
public final class ClusterCoordinator: Sendable {
    public let config: ClusterConfig
    let storage: Storage
    let now: @Sendable () -> Int64
    let logger: Logger
    private let book: Mutex<LeaseBook>
    let startedAt: Int64
    /// True from SIGTERM on: `/ready` answers 503 while in-flight work finishes.
    private let drainingFlag = Atomic<Bool>(false)
    /// Set by the first heartbeat: a CLI command that builds a platform never joins the cluster.
    private let joined = Atomic<Bool>(false)
    /// Store trips and local admissions, for the scale-out benchmark and metrics.
    private let counters = Mutex<(local: Int, trips: Int, returns: Int)>((0, 0, 0))
    static let leaseKinds: Set<String> = [SharedKind.concurrent.rawValue, moneyKind]
    /// Money held for requests not yet in the ledger (credit and monthly cap), a lease kind.
    static let moneyKind = "money"
    private let money: Mutex<MoneyBook>
    private let gates = SubjectGates()

    public init(config: ClusterConfig, storage: Storage, now: @escaping @Sendable () -> Int64, logger: Logger) {
        self.config = config
        self.storage = storage
        self.now = now
        self.logger = logger
        self.book = Mutex(LeaseBook(sliceDivisor: Int64(config.sliceDivisor), leaseMs: Int64(config.leaseMs)))
        self.money = Mutex(MoneyBook(sliceDivisor: Int64(config.sliceDivisor)))
        self.startedAt = now()
    }

    public var draining: Bool { drainingFlag.load(ordering: .relaxed) }
    public func startDraining() { drainingFlag.store(true, ordering: .relaxed) }

    /// (admissions without a store trip, store trips, return batches) since start.
    public var stats: (local: Int, trips: Int, returns: Int) { counters.withLock { $0 } }

    /// Admits one request for every subject (tenant, and key overrides) or refuses with the
    /// limit that has no room. Store errors refuse nothing: they are thrown.
    func admit(_ subjects: [(subject: String, limits: Limits)], expectedOutput: Int, batch: Bool = false) async throws -> Result<ClusterTicket, Refusal> {
        let t = now()
        let expected = Int64(max(0, expectedOutput))
        let ticket = ClusterTicket(subjects: subjects, admittedAt: t, reserved: expected, batch: batch)
        if book.withLock({ $0.admitLocally(subjects, expectedOutput: expected, now: t, batch: batch) }) {
            counters.withLock { $0.local += 1 }
            return .success(ticket)
        }
        // One store trip at a time per tenant on this replica: requests that arrive meanwhile
        // (e.g. all of them at the start of a bucket) wait for it and spend its spare units.
        let gate = subjects.first?.subject ?? ""
        await gates.lock(gate)
        do {
            let r = try await admitThroughStore(subjects, expected: expected, batch: batch)
            await gates.unlock(gate)
            return r
        } catch {
            await gates.unlock(gate)
            throw error
        }
    }

    private func admitThroughStore(_ subjects: [(subject: String, limits: Limits)], expected: Int64, batch: Bool) async throws -> Result<ClusterTicket, Refusal> {
        // The time after the wait: what is charged must be in the bucket the request is admitted in.
        let t = now()
        let ticket = ClusterTicket(subjects: subjects, admittedAt: t, reserved: expected, batch: batch)
        if book.withLock({ $0.admitLocally(subjects, expectedOutput: expected, now: t, batch: batch) }) {
            counters.withLock { $0.local += 1 }
            return .success(ticket)
        }
        var done: [(subject: String, limits: Limits)] = []
        for (subject, limits) in subjects {
            let claims = book.withLock { $0.claims(subject: subject, limits: limits, expectedOutput: expected, now: t, batch: batch) }
            let requests = claims.map { SliceRequest(kind: $0.kind.rawValue, bucket: $0.bucket,
                                                      firstBucket: $0.kind == .concurrent ? nil : $0.firstBucket, expiresAt: $0.expiresAt) }
            let headroom = Int64(config.headroom)
            let decision: Result<[Int64], SharedRefusal>
            do {
                counters.withLock { $0.trips += 1 }
                decision = try await storage.acquireSlices(subject: subject, replica: config.replicaID, requests, now: t) { charged in
                    var byKind: [SharedKind: Int64] = [:]
                    for (k, v) in charged { if let kind = SharedKind(rawValue: k) { byKind[kind] = v } }
                    let d = SharedLimits.decide(claims, charged: byKind, headroom: headroom)
                    if case .success(let g) = d { return (g, d) }
                    return (nil, d)
                }
            } catch {
                undo(done, expected: expected, admittedAt: t, batch: batch)
                throw error
            }
            switch decision {
            case .success(let grants):
                let back = book.withLock { $0.granted(subject: subject, claims: claims, grants: grants) }
                send(back)
                done.append((subject, limits))
            case .failure(let refusal):
                undo(done, expected: expected, admittedAt: t, batch: batch)
                // Requests of this replica admitted meanwhile may have brought spare units: they
                // are spent before refusing (a refusal means no unit anywhere this replica can use).
                if book.withLock({ $0.admitLocally(subjects, expectedOutput: expected, now: t, batch: batch) }) {
                    counters.withLock { $0.local += 1 }
                    return .success(ticket)
                }
                return .failure(refusal.refusal(subject: subject, now: t))
            }
        }
        return .success(ticket)
    }

    /// Holds `need` n€ (a request's worst-case cost) of the tenant's prepaid credit and monthly
    /// cap, from this replica's spare when it has enough, else through the store. Refused: the
    /// budget the store saw (nil: the refusal came from this replica's own view, never).
    func holdMoney(tenantID: String, need: Int64, prepaid: Bool, cap: Int64?) async throws -> Result<Void, Storage.MoneyBudget> {
        let subject = "tenant:\(tenantID)"
        if money.withLock({ $0.spendLocally(subject, need: need) }) {
            counters.withLock { $0.local += 1 }
            return .success(())
        }
        // One store trip at a time per tenant on this replica (as for the windows).
        let gate = "money:" + subject
        await gates.lock(gate)
        do {
            let r = try await holdThroughStore(subject: subject, tenantID: tenantID, need: need, prepaid: prepaid, cap: cap)
            await gates.unlock(gate)
            return r
        } catch {
            await gates.unlock(gate)
            throw error
        }
    }

    private func holdThroughStore(subject: String, tenantID: String, need: Int64, prepaid: Bool, cap: Int64?) async throws -> Result<Void, Storage.MoneyBudget> {
        // Another request of this replica may have brought spare meanwhile.
        if money.withLock({ $0.spendLocally(subject, need: need) }) {
            counters.withLock { $0.local += 1 }
            return .success(())
        }
        let t = now()
        let headroom = Int64(config.headroom), divisor = Int64(config.sliceDivisor)
        counters.withLock { $0.trips += 1 }
        let grant: Result<Int64, Storage.MoneyBudget> = try await storage.acquireMoney(
            subject: subject, tenantID: tenantID, replica: config.replicaID, prepaid: prepaid, cap: cap,
            monthStart: UTCMonth.monthStartMs(containing: t), now: t, expiresAt: t + Int64(config.leaseMs)) { budget in
            let spare = MoneyBook(sliceDivisor: divisor).spare(left: budget.left == .max ? 0 : budget.left)
            guard let g = SharedLimits.decideMoney(need: need, spare: spare, creditLeft: budget.creditLeft, capLeft: budget.capLeft,
                                                      held: budget.held, headroom: headroom) else {
                return (nil, .failure(budget))
            }
            return (g, .success(g))
        }
        switch grant {
        case .success(let g):
            money.withLock { $0.granted(subject, need: need, grant: g) }
            return .success(())
        case .failure(let budget):
            return .failure(budget)
        }
    }

    /// A hold is over (the request's ledger row is committed, or it failed before costing
    /// anything): the store's hold shrinks by `amount`.
    func releaseMoney(tenantID: String, amount: Int64) {
        guard amount > 0 else { return }
        send([SliceAdjustment(subject: "tenant:\(tenantID)", kind: .concurrent, bucket: 0, delta: -amount, expiresAt: .max)],
             kind: Self.moneyKind)
    }

    /// Gives back what `admit` took for the subjects already granted (a later subject refused).
    private func undo(_ subjects: [(subject: String, limits: Limits)], expected: Int64, admittedAt: Int64, batch: Bool) {
        guard !subjects.isEmpty else { return }
        var back: [SliceAdjustment] = []
        for (subject, limits) in subjects {
            for kind in batch ? [SharedKind.tokensDay] : [SharedKind.requests, .tokensHour, .tokensDay] {
                let need: Int64 = kind == .requests ? 1 : expected
                let b = kind.bucket(admittedAt)
                back.append(SliceAdjustment(subject: subject, kind: kind, bucket: b, delta: -need, expiresAt: kind.windowEnd(bucket: b)))
            }
            if !batch { back += book.withLock { $0.finish(subject: subject, limits: limits) } }
        }
        send(back)
    }

    /// The request ended with `actualOutput` tokens (0 when it failed before any output): the
    /// token windows are corrected and the concurrency slot is freed.
    func settle(_ ticket: ClusterTicket, actualOutput: Int) {
        let t = now()
        var back: [SliceAdjustment] = []
        for (subject, limits) in ticket.subjects {
            back += LeaseBook.settlement(subject: subject, admittedAt: ticket.admittedAt, reserved: ticket.reserved,
                                         actual: Int64(max(0, actualOutput)), now: t, batch: ticket.batch)
            if !ticket.batch { back += book.withLock { $0.finish(subject: subject, limits: limits) } }
        }
        send(back)
    }

    /// Sends adjustments to the store off the request path (in order, one task per batch).
    /// `kind`: the store's kind for every adjustment instead of theirs (money).
    private func send(_ back: [SliceAdjustment], kind: String? = nil) {
        guard !back.isEmpty else { return }
        counters.withLock { $0.returns += 1 }
        let storage = self.storage, replica = config.replicaID, logger = self.logger
        let deltas = back.map { SliceDelta(subject: $0.subject, kind: kind ?? $0.kind.rawValue, bucket: $0.bucket, delta: $0.delta, expiresAt: $0.expiresAt) }
        Task {
            do { try await storage.adjustSlices(replica: replica, deltas, leaseKinds: Self.leaseKinds) } catch {
                // Not returned: the units stay charged until their window passes (conservative).
                logger.warning("cluster: could not return slices: \(error)")
            }
        }
    }

    /// One heartbeat: liveness, lease renewal, unused slices of past buckets back to the pool.
    func beat() async {
        joined.store(true, ordering: .relaxed)
        let t = now()
        do {
            try await storage.heartbeat(replica: config.replicaID, startedAt: startedAt, now: t, until: t + Int64(config.leaseMs),
                                        state: draining ? "draining" : "serving")
            try await storage.renewLeases(replica: config.replicaID, kinds: Array(Self.leaseKinds), until: t + Int64(config.leaseMs))
        } catch {
            logger.warning("cluster: heartbeat failed: \(error)")
        }
        let back = book.withLock { $0.expire(now: t) }
        let spare = moneyReturns()
        if !back.isEmpty || !spare.isEmpty {
            let deltas = back.map { SliceDelta(subject: $0.subject, kind: $0.kind.rawValue, bucket: $0.bucket, delta: $0.delta, expiresAt: $0.expiresAt) } + spare
            try? await storage.adjustSlices(replica: config.replicaID, deltas, leaseKinds: Self.leaseKinds)
        }
    }

    /// Leaving: every unspent unit and every slot back to the pool, marked gone.
    public func leave() async {
        guard joined.load(ordering: .relaxed) else { return }
        let t = now()
        let s = stats
        logger.info("cluster: replica \(config.replicaID) admitted \(s.local) locally, \(s.trips) store trips, \(s.returns) return batches")
        let back = book.withLock { $0.expire(now: t, all: true) }
        let deltas = back.map { SliceDelta(subject: $0.subject, kind: $0.kind.rawValue, bucket: $0.bucket, delta: $0.delta, expiresAt: $0.expiresAt) } + moneyReturns()
        try? await storage.adjustSlices(replica: config.replicaID, deltas, leaseKinds: Self.leaseKinds)
        try? await storage.dropLeases(replica: config.replicaID, kinds: Array(Self.leaseKinds))
        try? await storage.heartbeat(replica: config.replicaID, startedAt: startedAt, now: t, until: t, state: "gone")
    }

    /// Unspent spare money, to give back (heartbeat, leaving).
    private func moneyReturns() -> [SliceDelta] {
        money.withLock { $0.takeAll() }.map { SliceDelta(subject: $0.subject, kind: Self.moneyKind, bucket: 0, delta: -$0.amount, expiresAt: .max) }
    }

    /// The shared count of consecutive identical prompts of a key (behavior window), or nil when
    /// not shared or the store failed (the replica's own count is used then).
    func repetitions(keyID: String, digest: UInt64, maxAgeMs: Int64) async -> Int? {
        guard config.sharedBehavior else { return nil }
        return try? await storage.observeRepetition(keyID: keyID, digest: String(digest, radix: 16), now: now(), maxAgeMs: maxAgeMs)
    }
}

/// Serializes the store trips of one subject within this replica (FIFO).
actor SubjectGates {
    private var busy: Set<String> = []
    private var waiters: [String: [CheckedContinuation<Void, Never>]] = [:]

    func lock(_ key: String) async {
        if busy.insert(key).inserted { return }
        await withCheckedContinuation { waiters[key, default: []].append($0) }
    }

    func unlock(_ key: String) {
        guard var queue = waiters[key], !queue.isEmpty else { busy.remove(key); return }
        let next = queue.removeFirst()
        waiters[key] = queue.isEmpty ? nil : queue
        next.resume()  // the lock passes to it: `busy` keeps the key
    }
}

/// Runs the heartbeat until shutdown, purges rows no longer counted, and turns readiness off on
/// SIGTERM (the HTTP server drains in-flight requests meanwhile; `Platform.shutdown` then returns
/// everything this replica held).
struct ClusterService: Service {
    let cluster: ClusterCoordinator
    let storage: Storage
    let clock: @Sendable () -> Int64

    func run() async throws {
        let signals = Task {
            for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                cluster.startDraining()
                await cluster.beat()
                return
            }
        }
        defer { signals.cancel() }
        await cancelWhenGracefulShutdown {
            var lastPurge: Int64?
            while !Task.isCancelled {
                await cluster.beat()
                let t = clock()
                if lastPurge.map({ t - $0 >= 10_000 }) ?? true {
                    lastPurge = t
                    _ = try? await storage.purgeSlices(now: t)
                    try? await storage.purgeRepetitions(before: t - 3_600_000)
                }
                do { try await Task.sleep(for: .milliseconds(cluster.config.heartbeatMs)) } catch { return }
            }
        }
    }
}
