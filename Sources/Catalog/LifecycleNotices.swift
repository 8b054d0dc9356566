import OpenAIWire

/// The lifecycle phases a tenant is told about by webhook (SPEC S7: 3 months' notice).
public enum NoticePhase: String, Sendable, Hashable, CaseIterable, Codable {
    /// The model entered its sunset window (90 days before its end of support).
    case sunset
    /// The model is past its end of support and will be removed at the end of its notice.
    case deprecated
}

/// What makes a notice unique: one per tenant, model (catalog id, never an alias) and phase.
/// The gateway stores these (table `lifecycle_notices`) and passes the stored set back in.
public struct NoticeKey: Sendable, Hashable, Codable {
    public var tenant: String
    public var model: String
    public var phase: NoticePhase

    public init(tenant: String, model: String, phase: NoticePhase) {
        self.tenant = tenant; self.model = model; self.phase = phase
    }
}

/// One notice to send now.
public struct LifecycleNotice: Sendable, Hashable {
    public var key: NoticeKey
    /// The day the phase began (DSP − 90 days for `sunset`, DSP for `deprecated`).
    public var phaseStarted: Day
    public var endOfSupport: Day
    /// The day the model stops answering for this tenant (extensions included).
    public var removal: Day
    public var successor: String?
    /// The names the tenant used for this model in the window (aliases included), sorted.
    public var namesUsed: [String]

    public var tenant: String { key.tenant }
    public var model: String { key.model }
    public var phase: NoticePhase { key.phase }

    /// A human sentence for the webhook and the console.
    public var message: String {
        let instead = successor.map { " Move to '\($0)' before then." } ?? " Choose another model from GET /v1/models before then."
        switch phase {
        case .sunset:
            return "Model '\(model)' reaches its end of support on \(endOfSupport) and will be removed on \(removal).\(instead)"
        case .deprecated:
            return "Model '\(model)' is deprecated since \(phaseStarted) and will be removed on \(removal); requests will then fail with 410 model_retired.\(instead)"
        }
    }

    /// The webhook body (`type: "model.lifecycle"`). `sent_at` is the caller's to add if wanted.
    public var json: JSONValue {
        .object([
            ("type", "model.lifecycle"),
            ("tenant", .string(tenant)),
            ("model", .string(model)),
            ("phase", .string(phase.rawValue)),
            ("phase_started", .string(phaseStarted.description)),
            ("end_of_support", .string(endOfSupport.description)),
            ("retires_at", .string(removal.description)),
            ("successor", successor.map(JSONValue.string) ?? .null),
            ("models_used", .array(namesUsed.map(JSONValue.string))),
            ("message", .string(message)),
        ])
    }
}

/// Decides which lifecycle notices to send now. Pure: the caller supplies the usage, the day and
/// what was already sent, so that "exactly once" is a property of the stored keys, not of timing.
public enum NoticePlanner {
    /// How far back usage counts (SPEC: a model the tenant used in the last 30 days).
    public static let usageWindowDays = 30

    /// The notices to send to one tenant on `day`.
    /// - Parameters:
    ///   - tenant: the key notices are stored under (the tenant id).
    ///   - tenantName: the name extensions are granted to in the catalog file, if different.
    ///   - modelsUsed: names (ids or aliases) the tenant called in the last 30 days; unknown
    ///     names (removed from the catalog) are ignored.
    ///   - alreadySent: every notice key stored so far (any tenant; others are ignored).
    /// - Returns: at most one notice per model: for the phase the model is in **today**. A model
    ///   that is already deprecated gets only the `deprecated` notice, even when its `sunset`
    ///   notice was never sent (the gateway was down, or the tenant started using it late): one
    ///   current notice beats two where the first is stale. Sorted by model id.
    public static func plan(tenant: String, tenantName: String? = nil, modelsUsed: some Sequence<String>,
                            catalog: Catalog, on day: Day, alreadySent: Set<NoticeKey>,
                            policy: LifecyclePolicy = .standard) -> [LifecycleNotice] {
        var names: [String: Set<String>] = [:]
        var entries: [String: CatalogEntry] = [:]
        for name in modelsUsed {
            guard let entry = catalog.resolve(name) else { continue }
            names[entry.id, default: []].insert(name)
            entries[entry.id] = entry
        }
        var notices: [LifecycleNotice] = []
        for (id, entry) in entries.sorted(by: { $0.key < $1.key }) {
            let extended = entry.extendedUntil(tenant: tenantName ?? tenant)
            let current: (phase: NoticePhase, started: Day, removal: Day)
            switch entry.lifecycle(on: day, extendedUntil: extended, policy: policy) {
            case .sunsetWindow(let r):
                current = (.sunset, entry.sunsetWarningStarts(policy: policy), r)
            case .deprecated(let since, let r):
                current = (.deprecated, since, r)
            case .notYetAvailable, .production, .retired:
                continue
            }
            let (phase, started, removal) = current
            let key = NoticeKey(tenant: tenant, model: id, phase: phase)
            guard !alreadySent.contains(key) else { continue }
            notices.append(LifecycleNotice(key: key, phaseStarted: started, endOfSupport: entry.endOfSupport, removal: removal,
                                           successor: entry.successor, namesUsed: names[id, default: []].sorted()))
        }
        return notices
    }
}
