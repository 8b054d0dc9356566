import ArgumentParser
import Foundation
import Gateway
import Observability
import OpenAIWire
import Storage
import Tenancy

struct TenantCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tenant", abstract: "Manage tenants.",
                                                    subcommands: [Create.self, List.self, Update.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a tenant.")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Tenant name (letters, digits, '-', '_', '.').") var name: String
        @Option(help: "Billing tier: one of the configuration's tiers (default \(Administration.defaultTier)).") var tier: String = Administration.defaultTier
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let config = try options.load()
            guard config.tiers[tier] != nil else { throw fail("--tier must be one of: \(Administration.tierNames(config).joined(separator: ", "))", code: 2) }
            let tenant = try await withCLI(config) { cli in
                // The service gives the upfront credit that unlocks the tier (SPEC S4).
                let t = try await cli.admin.createTenant(name: name, tier: tier)
                cli.record("tenant.create", tenant: t.id, target: t.id)
                return t
            }
            if json {
                printJSON(.object([("id", .string(tenant.id)), ("name", .string(tenant.name)), ("tier", .string(tenant.tier))]))
            } else {
                print("created tenant \(tenant.name) (\(tenant.id)), tier \(tenant.tier)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tenants.")
        @OptionGroup var options: ConfigOptions

        func run() async throws {
            let tenants = try await withCLI(try options.load()) { try await $0.admin.tenants() }
            for t in tenants {
                print("\(t.id)\t\(t.name)\t\(t.tier)\t\(t.disabledAt == nil ? "active" : "disabled")\trotation=\(t.rotationPeriodDays.map { "\($0)d" } ?? "off")")
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a tenant's tier or settings, or disable it.")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Tenant name.") var name: String
        @Option(help: "Billing tier: one of the configuration's tiers.") var tier: String?
        @Option(name: .customLong("rotation-period-days"), help: "Automatic key rotation period (0 = off).") var rotationPeriod: Int?
        @Option(name: .customLong("grace-period-days"), help: "Overlap of a rotated key with its successor.") var gracePeriod: Int?
        @Option(name: .customLong("webhook-url"), help: "Where rotation and lifecycle notices are posted.") var webhook: String?
        @Option(name: .customLong("shield-mode"), help: "Prompt security: enforce, monitor, off.") var shieldMode: String?
        @Option(name: .customLong("experimental"), help: "Opt in to experimental models: true/false.") var experimental: Bool?
        @Option(name: .customLong("store-bodies"), help: "Request store: keep prompts and answers, encrypted: true/false (default false).") var storeBodies: Bool?
        @Option(name: .customLong("store-retention-days"), help: "Request store: days bodies are kept (0 = the configured default).") var storeRetention: Int?
        @Flag(help: "Disable the tenant: its keys stop working at once.") var disable = false
        @Flag(help: "Enable a disabled tenant.") var enable = false

        func run() async throws {
            let config = try options.load()
            if let tier, config.tiers[tier] == nil { throw fail("--tier must be one of: \(Administration.tierNames(config).joined(separator: ", "))", code: 2) }
            if let shieldMode, !["enforce", "monitor", "off"].contains(shieldMode) { throw fail("--shield-mode must be enforce, monitor or off", code: 2) }
            if let rotationPeriod, !(0...3650).contains(rotationPeriod) { throw fail("--rotation-period-days must be between 0 and 3650", code: 2) }
            if let gracePeriod, !(0...3650).contains(gracePeriod) { throw fail("--grace-period-days must be between 0 and 3650", code: 2) }
            if let storeRetention, !(0...3650).contains(storeRetention) { throw fail("--store-retention-days must be between 0 and 3650", code: 2) }
            if let webhook, !webhook.isEmpty {
                do { _ = try config.webhooks.validate(webhook) } catch { throw fail("--webhook-url: \(error.description)", code: 2) }
            }
            try await withCLI(config) { cli in
                var t = try await cli.admin.tenant(named: name)
                if let tier { t.tier = tier }
                if let rotationPeriod { t.rotationPeriodDays = rotationPeriod == 0 ? nil : rotationPeriod }
                if let gracePeriod { t.gracePeriodDays = gracePeriod }
                if let webhook { t.webhookURL = webhook.isEmpty ? nil : webhook }
                if let shieldMode { t.shieldMode = shieldMode }
                if let experimental { t.experimentalOptIn = experimental ? 1 : 0 }
                if let storeBodies { t.storeBodies = storeBodies ? 1 : 0 }
                if let storeRetention { t.storeRetentionDays = storeRetention == 0 ? nil : storeRetention }
                if disable { t.disabledAt = t.disabledAt ?? cli.now() }
                if enable { t.disabledAt = nil }
                try await cli.admin.updateTenant(t)
                cli.record("tenant.update", tenant: t.id, target: t.id)
                print("updated tenant \(t.name)")
            }
        }
    }
}

struct GrantOptions: ParsableArguments {
    @Option(name: .customLong("models"), help: "Allowed model glob (repeatable; '!glob' denies).") var models: [String] = []
    @Option(name: .customLong("deny-models"), help: "Denied model glob (repeatable).") var denyModels: [String] = []
    @Option(name: .customLong("endpoints"), help: "Allowed endpoints, comma-separated: chat,completions,embeddings,rerank,audio.") var endpoints: String?
    @Option(name: .customLong("allow-ip"), help: "Allowed client CIDR (repeatable).") var allowIPs: [String] = []
    @Option(name: .customLong("requests-per-minute"), help: "This key's own limit (under its tenant's tier).") var rpm: Int?
    @Option(name: .customLong("output-tokens-per-hour"), help: "This key's own limit.") var tph: Int?
    @Option(name: .customLong("output-tokens-per-day"), help: "This key's own limit.") var tpd: Int?
    @Option(name: .customLong("concurrent-requests"), help: "This key's own limit.") var concurrent: Int?

    var grants: Grants {
        let limits = KeyLimits(requestsPerMinute: rpm, outputTokensPerHour: tph, outputTokensPerDay: tpd, concurrentRequests: concurrent)
        return Grants(models: models, denyModels: denyModels, endpoints: endpoints?.split(separator: ",").map(String.init) ?? [], clientIPs: allowIPs,
                      limits: limits.isEmpty ? nil : limits)
    }
}

struct KeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "key", abstract: "Manage API keys.",
                                                    subcommands: [Create.self, List.self, Rotate.self, Revoke.self, Successor.self, SetGrants.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an API key for a tenant (the key is shown once).")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Tenant name.") var tenant: String
        @Option(help: "A name for the key.") var name: String = "default"
        @OptionGroup var grants: GrantOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (record, token) = try await withCLI(try options.load()) { cli in
                let created = try await cli.admin.createKey(tenantName: tenant, name: name, grants: grants.grants)
                cli.record("key.create", tenant: created.0.tenantID, target: created.0.id)
                return created
            }
            if json {
                printJSON(.object([("id", .string(record.id)), ("key", .string(token.text)), ("tenant", .string(tenant))]))
            } else {
                print("key \(record.id) for tenant \(tenant) (shown once): \(token.text)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a tenant's keys (never their secrets).")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Tenant name.") var tenant: String
        @Flag(help: "Print JSON (as GET /admin/v1/tenants/{id}/keys: state, times, grants; never a secret or its hash).") var json = false

        func run() async throws {
            try await withCLI(try options.load()) { cli in
                let keys = try await cli.admin.keys(tenantID: try await cli.admin.tenant(named: tenant).id)
                if json {
                    printJSON(cli.admin.keysJSON(keys))
                    return
                }
                for k in keys {
                    let state = k.revokedAt != nil ? "revoked" : k.successorID != nil ? "rotated→\(k.successorID!)" : "active"
                    print("\(APIKeyToken.prefix)\(k.id)\t\(k.name)\t\(state)\tgrants=\(k.grants ?? "all")")
                }
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rotate a key now: create its successor; the old key works for the grace period.")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Key id.") var id: String
        @Option(name: .customLong("grace-days"), help: "How long the old key keeps working (default: the tenant's grace period).") var graceDays: Double?

        func run() async throws {
            let event = try await withCLI(try options.load()) { cli in
                let e = try await cli.admin.rotate(keyID: id, graceMs: graceDays.map { Int64($0 * 86_400_000) })
                cli.record("key.rotate", tenant: e.tenantID, target: e.keyID, outcome: "successor \(e.successorID)")
                return e
            }
            print("rotated \(event.keyID) → \(event.successorID); fetch the successor once with 'llmaas key successor \(event.keyID)'")
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key (effective within one second on every gateway).")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Key id.") var id: String

        func run() async throws {
            try await withCLI(try options.load()) { cli in
                let k = try await cli.admin.revoke(keyID: id)
                cli.record("key.revoke", tenant: k.tenantID, target: k.id)
            }
            print("revoked \(id)")
        }
    }

    struct Successor: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a rotated key's successor (once: the secret is then erased).")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Key id of the rotated key.") var id: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (record, secret) = try await withCLI(try options.load()) { cli in
                let r = try await cli.admin.takeSuccessorSecret(keyID: id)
                cli.record("key.successor.fetch", tenant: r.0.tenantID, target: r.0.id)
                return r
            }
            if json { printJSON(.object([("id", .string(record.id)), ("key", .string(secret))])) } else { print(secret) }
        }
    }

    struct SetGrants: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "grants", abstract: "Replace a key's grants.")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Key id.") var id: String
        @OptionGroup var grants: GrantOptions

        func run() async throws {
            try await withCLI(try options.load()) { cli in
                let k = try await cli.admin.updateGrants(keyID: id, grants: grants.grants)
                cli.record("key.grants.update", tenant: k.tenantID, target: k.id)
            }
            print("updated grants of \(id)")
        }
    }
}

struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "admin", abstract: "Admin API tokens.", subcommands: [Token.self])

    struct Token: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Admin tokens.", subcommands: [Create.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create an admin token (shown once). With --tenant it administers that tenant only.")
            @OptionGroup var options: ConfigOptions
            @Option(help: "Restrict the token to one tenant.") var tenant: String?
            @Option(help: "A name for the token.") var name: String = "admin"
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                let (record, token) = try await withCLI(try options.load()) { cli in
                    let r = try await cli.admin.createAdminToken(name: name, tenantName: tenant)
                    cli.record("admin.token.create", tenant: r.0.tenantID, target: r.0.id)
                    return r
                }
                if json {
                    printJSON(.object([("id", .string(record.id)), ("token", .string(token)), ("tenant", record.tenantID.map(JSONValue.string) ?? .null)]))
                } else {
                    print("admin token \(record.id) (shown once): \(token)")
                }
            }
        }
    }
}

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "The tamper-evident audit log.", subcommands: [Verify.self, Export.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check the hash chain; exit 1 naming the first changed, deleted, inserted or reordered entry.")
        @OptionGroup var options: ConfigOptions

        func run() async throws {
            let config = try options.load()
            let storage = try await openStorage(config)
            let result: (checked: Int, firstBreak: AuditChain.Break?)
            do {
                result = try await AuditChain.verify(storage, head: AuditHead.read(path: (config.dataDir as NSString).appendingPathComponent("audit.head")))
            } catch {
                await storage.shutdown()
                throw error
            }
            await storage.shutdown()
            if let b = result.firstBreak {
                print("audit log BROKEN at \(b)")
                throw ExitCode(1)
            }
            print("audit log intact: \(result.checked) entries verified")
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Export audit entries as JSON lines or CSV.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Tenant name (default: all).") var tenant: String?
        @Option(help: "From (ms since epoch, inclusive).") var from: Int64 = 0
        @Option(help: "To (ms since epoch, exclusive).") var to: Int64 = Int64.max
        @Option(help: "jsonl or csv.") var format: String = "jsonl"

        func run() async throws {
            guard let f = AuditExport.Format(rawValue: format) else { throw fail("--format must be jsonl or csv", code: 2) }
            let text = try await withCLI(try options.load()) { cli -> String in
                var tenantID: String?
                if let tenant {
                    guard let t = try await cli.storage.tenant(named: tenant) else { throw TenancyError.notFound("tenant '\(tenant)' does not exist") }
                    tenantID = t.id
                }
                return AuditExport.render(try await cli.storage.auditEntries(tenantID: tenantID, from: from, to: to), f)
            }
            print(text, terminator: "")
        }
    }
}
