import Synchronization

/// The simulated GPU of one EngineSim: a continuous-batching scheduler (at most `maxBatch`
/// sequences decode at once, the rest wait FIFO), a prefix-cached KV store of `kvBlocks`
/// blocks, and, for Ollama mode, the set of models resident in memory. All times it produces
/// are SIMULATED (sleeps), not measured on a model.
final class SimScheduler: Sendable {
    struct State {
        var running = 0
        var waiting: [(id: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
        var nextID: UInt64 = 0
        /// KV blocks held by running sequences.
        var activeBlocks = 0
        /// Prefix cache: chained block hash → last use.
        var cache: [UInt64: UInt64] = [:]
        var clock: UInt64 = 0
        /// Ollama: resident model → last use; models being loaded.
        var resident: [String: UInt64] = [:]
        var loading: [String: [CheckedContinuation<Bool, Never>]] = [:]
        var busyByModel: [String: Int] = [:]
        /// Models marked for unloading: no new work starts on them (as Ollama does).
        var draining: Set<String> = []
        // Counters (tokens) for /metrics and /sim/stats.
        var promptTokens = 0
        var cachedTokens = 0
        var coldLoads = 0
    }

    let config: SimConfig
    let state = Mutex(State())

    init(config: SimConfig) {
        self.config = config
        if config.mode == .ollama {
            let initial = config.initiallyResident ?? Array(config.models.prefix(config.maxResident == 0 ? config.models.count : config.maxResident))
            state.withLock { s in for m in initial { s.resident[m] = 0 } }
        }
    }

    var snapshot: State { state.withLock { $0 } }

    /// Forgets everything a restart loses: cache, resident models, queue counters stay.
    func reset() {
        state.withLock { s in
            s.cache = [:]
            if config.mode == .ollama {
                s.resident = [:]
                for m in config.initiallyResident ?? [] { s.resident[m] = 0 }
            }
        }
    }

    // MARK: Batch slots

    /// Waits for a decode slot (the engine's queue: this is why TTFT grows with load).
    func acquire() async {
        guard config.maxBatch > 0 else { state.withLock { $0.running += 1 }; return }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let go = state.withLock { s -> Bool in
                if s.running < config.maxBatch && s.waiting.isEmpty {
                    s.running += 1
                    return true
                }
                s.nextID += 1
                s.waiting.append((s.nextID, c))
                return false
            }
            if go { c.resume() }
        }
    }

    func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if !s.waiting.isEmpty {
                return s.waiting.removeFirst().continuation  // the slot passes on: running unchanged
            }
            s.running -= 1
            return nil
        }
        next?.resume()
    }

    /// Inter-token latency at the current batch size.
    var currentITL: Double {
        let running = state.withLock { $0.running }
        return Double(config.itlMs) * (1 + config.batchSlowdown * Double(max(0, running - 1)))
    }

    // MARK: KV cache

    /// Chained hashes of the prompt's full blocks of `blockTokens` tokens (words).
    func blockHashes(_ prompt: String) -> [UInt64] {
        let bt = max(1, config.blockTokens)
        var hashes: [UInt64] = []
        var h: UInt64 = 0xcbf29ce484222325
        var n = 0
        for word in prompt.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }) {
            for b in word.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
            h = (h ^ 0x20) &* 0x100000001b3
            n += 1
            if n == bt { hashes.append(h); n = 0 }
        }
        return hashes
    }

    /// Looks the prompt up in the prefix cache, stores its blocks, reserves its KV blocks, and
    /// returns the prompt tokens that must be computed (the rest were cached).
    func admitPrompt(_ prompt: String, promptTokens: Int, maxTokens: Int) -> (uncached: Int, blocks: Int) {
        let hashes = config.kvBlocks > 0 ? blockHashes(prompt) : []
        let bt = max(1, config.blockTokens)
        let blocks = (promptTokens + maxTokens + bt - 1) / bt
        return state.withLock { s in
            var hit = 0
            for h in hashes {
                guard s.cache[h] != nil else { break }
                hit += 1
            }
            s.clock += 1
            for h in hashes { s.cache[h] = s.clock }
            if s.cache.count > config.kvBlocks, config.kvBlocks > 0 {
                // Evict the least recently used tenth.
                let stamps = s.cache.values.sorted()
                let cut = stamps[min(stamps.count - 1, max(s.cache.count - config.kvBlocks, stamps.count / 10))]
                s.cache = s.cache.filter { $0.value > cut }
            }
            let cached = min(promptTokens, hit * bt)
            s.promptTokens += promptTokens
            s.cachedTokens += cached
            s.activeBlocks += blocks
            return (promptTokens - cached, blocks)
        }
    }

    func releaseBlocks(_ n: Int) { state.withLock { $0.activeBlocks -= n } }

    var kvUsage: Double {
        guard config.kvBlocks > 0 else { return 0 }
        return min(1, Double(state.withLock { $0.activeBlocks }) / Double(config.kvBlocks))
    }

    // MARK: Resident models (Ollama)

    /// Makes `model` resident, loading it (a cold load of `loadMs`, evicting the least recently
    /// used idle model) when needed. Returns the load time spent, in ms.
    func ensureResident(_ model: String) async -> Int {
        guard config.mode == .ollama else { return 0 }
        enum Step { case ready, join, load }
        let start = ContinuousClock.now
        while true {
            let step = state.withLock { s -> Step in
                s.clock += 1
                if s.resident[model] != nil && !s.draining.contains(model) {
                    s.resident[model] = s.clock
                    s.busyByModel[model, default: 0] += 1
                    return .ready
                }
                if s.loading[model] != nil || s.resident[model] != nil { return .join }
                if config.maxResident > 0 && s.resident.count >= config.maxResident {
                    // Evict the least recently used idle model; if all are busy, mark the least
                    // recently used one for unloading (no new work on it) and wait for it to drain.
                    let idle = s.resident.filter { (s.busyByModel[$0.key] ?? 0) == 0 }
                    guard let victim = idle.min(by: { $0.value < $1.value }) else {
                        if s.draining.isEmpty, let lru = s.resident.min(by: { $0.value < $1.value }) { s.draining.insert(lru.key) }
                        return .join
                    }
                    s.resident.removeValue(forKey: victim.key)
                    s.draining.remove(victim.key)
                }
                s.loading[model] = []
                s.coldLoads += 1
                return .load
            }
            switch step {
            case .ready:
                let c = (ContinuousClock.now - start).components
                return Int(c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000)
            case .join:
                let joined = await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                    let wait = state.withLock { s -> Bool in
                        guard s.loading[model] != nil else { return false }
                        s.loading[model]!.append(c)
                        return true
                    }
                    if !wait { c.resume(returning: false) }
                }
                if !joined { try? await Task.sleep(for: .milliseconds(20)) }  // all resident models busy: poll
            case .load:
                try? await Task.sleep(for: .milliseconds(config.loadMs))
                let waiters = state.withLock { s -> [CheckedContinuation<Bool, Never>] in
                    s.clock += 1
                    s.resident[model] = s.clock
                    return s.loading.removeValue(forKey: model) ?? []
                }
                for w in waiters { w.resume(returning: true) }
            }
        }
    }

    func doneWith(_ model: String) {
        guard config.mode == .ollama else { return }
        state.withLock { $0.busyByModel[model, default: 1] -= 1 }
    }

    var residentModels: [String] { state.withLock { Array($0.resident.keys).sorted() } }
}

