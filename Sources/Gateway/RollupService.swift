import Foundation
import Logging
import ServiceLifecycle
import Storage

/// Rolls the usage ledger up per minute and per hour (``Storage/rollUp(now:lagMs:minuteRetentionMs:hourRetentionMs:)``)
/// every `rollups.interval_seconds` on the platform clock, and applies the rollups' retention.
/// A minute is rolled up once it ended `rollups.lag_seconds` ago; a ledger row written later
/// (a long request, a slow batch) marks its minute dirty again and the next pass recomputes it.
/// Tests call ``step()`` on a ``ManualClock``.
public struct RollupService: Service {
    public let platform: Platform

    public init(platform: Platform) { self.platform = platform }

    public func run() async throws {
        let interval = Int64(platform.config.rollups.intervalSeconds) * 1000
        await withGracefulShutdownHandler {
            var next = platform.now()
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                let deadline = next
                do { try await cancelWhenGracefulShutdown { try await platform.clock.sleep(untilMs: deadline) } } catch { break }
                await step()
                next = max(next + interval, platform.now())
            }
        } onGracefulShutdown: {}
    }

    /// One pass at the clock's now.
    @discardableResult
    public func step() async -> RollupReport? {
        let c = platform.config.rollups
        do {
            return try await platform.storage.rollUp(now: platform.now(), lagMs: Int64(c.lagSeconds) * 1000,
                                                     minuteRetentionMs: Int64(c.minuteRetentionHours) * 3_600_000,
                                                     hourRetentionMs: Int64(c.retentionDays) * 86_400_000)
        } catch {
            platform.logger.error("rollup pass failed", metadata: ["error": "\(error)"])
            return nil
        }
    }
}
