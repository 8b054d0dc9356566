import Testing
@testable import Quotas

/// The shared store's rules in memory (what `Storage.acquireSlices` does in SQL), so the
/// replicas' bookkeeping can be checked against many interleavings quickly.
struct MemoryStore {
    struct Row: Hashable { let subject: String; let kind: SharedKind; let bucket: Int64; let replica: String }
    var rows: [Row: (amount: Int64, expiresAt: Int64)] = [:]
    var trips = 0

    func charged(_ subject: String, _ claims: [SliceClaim], now: Int64) -> [SharedKind: Int64] {
        var out: [SharedKind: Int64] = [:]
        for c in claims {
            out[c.kind] = rows.filter { r, v in
                r.subject == subject && r.kind == c.kind && (c.kind == .concurrent ? v.expiresAt > now : r.bucket >= c.firstBucket)
            }.values.reduce(0) { $0 + $1.amount }
        }
        return out
    }

    mutating func acquire(_ subject: String, replica: String, _ claims: [SliceClaim], now: Int64, headroom: Int64 = 4) -> Result<[Int64], SharedRefusal> {
        trips += 1
        let d = SharedLimits.decide(claims, charged: charged(subject, claims, now: now), headroom: headroom)
        if case .success(let grants) = d {
            for (c, g) in zip(claims, grants) { add(SliceAdjustment(subject: subject, kind: c.kind, bucket: c.bucket, delta: g, expiresAt: c.expiresAt), replica: replica) }
        }
        return d
    }

    mutating func add(_ a: SliceAdjustment, replica: String) {
        let r = Row(subject: a.subject, kind: a.kind, bucket: a.bucket, replica: replica)
        let old = rows[r] ?? (0, a.expiresAt)
        rows[r] = (old.amount + a.delta, a.kind == .concurrent ? max(old.expiresAt, a.expiresAt) : old.expiresAt)
    }

    mutating func renew(replica: String, until: Int64) {
        for (r, v) in rows where r.replica == replica && r.kind == .concurrent { rows[r] = (v.amount, until) }
    }
}

/// A replica: its lease book, admitting through the store when its slices do not suffice.
struct Replica {
    let name: String
    var book: LeaseBook

    mutating func admit(_ store: inout MemoryStore, subject: String, limits: Limits, expected: Int64, now: Int64, batch: Bool = false) -> Bool {
        if book.admitLocally([(subject, limits)], expectedOutput: expected, now: now, batch: batch) { return true }
        let claims = book.claims(subject: subject, limits: limits, expectedOutput: expected, now: now, batch: batch)
        guard case .success(let grants) = store.acquire(subject, replica: name, claims, now: now) else { return false }
        for a in book.granted(subject: subject, claims: claims, grants: grants) { store.add(a, replica: name) }
        return true
    }

    mutating func finish(_ store: inout MemoryStore, subject: String, limits: Limits) {
        for a in book.finish(subject: subject, limits: limits) { store.add(a, replica: name) }
    }
}

@Suite("shared limits across replicas")
struct SharedLimitsTests {
    let t0: Int64 = 1_764_000_000_000

    func lim(rpm: Int = 1_000_000, hour: Int = 1_000_000_000, day: Int = 1_000_000_000, concurrent: Int = 1_000_000) -> Limits {
        Limits(requestsPerMinute: rpm, outputTokensPerHour: hour, outputTokensPerDay: day, concurrentRequests: concurrent)
    }

    @Test func threeReplicasAdmitExactlyTheLimitInTotal() {
        // 300 requests round-robin over 3 replicas within one second, 50/min: exactly 50 pass.
        for divisor in [Int64(0), 5, 20] {
            var store = MemoryStore()
            var replicas = (0..<3).map { Replica(name: "r\($0)", book: LeaseBook(sliceDivisor: divisor)) }
            var admitted = 0
            for i in 0..<300 where replicas[i % 3].admit(&store, subject: "t", limits: lim(rpm: 50), expected: 10, now: t0 + Int64(i)) {
                admitted += 1
            }
            #expect(admitted == 50, "slice divisor \(divisor)")
        }
    }

    @Test func unevenLoadStillAdmitsTheLimitOnceSlicesExpire() {
        // One replica takes spare units then goes quiet: at its bucket's end they go back, and
        // the busy replica gets them; never more than the limit in the window.
        var store = MemoryStore()
        var a = Replica(name: "a", book: LeaseBook(sliceDivisor: 10)), b = Replica(name: "b", book: LeaseBook(sliceDivisor: 10))
        let l = lim(rpm: 1_000)
        #expect(a.admit(&store, subject: "t", limits: l, expected: 0, now: t0))
        #expect(a.book.free(subject: "t", kind: .requests) == 100)
        var got = 0
        for i in 0..<2_000 where b.admit(&store, subject: "t", limits: l, expected: 0, now: t0 + 10 + Int64(i % 900)) { got += 1 }
        #expect(got == 899)  // 1 000 − a's request − a's 100 unused units (charged until returned)
        for adj in a.book.expire(now: t0 + 1_000) { store.add(adj, replica: "a") }
        var more = 0
        for _ in 0..<500 where b.admit(&store, subject: "t", limits: l, expected: 0, now: t0 + 1_500) { more += 1 }
        #expect(more == 100)
        #expect(store.charged("t", b.book.claims(subject: "t", limits: l, expectedOutput: 0, now: t0 + 1_500), now: t0 + 1_500)[.requests] == 1_000)
    }

    /// Issue 17: a batch line counts in the day's output budget only, not in the per-minute,
    /// per-hour or concurrency windows, across replicas as on one gateway.
    @Test func batchLinesTakeOnlyFromTheDayBudget() {
        var store = MemoryStore()
        var a = Replica(name: "a", book: LeaseBook(sliceDivisor: 0)), b = Replica(name: "b", book: LeaseBook(sliceDivisor: 0))
        let l = lim(rpm: 1, hour: 15, day: 45, concurrent: 1)
        // Four lines of 10 over two replicas: more requests, hour tokens and concurrent work than the
        // windows allow, all admitted; the fifth would take the day past 45.
        for i in 0..<4 {
            let ok = i % 2 == 0 ? a.admit(&store, subject: "t", limits: l, expected: 10, now: t0, batch: true)
                                : b.admit(&store, subject: "t", limits: l, expected: 10, now: t0, batch: true)
            #expect(ok, "batch line \(i)")
        }
        #expect(!a.admit(&store, subject: "t", limits: l, expected: 10, now: t0, batch: true))
        #expect(Set(store.rows.keys.map(\.kind)) == [.tokensDay])
        #expect(store.rows.values.reduce(0) { $0 + $1.amount } == 40)
        // Interactive requests still have their whole minute, hour and concurrency windows.
        #expect(b.admit(&store, subject: "t", limits: l, expected: 5, now: t0))
        // A batch line's settlement corrects the day window only.
        #expect(LeaseBook.settlement(subject: "t", admittedAt: t0, reserved: 10, actual: 4, now: t0, batch: true).map(\.kind) == [.tokensDay])
    }

    @Test func mostAdmissionsAreLocalFarFromTheLimit() {
        var store = MemoryStore()
        var r = Replica(name: "r", book: LeaseBook(sliceDivisor: 20))
        for i in 0..<1_000 { #expect(r.admit(&store, subject: "t", limits: lim(rpm: 100_000), expected: 0, now: t0 + Int64(i) / 10)) }
        // 100 000 / 20 = 5 000 spare requests per one-second bucket: one store trip here.
        #expect(store.trips < 20, "\(store.trips) store trips for 1 000 requests")
    }

    @Test func slicesAreSpentOnlyInTheirBucket() {
        var store = MemoryStore()
        var r = Replica(name: "r", book: LeaseBook(sliceDivisor: 10))
        let l = lim(rpm: 100)
        #expect(r.admit(&store, subject: "t", limits: l, expected: 0, now: t0 + 999))
        let trips = store.trips
        let sameBucket = r.book.admitLocally([("t", l)], expectedOutput: 0, now: t0 + 999)
        #expect(sameBucket)
        // Next second: the old slice may not be spent (its usage would leave the window early).
        let nextBucket = r.book.admitLocally([("t", l)], expectedOutput: 0, now: t0 + 1_000)
        #expect(!nextBucket)
        #expect(r.admit(&store, subject: "t", limits: l, expected: 0, now: t0 + 1_000))
        #expect(store.trips == trips + 1)
        // The old slice's unused units went back with the new grant.
        let old = store.rows.filter { $0.key.kind == .requests && $0.key.bucket == SharedKind.requests.bucket(t0 + 999) }.values.map(\.amount)
        #expect(old == [2])
    }

    @Test func tokenBudgetIsNeverOvershotBeyondTheTokensInFlight() {
        // Hour budget 1 000 tokens; each request reserves 100 and uses 40.
        var store = MemoryStore()
        var replicas = (0..<3).map { Replica(name: "r\($0)", book: LeaseBook(sliceDivisor: 4)) }
        let l = lim(hour: 1_000)
        var used: Int64 = 0, admitted = 0
        for i in 0..<200 {
            let now = t0 + Int64(i) * 50
            if replicas[i % 3].admit(&store, subject: "t", limits: l, expected: 100, now: now) {
                admitted += 1
                used += 40
                for a in LeaseBook.settlement(subject: "t", admittedAt: now, reserved: 100, actual: 40, now: now) { store.add(a, replica: "r\(i % 3)") }
                replicas[i % 3].finish(&store, subject: "t", limits: l)
            }
            let charged = store.charged("t", replicas[0].book.claims(subject: "t", limits: l, expectedOutput: 0, now: now), now: now)[.tokensHour] ?? 0
            #expect(charged <= 1_000)
        }
        #expect(used <= 1_000)
        #expect(used > 900)  // refunds make room for more requests than 1 000 / 100
        // Admitted while 40 × k + 100 ≤ 1 000 (k = 0…22): 23 requests, 920 tokens.
        #expect(admitted == 23)
    }

    @Test func overrunIsChargedToTheCurrentBucketAfterTheWindowMoved() {
        let late = t0 + 3 * 3_600_000
        let adj = LeaseBook.settlement(subject: "t", admittedAt: t0, reserved: 10, actual: 25, now: late)
        #expect(adj.first { $0.kind == .tokensHour }?.bucket == SharedKind.tokensHour.bucket(late))
        #expect(adj.first { $0.kind == .tokensDay }?.bucket == SharedKind.tokensDay.bucket(t0))
        #expect(adj.allSatisfy { $0.delta == 15 })
        #expect(LeaseBook.settlement(subject: "t", admittedAt: t0, reserved: 10, actual: 2, now: late).map(\.kind) == [.tokensDay])
    }

    @Test func concurrencyIsSharedAndADeadReplicasSlotsReturnWhenItsLeaseExpires() {
        var store = MemoryStore()
        var a = Replica(name: "a", book: LeaseBook(sliceDivisor: 0, leaseMs: 3_000))
        var b = Replica(name: "b", book: LeaseBook(sliceDivisor: 0, leaseMs: 3_000))
        let l = lim(concurrent: 4)
        for _ in 0..<3 { #expect(a.admit(&store, subject: "t", limits: l, expected: 0, now: t0)) }
        #expect(b.admit(&store, subject: "t", limits: l, expected: 0, now: t0))
        #expect(!b.admit(&store, subject: "t", limits: l, expected: 0, now: t0 + 1))
        b.finish(&store, subject: "t", limits: l)
        #expect(a.admit(&store, subject: "t", limits: l, expected: 0, now: t0 + 2))
        // a dies holding 4 slots; b renews its own lease only. Before a's lease ends: refused.
        store.renew(replica: "b", until: t0 + 6_000)
        #expect(!b.admit(&store, subject: "t", limits: l, expected: 0, now: t0 + 2_999))
        // After it (its last grant at t0 + 2 leased until t0 + 3 002): a's slots are back in the pool.
        for _ in 0..<4 { #expect(b.admit(&store, subject: "t", limits: l, expected: 0, now: t0 + 3_002)) }
        #expect(!b.admit(&store, subject: "t", limits: l, expected: 0, now: t0 + 3_003))
    }

    @Test func allKindsOfASubjectAreGrantedTogetherOrNotAtAll() {
        var store = MemoryStore()
        var r = Replica(name: "r", book: LeaseBook(sliceDivisor: 0))
        let l = lim(rpm: 10, hour: 100)
        #expect(r.admit(&store, subject: "t", limits: l, expected: 80, now: t0))
        #expect(!r.admit(&store, subject: "t", limits: l, expected: 80, now: t0 + 1))  // tokens refuse
        let charged = store.charged("t", r.book.claims(subject: "t", limits: l, expectedOutput: 0, now: t0 + 1), now: t0 + 1)
        #expect(charged[.requests] == 1)  // the refused request charged nothing
        if case .failure(let refusal) = SharedLimits.decide(r.book.claims(subject: "t", limits: l, expectedOutput: 200, now: t0 + 1), charged: charged, headroom: 4) {
            #expect(refusal.kind == .tokensHour)
            #expect(!refusal.refusal(subject: "t", now: t0 + 1).satisfiable)
        } else { Issue.record("200 tokens over a limit of 100 admitted") }
    }

    @Test func drainReturnsEverythingUnspent() {
        var store = MemoryStore()
        var r = Replica(name: "r", book: LeaseBook(sliceDivisor: 10))
        let l = lim(rpm: 1_000, concurrent: 100)
        #expect(r.admit(&store, subject: "t", limits: l, expected: 0, now: t0))
        let back = r.book.expire(now: t0, all: true)
        #expect(back.contains { $0.kind == .requests && $0.delta == -100 })
        #expect(back.contains { $0.kind == .concurrent && $0.delta == -10 })
        #expect(r.book.free(subject: "t", kind: .requests) == 0)
        #expect(r.book.inUse(subject: "t") == 1)
    }

    @Test func manyAdmissionsOverThreeReplicasNeverHoldMoreThanTheCredit() {
        // Worst cases of 1..50 n€ against a credit of 2 000 n€, interleaved over 3 replicas with
        // spare slices; requests settle (ledger row, then hold released) at random moments.
        for divisor in [Int64(0), 5, 20] {
            var rng = SplitMix(seed: UInt64(divisor) + 7)
            let credit: Int64 = 2_000
            var committed: Int64 = 0
            var holds: [String: Int64] = [:]  // the store: what each replica holds
            var books = (0..<3).map { _ in MoneyBook(sliceDivisor: divisor) }
            var inFlight: [(replica: Int, reserved: Int64)] = []
            var admitted = 0, refused = 0
            for i in 0..<3_000 {
                let r = i % 3, name = "r\(r)"
                if !inFlight.isEmpty, rng.next() % 3 == 0 {
                    // One request ends: its real cost ≤ its worst case is committed, then its hold goes back.
                    let done = inFlight.remove(at: Int(rng.next() % UInt64(inFlight.count)))
                    committed += Int64(rng.next() % UInt64(done.reserved + 1))
                    holds["r\(done.replica)", default: 0] -= done.reserved
                }
                if rng.next() % 50 == 0 {
                    // A heartbeat of this replica returns its spare.
                    for back in books[r].takeAll() { holds[name, default: 0] -= back.amount }
                }
                let need = Int64(1 + rng.next() % 50)
                if books[r].spendLocally("t", need: need) {
                    admitted += 1; inFlight.append((r, need))
                } else {
                    let left = credit - committed
                    let held = holds.values.reduce(0, +)
                    if let g = SharedLimits.decideMoney(need: need, spare: books[r].spare(left: left), creditLeft: left, capLeft: nil, held: held, headroom: 4) {
                        holds[name, default: 0] += g
                        books[r].granted("t", need: need, grant: g)
                        admitted += 1; inFlight.append((r, need))
                    } else {
                        refused += 1
                    }
                }
                // What could still be spent: committed plus every hold never exceeds the credit.
                #expect(committed + holds.values.reduce(0, +) <= credit, "divisor \(divisor), step \(i)")
                #expect(holds.values.allSatisfy { $0 >= 0 })
            }
            #expect(committed <= credit)
            #expect(admitted > 0 && refused > 0, "divisor \(divisor): \(admitted) admitted, \(refused) refused")
        }
    }

    @Test func moneyGrantsAreExactNearTheLimit() {
        #expect(SharedLimits.decideMoney(need: 10, spare: 100, creditLeft: 1_000, capLeft: nil, held: 0, headroom: 4) == 110)
        #expect(SharedLimits.decideMoney(need: 10, spare: 105, creditLeft: 1_000, capLeft: nil, held: 0, headroom: 4) == 110)
        #expect(SharedLimits.decideMoney(need: 10, spare: 100, creditLeft: 300, capLeft: nil, held: 0, headroom: 4) == 10)
        #expect(SharedLimits.decideMoney(need: 10, spare: 100, creditLeft: 300, capLeft: nil, held: 295, headroom: 4) == nil)
        #expect(SharedLimits.decideMoney(need: 5, spare: 0, creditLeft: 300, capLeft: nil, held: 295, headroom: 4) == 5)
        // The cap admits while some of it is left (as on one gateway); the credit needs the whole worst case.
        #expect(SharedLimits.decideMoney(need: 50, spare: 0, creditLeft: nil, capLeft: 300, held: 290, headroom: 4) == 50)
        #expect(SharedLimits.decideMoney(need: 50, spare: 0, creditLeft: nil, capLeft: 300, held: 300, headroom: 4) == nil)
        #expect(SharedLimits.decideMoney(need: 50, spare: 0, creditLeft: 1_000, capLeft: 300, held: 290, headroom: 4) == 50)
    }
}

/// A small deterministic generator for interleavings.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E4B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
