// Evaluation of the static layers on a labelled JSONL file: one object per line,
// {"text", "label": "attack" | "benign", "lang", "source"} ("lang" and "source" optional).
// Detection rate = blocked attacks / attacks; false-positive rate = blocked benign / benign;
// per language and per source, plus throughput. Behavior is not used (rows are independent).

import Foundation

public struct Evaluation: Sendable {
    public struct Row: Sendable {
        public var text: String
        public var isAttack: Bool
        public var lang: String
        public var source: String
    }

    public struct Cell: Sendable, Equatable {
        public var attacks = 0, detected = 0, benign = 0, falsePositives = 0
        public var detectionRate: Double { attacks == 0 ? .nan : Double(detected) / Double(attacks) }
        public var falsePositiveRate: Double { benign == 0 ? .nan : Double(falsePositives) / Double(benign) }
    }

    public var total = Cell()
    public var byLanguage: [String: Cell] = [:]
    public var bySource: [String: Cell] = [:]
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

    public static func parse(jsonl data: Data) throws -> [Row] {
        var rows: [Row] = []
        for line in data.split(separator: 0x0A) where !line.isEmpty {
            guard let obj = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  let text = obj["text"] as? String, let label = obj["label"] as? String else {
                throw EvaluationError.badLine(String(decoding: line.prefix(80), as: UTF8.self))
            }
            rows.append(Row(text: text, isAttack: label == "attack", lang: obj["lang"] as? String ?? "?",
                            source: obj["source"] as? String ?? "-"))
        }
        return rows
    }

    public enum EvaluationError: Error { case badLine(String) }

    /// Run the static checks of `shield` on every row. `clock` returns seconds (monotonic);
    /// the caller passes it so this module never reads a clock itself.
    public static func run(rows: [Row], shield: PromptShield, clock: () -> Double) -> Evaluation {
        var e = Evaluation()
        var verdicts: [ShieldVerdict] = []
        verdicts.reserveCapacity(rows.count)
        let t0 = clock()
        for r in rows { verdicts.append(shield.inspectStatic(r.text)) }
        e.seconds = clock() - t0
        for (r, v) in zip(rows, verdicts) {
            e.rows += 1
            e.bytes += r.text.utf8.count
            func bump(_ c: inout Cell) {
                if r.isAttack { c.attacks += 1; if v.wouldBlock { c.detected += 1 } }
                else { c.benign += 1; if v.wouldBlock { c.falsePositives += 1 } }
            }
            bump(&e.total)
            bump(&e.byLanguage[r.lang, default: Cell()])
            bump(&e.bySource[r.source, default: Cell()])
            if v.wouldBlock {
                for id in v.ruleIDs {
                    if r.isAttack { e.rulesOnAttacks[id, default: 0] += 1 } else { e.rulesOnBenign[id, default: 0] += 1 }
                }
                if !r.isAttack { e.falsePositiveSamples.append((r.text, v.ruleIDs)) }
            } else if r.isAttack && e.missedSamples.count < 50 {
                e.missedSamples.append(r.text)
            }
        }
        return e
    }

    static func pct(_ x: Double) -> String { x.isNaN ? "—" : String(format: "%.1f %%", x * 100) }

    /// A Markdown table (per source, per language, total) plus throughput and rule counts.
    public var table: String {
        func rows(_ title: String, _ d: [String: Cell]) -> String {
            var s = "| \(title) | attacks | detected | detection | benign | blocked | FP rate |\n|---|---:|---:|---:|---:|---:|---:|\n"
            for (k, c) in d.sorted(by: { ($0.value.attacks + $0.value.benign, $1.key) > ($1.value.attacks + $1.value.benign, $0.key) }) {
                s += "| \(k) | \(c.attacks) | \(c.detected) | \(Self.pct(c.detectionRate)) | \(c.benign) | \(c.falsePositives) | \(Self.pct(c.falsePositiveRate)) |\n"
            }
            let c = total
            s += "| **all** | \(c.attacks) | \(c.detected) | \(Self.pct(c.detectionRate)) | \(c.benign) | \(c.falsePositives) | \(Self.pct(c.falsePositiveRate)) |\n"
            return s
        }
        var out = rows("source", bySource) + "\n" + rows("lang", byLanguage) + "\n"
        let mb = Double(bytes) / 1_000_000
        out += String(format: "%d rows, %.2f MB in %.3f s: %.1f MB/s, %.1f µs per row (one core)\n",
                      self.rows, mb, seconds, seconds > 0 ? mb / seconds : 0, self.rows > 0 ? seconds * 1e6 / Double(self.rows) : 0)
        out += "\nblocking rules on attacks: " + rulesOnAttacks.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + "\n"
        out += "blocking rules on benign: " + rulesOnBenign.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + "\n"
        return out
    }
}
