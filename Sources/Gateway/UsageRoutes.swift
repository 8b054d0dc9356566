import Foundation
import HTTPTypes
import Hummingbird
import Metering
import Quotas
import OpenAIWire
import Storage
import Tenancy

/// Usage reports from the ledger: totals are computed from the same rows as the groups, so they
/// always equal the sum of the ledger rows. `requests` counts the billed (served) requests,
/// `rejected_requests` those answered with an error before anything was billed (unknown model,
/// rate limit, budget, an engine failing before the first token …). A model row exists only for a
/// catalog model: a rejection naming a model the catalog does not have counts in the totals only.
public enum UsageReport {
    public enum Grouping: String, Sendable, CaseIterable {
        case model, day, key, endpoint

        /// The choices, for error messages ("model, day, key or endpoint").
        public static var choices: String {
            let names = allCases.map(\.rawValue)
            return names.dropLast().joined(separator: ", ") + " or " + (names.last ?? "")
        }
    }

    /// Settled (priced) rows are billed; a 200 without a price can only be a row older than the ledger columns.
    static func isBilled(_ r: RequestRecord) -> Bool { r.isBilled }

    /// The sums of one group of ledger rows (or of all of them): what `/v1/usage` and the console show.
    public struct Totals: Sendable, Equatable {
        public var requests = 0, rejected = 0, input = 0, output = 0, reasoning = 0
        /// The part of `input` from system/developer messages (the console shows it; the JSON does not).
        public var system = 0
        public var cost: Int64 = 0, energy: Int64 = 0
        /// Their own units (issue 17): tokens read by rerank requests, milliseconds of transcribed audio.
        public var rerankedTokens = 0, audioMs = 0

        public init() {}

        mutating func add(_ r: RequestRecord) {
            if UsageReport.isBilled(r) { requests += 1 } else { rejected += 1 }
            input += r.promptTokens
            output += r.completionTokens
            reasoning += r.reasoningTokens ?? 0
            system += r.systemTokens ?? 0
            cost += r.costNano ?? 0
            energy += r.energyMicroWh ?? 0
            rerankedTokens += r.rerankedTokens ?? 0
            audioMs += r.audioMs ?? 0
        }

        func json(group: (String, String)? = nil) -> JSONValue {
            var m: [(String, JSONValue)] = []
            if let group { m.append((group.0, .string(group.1))) }
            m += [("requests", .int(requests)), ("rejected_requests", .int(rejected)), ("input_tokens", .int(input)), ("output_tokens", .int(output)),
                  ("reasoning_tokens", .int(reasoning)), ("cost_nano_eur", .number(String(cost))),
                  ("cost_eur", .string(Metering.Cost.euroString(cost))),
                  ("energy_wh", .number(Energy(microWattHours: energy).wattHoursString)),
                  ("reranked_tokens", .int(rerankedTokens)), ("audio_seconds", .number(Self.seconds(audioMs)))]
            return .object(m)
        }

        /// Milliseconds as exact decimal seconds: 61 500 → "61.500".
        static func seconds(_ ms: Int) -> String {
            let f = String(ms % 1000)
            return String(ms / 1000) + "." + String(repeating: "0", count: 3 - f.count) + f
        }
    }

    /// `catalogID` names a model's catalog id (aliases resolved), nil for a name the catalog does not know.
    public static func json(_ rows: [RequestRecord], groupBy: Grouping, catalogID: (String) -> String?) -> JSONValue {
        let (groups, totals) = self.groups(rows, groupBy: groupBy, catalogID: catalogID)
        let data = groups.map { $0.totals.json(group: (groupBy.rawValue, $0.key)) }
        return .object([("object", "list"), ("group_by", .string(groupBy.rawValue)), ("data", .array(data)), ("totals", totals.json())])
    }

    /// The groups (sorted by key) and the totals of `rows`: the one computation behind `json`,
    /// the table, the CSV and the console's pages.
    public static func groups(_ rows: [RequestRecord], groupBy: Grouping, catalogID: (String) -> String?) -> (groups: [(key: String, totals: Totals)], totals: Totals) {
        var groups: [String: Totals] = [:]
        var totals = Totals()
        for r in rows {
            let key: String
            switch groupBy {
            case .model:
                // A billed row was served, so its model was in the catalog then (it may have left it since).
                guard let id = catalogID(r.model) ?? (isBilled(r) ? r.model : nil) else {
                    totals.add(r)
                    continue
                }
                key = id
            case .day: key = UTCMonth.dayString(ms: r.createdAt)
            case .key: key = r.keyID ?? "-"
            case .endpoint: key = r.endpoint  // the endpoint's id (`chat.completions`)
            }
            groups[key, default: Totals()].add(r)
            totals.add(r)
        }
        return (groups.sorted { $0.key < $1.key }.map { (key: $0.key, totals: $0.value) }, totals)
    }

    public static func table(_ rows: [RequestRecord], groupBy: Grouping, catalogID: (String) -> String?) -> String {
        let j = json(rows, groupBy: groupBy, catalogID: catalogID)
        var out = "| \(groupBy.rawValue) | requests | rejected | input | output | reasoning | cost € | energy Wh |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
        for g in (j["data"]?.arrayValue ?? []) + [(j["totals"] ?? .object([])).setting(groupBy.rawValue, "TOTAL")] {
            let f = { (k: String) in g[k].map { $0.stringValue ?? $0.jsonString } ?? "" }
            out += "| \(f(groupBy.rawValue)) | \(f("requests")) | \(f("rejected_requests")) | \(f("input_tokens")) | \(f("output_tokens")) | \(f("reasoning_tokens")) | \(f("cost_eur")) | \(f("energy_wh")) |\n"
        }
        return out
    }

    public static func csv(_ rows: [RequestRecord], groupBy: Grouping, catalogID: (String) -> String?) -> String {
        let j = json(rows, groupBy: groupBy, catalogID: catalogID)
        var out = "\(groupBy.rawValue),requests,rejected_requests,input_tokens,output_tokens,reasoning_tokens,cost_nano_eur,cost_eur,energy_wh\r\n"
        for g in (j["data"]?.arrayValue ?? []) + [(j["totals"] ?? .object([])).setting(groupBy.rawValue, "TOTAL")] {
            out += [groupBy.rawValue, "requests", "rejected_requests", "input_tokens", "output_tokens", "reasoning_tokens", "cost_nano_eur", "cost_eur", "energy_wh"]
                .map { k in g[k].map { $0.stringValue ?? $0.jsonString } ?? "" }.joined(separator: ",") + "\r\n"
        }
        return out
    }

    /// `from`/`to` as ms since the epoch or `YYYY-MM-DD` (UTC); defaults: the current month.
    static func range(_ q: (String) -> String?, now: Int64) throws(APIError) -> (Int64, Int64) {
        func parse(_ key: String) throws(APIError) -> Int64? {
            guard let v = q(key) else { return nil }
            if let ms = Int64(v) { return ms }
            let parts = v.split(separator: "-").compactMap { Int($0) }
            guard parts.count == 3, let d = DateComponents(calendar: Calendar(identifier: .gregorian), timeZone: TimeZone(identifier: "UTC"),
                                                             year: parts[0], month: parts[1], day: parts[2]).date else {
                throw APIError.invalidValue(key, "use milliseconds since the epoch or a date YYYY-MM-DD.")
            }
            return Int64(d.timeIntervalSince1970 * 1000)
        }
        let from = try parse("from") ?? UTCMonth.monthStartMs(containing: now)
        let to = try parse("to") ?? Int64.max
        guard from <= to else { throw APIError.invalidValue("to", "it must not be before 'from'.") }
        return (from, to)
    }
}

/// Time buckets (`bucket_width`, as in OpenAI's organization usage API), computed from the rollups
/// plus the ledger rows of the minutes not rolled up yet (``Storage/rollupBuckets``): the same
/// live merge as the console's charts. The report's totals and groups still come from the ledger.
extension UsageReport {
    public enum BucketWidth: String, Sendable, CaseIterable {
        case minute = "1m", hour = "1h", day = "1d"

        public var ms: Int64 {
            switch self {
            case .minute: return 60_000
            case .hour: return 3_600_000
            case .day: return 86_400_000
            }
        }
    }

    /// At most this many buckets in one answer.
    public static let maxBuckets = 1_000

    /// The groupings buckets support (the rollups have no endpoint and no day dimension).
    static func bucketDimension(_ g: Grouping) -> RollupDimension? {
        switch g {
        case .model: return .model
        case .key: return .key
        case .day, .endpoint: return nil
        }
    }

    /// Checks `bucket_width` (nil when absent) with the grouping and the range; returns the width
    /// and the buckets' span `[start, end)`: whole UTC widths from the one holding `from` to the
    /// one holding `to` (or now, when `to` is open), at most ``maxBuckets``.
    public static func bucketSpan(_ value: String?, groupBy: Grouping, from: Int64, to: Int64, now: Int64) throws(APIError)
        -> (width: BucketWidth, start: Int64, end: Int64)? {
        guard let value else { return nil }
        guard let width = BucketWidth(rawValue: value) else {
            throw APIError.invalidValue("bucket_width", "use 1m, 1h or 1d (one bucket per minute, hour or UTC day).")
        }
        guard bucketDimension(groupBy) != nil else {
            throw APIError.invalidValue("group_by", "with bucket_width, buckets group by model or key only (the rollups have no \(groupBy.rawValue) dimension).")
        }
        let w = width.ms
        let start = (from / w) * w
        let last = to == Int64.max ? now : to
        var end = last > Int64.max - w ? Int64.max : ((last + w - 1) / w) * w
        if end <= start { end = start + w }
        let count = (end - start) / w
        guard count <= Int64(maxBuckets) else {
            throw APIError.invalidValue("bucket_width", "\(value) gives \(count) buckets between from and to, at most \(maxBuckets): use a wider bucket_width or a shorter from/to range.")
        }
        return (width, start, end)
    }

    /// `[{start, end, results: [{<group>, requests, errors_4xx, errors_5xx, input_tokens, output_tokens,
    /// reasoning_tokens, system_tokens, cost_nano_eur, cost_eur, energy_wh}]}]`, one per bucket
    /// (an empty bucket has no results). `requests` and `rejected_requests` as in the totals.
    public static func bucketsJSON(_ byKey: [String: [RollupStats]], start: Int64, end: Int64, width: BucketWidth, groupBy: Grouping,
                                   catalogID: (String) -> String?) -> JSONValue {
        let w = width.ms
        let count = Int((end - start) / w)
        var merged: [String: [RollupStats]] = [:]
        for (raw, stats) in byKey {
            let key = groupBy == .model ? (catalogID(raw) ?? raw) : (raw.isEmpty ? "-" : raw)
            var into = merged[key] ?? Array(repeating: RollupStats(), count: count)
            for (i, s) in stats.prefix(count).enumerated() { into[i].merge(s) }
            merged[key] = into
        }
        let keys = merged.keys.sorted()
        return .array((0..<count).map { i in
            let results: [JSONValue] = keys.compactMap { key in
                let s = merged[key]![i]
                guard s.requests > 0 else { return nil }
                return .object([(groupBy.rawValue, .string(key)), ("requests", .int(s.requests - s.rejected)), ("rejected_requests", .int(s.rejected)), ("errors_4xx", .int(s.errors4xx)),
                                ("errors_5xx", .int(s.errors5xx)), ("input_tokens", .int(s.inputTokens)), ("output_tokens", .int(s.outputTokens)),
                                ("reasoning_tokens", .int(s.reasoningTokens)), ("system_tokens", .int(s.systemTokens)),
                                ("cost_nano_eur", .number(String(s.costNano))), ("cost_eur", .string(Metering.Cost.euroString(s.costNano))),
                                ("energy_wh", .number(Energy(microWattHours: s.energyMicroWh).wattHoursString))])
            }
            let b = start + Int64(i) * w
            return .object([("start", .number(String(b))), ("end", .number(String(b + w))), ("results", .array(results))])
        })
    }

    /// Reads the query (`from`, `to`, `group_by`, `bucket_width`) and answers the usage report of one
    /// tenant: what `/v1/usage` and the admin usage route both return.
    static func report(_ q: (String) -> String?, tenantID: String, platform: Platform) async throws -> JSONValue {
        let (from, to) = try range(q, now: platform.now())
        let g = q("group_by") ?? "model"
        guard let grouping = Grouping(rawValue: g) else { throw APIError.invalidValue("group_by", "use \(Grouping.choices).") }
        let span = try bucketSpan(q("bucket_width"), groupBy: grouping, from: from, to: to, now: platform.now())
        let rows = try await platform.usageRows(tenantID: tenantID, from: from, to: to)
        let catalog = platform.catalog.current
        let catalogID: (String) -> String? = { catalog.resolve($0)?.id }
        var out = json(rows, groupBy: grouping, catalogID: catalogID)
        // Issue 17: the part of the totals that ran as batch lines (billed at the batch price).
        var batch = Totals()
        for r in rows where r.batch == 1 { batch.add(r) }
        out.set("batch", batch.json())
        if let span { try await addBuckets(&out, span: span, storage: platform.storage, tenantID: tenantID, groupBy: grouping, catalogID: catalogID) }
        return out
    }

    /// Adds `bucket_width` and `buckets` (a span from ``bucketSpan``) to a report: the routes and `llmaas usage report`.
    public static func addBuckets(_ out: inout JSONValue, span: (width: BucketWidth, start: Int64, end: Int64), storage: Storage, tenantID: String,
                                  groupBy: Grouping, catalogID: (String) -> String?) async throws {
        guard let dim = bucketDimension(groupBy) else { return }
        let byKey = try await storage.rollupBuckets(tenantID: tenantID, from: span.start, to: span.end, bucketMs: span.width.ms, groupBy: dim)
        out.set("bucket_width", .string(span.width.rawValue))
        out.set("buckets", bucketsJSON(byKey, start: span.start, end: span.end, width: span.width, groupBy: groupBy, catalogID: catalogID))
    }
}

extension Platform {
    /// The ledger rows of one tenant in `[from, to]`, after the pending rows are written: what
    /// `/v1/usage`, the admin usage route and the console all read, so their numbers are equal.
    public func usageRows(tenantID: String, from: Int64, to: Int64) async throws -> [RequestRecord] {
        await requestLog.flush()
        return try await storage.ledger(tenantID: tenantID, from: from, to: to)
    }
}

func addUsageRoutes(to router: Hummingbird.Router<GatewayContext>, platform: Platform) {
    // A key sees its own tenant's usage only: the tenant comes from the key, never from the request.
    router.get("/v1/usage") { request, context in
        let principal = try await platform.authenticate(request, context)
        var out = try await UsageReport.report({ request.uri.queryParameters.get($0, as: String.self) }, tenantID: principal.tenantID, platform: platform)
        let budget = await platform.billing.budget(principal.tenantID)
        out.set("balance_eur", .string(Metering.Cost.euroString(budget.balance)))
        out.set("month_spend_eur", .string(Metering.Cost.euroString(budget.spentMonth)))
        return jsonResponse(out, headers: CompletionPipeline.keyHeaders(principal))
    }

    let api = AdminAPI(platform: platform)
    router.get("/admin/v1/tenants/{id}/usage") { request, context in
        let p = try await api.admin(request, context)
        let t = try await api.tenant(context.parameters.get("id") ?? "", for: p, context)
        return jsonResponse(try await UsageReport.report({ request.uri.queryParameters.get($0, as: String.self) }, tenantID: t.id, platform: platform))
    }
    router.post("/admin/v1/tenants/{id}/credits") { request, context in
        let p = try await api.admin(request, context)
        try api.operatorOnly(p, "add credit")
        let t = try await api.tenant(context.parameters.get("id") ?? "", for: p, context)
        let json = try await api.body(request, context, allowed: ["amount_eur", "note"])
        if let note = json["note"], !note.isNull, note.stringValue == nil { throw APIError.invalidType("note", expected: "a string", got: note) }
        guard let text = json["amount_eur"].flatMap({ $0.stringValue ?? ($0.doubleValue != nil ? $0.jsonString : nil) }),
              let amount = Metering.Cost(euroString: text), amount.nanoEuros > 0 else {
            throw APIError.invalidValue("amount_eur", "a positive decimal number of euros, e.g. \"100.00\".")
        }
        let balance = try await platform.administration.addCredit(tenantID: t.id, amountNano: amount.nanoEuros, note: json["note"]?.stringValue)
        api.audit(p, context, "credit.add", tenant: t.id, target: amount.euroString)
        return jsonResponse(.object([("tenant_id", .string(t.id)), ("balance_eur", .string(Metering.Cost.euroString(balance)))]), status: .created)
    }
}
