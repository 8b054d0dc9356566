import Clocks
import ArgumentParser
import EngineSim
import Foundation
import Catalog
import Gateway
import Logging
import NIOCore
import NIOPosix
import OpenAIWire
import Storage
import Observability
import Sealing
import Tenancy

@main
struct LLMaaS: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llmaas",
        abstract: "A sovereign LLM-as-a-Service platform: an OpenAI-compatible gateway for a fleet of inference engines.",
        subcommands: [Serve.self, Migrate.self, TenantCommand.self, KeyCommand.self, AdminCommand.self, AuditCommand.self, ShieldCommand.self, UsageCommand.self, RequestsCommand.self, CreditCommand.self, SimCommand.self, ModelsCommand.self, MasterKeysCommand.self]
    )

    /// Swift concurrency's jobs run on NIO's event loops (the ones the server and the engine
    /// clients already use) instead of a separate thread pool: a request no longer hops between
    /// the two pools at every await on I/O (issue 16: most of the CPU per request was those hops).
    /// `LLMAAS_SWIFT_GLOBAL_EXECUTOR=1` keeps Swift's own pool (for comparison).
    static func main() async {
        if ProcessInfo.processInfo.environment["LLMAAS_SWIFT_GLOBAL_EXECUTOR"] != "1" {
            NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        }
        await main(nil)
    }
}

/// Options every subcommand shares: the config file and its environment overrides.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "Path of the YAML configuration file.")
    var config: String?

    func load() throws -> GatewayConfig {
        do {
            return try GatewayConfig.load(path: config)
        } catch let e as ConfigError {
            FileHandle.standardError.write(Data("llmaas: \(e)\n".utf8))
            throw ExitCode(2)
        }
    }
}

func makeLogger(_ label: String = "llmaas") -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = ProcessInfo.processInfo.environment["LLMAAS_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
    return logger
}

func fail(_ message: String, code: Int32 = 1) -> ExitCode {
    FileHandle.standardError.write(Data("llmaas: \(message)\n".utf8))
    return ExitCode(code)
}

/// What a CLI command works with: the database (migrated), keys, and the audit log (every
/// administrative change made from the CLI is audited with actor `cli`).
struct CLIContext {
    let storage: Storage
    let authority: KeyAuthority
    let audit: AuditLog
    let config: GatewayConfig
    /// Tenants, credit and keys: the service the admin API uses too.
    let admin: Administration
    /// The CLI's clock (every time it writes comes from here).
    let now: @Sendable () -> Int64

    func record(_ action: String, tenant: String?, target: String?, outcome: String = "ok") {
        audit.record(AuditEvent(time: now(), actor: "cli", tenantID: tenant, action: action,
                                target: target, outcome: outcome))
    }
}

/// The CLI's clock: the wall clock, the one every command reads (the composition root chooses it).
let cliClock: any PlatformClock = SystemClock()

/// Opens the database of a config, applies pending migrations (every subcommand does), runs
/// `body`, flushes the audit log and closes the database whatever happens.
func withCLI<T>(_ config: GatewayConfig, _ body: (CLIContext) async throws -> T) async throws -> T {
    try FileManager.default.createDirectory(atPath: config.dataDir, withIntermediateDirectories: true)
    let storage = try await openStorage(config)
    let audit = AuditLog(storage: storage, logger: makeLogger(), headPath: (config.dataDir as NSString).appendingPathComponent("audit.head"))
    do {
        try await storage.migrate(at: cliClock.now())
        try await audit.resume()
        let now: @Sendable () -> Int64 = { cliClock.now() }
        let keys: KeyHierarchy
        do { keys = KeyHierarchy(storage: storage, masters: try config.masterKeyRing(), now: now) } catch let e as ConfigError { throw fail("\(e)", code: 2) }
        let authority = KeyAuthority(storage: storage, secret: try ServerSecret.loadOrCreate(path: config.secretPath), now: now, sealer: keys)
        let admin = Administration(config: config, storage: storage, authority: authority, now: now)
        let result = try await body(CLIContext(storage: storage, authority: authority, audit: audit, config: config, admin: admin, now: now))
        await audit.flush()
        await storage.shutdown()
        return result
    } catch let e as TenancyError {
        await audit.flush()
        await storage.shutdown()
        throw fail(e.description)
    } catch {
        await audit.flush()
        await storage.shutdown()
        throw error
    }
}

/// Opens the configured database (SQLite or PostgreSQL); one that cannot be used is a
/// configuration error: exit code 2, naming the field.
func openStorage(_ config: GatewayConfig) async throws -> Storage {
    do {
        return try await config.openStorage(logger: makeLogger())
    } catch let e as ConfigError {
        throw fail("\(e)", code: 2)
    }
}

func printJSON(_ value: JSONValue) { print(value.jsonString) }

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway (and the managed local engines).")
    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let config = try options.load()
        do {
            try await GatewayServer.run(config: config, logger: makeLogger()) { line in
                print(line)
                fflush(stdout)
            }
        } catch let e as ConfigError {
            throw fail("\(e)", code: 2)
        } catch let e as CatalogError {
            throw fail("\(e)", code: 2)
        }
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending database migrations.")
    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let config = try options.load()
        let storage = try await openStorage(config)
        let applied = try await storage.migrate(at: cliClock.now())
        let version = try await storage.schemaVersion()
        await storage.shutdown()
        print(applied.isEmpty ? "schema is up to date (version \(version))" : "applied migrations \(applied.map(String.init).joined(separator: ", ")); schema version \(version)")
    }
}
