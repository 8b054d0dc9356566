// One multi-pattern automaton (Aho–Corasick, compiled to a full DFA over byte classes) for
// every literal pattern of every language: one table lookup per input byte, whatever the
// number of patterns.
//
// Byte classes: each byte that occurs in some pattern gets a class; all other bytes share
// class 0. Leet digits share the class of the letter they imitate ('0'→o, '1'→i, '3'→e,
// '4'→a, '5'→s, '7'→t, '@'→a, '$'→s), so "1gn0re" walks the same path as "ignore".

struct AhoCorasick: Sendable {
    let classOf: [UInt8]          // 256 entries
    let classCount: Int
    /// Rows of the transition table are `1 << classShift` entries wide (classCount rounded up
    /// to a power of two), so the scan computes a row with a shift instead of a multiply: the
    /// state-to-state dependency is the critical path of the scan.
    let classShift: Int
    let delta: [UInt16]           // state << classShift | class -> next state (≤ 65 535 states: half the cache of Int32)
    /// States are numbered so that those where some pattern ends come last, from `outStart`
    /// on: the scan tests `state >= outStart` instead of loading a table entry for every byte.
    let outStart: Int
    let outFirst: [Int32]         // state - outStart -> first pattern ending here
    let outNext: [Int32]          // pattern -> next pattern in the same output chain (-1 end)
    let patternLength: [Int32]
    /// Length of the longest pattern (the deepest state).
    let maxLength: Int
    let stateCount: Int

    static let leet: [UInt8: UInt8] = [
        0x30: 0x6F, 0x31: 0x69, 0x33: 0x65, 0x34: 0x61, 0x35: 0x73, 0x37: 0x74, 0x40: 0x61, 0x24: 0x73,
    ]

    init(patterns: [[UInt8]]) {
        // Byte classes.
        var cls = [UInt8](repeating: 0, count: 256)
        var next: UInt8 = 1
        for p in patterns { for b in p where cls[Int(b)] == 0 && AhoCorasick.leet[b] == nil {
            precondition(next < 255, "too many byte classes")
            cls[Int(b)] = next; next += 1
        } }
        for (d, l) in AhoCorasick.leet where cls[Int(l)] != 0 { cls[Int(d)] = cls[Int(l)] }
        classOf = cls
        let k = Int(next)
        classCount = k

        // Trie.
        var goto: [[Int32]] = [[Int32](repeating: -1, count: k)]
        var ownOut: [[Int32]] = [[]]
        for (pi, p) in patterns.enumerated() {
            var s = 0
            for b in p {
                let c = Int(cls[Int(b)])
                if goto[s][c] < 0 {
                    goto[s][c] = Int32(goto.count)
                    goto.append([Int32](repeating: -1, count: k)); ownOut.append([])
                }
                s = Int(goto[s][c])
            }
            ownOut[s].append(Int32(pi))
        }
        let n = goto.count
        stateCount = n
        var fail = [Int32](repeating: 0, count: n)
        var d = [Int32](repeating: 0, count: n * k)
        var queue: [Int] = []
        queue.reserveCapacity(n)
        for c in 0..<k {
            let t = goto[0][c]
            if t >= 0 { d[c] = t; fail[Int(t)] = 0; queue.append(Int(t)) } else { d[c] = 0 }
        }
        // Output chains: a state's outputs are its own patterns followed by those of its
        // failure state (linked through outNext of its last own pattern).
        var first = [Int32](repeating: -1, count: n)
        var nextOut = [Int32](repeating: -1, count: patterns.count)
        for s in 0..<n where !ownOut[s].isEmpty {
            first[s] = ownOut[s][0]
            for j in 0..<(ownOut[s].count - 1) { nextOut[Int(ownOut[s][j])] = ownOut[s][j + 1] }
        }
        var head = 0
        // BFS order guarantees fail states are finished before their dependants.
        var chainTail = [Int32](repeating: -1, count: n)   // last own pattern of each state
        for s in 0..<n where !ownOut[s].isEmpty { chainTail[s] = ownOut[s].last! }
        while head < queue.count {
            let s = queue[head]; head += 1
            let f = Int(fail[s])
            if chainTail[s] >= 0 { nextOut[Int(chainTail[s])] = first[f] } else { first[s] = first[f] }
            for c in 0..<k {
                let t = goto[s][c]
                if t >= 0 {
                    fail[Int(t)] = d[f * k + c]
                    d[s * k + c] = t
                    queue.append(Int(t))
                } else {
                    d[s * k + c] = d[f * k + c]
                }
            }
        }
        precondition(n <= Int(UInt16.max), "too many states for 16-bit transitions")
        var shift = 0
        while 1 << shift < k { shift += 1 }
        classShift = shift
        // Renumber: states without output first (in BFS order; the root stays 0), then the others.
        var newID = [Int](repeating: 0, count: n)
        var nextID = 0
        for st in 0..<n where first[st] < 0 { newID[st] = nextID; nextID += 1 }
        let outputStart = nextID
        for st in 0..<n where first[st] >= 0 { newID[st] = nextID; nextID += 1 }
        precondition(newID[0] == 0, "the root has no output")
        var wide = [UInt16](repeating: 0, count: n << shift)
        for st in 0..<n { for c in 0..<k { wide[newID[st] << shift | c] = UInt16(truncatingIfNeeded: newID[Int(d[st * k + c])]) } }
        delta = wide
        outStart = outputStart
        var firstOut = [Int32](repeating: -1, count: n - outputStart)
        for st in 0..<n where first[st] >= 0 { firstOut[newID[st] - outputStart] = first[st] }
        outFirst = firstOut
        outNext = nextOut
        patternLength = patterns.map { Int32($0.count) }
        maxLength = patterns.map(\.count).max() ?? 0
    }

    struct Match { var lo: Int32; var hi: Int32; var pattern: Int32 }

    /// Every occurrence (end exclusive), in order of end position.
    func matches(_ bytes: UnsafeBufferPointer<UInt8>) -> [Match] {
        var out: [Match] = []
        forEachMatch(bytes) { out.append($0) }
        return out
    }

    /// Calls `body` with every occurrence (end exclusive), in order of end position, without
    /// collecting them.
    ///
    /// Each byte's transition depends on the previous one (load, shift, load), so one scan runs
    /// at the latency of the table look-ups. Inputs of `splitMinimum` bytes or more are scanned
    /// as two interleaved halves, two independent chains the CPU overlaps. The second scanner
    /// starts `maxLength` bytes before the middle from the root state: a state is the longest
    /// suffix of the text read that is a pattern prefix, never longer than `maxLength`, so from
    /// the middle on its states are those of a scan from the start. Its outputs (ends after the
    /// middle) are kept and reported after the first half's, so the order is unchanged.
    @inline(__always)
    func forEachMatch(_ bytes: UnsafeBufferPointer<UInt8>, _ body: (Match) -> Void) {
        classOf.withUnsafeBufferPointer { cls in
            delta.withUnsafeBufferPointer { d in
                outFirst.withUnsafeBufferPointer { first in
                    outNext.withUnsafeBufferPointer { next in
                        patternLength.withUnsafeBufferPointer { plen in
                            let shift = classShift, outputs = outStart
                            @inline(__always) func report(_ s: Int, _ end: Int) {
                                var p = first[s &- outputs]
                                while p >= 0 {
                                    body(Match(lo: Int32(end) - plen[Int(p)], hi: Int32(end), pattern: p))
                                    p = next[Int(p)]
                                }
                            }
                            let n = bytes.count
                            if n < Self.splitMinimum || n / 2 <= maxLength {
                                var s = 0
                                for i in 0..<n {
                                    s = Int(d[s &<< shift | Int(cls[Int(bytes[i])])])
                                    if s >= outputs { report(s, i + 1) }
                                }
                                return
                            }
                            let mid = n / 2, bStart = mid - maxLength
                            withUnsafeTemporaryAllocation(of: (Int32, UInt16).self, capacity: n - mid) { later in
                                var kept = 0
                                var a = 0, b = 0
                                var i = 0, j = bStart
                                while i < mid {
                                    a = Int(d[a &<< shift | Int(cls[Int(bytes[i])])])
                                    b = Int(d[b &<< shift | Int(cls[Int(bytes[j])])])
                                    if a >= outputs { report(a, i + 1) }
                                    if b >= outputs && j >= mid { later[kept] = (Int32(j + 1), UInt16(truncatingIfNeeded: b)); kept += 1 }
                                    i += 1; j += 1
                                }
                                while j < n {
                                    b = Int(d[b &<< shift | Int(cls[Int(bytes[j])])])
                                    if b >= outputs { later[kept] = (Int32(j + 1), UInt16(truncatingIfNeeded: b)); kept += 1 }
                                    j += 1
                                }
                                for k in 0..<kept { report(Int(later[k].1), Int(later[k].0)) }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Inputs at least this long are scanned as two interleaved halves.
    static let splitMinimum = 256
}
