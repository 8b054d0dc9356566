import Clocks
import Catalog
import Logging
import OpenAIWire
import ServiceLifecycle

/// Sends lifecycle notices (SPEC S7): when a model a tenant used in the last 30 days enters its
/// sunset window or is deprecated, the tenant gets one webhook per model and phase.
///
/// The decision is `NoticePlanner`'s (pure); this service runs it every `interval` against the
/// storage and delivery functions it is given, so it does not depend on how they are built.
/// Exactly once: a notice is **claimed** first (an insert into `lifecycle_notices` whose primary
/// key is tenant, model, phase; it fails when another run or replica claimed it) and only the
/// claimer delivers it. A failed delivery leaves the row undelivered for `deliver` to retry —
/// it is never planned twice.
public struct LifecycleNoticeService: Service {
    /// What a tenant called in the usage window.
    public struct Usage: Sendable {
        public var tenantID: String
        /// The name catalog extensions are granted to.
        public var tenantName: String
        /// Model names as recorded (ids or aliases).
        public var models: Set<String>

        public init(tenantID: String, tenantName: String, models: Set<String>) {
            self.tenantID = tenantID; self.tenantName = tenantName; self.models = models
        }
    }

    /// The storage the service needs (Storage owns the SQL).
    public struct Store: Sendable {
        /// Tenants and the models they called since `sinceMs` (Unix ms).
        public var usageSince: @Sendable (_ sinceMs: Int64) async throws -> [Usage]
        /// Every notice key already claimed.
        public var claimedKeys: @Sendable () async throws -> Set<NoticeKey>
        /// Inserts the notice (key, dates, JSON payload); false when the key already exists.
        public var claim: @Sendable (_ notice: LifecycleNotice, _ nowMs: Int64) async throws -> Bool

        public init(usageSince: @escaping @Sendable (Int64) async throws -> [Usage],
                    claimedKeys: @escaping @Sendable () async throws -> Set<NoticeKey>,
                    claim: @escaping @Sendable (LifecycleNotice, Int64) async throws -> Bool) {
            self.usageSince = usageSince; self.claimedKeys = claimedKeys; self.claim = claim
        }
    }

    let catalog: CatalogStore
    let store: Store
    let deliver: @Sendable (LifecycleNotice) async throws -> Void
    let clock: any PlatformClock
    let interval: Duration
    let logger: Logger

    public init(catalog: CatalogStore, store: Store, clock: any PlatformClock, interval: Duration = .seconds(3600),
                logger: Logger, deliver: @escaping @Sendable (LifecycleNotice) async throws -> Void) {
        self.catalog = catalog
        self.store = store
        self.clock = clock
        self.interval = interval
        self.logger = logger
        self.deliver = deliver
    }

    /// Runs a pass now and every `interval` until graceful shutdown, then returns normally.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    _ = try await runOnce()
                } catch is CancellationError {
                    return
                } catch {
                    logger.error("lifecycle notices: run failed, will retry", metadata: ["error": .string("\(error)")])
                }
                do { try await Task.sleep(for: interval) } catch { return }
            }
        }
    }

    /// One pass: plan, claim, deliver. Returns the notices this pass claimed.
    @discardableResult
    public func runOnce() async throws -> [LifecycleNotice] {
        let nowMs = clock.now()
        let today = clock.today
        let since = nowMs - Int64(NoticePlanner.usageWindowDays) * 86_400_000
        let usage = try await store.usageSince(since)
        let sent = try await store.claimedKeys()
        let current = catalog.current
        var claimed: [LifecycleNotice] = []
        for u in usage {
            for notice in NoticePlanner.plan(tenant: u.tenantID, tenantName: u.tenantName, modelsUsed: u.models,
                                             catalog: current, on: today, alreadySent: sent) {
                guard try await store.claim(notice, nowMs) else { continue }
                claimed.append(notice)
                do {
                    try await deliver(notice)
                    logger.info("lifecycle notice sent", metadata: [
                        "tenant": .string(notice.tenant), "model": .string(notice.model), "phase": .string(notice.phase.rawValue),
                    ])
                } catch {
                    logger.warning("lifecycle notice claimed but not delivered; the delivery retries it", metadata: [
                        "tenant": .string(notice.tenant), "model": .string(notice.model), "phase": .string(notice.phase.rawValue),
                        "error": .string("\(error)"),
                    ])
                }
            }
        }
        return claimed
    }
}
