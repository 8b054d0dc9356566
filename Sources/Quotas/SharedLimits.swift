/// Limits shared by several gateway replicas (issue 14 item 2): the tenant's windows and its
/// concurrency hold for the tenant as a whole, not per replica.
///
/// **Slices.** The shared store (a table, see `Storage.acquireSlices`) holds, per subject, kind,
/// bucket and replica, the units *charged* to the window. A replica asks for a slice: the
/// units the request needs plus spare units it may spend later without asking again. The store
/// grants all kinds of a subject at once or none, under a per-subject lock, only while the sum
/// charged in the window stays within the limit. So whatever the replicas do with their slices,
/// no window ever holds more than the limit (the same sliding windows as `RateLimiter`).
///
/// **Buckets.** A slice of a window kind is charged to the bucket it was granted in and may only
/// be spent while that bucket is current: usage never leaves the shared window before it
/// happened. At the bucket's end the unused units go back (charged amount decreased).
///
/// **Exact near the limit.** Spare units are granted only while the room left is at least
/// `headroom` × the spare: near the limit every grant is exactly what one request needs, so no
/// replica sits on unused units while another is refused (300 requests against 50/min over 3
/// replicas: exactly 50). Far from the limit, most admissions are local (no database trip).
///
/// **Concurrency** is held, not charged: slots are leased with an expiry the replica renews;
/// a replica that dies stops renewing, and its slots return to the pool when the lease expires.
///
/// Pure values: the caller gives the time (Unix ms) and does the I/O.
public enum SharedKind: String, Sendable, Hashable, CaseIterable, Codable {
    case requests
    case tokensHour = "tokens_hour"
    case tokensDay = "tokens_day"
    case concurrent

    public var limitKind: LimitKind {
        switch self {
        case .requests: return .requestsPerMinute
        case .tokensHour: return .outputTokensPerHour
        case .tokensDay: return .outputTokensPerDay
        case .concurrent: return .concurrentRequests
        }
    }

    /// Bucket length in ms and buckets in the window besides the current one (as `RateLimiter`).
    var spec: WindowSpec? {
        switch self {
        case .requests: return RateLimiter.minuteSpec
        case .tokensHour: return RateLimiter.hourSpec
        case .tokensDay: return RateLimiter.daySpec
        case .concurrent: return nil
        }
    }

    public func limit(_ l: Limits) -> Int64 {
        switch self {
        case .requests: return Int64(l.requestsPerMinute)
        case .tokensHour: return Int64(l.outputTokensPerHour)
        case .tokensDay: return Int64(l.outputTokensPerDay)
        case .concurrent: return Int64(l.concurrentRequests)
        }
    }

    /// The bucket index of `ms` (0 for concurrency).
    public func bucket(_ ms: Int64) -> Int64 {
        guard let spec else { return 0 }
        let q = ms / spec.bucketMs
        return ms % spec.bucketMs < 0 ? q - 1 : q
    }

    /// The oldest bucket still in the window at `ms` (0 for concurrency).
    public func firstBucket(_ ms: Int64) -> Int64 {
        guard let spec else { return 0 }
        return bucket(ms) - spec.n
    }

    /// When usage charged to `bucket` leaves the window (window kinds).
    public func windowEnd(bucket: Int64) -> Int64 {
        guard let spec else { return .max }
        return (bucket + spec.n + 1) * spec.bucketMs
    }

    /// When the bucket of `ms` ends (window kinds).
    public func bucketEnd(_ ms: Int64) -> Int64 {
        guard let spec else { return .max }
        return (bucket(ms) + 1) * spec.bucketMs
    }
}

/// What a replica asks the shared store for, for one kind of one subject.
public struct SliceClaim: Sendable, Hashable {
    public var kind: SharedKind
    /// The bucket charged (0 for concurrency).
    public var bucket: Int64
    /// The oldest bucket counted (window kinds); ignored for concurrency.
    public var firstBucket: Int64
    /// Units this request needs now; refused when the room is smaller.
    public var need: Int64
    /// Spare units wanted on top, granted only with enough headroom.
    public var spare: Int64
    public var limit: Int64
    /// The row's expiry: the end of the window for window kinds (cleanup), the lease for concurrency.
    public var expiresAt: Int64

    public init(kind: SharedKind, bucket: Int64, firstBucket: Int64, need: Int64, spare: Int64, limit: Int64, expiresAt: Int64) {
        self.kind = kind; self.bucket = bucket; self.firstBucket = firstBucket
        self.need = need; self.spare = spare; self.limit = limit; self.expiresAt = expiresAt
    }
}

/// A change to a replica's charged amount, sent back to the store (negative: units returned).
public struct SliceAdjustment: Sendable, Hashable {
    public var subject: String
    public var kind: SharedKind
    public var bucket: Int64
    public var delta: Int64
    public var expiresAt: Int64

    public init(subject: String, kind: SharedKind, bucket: Int64, delta: Int64, expiresAt: Int64) {
        self.subject = subject; self.kind = kind; self.bucket = bucket; self.delta = delta; self.expiresAt = expiresAt
    }
}

public enum SharedLimits {
    /// The store's decision, under its lock, given what is charged now per kind: the units to
    /// grant per claim (need, plus the spare when the room allows `headroom` spares), or the
    /// first claim that does not fit with the room left.
    public static func decide(_ claims: [SliceClaim], charged: [SharedKind: Int64], headroom: Int64) -> Result<[Int64], SharedRefusal> {
        var grants: [Int64] = []
        for c in claims {
            let room = c.limit - (charged[c.kind] ?? 0)
            if room < c.need { return .failure(SharedRefusal(kind: c.kind, limit: c.limit, room: max(0, room), need: c.need)) }
            let extra = room - c.need >= c.spare * max(1, headroom) ? c.spare : 0
            grants.append(c.need + extra)
        }
        return .success(grants)
    }
}

/// A shared limit that refused: which, its value, the room left, what the request needed.
public struct SharedRefusal: Error, Sendable, Hashable {
    public var kind: SharedKind
    public var limit: Int64
    public var room: Int64
    public var need: Int64

    public init(kind: SharedKind, limit: Int64, room: Int64, need: Int64) {
        self.kind = kind; self.limit = limit; self.room = room; self.need = need
    }

    /// As a `Refusal` (429 with headers): waiting helps unless the request alone exceeds the limit.
    public func refusal(subject: String, now: Int64) -> Refusal {
        let retry: Int64 = kind == .concurrent ? 1_000 : max(1, kind.bucketEnd(now) - now)
        return Refusal(subject: subject, limit: kind.limitKind, limitValue: Int(limit), remaining: Int(room),
                       resetAfterMs: retry, retryAfterMs: retry, satisfiable: need <= limit && limit > 0)
    }
}

/// One replica's slices: the units it may still spend without asking the store, per subject.
public struct LeaseBook: Sendable {
    struct Key: Hashable { let subject: String; let kind: SharedKind }
    struct Slice { var bucket: Int64; var free: Int64 }
    struct Slots { var held: Int64 = 0; var inUse: Int64 = 0 }

    private var slices: [Key: Slice] = [:]
    private var slots: [String: Slots] = [:]
    /// Spare units asked for = limit / sliceDivisor (0 = never spare: a store trip per request).
    public var sliceDivisor: Int64
    /// Concurrency leases last this long unless renewed.
    public var leaseMs: Int64

    public init(sliceDivisor: Int64 = 20, leaseMs: Int64 = 3_000) {
        self.sliceDivisor = sliceDivisor
        self.leaseMs = leaseMs
    }

    /// What one request needs per kind.
    /// What one request takes from each kind. A batch line (issue 17) counts in the day's output
    /// budget only: not in the per-minute, per-hour or concurrency windows.
    static func needs(_ expectedOutput: Int64, batch: Bool = false) -> [(SharedKind, Int64)] {
        batch ? [(.tokensDay, expectedOutput)]
              : [(.requests, 1), (.tokensHour, expectedOutput), (.tokensDay, expectedOutput), (.concurrent, 1)]
    }

    /// Spends from the slices of the current buckets when every kind of every subject has room
    /// (then no store trip is needed) and returns true; otherwise changes nothing.
    public mutating func admitLocally(_ subjects: [(subject: String, limits: Limits)], expectedOutput: Int64, now: Int64, batch: Bool = false) -> Bool {
        for (subject, _) in subjects {
            for (kind, need) in Self.needs(expectedOutput, batch: batch) {
                if kind == .concurrent {
                    let s = slots[subject] ?? Slots()
                    if s.held - s.inUse < need { return false }
                } else {
                    guard let s = slices[Key(subject: subject, kind: kind)], s.bucket == kind.bucket(now), s.free >= need else { return false }
                }
            }
        }
        for (subject, _) in subjects {
            for (kind, need) in Self.needs(expectedOutput, batch: batch) {
                if kind == .concurrent { slots[subject, default: Slots()].inUse += need } else { slices[Key(subject: subject, kind: kind)]!.free -= need }
            }
        }
        return true
    }

    /// The claims for one subject when local spending was not possible.
    public func claims(subject: String, limits: Limits, expectedOutput: Int64, now: Int64, batch: Bool = false) -> [SliceClaim] {
        Self.needs(expectedOutput, batch: batch).map { kind, need in
            let limit = kind.limit(limits)
            let spare = sliceDivisor > 0 ? limit / sliceDivisor : 0
            let b = kind.bucket(now)
            let expires = kind == .concurrent ? now + leaseMs : kind.windowEnd(bucket: b)
            return SliceClaim(kind: kind, bucket: b, firstBucket: kind.firstBucket(now), need: need, spare: spare,
                              limit: limit, expiresAt: expires)
        }
    }

    /// Records a grant for `subject`: the request's needs are spent, the rest kept. Slices of an
    /// older bucket are replaced and their unused units returned (the adjustments to send).
    public mutating func granted(subject: String, claims: [SliceClaim], grants: [Int64]) -> [SliceAdjustment] {
        var back: [SliceAdjustment] = []
        for (c, g) in zip(claims, grants) {
            let extra = g - c.need
            if c.kind == .concurrent {
                slots[subject, default: Slots()].held += g
                slots[subject, default: Slots()].inUse += c.need
                continue
            }
            let key = Key(subject: subject, kind: c.kind)
            if var s = slices[key], s.bucket == c.bucket {
                s.free += extra
                slices[key] = s
            } else {
                if let old = slices[key], old.free > 0 {
                    back.append(SliceAdjustment(subject: subject, kind: c.kind, bucket: old.bucket, delta: -old.free,
                                                expiresAt: c.kind.windowEnd(bucket: old.bucket)))
                }
                slices[key] = Slice(bucket: c.bucket, free: extra)
            }
        }
        return back
    }

    /// A request of `subject` ended: its concurrency slot is free again; the spare slots beyond
    /// one slice go back to the store (the adjustments to send).
    public mutating func finish(subject: String, limits: Limits) -> [SliceAdjustment] {
        var s = slots[subject] ?? Slots()
        s.inUse = max(0, s.inUse - 1)
        let keep = sliceDivisor > 0 ? Int64(limits.concurrentRequests) / sliceDivisor : 0
        let excess = s.held - s.inUse - keep
        var back: [SliceAdjustment] = []
        if excess > 0 {
            s.held -= excess
            back.append(SliceAdjustment(subject: subject, kind: .concurrent, bucket: 0, delta: -excess, expiresAt: .max))
        }
        slots[subject] = s.held == 0 && s.inUse == 0 ? nil : s
        return back
    }

    /// Unused units of slices whose bucket is over, and every spare slot of idle subjects: what
    /// to give back (called periodically and at drain). With `all`, every free unit and slot.
    public mutating func expire(now: Int64, all: Bool = false) -> [SliceAdjustment] {
        var back: [SliceAdjustment] = []
        for (key, s) in slices where all || s.bucket != key.kind.bucket(now) {
            if s.free > 0 {
                back.append(SliceAdjustment(subject: key.subject, kind: key.kind, bucket: s.bucket, delta: -s.free,
                                            expiresAt: key.kind.windowEnd(bucket: s.bucket)))
            }
            slices[key] = nil
        }
        for (subject, var s) in slots where all || s.inUse == 0 {
            let free = s.held - s.inUse
            if free > 0 {
                back.append(SliceAdjustment(subject: subject, kind: .concurrent, bucket: 0, delta: -free, expiresAt: .max))
                s.held = s.inUse
            }
            slots[subject] = s.held == 0 ? nil : s
        }
        return back
    }

    /// A request admitted at `admittedAt` reserved `reserved` output tokens and produced `actual`:
    /// the token windows' charged amounts change by the difference, in the buckets charged at
    /// admission (an overrun whose bucket has left the window is charged to the current bucket).
    public static func settlement(subject: String, admittedAt: Int64, reserved: Int64, actual: Int64, now: Int64,
                                  batch: Bool = false) -> [SliceAdjustment] {
        let delta = actual - reserved
        guard delta != 0 else { return [] }
        return (batch ? [SharedKind.tokensDay] : [SharedKind.tokensHour, .tokensDay]).compactMap { kind in
            var b = kind.bucket(admittedAt)
            if b < kind.firstBucket(now) {
                guard delta > 0 else { return nil }
                b = kind.bucket(now)
            }
            return SliceAdjustment(subject: subject, kind: kind, bucket: b, delta: delta, expiresAt: kind.windowEnd(bucket: b))
        }
    }

    /// Units and slots this replica holds unspent (for tests and metrics).
    public func free(subject: String, kind: SharedKind) -> Int64 {
        if kind == .concurrent { let s = slots[subject] ?? Slots(); return s.held - s.inUse }
        return slices[Key(subject: subject, kind: kind)]?.free ?? 0
    }

    /// Concurrency slots in use by this replica for `subject`.
    public func inUse(subject: String) -> Int64 { slots[subject]?.inUse ?? 0 }
}

/// The prepaid credit and the monthly cap shared by replicas (issue 14 item 2): money is *held*,
/// not charged. A request is admitted only if its worst-case cost fits in what is left (credit
/// minus all committed spend; cap minus the month's spend) minus what every replica holds for
/// requests not yet in the ledger. A hold is released once the request's ledger row is committed
/// (its real cost is then in the spend), so at any instant committed spend + holds ≤ credit, and
/// every request costs at most its hold: the balance never goes below zero.
///
/// A replica may hold spare money (a slice) and admit from it without a store trip; spare is
/// granted only with `headroom` spares of room left, so near the limit every grant is exactly
/// one request's worst case. Unused spare goes back at each heartbeat.
public struct MoneyBook: Sendable {
    private var free: [String: Int64] = [:]
    /// Spare asked for = what is left / sliceDivisor (0: a store trip per request).
    public var sliceDivisor: Int64

    public init(sliceDivisor: Int64 = 20) { self.sliceDivisor = sliceDivisor }

    /// Takes `need` from this replica's spare for `subject` when it has enough.
    public mutating func spendLocally(_ subject: String, need: Int64) -> Bool {
        guard need >= 0, let f = free[subject], f >= need else { return false }
        free[subject] = f - need
        return true
    }

    /// The spare to ask for when `left` is what the limit leaves before holds.
    public func spare(left: Int64) -> Int64 { sliceDivisor > 0 ? max(0, left) / sliceDivisor : 0 }

    /// The store granted `grant` for a request needing `need`: the rest is spare.
    public mutating func granted(_ subject: String, need: Int64, grant: Int64) {
        if grant > need { free[subject, default: 0] += grant - need }
    }

    /// Every unspent unit, to give back to the store (heartbeat, drain).
    public mutating func takeAll() -> [(subject: String, amount: Int64)] {
        let out = free.filter { $0.value > 0 }.map { (subject: $0.key, amount: $0.value) }
        free = [:]
        return out
    }

    /// Unspent spare held for `subject` (tests, metrics).
    public func free(_ subject: String) -> Int64 { free[subject] ?? 0 }
}

extension SharedLimits {
    /// The store's decision for money under its lock. `creditLeft`: credits − all committed spend
    /// (nil: not prepaid); `capLeft`: the month's cap − its committed spend (nil: no cap); `held`:
    /// what every replica holds. The credit must cover the whole worst case `need` (the balance
    /// never goes below zero); the cap, as on one gateway, admits while some of it is left (spend
    /// overruns it by at most one request). The grant: need, plus the spare (rounded down to a
    /// multiple of need) when the room allows `headroom` spares; nil when the request does not fit.
    public static func decideMoney(need: Int64, spare: Int64, creditLeft: Int64?, capLeft: Int64?, held: Int64, headroom: Int64) -> Int64? {
        guard need >= 0 else { return nil }
        let creditRoom = creditLeft.map { $0 - held } ?? .max
        let capRoom = capLeft.map { $0 - held } ?? .max
        guard creditRoom >= need, capRoom > 0 else { return nil }
        // Spare in whole multiples of this request's need: requests alike never strand a remainder
        // on one replica that another needed.
        let spare = need > 0 ? max(0, spare) - max(0, spare) % need : 0
        let room = min(creditRoom, capRoom)
        return room - need >= spare * max(1, headroom) ? need + spare : need
    }
}
