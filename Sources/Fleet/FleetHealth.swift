import Foundation
import OpenAIWire

/// Active health checks: each backend probed at its own interval; a probe feeds the breaker,
/// revives a backend whose cooldown is over, and reads the load figures the engine reports.
extension Fleet {
    /// Probes every backend forever, each at its own `probe_interval_ms` (run as a service task;
    /// ends when cancelled).
    public func runHealthChecks() async {
        await withDiscardingTaskGroup { group in
            for i in engines.indices {
                group.addTask {
                    while !Task.isCancelled {
                        await self.probeBackend(i)
                        try? await Task.sleep(for: .milliseconds(self.engines[i].config.probeIntervalMs))
                    }
                }
            }
        }
    }

    /// One probe round over every backend (tests call this instead of waiting for the loop).
    public func probeAll() async {
        await withDiscardingTaskGroup { group in
            for i in engines.indices { group.addTask { await self.probeBackend(i) } }
        }
    }

    func probeBackend(_ i: Int) async {
        let engine = engines[i]
        // Requests in flight tell more than a probe can (their outcomes feed the breaker); an
        // engine that serves one request at a time (llama.cpp) is not probed meanwhile at all.
        if engine.adapter.servesOneAtATime && state.withLock({ $0.backends[i].inFlight > 0 && $0.backends[i].breaker.isClosed }) { return }
        let result = await engine.probe(timeoutMs: 2000)  // probes run one after another: a short interval needs no short timeout
        let now = clock.now()
        let revived = state.withLock { s -> Bool in
            var b = s.backends[i]
            // A probe that fails while the backend is busy answering us is not a failure: a loaded
            // engine answers probes late; a broken one fails the requests themselves.
            if !result.ok && b.inFlight > 0 && b.breaker.isClosed {
                b.noteError("health probe while busy (ignored): \(result.detail)", at: now)
                s.backends[i] = b
                return false
            }
            b.lastProbeOK = result.ok
            b.lastProbeAt = now
            var revived = false
            if result.ok {
                b.metrics = result.metrics
                if let resident = result.resident { b.resident = resident }
                b.breaker.tick(nowMs: now)
                switch b.breaker.state {
                case .halfOpen:
                    b.breaker.success()
                    revived = true
                case .closed(let n) where n > 0:
                    b.breaker.success()
                case .closed, .open:
                    break  // open: still cooling down; the next probe after the cooldown closes it
                }
            } else {
                b.noteError("health probe: \(result.detail)", at: now)
                b.breaker.failure(nowMs: now)
                b.metrics = nil
            }
            s.backends[i] = b
            if revived { s.prefix.forget(backend: i) }  // a restarted engine has an empty KV cache
            return revived
        }
        if revived {
            logger.info("backend healthy again", metadata: ["backend": "\(engine.name)"])
            waiters.wakeAll()
        }
    }

    /// True when the engine answers its health check.
    public func probe(_ engine: Engine, timeoutMs: Int = 2000) async -> Bool {
        await engine.probe(timeoutMs: timeoutMs).ok
    }

    /// True when at least one engine answers.
    public func anyReady() async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            for engine in engines { group.addTask { await self.probe(engine) } }
            for await ok in group where ok {
                group.cancelAll()
                return true
            }
            return false
        }
    }
}
