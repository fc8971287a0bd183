import LockscopeCore

/// count, sum, max and percentiles of wait or hold times, in seconds.
public struct DurationSummary: Sendable, Hashable {
    public var count: UInt64
    public var sum: Double
    public var max: Double
    public var p50: Double
    public var p90: Double
    public var p99: Double

    public init(_ d: DurationStats) {
        count = d.count
        sum = d.sumSeconds
        max = d.maxSeconds
        p50 = d.seconds(atPercentile: 50)
        p90 = d.seconds(atPercentile: 90)
        p99 = d.seconds(atPercentile: 99)
    }
}

/// One process's part in one lock, or one retry loop's (many short-lived
/// processes reported under the ancestor that keeps starting them).
public struct ProcessSummary: Sendable, Hashable {
    public var pid: Int32
    public var comm: String
    public var acquisitions: Int
    public var waits: Int
    public var waitSeconds: Double
    public var failedAttempts: Int
    public var holdSeconds: Double
    /// Every lock request (any outcome).
    public var attempts: Int
    /// Mean seconds between attempts (nil with fewer than two).
    public var retryIntervalSeconds: Double?
    /// For a retry loop: the command each attempt ran (`flock`) and how many
    /// processes were started; nil / 0 for an ordinary process.
    public var attemptCommand: String?
    public var attemptProcesses: Int
    /// For a retry loop: the pids of the per-attempt processes (empty otherwise).
    public var attemptPids: [Int32] = []
}

/// A current holder of a lock: for POSIX/OFD locks with the byte ranges it holds.
public struct HolderSummary: Sendable, Hashable {
    /// 0 for a lease taken before the watch (its holder is not in the events).
    public var pid: Int32
    public var comm: String
    /// Seconds held at the end of the observation (since first seen for a
    /// lease taken before the watch).
    public var seconds: Double
    public var ranges: [HeldRange]
}

/// A lease break (ended or still going) in a summary.
public struct BreakSummary: Sendable, Hashable {
    public var holder: Int32
    public var holderComm: String
    public var breaker: Int32?
    public var breakerComm: String?
    /// How long the break took (or has taken so far, for a pending one).
    public var seconds: Double
    public var resolution: LeaseBreak.Resolution
}

public struct LockSummary: Sendable, Hashable {
    public var lock: LockKey
    public var path: String?
    public var acquisitions: Int
    public var contended: Int
    public var failedAttempts: Int
    public var abandonedWaits: Int
    public var wait: DurationSummary
    public var hold: DurationSummary
    public var processes: [ProcessSummary]
    /// The holder at the end of the observation and how long it had held.
    public var holder: Int32?
    public var holderSeconds: Double?
    public var waitersNow: Int
    /// Oldest current wait, seconds.
    public var oldestWaitSeconds: Double?
    /// Every current holder, oldest first (two owners of disjoint byte ranges are two holders).
    public var holders: [HolderSummary] = []
    /// Leases: breaks, the most recent `LeaseBreak.kept` ended ones then the
    /// pending ones; `breakCount` and the seconds cover every ended break.
    public var breaks: [BreakSummary] = []
    public var breakCount = 0
    public var breakSeconds = 0.0
    public var breakMaxSeconds = 0.0
}

/// The document `watch --json` prints (schema `lockscope.watch/1`, docs/watch.md).
public struct WatchSummary: Sendable, Hashable {
    public var durationSeconds: Double
    public var lostEvents: UInt64
    public var locks: [LockSummary]
}

extension LockAggregator {
    /// The summary at `now` (CLOCK_MONOTONIC ns). Locks sorted by activity
    /// (contended, then failed attempts, then acquisitions). Per-attempt
    /// processes of a retry loop — at least two exited processes with the same
    /// command and the same nearest common ancestor, each making one attempt, one
    /// after the other (no two alive at once), at least one of them refused —
    /// become one entry under that ancestor (through per-attempt intermediates).
    public func summary(now: UInt64, durationSeconds: Double, lostEvents: UInt64) -> WatchSummary {
        var out: [LockSummary] = []
        for s in table {
            guard s.acquisitions + s.failedAttempts + s.contended + s.abandonedWaits + s.breakCount > 0 || !s.queued.isEmpty
            else { continue }
            let key = s.key
            let held = s.held.sorted { $0.since < $1.since }
            let holder = held.first
            var breaks = s.breaks.map { b in
                BreakSummary(holder: b.holder, holderComm: b.holderComm.description, breaker: b.breaker,
                             breakerComm: b.breaker == nil ? nil : b.breakerComm.description,
                             seconds: Double((b.ended ?? now) &- b.started) / 1e9, resolution: b.resolution)
            }
            for h in held { if let b = h.pendingBreak {
                breaks.append(BreakSummary(holder: h.pid, holderComm: h.comm.description, breaker: b.breaker,
                                           breakerComm: b.breaker == nil ? nil : b.breakerComm.description,
                                           seconds: Double(now &- b.started) / 1e9, resolution: .pending))
            } }
            out.append(LockSummary(
                lock: key, path: paths[key.file], acquisitions: s.acquisitions, contended: s.contended,
                failedAttempts: s.failedAttempts, abandonedWaits: s.abandonedWaits,
                wait: DurationSummary(s.wait), hold: DurationSummary(s.hold),
                processes: foldRetryLoops(s.processList),
                holder: holder?.pid, holderSeconds: holder.map { Double(now &- $0.since) / 1e9 },
                waitersNow: s.queued.count,
                oldestWaitSeconds: s.queued.map(\.since).min().map { Double(now &- $0) / 1e9 },
                holders: held.map { HolderSummary(pid: $0.pid, comm: $0.comm.description, seconds: Double(now &- $0.since) / 1e9,
                                                  ranges: $0.ranges) },
                breaks: breaks, breakCount: s.breakCount, breakSeconds: Double(s.breakNanoseconds) / 1e9,
                breakMaxSeconds: Double(s.breakMaxNanoseconds) / 1e9))
        }
        out.sort {
            ($0.contended, $0.failedAttempts, $0.acquisitions, $1.lock) > ($1.contended, $1.failedAttempts, $1.acquisitions, $0.lock)
        }
        return WatchSummary(durationSeconds: durationSeconds, lostEvents: lostEvents, locks: out)
    }

    /// The first ancestor of `pid` that had not exited by the end of the
    /// observation (the shell of `while ! timeout 1 flock -n F true; …`, not the
    /// `timeout` that exits with each attempt), or the oldest one known when the
    /// whole chain is gone; nil when `pid` has no known parent.
    public func persistentAncestor(of pid: Int32) -> Int32? {
        guard var p = processes[pid]?.parent else { return nil }
        var steps = 0
        // Bounded: a pid reused into its own chain must not loop.
        while let rec = processes[p], rec.exited != nil, let up = rec.parent, steps < 64 {
            p = up
            steps += 1
        }
        return p
    }

    func summary(of p: ProcessLockStats) -> ProcessSummary {
        ProcessSummary(pid: p.pid, comm: p.comm, acquisitions: p.acquisitions, waits: p.waits,
                       waitSeconds: Double(p.waitNanoseconds) / 1e9, failedAttempts: p.failedAttempts,
                       holdSeconds: Double(p.holdNanoseconds) / 1e9, attempts: p.attempts,
                       retryIntervalSeconds: p.retryIntervalSeconds, attemptCommand: p.attemptCommand,
                       attemptProcesses: p.attemptProcesses)
    }

    func foldRetryLoops(_ entries: [ProcessLockStats]) -> [ProcessSummary] {
        struct GroupKey: Hashable { var parent: Int32; var comm: String }
        var groups: [GroupKey: [ProcessLockStats]] = [:]
        var plain: [ProcessLockStats] = []
        // The ancestors of each exited one-attempt process, nearest first. Its loop is the
        // nearest ancestor that also started another attempt of the same command: the
        // shell of `while ! flock -n F true`, not the `timeout` of `while ! timeout 5 flock …`
        // (one per attempt), and not the shell's own parent.
        var chains: [Int32: [Int32]] = [:]
        var shared: [String: [Int32: Int]] = [:]
        for e in entries {
            guard let rec = processes[e.pid], rec.exited != nil, rec.parent != nil, e.attempts <= 1 else { continue }
            var chain: [Int32] = []
            var up = rec.parent
            while let a = up, chain.count < 64, !chain.contains(a) { chain.append(a); up = processes[a]?.parent }
            chains[e.pid] = chain
            for a in chain { shared[e.comm, default: [:]][a, default: 0] += 1 }
        }
        for e in entries {
            if let chain = chains[e.pid], let first = chain.first {
                let parent = chain.first { (shared[e.comm]?[$0] ?? 0) >= 2 } ?? first
                groups[GroupKey(parent: parent, comm: e.comm), default: []].append(e)
            } else {
                plain.append(e)
            }
        }
        var folded: [ProcessLockStats] = []
        var memberPids: [Int32: [Int32]] = [:]
        for (g, members) in groups {
            let lives = members.compactMap { m in processes[m.pid].flatMap { r in r.started.map { ($0, r.exited ?? .max) } } }
                .sorted { $0.0 < $1.0 }
            let sequential = lives.count == members.count && zip(lives, lives.dropFirst()).allSatisfy { $0.1 <= $1.0 }
            guard members.count >= 2, sequential, members.contains(where: { $0.failedAttempts > 0 }) else {
                plain += members
                continue
            }
            let parentComm = processes[g.parent]?.comm ?? InlineName()
            var p = plain.first { $0.pid == g.parent } ?? ProcessLockStats(pid: g.parent, name: parentComm)
            plain.removeAll { $0.pid == g.parent }
            if p.name.count == 0 { p.name = parentComm }
            for m in members { p.merge(m) }
            p.attemptCommand = g.comm
            p.attemptProcesses = members.count
            folded.append(p)
            memberPids[g.parent] = members.map(\.pid).sorted()
        }
        return (plain + folded).map { s in
            var out = summary(of: s)
            out.attemptPids = memberPids[s.pid] ?? []
            return out
        }.sorted {
            ($0.waits + $0.failedAttempts + $0.acquisitions, $1.pid) > ($1.waits + $1.failedAttempts + $1.acquisitions, $0.pid)
        }
    }
}
