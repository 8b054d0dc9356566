// The behavior layer (SPEC S6.3): a window of recent prompts per API key, shared by every
// worker of the gateway (one Mutex; the critical section copies a few hundred bytes).
//   behavior.fragmentation  an attack rule that matches only across the concatenation of
//                           the key's recent prompts and the current one (its match starts in
//                           an earlier prompt and ends in the current one)
//   behavior.repetition     the Nth consecutive identical prompt (N = repetitionThreshold, 30)
// Memory is bounded: windowSize prompts of at most fragmentBytes each per key, at most
// maxKeys keys; when full, the least recently seen eighth is evicted. Entries older than
// windowMaxAge are ignored and dropped.

import Foundation
import Synchronization

final class BehaviorWindow: Sendable {
    struct Prompt {
        var at: Date
        var head: [UInt8]
    }
    struct Entry {
        var prompts: [Prompt] = []
        var lastDigest: UInt64 = 0
        var repeatCount = 0
        var lastSeen: Date
    }
    struct State {
        var entries: [String: Entry] = [:]
    }

    let config: ShieldConfig
    private let state = Mutex(State())

    init(config: ShieldConfig) { self.config = config }

    var trackedKeys: Int { state.withLock { $0.entries.count } }

    /// Record the current prompt and return behavior findings. `heads` are the normalized
    /// heads of the inspected texts (in order), `indices` their indices in the input.
    func observe(key: String, now: Date, heads: [[UInt8]], indices: [Int], digest: UInt64,
                 engine: PatternEngine, sharedRepeats: Int? = nil) -> [ShieldFinding] {
        var current: [UInt8] = []
        var starts: [(Int, Int)] = []    // (offset in current, text index)
        for (h, idx) in zip(heads, indices) {
            if !current.isEmpty { current.append(0x20) }
            starts.append((current.count, idx))
            current += h
        }
        let maxAge = config.windowMaxAge
        let (previous, repeats): ([[UInt8]], Int) = state.withLock { st in
            if st.entries[key] == nil && st.entries.count >= config.maxKeys { Self.evict(&st, now: now, maxAge: maxAge) }
            // Taken out while it changes: a copy would share its prompts with the stored entry and
            // copy them on the first change (issue 16).
            var e = st.entries.removeValue(forKey: key) ?? Entry(lastSeen: now)
            e.prompts.removeAll { now.timeIntervalSince($0.at) > maxAge }
            let prev = e.prompts.map(\.head)
            if digest == e.lastDigest && e.repeatCount > 0 && now.timeIntervalSince(e.lastSeen) <= maxAge {
                e.repeatCount += 1
            } else {
                e.repeatCount = 1
                e.lastDigest = digest
            }
            e.prompts.append(Prompt(at: now, head: current))
            if e.prompts.count > config.windowSize { e.prompts.removeFirst(e.prompts.count - config.windowSize) }
            e.lastSeen = now
            st.entries[key] = e
            return (prev, e.repeatCount)
        }
        var out: [ShieldFinding] = []
        let firstIndex = indices.first ?? 0
        if (sharedRepeats ?? repeats) >= config.repetitionThreshold {
            out.append(ShieldFinding(ruleID: "behavior.repetition", layer: .behavior, severity: .high,
                                     textIndex: firstIndex, span: 0..<0))
        }
        guard !previous.isEmpty else { return out }
        // Fragmentation: previous prompts (oldest first) + current, separated by spaces.
        var joined: [UInt8] = []
        for p in previous { joined += p; joined.append(0x20) }
        let boundary = joined.count
        joined += current
        let hits = joined.withUnsafeBufferPointer { engine.atomHits($0) }
        let raws = engine.rules(hits).hits
        for h in raws where h.lo < boundary && h.hi > boundary && h.severity >= .medium {
            // Only report what the current prompt alone does not already contain.
            let local = h.lo - boundary
            _ = local
            out.append(ShieldFinding(ruleID: "behavior.fragmentation", layer: .behavior, severity: h.severity,
                                     textIndex: Self.textIndex(for: h.hi - 1 - boundary, starts: starts, fallback: firstIndex),
                                     span: 0..<0))
            break
        }
        return out
    }

    static func textIndex(for offset: Int, starts: [(Int, Int)], fallback: Int) -> Int {
        var idx = fallback
        for (o, i) in starts where o <= offset { idx = i }
        return idx
    }

    static func evict(_ st: inout State, now: Date, maxAge: TimeInterval) {
        st.entries = st.entries.filter { now.timeIntervalSince($0.value.lastSeen) <= maxAge }
        let cap = st.entries.count
        guard cap > 0 else { return }
        let drop = max(1, cap / 8)
        let victims = st.entries.sorted { $0.value.lastSeen < $1.value.lastSeen }.prefix(drop).map(\.key)
        for k in victims { st.entries.removeValue(forKey: k) }
    }
}
