import OpenAIWire

/// The lifecycle of every model on one day, for `llmaas models --lifecycle` (a table) and
/// `GET /v1/lifecycle` (public JSON, like a status page). Standard dates only: per-tenant
/// extensions are private and never shown here.
public struct LifecycleReport: Sendable {
    public struct Row: Sendable, Equatable {
        public var id: String
        public var developer: String
        public var phase: Phase
        public var state: LifecycleState
        public var inProduction: Day
        public var endOfSupport: Day
        public var removal: Day
        public var successor: String?
        /// Days until the end of support (negative once past it).
        public var daysToEndOfSupport: Int
        /// Days until removal; 0 once retired.
        public var daysLeft: Int
    }

    public let day: Day
    public let policy: LifecyclePolicy
    public let rows: [Row]

    /// Rows in order of removal (soonest first), then id: what needs attention comes first.
    public init(catalog: Catalog, on day: Day, policy: LifecyclePolicy = .standard) {
        self.day = day
        self.policy = policy
        rows = catalog.entries.map { e in
            let removal = e.removalDate(policy: policy)
            return Row(id: e.id, developer: e.developer, phase: e.phase, state: e.lifecycle(on: day, policy: policy),
                       inProduction: e.inProduction, endOfSupport: e.endOfSupport, removal: removal, successor: e.successor,
                       daysToEndOfSupport: day.days(until: e.endOfSupport), daysLeft: max(0, day.days(until: removal)))
        }.sorted { ($0.removal, $0.id) < ($1.removal, $1.id) }
    }

    public var json: JSONValue {
        .object([
            ("object", "lifecycle"),
            ("date", .string(day.description)),
            ("policy", .object([
                ("sunset_warning_days", .int(policy.sunsetWarningDays)),
                ("notice_months", .int(policy.noticeMonths)),
            ])),
            ("data", .array(rows.map { r in
                JSONValue.object([
                    ("id", .string(r.id)),
                    ("owned_by", .string(r.developer)),
                    ("phase", .string(r.phase.rawValue)),
                    ("status", .string(r.state.name)),
                    ("in_production", .string(r.inProduction.description)),
                    ("end_of_support", .string(r.endOfSupport.description)),
                    ("retires_at", .string(r.removal.description)),
                    ("days_to_end_of_support", .int(r.daysToEndOfSupport)),
                    ("days_left", .int(r.daysLeft)),
                    ("successor", r.successor.map(JSONValue.string) ?? .null),
                ])
            })),
        ])
    }

    /// A fixed-width table, one model a line, ending with a newline.
    public var table: String {
        let header = ["MODEL", "DEVELOPER", "PHASE", "STATUS", "IN PRODUCTION", "END OF SUPPORT", "RETIRES", "DAYS LEFT", "SUCCESSOR"]
        let lines = rows.map { r in
            [r.id, r.developer, r.phase.rawValue, r.state.name, r.inProduction.description, r.endOfSupport.description,
             r.removal.description, r.daysLeft == 0 ? "retired" : String(r.daysLeft), r.successor ?? "-"]
        }
        let widths = header.indices.map { i in ([header] + lines).map { $0[i].count }.max() ?? 0 }
        func render(_ cells: [String]) -> String {
            var line = ""
            for (i, cell) in cells.enumerated() {
                let isNumber = i == 7
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                line += i == 0 ? "" : "  "
                line += isNumber ? pad + cell : (i == cells.count - 1 ? cell : cell + pad)
            }
            return line
        }
        var out = "Model lifecycle on \(day) (sunset warnings from end of support − \(policy.sunsetWarningDays) days; removal at end of support + \(policy.noticeMonths) months)\n"
        out += render(header) + "\n"
        for l in lines { out += render(l) + "\n" }
        return out
    }
}
