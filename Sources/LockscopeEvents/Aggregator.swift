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
    /// Every lock request (any outcome), and the first and last one's time, for
    /// the retry interval (kept as three numbers: no growth per event).
    public var attempts = 0
    public var firstAttempt: UInt64 = 0
    public var lastAttempt: UInt64 = 0
    /// Set when this entry stands for many short-lived processes started by
    /// `pid` (a retry loop): their command and how many there were.
    public var attemptCommand: String?
    public var attemptProcesses = 0

    public init(pid: Int32, comm: String) { self.pid = pid; self.comm = comm }

    public mutating func attempted(at t: UInt64) {
        if attempts == 0 || t < firstAttempt { firstAttempt = t }
        lastAttempt = max(lastAttempt, t)
        attempts += 1
    }

    /// Adds another process's counters (a retry loop's attempts).
    public mutating func merge(_ o: ProcessLockStats) {
        acquisitions += o.acquisitions
        waits += o.waits
        waitNanoseconds += o.waitNanoseconds
        failedAttempts += o.failedAttempts
        holdNanoseconds += o.holdNanoseconds
        if o.attempts > 0 {
            if attempts == 0 || o.firstAttempt < firstAttempt { firstAttempt = o.firstAttempt }
            lastAttempt = max(lastAttempt, o.lastAttempt)
            attempts += o.attempts
        }
    }

    /// Mean seconds between consecutive attempts, when there were at least two.
    public var retryIntervalSeconds: Double? {
        guard attempts >= 2 else { return nil }
        return Double(lastAttempt - firstAttempt) / 1e9 / Double(attempts - 1)
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
    /// Locks that have had a queued waiter (the only ones an exit can affect).
    var waiting: Set<LockKey> = []
    /// Processes that took part in a lock event, and their parents: the only
    /// records kept after an exit (so a long system-wide watch stays small).
    var keep: Set<Int32> = []
    /// The last pid `learn` saw (a busy locker repeats): skips two hash lookups.
    var lastLearned: Int32 = 0

    public init(paths: [FileIdentity: String] = [:]) { self.paths = paths }

    func comm(_ pid: Int32) -> InlineName {
        if let p = processes[pid] { return p.comm }
        return InlineName()
    }

    mutating func learn(_ pid: Int32) {
        guard pid != lastLearned else { return }
        lastLearned = pid
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
            if pid == lastLearned { lastLearned = 0 }
            if !keep.contains(pid) {
                processes[pid] = nil
                return nil
            }
            if var p = processes[pid] { p.exited = t; processes[pid] = p }
            else { processes[pid] = ProcessRecord(pid: pid, parent: nil, comm: x.comm, exited: t) }
            // A waiter that dies while queued gives up its wait.
            var last: LockOperation?
            for key in waiting where locks[key]?.waiters.values.contains(where: { $0.pid == pid }) == true {
                let owners = locks[key]?.waiters.filter { $0.value.pid == pid } ?? [:]
                for (owner, w) in owners {
                    locks[key]?.waiters[owner] = nil
                    locks[key]?.abandonedWaits += 1
                    last = LockOperation(time: t, pid: pid, comm: comm(pid), lock: key, type: .write,
                                         outcome: .abandoned, waited: t - w.since, held: nil, blockedBy: nil)
                }
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
        if pid != lastLearned {
            learn(pid)
            if keep.insert(pid).inserted, let parent = processes[pid]?.parent { keep.insert(parent) }
        }
        let key = LockKey(file: e.file, kind: LockKind(flags: e.flags, tracepoint: e.tracepoint))
        if e.type == .unlock && locks[key]?.holders[e.owner] == nil {
            // Unlocking what was not held (the close after a failed LOCK_NB): no change.
            return nil
        }
        if e.ret == 1 { waiting.insert(key) }
        let names = processes
        // Mutated in place (Dictionary's modify accessor): no copy of the lock's tables per event.
        return locks[key, default: LockStats(key: key)].apply(e, key: key) { names[$0]?.comm ?? InlineName() }
    }
}

extension LockStats {
    mutating func apply(_ e: LockEvent, key: LockKey, comm: (Int32) -> InlineName) -> LockOperation? {
        let pid = e.header.pid, t = e.header.time
        lastActivity = t
        var op = LockOperation(time: t, pid: pid, comm: comm(pid), lock: key, type: e.type, outcome: .acquired,
                               waited: nil, held: nil, blockedBy: nil)
        if e.type == .unlock {
            guard let h = holders.removeValue(forKey: e.owner) else { return nil }
            let held = t &- h.since
            hold.record(nanoseconds: held)
            // Credited to the taker, also when another process sharing the file
            // (a child of flock(1)) released it.
            processes[h.pid, default: ProcessLockStats(pid: h.pid, comm: comm(h.pid).description)].holdNanoseconds += held
            op.outcome = .released
            op.held = held
            op.pid = h.pid
            op.comm = comm(h.pid)
            return op
        }
        let holderPid = holders.values.first { $0.pid != pid }?.pid
        // One lookup out and one back in (the entry is a few numbers and a String).
        var proc = processes.removeValue(forKey: pid) ?? ProcessLockStats(pid: pid, comm: op.comm.description)
        if proc.comm.isEmpty { proc.comm = op.comm.description }
        defer { processes[pid] = proc }
        switch e.ret {
        case 1:  // FILE_LOCK_DEFERRED: queued
            if waiters[e.owner] == nil { waiters[e.owner] = (pid, t) }
            proc.attempted(at: t)
            op.outcome = .queued
            op.blockedBy = holderPid
            return op
        case 0:
            if holders[e.owner] != nil {
                // A conversion (LOCK_SH → LOCK_EX) or a repeat by the holder: still one hold.
                waiters[e.owner] = nil
                return nil
            }
            holders[e.owner] = (pid, t)
            acquisitions += 1
            proc.acquisitions += 1
            if let w = waiters.removeValue(forKey: e.owner) {
                let waited = t &- w.since
                contended += 1
                wait.record(nanoseconds: waited)
                proc.waits += 1
                proc.waitNanoseconds += waited
                op.outcome = .granted
                op.waited = waited
            } else {
                proc.attempted(at: t)
                op.outcome = .acquired
            }
            return op
        default:
            if let w = waiters.removeValue(forKey: e.owner) {
                // A queued request that ended in an error (-EINTR, -ERESTARTSYS, -EDEADLK).
                abandonedWaits += 1
                op.outcome = .abandoned
                op.waited = t &- w.since
                return op
            }
            failedAttempts += 1
            proc.failedAttempts += 1
            proc.attempted(at: t)
            op.outcome = .failed(errno: -e.ret)
            op.blockedBy = holderPid
            return op
        }
    }
}
