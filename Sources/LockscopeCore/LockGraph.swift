/// Which lock this is: the one definition every stage uses to tell two locks
/// apart, and the scanner uses to match an fdinfo `lock:` line with its
/// /proc/locks entry (both are printed by `lock_get_status()` in fs/locks.c).
///
/// The owner is part of it: two processes holding READ locks on one range hold
/// two locks (two lines in /proc/locks), and a waiter is queued behind one of
/// them. The owner is printed as the pid that took a FLOCK or POSIX lock, -1 for
/// an OFD lock (owned by an open file description, not a process), 0 when not
/// visible from our pid namespace. Two OFD locks of one access on one range
/// print alike everywhere in /proc, so nothing can tell those two apart.
public struct LockID: Sendable, Hashable {
    public var file: FileIdentity?
    public var kind: LockKind
    public var access: LockAccess
    public var start: Int64
    /// nil means EOF.
    public var end: Int64?
    public var owner: Int32
}

extension LockLine {
    public var lockID: LockID { LockID(file: file, kind: kind, access: access, start: start, end: end, owner: pid) }
}

extension LockEntry {
    public var id: LockID { LockID(file: file, kind: kind, access: access, start: start, end: end, owner: kernelPid) }
}

/// The wait-for graph of a scan, built once: every lock by `LockID`, who holds
/// and who waits for each, the next lock of a chain (a holder that is itself
/// queued behind another lock) and every cycle (a deadlock). Rules and
/// renderers ask it instead of walking the report. Pure: built from values.
public struct LockGraph: Sendable {
    /// One step of a wait-for path: `pid` holds `holds` and is queued behind `waitsFor`.
    public struct Hop: Sendable, Hashable {
        public var pid: Int32
        public var holds: LockEntry
        public var waitsFor: LockEntry
    }

    /// Every lock: the report's in its order, then the others (from the
    /// system-wide table) that are not among them.
    public let locks: [LockEntry]
    /// Every deadlock once, each starting with its lowest pid: member i waits for
    /// what member i+1 holds, the last for what the first holds.
    public private(set) var cycles: [[Hop]] = []
    private var index: [LockID: Int] = [:]
    private var held: [Int32: [Int]] = [:]
    private var waited: [Int32: [Int]] = [:]
    private var cycleOf: [Int32: [Hop]] = [:]

    public init(_ report: [LockEntry] = [], others: [LockEntry] = []) {
        let reportIDs = Set(report.map(\.id))
        locks = report + others.filter { !reportIDs.contains($0.id) }
        for (i, l) in locks.enumerated() {
            if index[l.id] == nil { index[l.id] = i }
            for h in l.holders where held[h.pid]?.last != i { held[h.pid, default: []].append(i) }
            // OFD waiters the scanner could not match to a thread stay -1: nobody to follow.
            for w in l.waiters where w.pid > 0 && waited[w.pid]?.last != i { waited[w.pid, default: []].append(i) }
        }
        var seen = Set<[Int32]>()
        for pid in waited.keys.sorted() where held[pid] != nil {
            guard let c = shortestCycle(from: pid), let low = c.indices.min(by: { c[$0].pid < c[$1].pid }) else { continue }
            cycleOf[pid] = c
            let canonical = Array(c[low...] + c[..<low])
            if seen.insert(canonical.map(\.pid)).inserted { cycles.append(canonical) }
        }
    }

    public subscript(id: LockID) -> LockEntry? { index[id].map { locks[$0] } }

    public func isHolder(_ pid: Int32) -> Bool { held[pid] != nil }

    public func locksHeld(by pid: Int32) -> [LockEntry] { (held[pid] ?? []).map { locks[$0] } }

    /// The locks `pid` is queued behind, in graph order.
    public func locksWaited(by pid: Int32) -> [LockEntry] { (waited[pid] ?? []).map { locks[$0] } }

    /// The next link of a chain: the first lock `pid`, which holds `lock`, is queued behind.
    public func next(after pid: Int32, holding lock: LockID) -> LockEntry? {
        (waited[pid] ?? []).lazy.map { locks[$0] }.first { $0.id != lock }
    }

    /// The shortest deadlock `pid` is part of, starting with `pid`.
    public func cycle(through pid: Int32) -> [Hop]? { cycleOf[pid] }

    /// Breadth first over "waits for a lock held by", back to `start`. A process
    /// queued behind a lock it holds itself is not an edge (that is a different
    /// fault, and no other process is involved).
    private func shortestCycle(from start: Int32) -> [Hop]? {
        var cameFrom: [Int32: (pid: Int32, lock: Int)] = [:]
        var queue = [start]
        var head = 0
        while head < queue.count {
            let p = queue[head]
            head += 1
            for li in waited[p] ?? [] {
                for h in locks[li].holders where h.pid != p {
                    if h.pid == start { return hops(closing: (p, li), cameFrom: cameFrom, start: start) }
                    if cameFrom[h.pid] == nil { cameFrom[h.pid] = (p, li); queue.append(h.pid) }
                }
            }
        }
        return nil
    }

    /// The edges back from `last` to `start` as hops: each member waits for the lock of
    /// its edge and holds the lock of the edge before it.
    private func hops(closing last: (pid: Int32, lock: Int), cameFrom: [Int32: (pid: Int32, lock: Int)], start: Int32) -> [Hop] {
        var edges = [last]
        while let e = edges.last, e.pid != start, let before = cameFrom[e.pid] { edges.append(before) }
        edges.reverse()
        return edges.indices.map { i in
            Hop(pid: edges[i].pid, holds: locks[edges[(i + edges.count - 1) % edges.count].lock], waitsFor: locks[edges[i].lock])
        }
    }
}
