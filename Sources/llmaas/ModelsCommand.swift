import Clocks
import ArgumentParser
import Catalog
import Foundation
import Gateway
import OpenAIWire

/// `llmaas models [--lifecycle] [--date D] [--json]`: the catalog of the configuration, read from
/// its file (no server needed), with the lifecycle table and days left.
struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "Show the model catalog; with --lifecycle, every model's status, dates and days left.")

    @OptionGroup var options: ConfigOptions
    @Flag(help: "Print the lifecycle table (status, end of support, retirement, days left, successor).") var lifecycle = false
    @Option(help: "Compute for this day (YYYY-MM-DD, UTC) instead of today.") var date: String?
    @Flag(help: "Print JSON (with --lifecycle: the body of GET /v1/lifecycle).") var json = false

    func run() throws {
        let config = try options.load()
        let catalog: Catalog
        do {
            catalog = try CatalogFile.load(path: config.catalogPath)
        } catch let e as CatalogError {
            throw fail("\(e)", code: 2)
        }
        let today: Day
        if let date {
            guard let d = Day(date) else { throw fail("--date must be a day written YYYY-MM-DD, got '\(date)'", code: 2) }
            today = d
        } else {
            today = cliClock.today
        }
        if lifecycle {
            let report = LifecycleReport(catalog: catalog, on: today)
            if json { printJSON(report.json) } else { print(report.table, terminator: "") }
            return
        }
        if json {
            printJSON(catalog.modelsJSON(on: today))
            return
        }
        for e in catalog.entries {
            let aliases = e.aliases.isEmpty ? "" : " (\(e.aliases.joined(separator: ", ")))"
            let caps = e.capabilities.map(\.rawValue).sorted().joined(separator: ",")
            print("\(e.id)\(aliases)  \(e.developer)  [\(caps)]  ctx \(e.contextLength)  \(e.lifecycle(on: today).name)")
        }
    }
}
