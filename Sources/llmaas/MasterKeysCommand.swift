import ArgumentParser
import Foundation
import Gateway
import Observability
import Sealing
import Storage

/// `llmaas keys new-master|rotate-master|status`: the master key of encryption at rest
/// (docs/OPERATIONS.md, "Rotating the master key").
struct MasterKeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "keys", abstract: "The master key of encryption at rest.",
                                                    subcommands: [NewMaster.self, RotateMaster.self, Status.self])

    struct NewMaster: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "new-master", abstract: "Write a new random master key file (32 bytes, mode 0600); never overwrites.")
        @Option(help: "Path of the new key file.") var out: String
        @Flag(help: "Also print it as base64 (for LLMAAS_MASTER_KEY / a Kubernetes Secret).") var base64 = false

        func run() async throws {
            do {
                let key = try MasterKey.create(path: out)
                print("new master key \(key.id) written to \(out)")
                if base64, let data = FileManager.default.contents(atPath: out) { print(data.base64EncodedString()) }
            } catch let e as SealingError {
                throw fail(e.description, code: 2)
            }
        }
    }

    struct RotateMaster: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-master",
            abstract: "Re-wrap every data key under the master key of the config (encryption.master_key_file or LLMAAS_MASTER_KEY).",
            discussion: """
            Give the new key as the master key and the old one in encryption.previous_master_key_files
            (or LLMAAS_PREVIOUS_MASTER_KEYS), the same as the running replicas have: they keep serving
            while the keys are re-wrapped. When it reports 0 remaining, drop the previous key everywhere.
            """)
        @OptionGroup var options: ConfigOptions
        @Option(help: "Data keys per round trip.") var batch: Int = 500

        func run() async throws {
            let config = try options.load()
            try await withCLI(config) { cli in
                guard let keys = cli.authority.sealer else { throw fail("no key hierarchy", code: 1) }
                let resealed = try await cli.authority.resealLegacySecrets()
                let report = try await keys.rewrap(batch: max(1, batch))
                cli.record("encryption.rotate_master", tenant: nil, target: keys.masters.primary.id,
                           outcome: "rewrapped \(report.rewrapped), remaining \(report.remaining)")
                print("master key \(keys.masters.primary.id): re-wrapped \(report.rewrapped) data keys; \(report.remaining) remain under another master key")
                if resealed.successorKeys + resealed.webhookSecrets > 0 {
                    print("re-sealed under the key hierarchy: \(resealed.successorKeys) successor keys, \(resealed.webhookSecrets) webhook secrets")
                }
                if !report.unopenable.isEmpty {
                    throw fail("\(report.unopenable.count) data keys open with none of the master keys given (e.g. \(report.unopenable[0])); add the master key they were made with to encryption.previous_master_key_files and run again",
                               code: 1)
                }
                if report.remaining == 0 && !keys.masters.previous.isEmpty {
                    print("done: every data key is under \(keys.masters.primary.id); remove the previous master key(s) from every replica's configuration")
                }
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Which master keys the live data keys are wrapped under.")
        @OptionGroup var options: ConfigOptions

        func run() async throws {
            let config = try options.load()
            try await withCLI(config) { cli in
                guard let keys = cli.authority.sealer else { return }
                print("master key in use: \(keys.masters.primary.id)")
                for id in keys.masters.previous.map(\.id) { print("previous master key accepted: \(id)") }
                for id in try await cli.storage.liveDataKeyMasterIDs() { print("data keys wrapped under: \(id ?? "(before master ids)")") }
            }
        }
    }
}
