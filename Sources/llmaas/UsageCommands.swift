import ArgumentParser
import Catalog
import Foundation
import Gateway
import Metering
import OpenAIWire
import Quotas
import Storage
import Tenancy

struct UsageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "usage", abstract: "Usage reports from the ledger.", subcommands: [Report.self])

    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A tenant's usage for one month (totals = the sum of the ledger rows).")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Tenant name.") var tenant: String
        @Option(help: "Month, YYYY-MM (UTC).") var month: String
        @Option(help: "table, csv or json.") var format: String = "table"
        @Option(name: .customLong("group-by"), help: "model, day, key or endpoint.") var groupBy: String = "model"
        @Option(name: .customLong("bucket-width"), help: "1h or 1d (json only): adds time buckets from the rollups, as /v1/usage?bucket_width=.")
        var bucketWidth: String?

        func run() async throws {
            guard let grouping = UsageReport.Grouping(rawValue: groupBy) else { throw fail("--group-by must be \(UsageReport.Grouping.choices)", code: 2) }
            guard ["table", "csv", "json"].contains(format) else { throw fail("--format must be table, csv or json", code: 2) }
            let parts = month.split(separator: "-").compactMap { Int($0) }
            guard parts.count == 2, (1...12).contains(parts[1]),
                  let start = DateComponents(calendar: Calendar(identifier: .gregorian), timeZone: TimeZone(identifier: "UTC"), year: parts[0], month: parts[1], day: 1).date
            else { throw fail("--month must be YYYY-MM", code: 2) }
            let from = Int64(start.timeIntervalSince1970 * 1000)
            let to = UTCMonth.nextMonthStartMs(after: from)
            if bucketWidth != nil && format != "json" { throw fail("--bucket-width needs --format json", code: 2) }
            let span: (width: UsageReport.BucketWidth, start: Int64, end: Int64)?
            do { span = try UsageReport.bucketSpan(bucketWidth, groupBy: grouping, from: from, to: to, now: cliClock.now()) } catch { throw fail("--\(error.param == "group_by" ? "group-by" : "bucket-width"): \(error.message)", code: 2) }
            let config = try options.load()
            // Model rows only for catalog models, as GET /v1/usage makes them.
            let catalog: Catalog
            do { catalog = try CatalogFile.load(path: config.catalogPath) } catch let e as CatalogError { throw fail("\(e)", code: 2) }
            let catalogID = { (name: String) in catalog.resolve(name)?.id }
            var buckets = JSONValue.object([])
            let rows = try await withCLI(config) { cli -> [RequestRecord] in
                guard let t = try await cli.storage.tenant(named: tenant) else { throw TenancyError.notFound("tenant '\(tenant)' does not exist") }
                let rows = try await cli.storage.ledger(tenantID: t.id, from: from, to: to)
                if let span { try await UsageReport.addBuckets(&buckets, span: span, storage: cli.storage, tenantID: t.id, groupBy: grouping, catalogID: catalogID) }
                return rows
            }
            switch format {
            case "csv": print(UsageReport.csv(rows, groupBy: grouping, catalogID: catalogID), terminator: "")
            case "json":
                var out = UsageReport.json(rows, groupBy: grouping, catalogID: catalogID)
                for k in ["bucket_width", "buckets"] { if let v = buckets[k] { out.set(k, v) } }
                print(out.jsonString)
            default: print(UsageReport.table(rows, groupBy: grouping, catalogID: catalogID), terminator: "")
            }
        }
    }
}

struct CreditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "credit", abstract: "Prepaid credit.", subcommands: [Add.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add prepaid credit to a tenant.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Tenant name.") var tenant: String
        @Option(help: "Amount in euros, e.g. 100.50.") var eur: String
        @Option(help: "A note for the ledger.") var note: String?

        func run() async throws {
            guard let amount = Metering.Cost(euroString: eur), amount.nanoEuros > 0 else { throw fail("--eur must be a positive amount of euros", code: 2) }
            try await withCLI(try options.load()) { cli in
                let t = try await cli.admin.tenant(named: tenant)
                let balance = try await cli.admin.addCredit(tenantID: t.id, amountNano: amount.nanoEuros, note: note)
                cli.record("credit.add", tenant: t.id, target: amount.euroString)
                print("added \(amount.euroString) € to \(tenant); balance \(Metering.Cost.euroString(balance)) €")
            }
        }
    }
}
