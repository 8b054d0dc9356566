import ArgumentParser
import Foundation
import Shield

struct ShieldCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "shield", abstract: "Prompt security: explain a verdict, evaluate labelled sets, export training features.",
                                                    subcommands: [Check.self, Eval.self, Features.self])

    struct ModelOptions: ParsableArguments {
        @Option(help: "Blocking threshold (probability 0–1); default: the model's.") var threshold: Double?
        @Option(help: "A semantic model file instead of the bundled one.") var model: String?
        @Flag(help: "Without the semantic model (severity rule: high blocks, two medium rules block).") var noSemantic = false

        func shield() throws -> PromptShield {
            var c = ShieldConfig(behaviorEnabled: false)
            c.semanticEnabled = !noSemantic
            if let threshold {
                guard (0...1).contains(threshold) else { throw fail("--threshold must be between 0 and 1") }
                c.threshold = threshold
            }
            if let model {
                do { _ = try SemanticModel.load(path: model) } catch { throw fail("\(error)") }
                c.semanticModelPath = model
            }
            return PromptShield(config: c)
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Explain the verdict on one text (structure, pattern and semantic layers).")
        @Argument(help: "The text to inspect.") var text: String
        @OptionGroup var options: ModelOptions

        func run() async throws {
            print(try options.shield().explain(text))
        }
    }

    struct Eval: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Precision, detection and false-positive rates per split, language, kind and source, the threshold curve and throughput, on JSONL files of {text, label, lang[, kind, source]}. The split is the file name up to its first '-' or '.' (dev.jsonl: dev, heldout-de.jsonl: heldout).")
        @Argument(help: "JSONL files.") var files: [String]
        @OptionGroup var options: ModelOptions
        @Flag(help: "List the benign rows that were blocked.") var fp = false
        @Flag(help: "List attack rows that were missed (up to 200).") var missed = false

        func run() async throws {
            var rows: [Evaluation.Row] = []
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { throw fail("cannot read \(file)") }
                rows += try Evaluation.parse(jsonl: data, split: Evaluation.splitName(path: file))
            }
            let shield = try options.shield()
            let start = DispatchTime.now().uptimeNanoseconds
            let result = Evaluation.run(rows: rows, shield: shield) {
                Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            }
            print(result.table)
            if fp { for (t, r) in result.falsePositiveSamples { print("FP [\(r.joined(separator: ","))] \(t.prefix(300).replacingOccurrences(of: "\n", with: "\\n"))") } }
            if missed { for t in result.missedSamples { print("MISSED \(t.prefix(300).replacingOccurrences(of: "\n", with: "\\n"))") } }
        }
    }

    struct Features: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "For the trainer (scripts/train-shield.sh): one JSON line per row with the semantic view and the rule features the model sees.")
        @Argument(help: "JSONL files.") var files: [String]

        func run() async throws {
            let shield = PromptShield(config: ShieldConfig(behaviorEnabled: false), model: nil)
            var buffer = Data()
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { throw fail("cannot read \(file)") }
                let split = Evaluation.splitName(path: file)
                for row in try Evaluation.parse(jsonl: data, split: split) {
                    let f = shield.features(row.text)
                    let obj: [String: Any] = ["view": String(decoding: f.view, as: UTF8.self), "quoted": String(decoding: f.quoted, as: UTF8.self), "rules": f.rules, "concepts": f.concepts,
                                              "label": row.isAttack ? "attack" : "benign", "lang": row.lang,
                                              "kind": row.kind, "source": row.source, "split": split]
                    buffer += try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])
                    buffer.append(0x0A)
                }
            }
            FileHandle.standardOutput.write(buffer)
        }
    }
}
