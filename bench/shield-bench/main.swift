// shield-bench: evaluation and speed of the Shield target, without the rest of the gateway.
//   shield-bench eval FILE.jsonl [--fp] [--missed]   detection / false-positive table
//   shield-bench speed [--iterations N]              µs per prompt and MB/s for 200 B … 1 MB
//   shield-bench check "text"                        explain one verdict
// Build in release: swift build -c release --scratch-path .build-shield --product shield-bench
import Foundation
import Shield

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

let args = Array(CommandLine.arguments.dropFirst())
guard let command = args.first else {
    print("usage: shield-bench eval FILE.jsonl [--fp] [--missed] | speed [--iterations N] | check TEXT")
    exit(2)
}

switch command {
case "eval":
    guard args.count >= 2 else { print("eval FILE.jsonl"); exit(2) }
    let data = try Data(contentsOf: URL(fileURLWithPath: args[1]))
    let rows = try Evaluation.parse(jsonl: data)
    let shield = PromptShield(config: ShieldConfig(behaviorEnabled: false))
    _ = shield.inspectStatic("warm up")
    let e = Evaluation.run(rows: rows, shield: shield, clock: monotonicSeconds)
    print(e.table)
    if args.contains("--fp") {
        print("\nfalse positives:")
        for (t, r) in e.falsePositiveSamples { print("- \(r.joined(separator: ",")): \(t.prefix(200).replacingOccurrences(of: "\n", with: " "))") }
    }
    if args.contains("--missed") {
        print("\nmissed (first 50):")
        for t in e.missedSamples { print("- \(t.prefix(160).replacingOccurrences(of: "\n", with: " "))") }
    }
case "dump":
    // One line per row of every FILE: verdict, score, findings (rule, severity, span, weight)
    // and the trainer's features (view digest, rules, concepts), for before/after comparisons
    // of a speed change (the output must not change).
    let shield = PromptShield(config: ShieldConfig(behaviorEnabled: false))
    var out = ""
    for file in args.dropFirst() {
        let data = try Data(contentsOf: URL(fileURLWithPath: file))
        for (i, row) in try Evaluation.parse(jsonl: data).enumerated() {
            let v = shield.inspectStatic(row.text)
            let f = shield.features(row.text)
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for b in f.view { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
            out += "\(file)#\(i) \(v.wouldBlock ? "BLOCK" : "allow") \(String(format: "%.17g", v.score)) view=\(f.view.count):\(String(h, radix: 16))"
            out += " rules=\(f.rules.joined(separator: ",")) concepts=\(f.concepts.joined(separator: ","))"
            for x in v.findings { out += " [\(x.ruleID):\(x.severity):\(x.span.lowerBound)-\(x.span.upperBound):\(String(format: "%.17g", x.weight))]" }
            out += "\n"
        }
    }
    FileHandle.standardOutput.write(out.data(using: .utf8)!)
case "check":
    let shield = PromptShield()
    print(shield.explain(args.dropFirst().joined(separator: " ")), terminator: "")
case "speed":
    var iterations = 0
    if let i = args.firstIndex(of: "--iterations"), i + 1 < args.count { iterations = Int(args[i + 1]) ?? 0 }
    // `--rules-only`: without the semantic layer (the severity rule), for a side-by-side row.
    var config = ShieldConfig()
    if args.contains("--rules-only") { config.semanticEnabled = false }
    let shield = PromptShield(config: config)
    // A realistic mixed prompt: English prose with code, a little French and Japanese, no attack.
    let base = """
    Please review the following function and explain why the tests fail on Linux. \
    def parse(x):  # type: ignore\n    return json.loads(x)\n\
    Merci de répondre en français si possible. 日本語の説明も歓迎します。データの「ノイズ」は無視して構いません。\
    The data has some noise; ignore the outliers in column 3 and summarise the trend. {"id": 42, "items": [1, 2, 3]} \n
    """
    func prompt(ofBytes n: Int) -> String {
        var s = ""
        while s.utf8.count < n { s += base }
        var b = Array(s.utf8.prefix(n))
        while let last = b.last, last & 0xC0 == 0x80 { b.removeLast() }
        if let last = b.last, last >= 0xC0 { b.removeLast() }
        return String(decoding: b, as: UTF8.self)
    }
    print("layers: structure, patterns, behavior\(shield.model != nil ? ", semantic" : " (rules only)")")
    print("| prompt | iterations | p50 µs | p99 µs | mean µs | MB/s (one core) |")
    print("|---|---:|---:|---:|---:|---:|")
    for (label, size) in [("200 B", 200), ("2 KB", 2048), ("32 KB", 32 * 1024), ("1 MB", 1 << 20)] {
        let text = prompt(ofBytes: size)
        let n = iterations > 0 ? iterations : max(20, min(20_000, 40_000_000 / size))
        var samples: [Double] = []
        samples.reserveCapacity(n)
        var key = 0
        for _ in 0..<10 { _ = shield.inspect(ShieldInput(texts: [InspectedText(role: .user, text: text)], keyID: "warm", now: Date()), mode: .enforce) }
        let total0 = monotonicSeconds()
        for _ in 0..<n {
            key &+= 1
            let input = ShieldInput(texts: [InspectedText(role: .user, text: text)], keyID: "k\(key % 5000)", now: Date(timeIntervalSince1970: Double(key)))
            let t0 = monotonicSeconds()
            let v = shield.inspect(input, mode: .enforce)
            samples.append(monotonicSeconds() - t0)
            if v.blocked { print("unexpected block: \(v.ruleIDs)"); exit(1) }
        }
        let total = monotonicSeconds() - total0
        samples.sort()
        let p50 = samples[samples.count / 2] * 1e6, p99 = samples[min(samples.count - 1, samples.count * 99 / 100)] * 1e6
        let mean = total / Double(n) * 1e6
        let mbs = Double(text.utf8.count) / 1e6 / (total / Double(n))
        print(String(format: "| %@ (%d B) | %d | %.1f | %.1f | %.1f | %.1f |", label, text.utf8.count, n, p50, p99, mean, mbs))
    }
case "profile":
    // Where the time of a 2 KB prompt goes: the whole static analysis (`features`: structure,
    // patterns, decoding, semantic view) and the n-gram scoring of the view, p50 of 20000 runs.
    let shield = PromptShield(config: ShieldConfig(behaviorEnabled: false))
    var s = ""
    while s.utf8.count < 2048 { s += "Please review the following function and explain why the tests fail on Linux. def parse(x):  # type: ignore\n    return json.loads(x)\n Merci de répondre en français si possible. 日本語の説明も歓迎します。 {\"id\": 42, \"items\": [1, 2, 3]} " }
    let text = String(s.prefix(2000))
    func p50(_ body: () -> Void) -> Double {
        var xs: [Double] = []
        for _ in 0..<20000 { let t0 = monotonicSeconds(); body(); xs.append(monotonicSeconds() - t0) }
        xs.sort(); return xs[xs.count / 2] * 1e6
    }
    let view = shield.features(text).view
    print(String(format: "features (structure+patterns+decoding+view): %.1f µs", p50 { _ = shield.features(text) }))
    if let m = shield.model {
        print(String(format: "n-gram scoring of the view (%d B): %.1f µs", view.count, p50 { _ = view.withUnsafeBufferPointer { m.ngramLogit(view: $0) } }))
        print(String(format: "concept scoring of the view (%d concept weights): %.1f µs", m.conceptWeights.count, p50 { _ = view.withUnsafeBufferPointer { m.conceptLogit(view: $0) } }))
    }
    print(String(format: "inspectStatic (all): %.1f µs", p50 { _ = shield.inspectStatic(text) }))
default:
    print("unknown command \(command)"); exit(2)
}
