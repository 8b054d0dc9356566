import ArgumentParser
import Foundation
import Shield

struct ShieldCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "shield", abstract: "Prompt security: explain a verdict, evaluate a labelled set.",
                                                    subcommands: [Check.self, Eval.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Explain the verdict on one text (structure and pattern layers).")
        @Argument(help: "The text to inspect.") var text: String

        func run() async throws {
            print(PromptShield().explain(text))
        }
    }

    struct Eval: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Detection and false-positive rates per language and source, and throughput, on a JSONL file of {text, label, lang[, source]}.")
        @Argument(help: "JSONL file.") var file: String

        func run() async throws {
            guard let data = FileManager.default.contents(atPath: file) else { throw fail("cannot read \(file)") }
            let rows = try Evaluation.parse(jsonl: data)
            let start = DispatchTime.now().uptimeNanoseconds
            let result = Evaluation.run(rows: rows, shield: PromptShield(config: ShieldConfig(behaviorEnabled: false))) {
                Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            }
            print(result.table)
        }
    }
}
