import Histogram
import LockscopeCore

/// Wait or hold times of one lock: exact count, sum and max, and an
/// HdrHistogram (microseconds, 2 significant digits: ~12 KiB) for percentiles.
public struct DurationStats: Sendable {
    public private(set) var count: UInt64 = 0
    public private(set) var sumNanoseconds: UInt64 = 0
    public private(set) var maxNanoseconds: UInt64 = 0
    public private(set) var histogram = Histogram<UInt32>(lowestDiscernibleValue: 1, highestTrackableValue: 86_400_000_000,
                                                          numberOfSignificantValueDigits: .two)
    public init() {}

    public mutating func record(nanoseconds: UInt64) {
        count += 1
        sumNanoseconds &+= nanoseconds
        maxNanoseconds = max(maxNanoseconds, nanoseconds)
        _ = histogram.record(min(max(nanoseconds / 1000, 1), histogram.highestTrackableValue))
    }

    /// Seconds at a percentile (0–100); exact for the maximum, within 1 % otherwise.
    public func seconds(atPercentile p: Double) -> Double {
        guard count > 0 else { return 0 }
        if p >= 100 { return Double(maxNanoseconds) / 1e9 }
        return min(Double(histogram.valueAtPercentile(p)) / 1e6, Double(maxNanoseconds) / 1e9)
    }
    public var sumSeconds: Double { Double(sumNanoseconds) / 1e9 }
    public var maxSeconds: Double { Double(maxNanoseconds) / 1e9 }
}

/// Per-process counters on one lock.
public struct ProcessLockStats: Sendable, Hashable {
    public var pid: Int32
    public var comm: String
    public var acquisitions = 0
    /// Acquisitions that had to wait first.
    public var waits = 0
    public var waitNanoseconds: UInt64 = 0
    public var failedAttempts = 0
    public var holdNanoseconds: UInt64 = 0
    /// Times of every attempt (lock request of any outcome), for retry intervals.
    public var attemptTimes: [UInt64] = []
    /// Set when this entry stands for many short-lived processes started by
    /// `pid` (a retry loop): their command and how many there were.
    public var attemptCommand: String?
    public var attemptProcesses = 0

    public init(pid: Int32, comm: String) { self.pid = pid; self.comm = comm }

    /// Mean seconds between consecutive attempts, when there were at least two.
    public var retryIntervalSeconds: Double? {
        guard attemptTimes.count >= 2, let first = attemptTimes.first, let last = attemptTimes.last else { return nil }
        return Double(last - first) / 1e9 / Double(attemptTimes.count - 1)
    }
}

/// Everything counted about one lock.
public struct LockStats: Sendable {
    public var key: LockKey
    public var acquisitions = 0
    /// Acquisitions that queued first (ret 1 then ret 0).
    public var contended = 0
    /// Non-blocking attempts refused (LOCK_NB / F_SETLK: -EAGAIN), and other refusals.
    public var failedAttempts = 0
    public var abandonedWaits = 0
    public var wait = DurationStats()
    public var hold = DurationStats()
    public var processes: [Int32: ProcessLockStats] = [:]
    /// Current holders: owner → (pid, since).
    public var holders: [UInt64: (pid: Int32, since: UInt64)] = [:]
    /// Current waiters: owner → (pid, since).
    public var waiters: [UInt64: (pid: Int32, since: UInt64)] = [:]
    public var lastActivity: UInt64 = 0

    public init(key: LockKey) { self.key = key }
}

/// A process as the sched events describe it.
public struct ProcessRecord: Sendable, Hashable {
    public var pid: Int32
    public var parent: Int32?
    public var comm: InlineName
    public var exited: UInt64?
    /// When the fork was seen (nil for processes older than the watch).
    public var started: UInt64? = nil
}

/// Turns decoded kernel events into per-lock statistics, following fs/locks.c:
///
/// - flock: `flock_lock_inode()` fires at its end (`trace_flock_lock_inode(inode,
///   request, error)`). A conflicting request with FL_SLEEP is queued by
///   `locks_insert_block()` and returns FILE_LOCK_DEFERRED (1); the waiter sleeps
///   in `locks_lock_inode_wait()` and, when woken, calls `flock_lock_inode()`
///   again, which fires with 0 when granted. Without FL_SLEEP (LOCK_NB) a
///   conflict returns -EAGAIN. An interrupted waiter leaves the loop with no
///   second event: its wait ends at its exit or at its next request.
///   LOCK_UN and the last close of the file (`locks_remove_flock()`, FL_CLOSE)
///   fire with F_UNLCK — also for a file that held no lock.
/// - POSIX and OFD: `posix_lock_inode()` likewise: -EAGAIN without FL_SLEEP
///   (F_SETLK), -EDEADLK when `posix_locks_deadlock()` finds a cycle, else
///   FILE_LOCK_DEFERRED and a second call after the wakeup
///   (`do_lock_file_wait()`); F_UNLCK for unlocks. A close drops the closer's
///   POSIX locks through `locks_remove_posix()`, which unlocks through
///   `posix_lock_inode()` again, so the aggregator counts `posix_lock_inode`
///   only: `fcntl_setlk` and `locks_remove_posix` repeat what it reported.
///   Byte ranges are not tracked: an owner holds "the lock" from its first grant
///   to its first unlock.
///
/// Holds and waits are keyed by `fl_owner` (the `struct file` for flock and OFD
/// locks, the `files_struct` for POSIX), so a lock inherited across fork and
/// released by the child is still one hold of the process that took it.
public struct LockAggregator: Sendable {
    public private(set) var locks: [LockKey: LockStats] = [:]
    public private(set) var processes: [Int32: ProcessRecord] = [:]
    /// Paths known for identities (the files the user named, or found later).
    public var paths: [FileIdentity: String] = [:]
    public private(set) var firstEventTime: UInt64?
    public private(set) var lastEventTime: UInt64 = 0
    /// Optional lookup of a process's comm/parent when no sched event named it
    /// (processes started before the watch); returns (comm, ppid).
    public var describeProcess: (@Sendable (Int32) -> (comm: String, parent: Int32?)?)?

    public init(paths: [FileIdentity: String] = [:]) { self.paths = paths }

    func comm(_ pid: Int32) -> InlineName {
        if let p = processes[pid] { return p.comm }
        return InlineName()
    }

    mutating func learn(_ pid: Int32) {
        guard processes[pid] == nil else { return }
        if let d = describeProcess?(pid) {
            processes[pid] = ProcessRecord(pid: pid, parent: d.parent, comm: InlineName(d.comm), exited: nil)
        } else {
            processes[pid] = ProcessRecord(pid: pid, parent: nil, comm: InlineName(), exited: nil)
        }
    }

    /// Applies one event; returns what it meant for a lock (nil for sched
    /// events and for lock events that change nothing, e.g. the F_UNLCK of a
    /// close on a file that held no lock).
    @discardableResult
    public mutating func apply(_ event: KernelEvent) -> LockOperation? {
        let t = event.header.time
        if firstEventTime == nil { firstEventTime = t }
        lastEventTime = max(lastEventTime, t)
        switch event {
        case .fork(let f):
            // A new thread of an existing process shares its tgid; only processes matter here,
            // and a thread's record (never seen in lock events' tgid) is harmless.
            processes[f.childPid] = ProcessRecord(pid: f.childPid, parent: f.header.pid, comm: f.childComm, exited: nil,
                                                  started: f.header.time)
            if processes[f.header.pid] == nil {
                processes[f.header.pid] = ProcessRecord(pid: f.header.pid, parent: nil, comm: f.parentComm, exited: nil)
            }
            return nil
        case .exec(let x):
            if var p = processes[x.header.pid] { p.comm = x.name; processes[x.header.pid] = p }
            else { processes[x.header.pid] = ProcessRecord(pid: x.header.pid, parent: nil, comm: x.name, exited: nil) }
            return nil
        case .exit(let x):
            guard x.groupDead else { return nil }
            let pid = x.header.pid
            if var p = processes[pid] { p.exited = t; processes[pid] = p }
            else { processes[pid] = ProcessRecord(pid: pid, parent: nil, comm: x.comm, exited: t) }
            // A waiter that dies while queued gives up its wait.
            var last: LockOperation?
            for key in locks.keys {
                guard var s = locks[key] else { continue }
                for (owner, w) in s.waiters where w.pid == pid {
                    s.waiters[owner] = nil
                    s.abandonedWaits += 1
                    last = LockOperation(time: t, pid: pid, comm: comm(pid), lock: key, type: .write,
                                         outcome: .abandoned, waited: t - w.since, held: nil, blockedBy: nil)
                }
                locks[key] = s
            }
            return last
        case .lock(let e):
            return applyLock(e)
        }
    }

    mutating func applyLock(_ e: LockEvent) -> LockOperation? {
        // fcntl_setlk and locks_remove_posix repeat posix_lock_inode (see above);
        // leases are counted only as events for now.
        guard e.tracepoint == .flockLockInode || e.tracepoint == .posixLockInode else { return nil }
        let pid = e.header.pid
        learn(pid)
        let key = LockKey(file: e.file, kind: LockKind(flags: e.flags, tracepoint: e.tracepoint))
        var s = locks[key] ?? LockStats(key: key)
        var proc = s.processes[pid] ?? ProcessLockStats(pid: pid, comm: comm(pid).description)
        if proc.comm.isEmpty { proc.comm = comm(pid).description }
        let t = e.header.time
        var op = LockOperation(time: t, pid: pid, comm: comm(pid), lock: key, type: e.type, outcome: .acquired,
                               waited: nil, held: nil, blockedBy: nil)
        if e.type == .unlock && s.holders[e.owner] == nil {
            // Unlocking what was not held (the close after a failed LOCK_NB): no change.
            return nil
        }
        var storeProcess = true
        defer {
            s.lastActivity = t
            if storeProcess { s.processes[pid] = proc }
            locks[key] = s
        }
        if e.type == .unlock, let h = s.holders.removeValue(forKey: e.owner) {
            let held = t &- h.since
            s.hold.record(nanoseconds: held)
            if h.pid == pid { proc.holdNanoseconds += held }
            else {
                // Released by another process sharing the file (a child of flock(1)).
                s.processes[h.pid, default: ProcessLockStats(pid: h.pid, comm: comm(h.pid).description)].holdNanoseconds += held
                storeProcess = s.processes[pid] != nil
            }
            op.outcome = .released
            op.held = held
            op.pid = h.pid
            op.comm = comm(h.pid)
            return op
        }
        let holderPid = s.holders.values.first { $0.pid != pid }?.pid
        switch e.ret {
        case 1:  // FILE_LOCK_DEFERRED: queued
            if s.waiters[e.owner] == nil { s.waiters[e.owner] = (pid, t) }
            proc.attemptTimes.append(t)
            op.outcome = .queued
            op.blockedBy = holderPid
            return op
        case 0:
            if s.holders[e.owner] != nil {
                // A conversion (LOCK_SH → LOCK_EX) or a repeat by the holder: still one hold.
                s.waiters[e.owner] = nil
                return nil
            }
            s.holders[e.owner] = (pid, t)
            s.acquisitions += 1
            proc.acquisitions += 1
            if let w = s.waiters.removeValue(forKey: e.owner) {
                let waited = t &- w.since
                s.contended += 1
                s.wait.record(nanoseconds: waited)
                proc.waits += 1
                proc.waitNanoseconds += waited
                op.outcome = .granted
                op.waited = waited
            } else {
                proc.attemptTimes.append(t)
                op.outcome = .acquired
            }
            return op
        default:
            if let w = s.waiters.removeValue(forKey: e.owner) {
                // A queued request that ended in an error (-EINTR, -ERESTARTSYS, -EDEADLK).
                s.abandonedWaits += 1
                op.outcome = .abandoned
                op.waited = t &- w.since
                return op
            }
            s.failedAttempts += 1
            proc.failedAttempts += 1
            proc.attemptTimes.append(t)
            op.outcome = .failed(errno: -e.ret)
            op.blockedBy = holderPid
            return op
        }
    }
}
