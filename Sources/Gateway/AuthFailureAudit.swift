import Observability
import Synchronization

/// Audit of failed authentications, aggregated per client address and minute: the first failure
/// of an address in a minute is written in full; the others of that minute are counted and
/// written as one `auth.failure.repeated` entry when the minute is over. A guessing client thus
/// adds at most two entries a minute, however fast it tries.
final class AuthFailureAudit: Sendable {
    struct Minute { var minute: Int64; var count: Int; var last: AuditEvent }
    private let minutes = Mutex<[String: Minute]>([:])
    let audit: AuditLog
    static let maxAddresses = 50_000

    init(audit: AuditLog) { self.audit = audit }

    func record(_ event: AuditEvent) {
        let ip = event.clientIP ?? "-"
        let minute = event.time / 60_000
        let (first, closed) = minutes.withLock { m -> (Bool, [AuditEvent]) in
            var closed: [AuditEvent] = []
            if let current = m[ip], current.minute == minute {
                m[ip]?.count += 1
                m[ip]?.last = event
                return (false, [])
            }
            if let previous = m[ip], let summary = Self.summary(previous) { closed.append(summary) }
            if m.count >= Self.maxAddresses { closed += Self.drain(&m, before: Int64.max) }
            m[ip] = Minute(minute: minute, count: 1, last: event)
            return (true, closed)
        }
        for e in closed { audit.record(e) }
        if first { audit.record(event) }
    }

    /// Writes the counts of the minutes that are over (the maintenance tick calls this).
    func flush(now: Int64) {
        let closed = minutes.withLock { Self.drain(&$0, before: now / 60_000) }
        for e in closed { audit.record(e) }
    }

    private static func drain(_ m: inout [String: Minute], before minute: Int64) -> [AuditEvent] {
        var out: [AuditEvent] = []
        for (ip, value) in m where value.minute < minute {
            if let s = summary(value) { out.append(s) }
            m[ip] = nil
        }
        return out
    }

    private static func summary(_ m: Minute) -> AuditEvent? {
        guard m.count > 1 else { return nil }
        var e = m.last
        e.action = "auth.failure.repeated"
        e.outcome = "\(m.count - 1) more failed authentications in this minute; last: \(m.last.outcome)"
        e.requestID = nil
        return e
    }
}
