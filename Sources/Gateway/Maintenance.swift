import Foundation
import Logging
import Observability
import ServiceLifecycle

/// Periodic work off the request path: automatic key rotation (with audit entries and webhooks),
/// last-used times of keys (one batch instead of a write per request), audit retention, request
/// store retention (crypto-shredding of data keys past each tenant's retention).
struct Maintenance: Service {
    let platform: Platform

    func run() async throws {
        await withGracefulShutdownHandler {
            var lastPurge: Int64 = 0
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                let purge = platform.now() - lastPurge > 3_600_000  // retention: once an hour
                await tick(purge: purge)
                if purge { lastPurge = platform.now() }
                // Sleeping must not hold up a graceful shutdown.
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(platform.config.maintenanceIntervalSeconds)) }
            }
        } onGracefulShutdown: {}
        try? await platform.storage.touchKeys(platform.authority.drainLastUsed())
    }

    func tick(purge: Bool) async {
        do {
            for event in try await platform.authority.rotateDueKeys() {
                platform.audit.record(AuditEvent(time: platform.now(), actor: "system", tenantID: event.tenantID, action: "key.rotate",
                                                 target: event.keyID, outcome: "successor \(event.successorID)"))
                Webhooks(platform: platform).rotated(event)
            }
            try await platform.storage.touchKeys(platform.authority.drainLastUsed())
            platform.authFailures.flush(now: platform.now())
            if purge {
                let cutoff = platform.now() - Int64(platform.config.auditRetentionDays) * 86_400_000
                if let seq = try await platform.audit.purge(before: cutoff) {
                    platform.logger.info("audit retention: purged entries up to \(seq)")
                }
                // Request store retention: destroy the data keys of days past each tenant's
                // retention (crypto-shredding) and delete their bodies. Counts only, never text.
                for (tenantID, r) in try await platform.requestBrowser.applyRetention() {
                    platform.audit.record(AuditEvent(time: platform.now(), actor: "system", tenantID: tenantID, action: "request_store.retention",
                                                     target: tenantID, outcome: "keys=\(r.keysDestroyed) bodies=\(r.bodiesDeleted)"))
                }
            }
        } catch {
            platform.logger.error("maintenance failed", metadata: ["error": "\(error)"])
        }
    }
}
