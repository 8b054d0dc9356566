// Evaluation of the static layers (structure, patterns, semantic) on labelled JSONL files:
// one object per line, {"text", "label": "attack" | "benign", "lang", "kind", "source"}
// ("lang", "kind", "source" optional). Each file is a split (its name without directory,
// language suffix and extension: dev.jsonl -> "dev", train-de.jsonl -> "train").
// Detection (recall) = blocked attacks / attacks; precision = blocked attacks / blocked;
// false-positive rate = blocked benign / benign; per split, language, kind and source, plus
// the threshold curve (detection when the threshold is set for 0.5 / 1 / 2 / 5 % false
// positives) and throughput. Behavior is not used (rows are independent).

import Foundation

public struct Evaluation: Sendable {
    public struct Row: Sendable {
        public var text: String
        public var isAttack: Bool
        public var lang: String
        public var source: String
        public var kind: String = "-"
        public var split: String = "-"
    }

    public struct Cell: Sendable, Equatable {
        public var attacks = 0, detected = 0, benign = 0, falsePositives = 0
        public var detectionRate: Double { attacks == 0 ? .nan : Double(detected) / Double(attacks) }
        public var falsePositiveRate: Double { benign == 0 ? .nan : Double(falsePositives) / Double(benign) }
        public var precision: Double { detected + falsePositives == 0 ? .nan : Double(detected) / Double(detected + falsePositives) }
    }

    public var total = Cell()
    public var byLanguage: [String: Cell] = [:]
    public var bySource: [String: Cell] = [:]
    public var byKind: [String: Cell] = [:]
    public var bySplit: [String: Cell] = [:]
    /// Per split, per language / per kind.
    public var bySplitLanguage: [String: [String: Cell]] = [:]
    public var bySplitKind: [String: [String: Cell]] = [:]
    /// (score, isAttack, split) of every row, for the threshold curve.
    public var scores: [(Double, Bool, String)] = []
    public var threshold = 1.0
    /// Blocks per rule id (attacks and benign separately).
    public var rulesOnAttacks: [String: Int] = [:]
    public var rulesOnBenign: [String: Int] = [:]
    public var bytes = 0
    public var seconds = 0.0
    public var rows = 0
    /// Benign rows that were blocked (for inspection by the operator).
    public var falsePositiveSamples: [(String, [String])] = []
    /// Attack rows that were missed (a few, for inspection).
    public var missedSamples: [String] = []

    /// "dev.jsonl" -> "dev", "train-de.jsonl" -> "train", "heldout-ja.jsonl" -> "heldout".
    public static func splitName(path: String) -> String {
        var name = (path as NSString).lastPathComponent
        if let dot = name.firstIndex(of: ".") { name = String(name[..<dot]) }
        if let dash = name.firstIndex(of: "-") { name = String(name[..<dash]) }
        return name.isEmpty ? "-" : name
    }

    public static func parse(jsonl data: Data, split: String = "-") throws -> [Row] {
        var rows: [Row] = []
        for line in data.split(separator: 0x0A) where !line.isEmpty {
            guard let obj = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  let text = obj["text"] as? String, let label = obj["label"] as? String else {
                throw EvaluationError.badLine(String(decoding: line.prefix(80), as: UTF8.self))
            }
            rows.append(Row(text: text, isAttack: label == "attack", lang: obj["lang"] as? String ?? "?",
                            source: obj["source"] as? String ?? "-", kind: obj["kind"] as? String ?? "-", split: split))
        }
        return rows
    }

    public enum EvaluationError: Error { case badLine(String) }

    /// Run the static checks of `shield` on every row. `clock` returns seconds (monotonic);
    /// the caller passes it so this module never reads a clock itself.
    public static func run(rows: [Row], shield: PromptShield, clock: () -> Double) -> Evaluation {
        var e = Evaluation()
        e.threshold = shield.threshold
        var verdicts: [ShieldVerdict] = []
        verdicts.reserveCapacity(rows.count)
        let t0 = clock()
        for r in rows { verdicts.append(shield.inspectStatic(r.text)) }
        e.seconds = clock() - t0
        for (r, v) in zip(rows, verdicts) {
            e.rows += 1
            e.bytes += r.text.utf8.count
            e.scores.append((v.scored ? v.score : (v.wouldBlock ? 1 : 0), r.isAttack, r.split))
            func bump(_ c: inout Cell) {
                if r.isAttack { c.attacks += 1; if v.wouldBlock { c.detected += 1 } }
                else { c.benign += 1; if v.wouldBlock { c.falsePositives += 1 } }
            }
            bump(&e.total)
            bump(&e.byLanguage[r.lang, default: Cell()])
            bump(&e.bySource[r.source, default: Cell()])
            bump(&e.byKind[r.kind, default: Cell()])
            bump(&e.bySplit[r.split, default: Cell()])
            bump(&e.bySplitLanguage[r.split, default: [:]][r.lang, default: Cell()])
            bump(&e.bySplitKind[r.split, default: [:]][r.kind, default: Cell()])
            if v.wouldBlock {
                for id in v.ruleIDs {
                    if r.isAttack { e.rulesOnAttacks[id, default: 0] += 1 } else { e.rulesOnBenign[id, default: 0] += 1 }
                }
                if !r.isAttack { e.falsePositiveSamples.append((r.text, v.ruleIDs)) }
            } else if r.isAttack && e.missedSamples.count < 200 {
                e.missedSamples.append(r.text)
            }
        }
        return e
    }

    static func pct(_ x: Double) -> String { x.isNaN ? "—" : String(format: "%.1f %%", x * 100) }

    /// Detection when the threshold is the lowest one that keeps the false-positive rate at
    /// or under `budget` (over the rows of `split`, or all rows when nil).
    public func curve(budgets: [Double] = [0.005, 0.01, 0.02, 0.05], split: String? = nil) -> [(budget: Double, threshold: Double, detection: Double, fpRate: Double)] {
        let rows = scores.filter { split == nil || $0.2 == split }
        let benign = rows.filter { !$0.1 }.map(\.0).sorted(by: >)
        let attacks = rows.filter { $0.1 }.map(\.0)
        guard !benign.isEmpty, !attacks.isEmpty else { return [] }
        return budgets.map { b in
            let allowed = Int((b * Double(benign.count)).rounded(.down))
            // Block scores strictly above the (allowed+1)-th highest benign score.
            let t = allowed < benign.count ? benign[allowed] : -1
            let det = Double(attacks.filter { $0 > t }.count) / Double(attacks.count)
            let fp = Double(benign.filter { $0 > t }.count) / Double(benign.count)
            return (b, t, det, fp)
        }
    }

    static func cellTable(_ title: String, _ d: [String: Cell], total: Cell?) -> String {
        var s = "| \(title) | attacks | detected | detection (recall) | precision | benign | blocked | FP rate |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
        for (k, c) in d.sorted(by: { ($0.value.attacks + $0.value.benign, $1.key) > ($1.value.attacks + $1.value.benign, $0.key) }) {
            s += "| \(k) | \(c.attacks) | \(c.detected) | \(pct(c.detectionRate)) | \(pct(c.precision)) | \(c.benign) | \(c.falsePositives) | \(pct(c.falsePositiveRate)) |\n"
        }
        if let c = total {
            s += "| **all** | \(c.attacks) | \(c.detected) | \(pct(c.detectionRate)) | \(pct(c.precision)) | \(c.benign) | \(c.falsePositives) | \(pct(c.falsePositiveRate)) |\n"
        }
        return s
    }

    func curveTable(split: String?) -> String {
        let c = curve(split: split)
        guard !c.isEmpty else { return "" }
        var s = "| FP budget | threshold | detection | FP rate |\n|---:|---:|---:|---:|\n"
        for r in c { s += "| \(Self.pct(r.budget)) | \(String(format: "%.3f", r.threshold)) | \(Self.pct(r.detection)) | \(Self.pct(r.fpRate)) |\n" }
        return s
    }

    /// Markdown: per split; then per split, language and kind; per source; the threshold
    /// curves; throughput and rule counts.
    public var table: String {
        var out = String(format: "threshold in force: %.3f\n\n", threshold)
        out += Self.cellTable("split", bySplit, total: total) + "\n"
        let splits = bySplit.keys.sorted()
        for sp in splits {
            out += "### split \(sp)\n\n"
            out += Self.cellTable("lang", bySplitLanguage[sp] ?? [:], total: bySplit[sp]) + "\n"
            out += Self.cellTable("kind", bySplitKind[sp] ?? [:], total: bySplit[sp]) + "\n"
            let ct = curveTable(split: sp)
            if !ct.isEmpty { out += "threshold curve (\(sp)):\n\n" + ct + "\n" }
        }
        if splits.count > 1 {
            out += "### all splits\n\n" + Self.cellTable("lang", byLanguage, total: total) + "\n"
            let ct = curveTable(split: nil)
            if !ct.isEmpty { out += "threshold curve (all splits):\n\n" + ct + "\n" }
        }
        out += Self.cellTable("source", bySource, total: total) + "\n"
        let mb = Double(bytes) / 1_000_000
        out += String(format: "%d rows, %.2f MB in %.3f s: %.1f MB/s, %.1f µs per row (one core)\n",
                      self.rows, mb, seconds, seconds > 0 ? mb / seconds : 0, self.rows > 0 ? seconds * 1e6 / Double(self.rows) : 0)
        out += "\nblocking rules on attacks: " + rulesOnAttacks.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + "\n"
        out += "blocking rules on benign: " + rulesOnBenign.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + "\n"
        return out
    }
}
