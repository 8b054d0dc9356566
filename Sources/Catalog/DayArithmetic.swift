/// Calendar arithmetic on ``Day`` without Foundation calendars: the lifecycle is computed from
/// dates, and these few operations are all it needs (all UTC, proleptic Gregorian).
extension Day {
    /// The UTC day containing `unixTime` (seconds since 1970-01-01T00:00:00Z). This is how the
    /// gateway turns its injected clock into the day the lifecycle is computed for.
    public init(unixTime: Int) {
        let days = unixTime >= 0 ? unixTime / 86400 : -((-unixTime + 86399) / 86400)
        self.init(daysSinceEpoch: days)
    }

    /// Inverse of ``daysSinceEpoch`` (H. Hinnant's `civil_from_days`).
    public init(daysSinceEpoch: Int) {
        let z = daysSinceEpoch + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        self.init(year: yoe + era * 400 + (m <= 2 ? 1 : 0), month: m, day: d)
    }

    public func adding(days n: Int) -> Day { Day(daysSinceEpoch: daysSinceEpoch + n) }

    /// Calendar months later; the day is clamped to the month's length
    /// (2025-11-30 + 3 months = 2026-02-28), so "three months' notice" never overshoots a month.
    public func adding(months n: Int) -> Day {
        let total = year * 12 + (month - 1) + n
        let y = total >= 0 ? total / 12 : (total - 11) / 12
        let m = total - y * 12 + 1
        return Day(year: y, month: m, day: min(day, Day.daysIn(month: m, year: y)))
    }

    /// Whole days from `self` to `other` (positive when `other` is later).
    public func days(until other: Day) -> Int { other.daysSinceEpoch - daysSinceEpoch }

    /// RFC 9110 IMF-fixdate of 00:00:00 UTC that day, e.g. `Wed, 31 Mar 2027 00:00:00 GMT`
    /// (the format of the `Sunset` header, RFC 8594).
    public var httpDate: String { Day.httpDate(unixTime: daysSinceEpoch * 86400) }

    /// RFC 9110 IMF-fixdate of a moment (UTC, whole seconds), e.g. `Sun, 06 Dec 2026 17:04:05 GMT`
    /// (the `Date` header's format too).
    public static func httpDate(unixTime: Int) -> String {
        let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"] // 1970-01-01 was a Thursday
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let day = Day(unixTime: unixTime)
        let w = ((day.daysSinceEpoch % 7) + 7) % 7
        let s = unixTime - day.daysSinceEpoch * 86400
        return "\(weekdays[w]), \(padded(day.day, 2)) \(months[day.month - 1]) \(day.year) "
            + "\(padded(s / 3600, 2)):\(padded(s / 60 % 60, 2)):\(padded(s % 60, 2)) GMT"
    }
}
