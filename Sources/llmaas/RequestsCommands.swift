import ArgumentParser
import Foundation
import Gateway
import Observability
import OpenAIWire
import Storage
import Tenancy

/// `llmaas requests list|show|shred`: the request store from the command line (operator access to
/// the database; the same service as `/admin/v1/requests`).
struct RequestsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "requests", abstract: "Browse the request store (ledger rows, stored bodies).",
                                                    subcommands: [List.self, Show.self, Shred.self])

    static func browser(_ cli: CLIContext) throws -> RequestBrowser {
        let store = RequestStore(keys: try cli.authority.sealer ?? KeyHierarchy(storage: cli.storage, masters: try cli.config.masterKeyRing(), now: cli.now),
                                 maxBodyBytes: cli.config.requestStore.maxBodyBytes, now: cli.now, logger: makeLogger())
        return RequestBrowser(storage: cli.storage, store: store, defaultRetentionDays: cli.config.requestStore.defaultRetentionDays)
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List ledger rows, newest first.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Tenant name.") var tenant: String?
        @Option(help: "Model id.") var model: String?
        @Option(help: "API key id.") var key: String?
        @Option(help: "Status code (200) or class (2xx, 4xx, 5xx).") var status: String?
        @Option(help: "From, milliseconds since the epoch.") var from: Int64?
        @Option(help: "To (exclusive), milliseconds since the epoch.") var to: Int64?
        @Option(help: "At most this many rows (1-500).") var limit: Int = 50
        @Option(help: "next_cursor of the previous page.") var cursor: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            guard (1...RequestBrowser.maxLimit).contains(limit) else { throw fail("--limit must be between 1 and \(RequestBrowser.maxLimit)", code: 2) }
            var query = RequestBrowser.Query(from: from, to: to, model: model, keyID: key, cursor: cursor, limit: limit)
            if let status {
                if status.count == 3, status.hasSuffix("xx"), let c = Int(status.prefix(1)), (1...5).contains(c) { query.statusClass = c }
                else if let s = Int(status), (100...599).contains(s) { query.status = s }
                else { throw fail("--status must be a status code (200) or a class (2xx, 4xx, 5xx)", code: 2) }
            }
            let page = try await withCLI(try options.load()) { cli -> RequestBrowser.Page in
                if let tenant { query.tenantID = try await cli.admin.tenant(named: tenant).id }
                do { return try await RequestsCommand.browser(cli).list(query, scope: nil) } catch let e as APIError { throw fail(e.message, code: 2) }
            }
            if json { printJSON(RequestBrowser.pageJSON(page)); return }
            for r in page.rows {
                print("\(r.id)\t\(r.createdAt)\t\(r.tenantID ?? "-")\t\(r.keyID ?? "-")\t\(r.model)\t\(r.status)\t\(r.outcome)\t\(r.promptTokens)+\(r.completionTokens) tok\t\(r.latencyMs) ms\(page.withBodies.contains(r.id) ? "\tbody" : "")")
            }
            if let next = page.nextCursor { print("more: --cursor \(next)") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One request: its ledger row and, if stored, its decrypted prompt and answer.")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Request id.") var id: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let detail = try await withCLI(try options.load()) { cli -> RequestBrowser.Detail? in
                let d = try await RequestsCommand.browser(cli).detail(id: id, scope: nil)
                if let d, d.bodies.state == .available { cli.record("request.body.read", tenant: d.record.tenantID, target: d.record.id) }
                return d
            }
            guard let detail else { throw fail("request '\(id)' does not exist") }
            if json { printJSON(RequestBrowser.detailJSON(detail)); return }
            let r = detail.record
            print("request \(r.id)  tenant \(r.tenantID ?? "-")  key \(r.keyID ?? "-")  model \(r.model)  status \(r.status) (\(r.outcome))")
            print("bodies: \(detail.bodies.state.rawValue)")
            if let p = detail.bodies.prompt { print("--- prompt\(detail.bodies.promptTruncated ? " (truncated)" : "")\n\(p)") }
            if let a = detail.bodies.response { print("--- answer\(detail.bodies.responseTruncated ? " (truncated)" : "")\n\(a)") }
        }
    }

    struct Shred: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Crypto-shred a tenant's stored bodies: destroy all its data keys, delete the ciphertext (ledger rows stay).")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Tenant name.") var tenant: String

        func run() async throws {
            let result = try await withCLI(try options.load()) { cli -> RequestStore.ShredResult in
                let t = try await cli.admin.tenant(named: tenant)
                let r = try await RequestsCommand.browser(cli).shred(tenantID: t.id)
                cli.record("request_store.shred", tenant: t.id, target: t.id, outcome: "keys=\(r.keysDestroyed) bodies=\(r.bodiesDeleted)")
                return r
            }
            print("shredded tenant \(tenant): \(result.keysDestroyed) data keys destroyed, \(result.bodiesDeleted) bodies deleted")
        }
    }
}
