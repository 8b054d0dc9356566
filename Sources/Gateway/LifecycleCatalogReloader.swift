import Catalog
import Fleet
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Reloads the catalog on SIGHUP and when its file changes (mtime, size or inode, polled every
/// second). A bad file never replaces the catalog in service: the old one keeps serving and the
/// log says exactly which field is wrong. The decisions are `Catalog.CatalogWatcher`'s; this
/// service only owns the timer, the signal and the log.
public struct CatalogReloader: Service {
    let store: CatalogStore
    let path: String
    let pollInterval: Duration
    let validate: @Sendable (Catalog) -> CatalogError?
    let logger: Logger

    public init(store: CatalogStore, path: String, pollInterval: Duration = .seconds(1),
                validate: @escaping @Sendable (Catalog) -> CatalogError? = { _ in nil }, logger: Logger) {
        self.store = store
        self.path = path
        self.pollInterval = pollInterval
        self.validate = validate
        self.logger = logger
    }

    /// The reloader of a platform: its catalog file, and the check `Platform.init` makes at start
    /// (every backend's model must still be in the catalog).
    public init(platform: Platform, pollInterval: Duration = .seconds(1)) {
        let backends = platform.config.backends
        self.init(store: platform.catalog, path: platform.config.catalogPath, pollInterval: pollInterval,
                  validate: { CatalogReloader.missingBackendModel(backends, in: $0) }, logger: platform.logger)
    }

    static func missingBackendModel(_ backends: [BackendConfig], in catalog: Catalog) -> CatalogError? {
        for b in backends {
            for model in b.models.keys.sorted() where catalog.resolve(model) == nil {
                return CatalogError(path: "models", message: "'\(model)' is served by backend '\(b.name)' (backends[\(b.name)].models) but is no longer in the catalog; keep it, or remove it from the backend first")
            }
        }
        return nil
    }

    /// Runs until graceful shutdown, then returns normally (a service that throws on shutdown
    /// would make the whole group, and `llmaas serve`, end in error).
    public func run() async throws {
        let watcher = WatcherBox(CatalogWatcher(path: path, current: store.current, validate: validate))
        let signals = await UnixSignalsSequence(trapping: .sighup)
        let interval = pollInterval
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    // Ends when the task is cancelled (the sequence is an AsyncStream).
                    for await _ in signals {
                        apply(watcher.withLock { $0.reload() }, trigger: "SIGHUP")
                    }
                }
                group.addTask {
                    while true {
                        do { try await Task.sleep(for: interval) } catch { return }
                        apply(watcher.withLock { $0.poll() }, trigger: "file change")
                    }
                }
                await group.next()
                group.cancelAll()
            }
        }
    }

    /// Installs a good catalog, or logs why the file was refused (the old catalog stays).
    func apply(_ outcome: CatalogWatcher.Outcome, trigger: String) {
        switch outcome {
        case .unchanged:
            break
        case .reloaded(let catalog, let diff):
            store.replace(catalog)
            logger.info("catalog reloaded", metadata: [
                "trigger": .string(trigger), "path": .string(path),
                "models": .stringConvertible(catalog.entries.count), "changes": .string(diff.description),
            ])
        case .rejected(let error):
            logger.error("catalog NOT reloaded: the file is invalid; still serving the previous catalog", metadata: [
                "trigger": .string(trigger), "path": .string(path),
                "field": .string(error.path.hasPrefix(path + ": ") ? String(error.path.dropFirst(path.count + 2)) : error.path),
                "problem": .string(error.message),
                "models_in_service": .stringConvertible(store.current.entries.count),
            ])
        }
    }
}

/// The watcher shared by the signal and the poll loops; a reload holds the lock while it reads the
/// file, so two triggers never interleave.
private final class WatcherBox: Sendable {
    private let watcher: Mutex<CatalogWatcher>
    init(_ watcher: CatalogWatcher) { self.watcher = Mutex(watcher) }
    func withLock<T: Sendable>(_ body: (inout CatalogWatcher) -> T) -> T { watcher.withLock { body(&$0) } }
}
