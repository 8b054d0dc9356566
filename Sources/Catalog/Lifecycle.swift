import OpenAIWire

/// Where a model stands on a given day (SPEC S7), computed from its catalog dates only — the
/// caller passes the day (from its injected clock), so every boundary is testable.
///
/// ```
///            DMP            DSP − 90 d           DSP              DSP + 3 months
///  ─ notYet ──┼── production ──┼── sunsetWindow ──┼── deprecated ──┼── retired ─▶
///                                 Sunset (+Link)    Deprecation,      410 model_retired
///                                                   Sunset (+Link)
/// ```
/// Each boundary day belongs to the phase that starts on it: the model is served from DMP,
/// deprecated from DSP (the `Deprecation` date is DSP 00:00 UTC), and gone from the removal day
/// (the `Sunset` date is removal 00:00 UTC, "the resource becomes unresponsive", RFC 8594).
public enum LifecycleState: Sendable, Equatable, Hashable {
    /// Before its in-production date (DMP); served only to tenants that opted in to experimental
    /// models, and only when the model is experimental.
    case notYetAvailable(until: Day)
    case production
    /// In production, within 90 days of its end of support: responses announce the removal.
    case sunsetWindow(removal: Day)
    /// Past its end of support, in its 3 months' notice: still served, with warnings.
    case deprecated(since: Day, removal: Day)
    /// Removed: 410.
    case retired(on: Day)

    /// A stable name for JSON, tables and notices.
    public var name: String {
        switch self {
        case .notYetAvailable: return "not_yet_available"
        case .production: return "production"
        case .sunsetWindow: return "sunset"
        case .deprecated: return "deprecated"
        case .retired: return "retired"
        }
    }
}

/// The lifecycle rules: how long the notice is and when the `Sunset` warnings start.
public struct LifecyclePolicy: Sendable, Equatable {
    /// Days before the end of support from which responses carry `Sunset` (and `Link`).
    public var sunsetWarningDays: Int
    /// Months between the end of support and removal (SPEC S7: 3 months' notice).
    public var noticeMonths: Int

    public static let standard = LifecyclePolicy(sunsetWarningDays: 90, noticeMonths: 3)

    public init(sunsetWarningDays: Int, noticeMonths: Int) {
        self.sunsetWarningDays = sunsetWarningDays
        self.noticeMonths = noticeMonths
    }
}

extension CatalogEntry {
    /// The standard removal day: end of support + 3 months. From this day the model answers 410.
    public var removalDate: Day { removalDate(policy: .standard) }

    public func removalDate(policy: LifecyclePolicy) -> Day { endOfSupport.adding(months: policy.noticeMonths) }

    /// The removal day for one tenant: the standard one, or the day after the last day of an
    /// operator-granted extension when that is later.
    public func removalDate(extendedUntil: Day?, policy: LifecyclePolicy = .standard) -> Day {
        let standard = removalDate(policy: policy)
        guard let last = extendedUntil else { return standard }
        return max(standard, last.adding(days: 1))
    }

    /// The day `Sunset` warnings start (DSP − 90 days).
    public func sunsetWarningStarts(policy: LifecyclePolicy = .standard) -> Day { endOfSupport.adding(days: -policy.sunsetWarningDays) }

    /// The lifecycle of this model on `day`. `extendedUntil` is the last day of an operator
    /// extension for the calling tenant (see ``extendedUntil(tenant:)``); it only moves removal later.
    public func lifecycle(on day: Day, extendedUntil: Day? = nil, policy: LifecyclePolicy = .standard) -> LifecycleState {
        let removal = removalDate(extendedUntil: extendedUntil, policy: policy)
        if day < inProduction { return .notYetAvailable(until: inProduction) }
        if day >= removal { return .retired(on: removal) }
        if day >= endOfSupport { return .deprecated(since: endOfSupport, removal: removal) }
        if day >= sunsetWarningStarts(policy: policy) { return .sunsetWindow(removal: removal) }
        return .production
    }

    /// The last day of extended support the operator granted `tenant` (by tenant name), if any.
    public func extendedUntil(tenant: String?) -> Day? { tenant.flatMap { extendedSupport[$0] } }
}

/// Lifecycle decisions the gateway applies to a request or a listing.
public enum Lifecycle {
    /// The response headers a model's state calls for (names and values exact):
    /// - sunset window: `Sunset: <removal HTTP-date>` and, with a successor,
    ///   `Link: <BASE/v1/models/SUCCESSOR>; rel="successor-version"`;
    /// - deprecated: `Deprecation: @<unix seconds of DSP>` (RFC 9745), `Sunset`, and the same `Link`;
    /// - otherwise none.
    /// `baseURL` is the public origin of the gateway (`https://llm.example.eu`), without `/v1`.
    public static func headers(for entry: CatalogEntry, state: LifecycleState, baseURL: String) -> [(String, String)] {
        var headers: [(String, String)] = []
        switch state {
        case .notYetAvailable, .production, .retired:
            return []
        case .sunsetWindow(let removal):
            headers.append(("Sunset", removal.httpDate))
        case .deprecated(let since, let removal):
            headers.append(("Deprecation", "@\(since.unixTime)"))
            headers.append(("Sunset", removal.httpDate))
        }
        if let successor = entry.successor {
            headers.append(("Link", "<\(modelURL(successor, baseURL: baseURL))>; rel=\"successor-version\""))
        }
        return headers
    }

    /// `BASE/v1/models/ID`, the id percent-encoded where a path segment needs it (`:` stays).
    public static func modelURL(_ id: String, baseURL: String) -> String {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        if base.hasSuffix("/v1") { base.removeLast(3) }
        return "\(base)/v1/models/\(percentEncodePathSegment(id))"
    }

    static func percentEncodePathSegment(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: ":"), UInt8(ascii: "@"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let hex = Array("0123456789ABCDEF")
                out += "%\(hex[Int(b >> 4)])\(hex[Int(b & 0xF)])"
            }
        }
        return out
    }

    /// Whether a caller may use the model in this state: everything but retired models and
    /// models before their DMP (unless experimental and the tenant opted in).
    public static func isServed(_ entry: CatalogEntry, state: LifecycleState, experimentalOptIn: Bool) -> Bool {
        switch state {
        case .notYetAvailable: return experimentalOptIn && entry.phase == .experimental
        case .retired: return false
        case .production, .sunsetWindow, .deprecated: return true
        }
    }

    /// The gate of pipeline step 2 for a resolved model: returns the headers to add to the
    /// response, or throws 404 (before DMP) / 410 (retired). `requested` is the name the caller
    /// used (an alias stays visible in the message).
    public static func admit(_ entry: CatalogEntry, requested: String? = nil, on day: Day, tenant: String?,
                             experimentalOptIn: Bool, baseURL: String,
                             policy: LifecyclePolicy = .standard) throws(APIError) -> [(String, String)] {
        let state = entry.lifecycle(on: day, extendedUntil: entry.extendedUntil(tenant: tenant), policy: policy)
        switch state {
        case .retired(let on):
            var error = APIError.modelRetired(entry, requested: requested, on: on)
            if let successor = entry.successor {
                error.headers = [("Link", "<\(modelURL(successor, baseURL: baseURL))>; rel=\"successor-version\"")]
            }
            throw error
        case .notYetAvailable where !isServed(entry, state: state, experimentalOptIn: experimentalOptIn):
            throw APIError.modelNotFound(requested ?? entry.id)
        default:
            return headers(for: entry, state: state, baseURL: baseURL)
        }
    }
}

extension APIError {
    /// 410 for a model past its removal date, naming the date and the successor.
    public static func modelRetired(_ entry: CatalogEntry, requested: String? = nil, on removal: Day) -> APIError {
        let name = requested.map { $0 == entry.id ? "'\($0)'" : "'\($0)' (\(entry.id))" } ?? "'\(entry.id)'"
        let what = entry.successor.map { "Use its successor '\($0)' instead" } ?? "Choose another model from GET /v1/models"
        let why = removal > entry.removalDate
            ? "end of support \(entry.endOfSupport); the extended support of your account ended \(removal.adding(days: -1))"
            : "end of support \(entry.endOfSupport), then 3 months' notice"
        return APIError(status: 410,
                        message: "Model \(name) was retired on \(removal) (\(why)). \(what).",
                        type: "invalid_request_error", param: "model", code: "model_retired")
    }
}
