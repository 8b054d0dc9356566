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
    /// as four interleaved quarters, four independent chains the CPU overlaps. The scanner of a
    /// later quarter starts `maxLength` bytes before its quarter from the root state: a state is
    /// the longest suffix of the text read that is a pattern prefix, never longer than
    /// `maxLength`, so from the start of its quarter on its states are those of a scan from the
    /// start of the text. Its outputs (ends inside its quarter) are kept and reported after
    /// those of the quarters before, so the order is unchanged.
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
                            if n < Self.splitMinimum || n / 4 <= maxLength {
                                var s = 0
                                for i in 0..<n {
                                    s = Int(d[s &<< shift | Int(cls[Int(bytes[i])])])
                                    if s >= outputs { report(s, i + 1) }
                                }
                                return
                            }
                            // Four lanes: lane 0 reports [0, b1) as it goes; lane k (1...3) starts
                            // maxLength bytes before b_k and keeps the outputs it finds in
                            // [b_k, b_k+1) in its own region of `later` (offset b_k - b1).
                            let b1 = n / 4, b2 = n / 2, b3 = n - n / 4, m = maxLength
                            withUnsafeTemporaryAllocation(of: (Int32, UInt16).self, capacity: n - b1) { later in
                                var k1 = 0, k2 = b2 - b1, k3 = b3 - b1
                                var s0 = 0, s1 = 0, s2 = 0, s3 = 0
                                @inline(__always) func step(_ s: Int, _ i: Int) -> Int { Int(d[s &<< shift | Int(cls[Int(bytes[i])])]) }
                                @inline(__always) func keep(_ s: Int, _ end: Int, _ kept: inout Int) {
                                    later[kept] = (Int32(end), UInt16(truncatingIfNeeded: s)); kept += 1
                                }
                                var t = 0
                                while t < b1 {
                                    let j1 = b1 - m + t, j2 = b2 - m + t, j3 = b3 - m + t
                                    s0 = step(s0, t); s1 = step(s1, j1); s2 = step(s2, j2); s3 = step(s3, j3)
                                    if s0 >= outputs { report(s0, t + 1) }
                                    if s1 >= outputs && j1 >= b1 { keep(s1, j1 + 1, &k1) }
                                    if s2 >= outputs && j2 >= b2 { keep(s2, j2 + 1, &k2) }
                                    if s3 >= outputs && j3 >= b3 { keep(s3, j3 + 1, &k3) }
                                    t += 1
                                }
                                // The rest of lanes 1–3 (each lane is at least as long as lane 0).
                                for j in (b1 - m + t)..<b2 { s1 = step(s1, j); if s1 >= outputs && j >= b1 { keep(s1, j + 1, &k1) } }
                                for j in (b2 - m + t)..<b3 { s2 = step(s2, j); if s2 >= outputs && j >= b2 { keep(s2, j + 1, &k2) } }
                                for j in (b3 - m + t)..<n { s3 = step(s3, j); if s3 >= outputs && j >= b3 { keep(s3, j + 1, &k3) } }
                                for k in 0..<k1 { report(Int(later[k].1), Int(later[k].0)) }
                                for k in (b2 - b1)..<k2 { report(Int(later[k].1), Int(later[k].0)) }
                                for k in (b3 - b1)..<k3 { report(Int(later[k].1), Int(later[k].0)) }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Inputs at least this long (and longer than four times the longest pattern) are scanned
    /// as four interleaved quarters.
    static let splitMinimum = 512
}
