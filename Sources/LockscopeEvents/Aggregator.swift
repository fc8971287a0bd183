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
    /// The command, stored inline (no String per entry on the hot path).
    public var name: InlineName
    public var comm: String {
        get { name.description }
        set { name = InlineName(newValue) }
    }
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

    public init(pid: Int32, comm: String) { self.pid = pid; name = InlineName(comm) }
    public init(pid: Int32, name: InlineName) { self.pid = pid; self.name = name }

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

/// What one lock owner (`fl_owner`) holds on one lock now.
public struct Holding: Sendable, Hashable {
    public var owner: UInt64
    /// The process that took it (credited with the hold, also when a child
    /// sharing the open file releases it).
    public var pid: Int32
    public var comm: InlineName
    public var since: UInt64
    /// The first range, inline, so the common lock allocates nothing; for flock
    /// locks and leases the only one (the whole file).
    public var range: HeldRange
    /// Further ranges of a POSIX/OFD owner that holds several (sorted by start).
    public var more: [HeldRange] = []
    /// Held before the watch began (a lease seen first in a `time_out_leases`
    /// listing): `since` is when it was seen and no hold time is recorded for it.
    public var preexisting = false
    /// Leases: the kernel address of the `struct file_lease` (0 until seen), and
    /// the break in progress, if any.
    public var leaseAddress: UInt64 = 0
    public var pendingBreak: PendingBreak?

    public var ranges: [HeldRange] { more.isEmpty ? [range] : [range] + more }

    /// The first range of this holding that conflicts with `request`.
    @inline(__always)
    func conflicts(with request: HeldRange) -> Bool {
        if range.conflicts(with: request) { return true }
        return more.contains { $0.conflicts(with: request) }
    }
}

/// A request queued behind a conflicting lock (or an open() waiting for a lease break).
public struct Waiting: Sendable, Hashable {
    /// `fl_owner` of the request (for a lease break: the breaker's request address).
    public var owner: UInt64
    public var pid: Int32
    public var since: UInt64
    public var range: HeldRange
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
    /// Per-process counters in first-seen order (`processes` is the same by pid).
    public internal(set) var processList: [ProcessLockStats] = []
    var processSlot: [Int32: Int] = [:]
    var lastSlot = -1
    /// Current holdings, one per owner.
    public internal(set) var held: [Holding] = []
    /// Current waiters, one per owner.
    public internal(set) var queued: [Waiting] = []
    public var lastActivity: UInt64 = 0
    /// Leases: breaks that ended (the most recent `LeaseBreak.kept`), and totals over all.
    public internal(set) var breaks: [LeaseBreak] = []
    public internal(set) var breakCount = 0
    public internal(set) var breakNanoseconds: UInt64 = 0
    public internal(set) var breakMaxNanoseconds: UInt64 = 0
    /// Path lookups tried for this lock's file (see `LockAggregator.resolvePath`).
    var pathTries: UInt8 = 0

    public init(key: LockKey) { self.key = key }

    public var processes: [Int32: ProcessLockStats] {
        Dictionary(processList.map { ($0.pid, $0) }, uniquingKeysWith: { a, _ in a })
    }
    /// Current holders: owner → (pid, since).
    public var holders: [UInt64: (pid: Int32, since: UInt64)] {
        Dictionary(held.map { ($0.owner, (pid: $0.pid, since: $0.since)) }, uniquingKeysWith: { a, _ in a })
    }
    /// Current waiters: owner → (pid, since).
    public var waiters: [UInt64: (pid: Int32, since: UInt64)] {
        Dictionary(queued.map { ($0.owner, (pid: $0.pid, since: $0.since)) }, uniquingKeysWith: { a, _ in a })
    }

    @inline(__always)
    func holdingIndex(_ owner: UInt64) -> Int? {
        for i in held.indices where held[i].owner == owner { return i }
        return nil
    }
    @inline(__always)
    func waitingIndex(_ owner: UInt64) -> Int? {
        for i in queued.indices where queued[i].owner == owner { return i }
        return nil
    }
    /// The holder whose range conflicts with `request` of another owner: the one
    /// a waiter waits behind, or a refused request was refused because of.
    func blocker(of request: HeldRange, owner: UInt64) -> Holding? {
        held.first { $0.owner != owner && $0.conflicts(with: request) }
    }

    /// The per-process entry of `pid`, created on first use; the last one used is
    /// found without hashing (a busy locker repeats).
    @inline(__always)
    mutating func slot(_ pid: Int32, _ comm: InlineName) -> Int {
        if lastSlot >= 0, processList[lastSlot].pid == pid { return lastSlot }
        if let i = processSlot[pid] {
            if processList[i].name.count == 0 { processList[i].name = comm }
            lastSlot = i
            return i
        }
        processList.append(ProcessLockStats(pid: pid, name: comm))
        lastSlot = processList.count - 1
        processSlot[pid] = lastSlot
        return lastSlot
    }

    /// Ends a holding: the hold time goes to the lock and to the taker.
    @inline(__always)
    mutating func release(_ hi: Int, at t: UInt64) -> (Holding, UInt64?) {
        let h = held.remove(at: hi)
        guard !h.preexisting else { return (h, nil) }
        let d = t &- h.since
        hold.record(nanoseconds: d)
        let s = slot(h.pid, h.comm)
        processList[s].holdNanoseconds += d
        return (h, d)
    }
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
///   Byte ranges are tracked per owner as `posix_lock_inode()` keeps them
///   (`ByteRanges`): an owner holds the lock from its first granted range until
///   its last byte is unlocked, two owners on disjoint ranges are two holders
///   (no contention), and a waiter or a refused request is blocked by the owner
///   whose range overlaps it (POSIX and OFD locks of one file conflict with each
///   other, so both kinds are searched).
/// - Leases: see `applyLease` (LeaseAggregation.swift).
///
/// Holds and waits are keyed by `fl_owner` (the `struct file` for flock and OFD
/// locks, the `files_struct` for POSIX), so a lock inherited across fork and
/// released by the child is still one hold of the process that took it.
public struct LockAggregator: Sendable {
    /// Every lock seen, in first-seen order, and where each key is.
    public internal(set) var table: [LockStats] = []
    var index: [LockKey: Int] = [:]
    /// The last key looked up and its slot (consecutive events are mostly on one lock).
    var lastKey = LockKey(file: FileIdentity(major: .max, minor: .max, inode: .max), kind: .unknown)
    var lastIndex = -1
    public private(set) var processes: [Int32: ProcessRecord] = [:]
    /// Paths known for identities (the files the user named, or found later).
    public var paths: [FileIdentity: String] = [:]
    public private(set) var firstEventTime: UInt64?
    public private(set) var lastEventTime: UInt64 = 0
    /// Optional lookup of a process's comm/parent when no sched event named it
    /// (processes started before the watch); returns (comm, ppid).
    public var describeProcess: (@Sendable (Int32) -> (comm: String, parent: Int32?)?)?
    /// Optional lookup of a file's path from a process that has it open (the
    /// process of the lock's first events; tried at most `pathTries` times per
    /// lock, never again once found). Must not block (procfs only).
    public var resolvePath: (@Sendable (FileIdentity, Int32) -> String?)?
    public static let pathTries: UInt8 = 3
    /// `/proc/sys/fs/lease-break-time`: a lease that disappears this long after
    /// its break began was revoked by the kernel rather than closed.
    public var leaseBreakSeconds: Double = 45
    /// Locks that have had a queued waiter (the only ones an exit can affect).
    var waiting: Set<Int> = []
    /// Lease slots of processes holding a lease (released when the process exits:
    /// closing a leased file removes the lease without a tracepoint).
    var leaseHolders: [Int32: Set<Int>] = [:]
    /// Lease addresses seen in `time_out_leases`/`generic_delete_lease` → (lock slot,
    /// owner), to place `leases_conflict` and `break_lease_block` (which name no owner).
    var leaseAt: [UInt64: (slot: Int, owner: UInt64)] = [:]
    /// Read breakers woken while the write lease they wait for is still being
    /// downgraded (request address → (lock slot, wake time)): whether the kernel
    /// queues them again is told by the events that follow (LeaseAggregation.swift).
    var wokenBreakers: [UInt64: (slot: Int, at: UInt64)] = [:]
    /// Processes that took part in a lock event, and their ancestors: the only
    /// records kept after an exit (so a long system-wide watch stays small).
    var keep: Set<Int32> = []
    /// The last pid `learn` saw (a busy locker repeats): skips the hash lookups.
    var lastLearned: Int32 = 0
    var lastComm = InlineName()

    public init(paths: [FileIdentity: String] = [:]) { self.paths = paths }

    /// Every lock by key (built on demand; the aggregator keeps them in `table`).
    public var locks: [LockKey: LockStats] {
        Dictionary(table.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
    }
    public var lockCount: Int { table.count }
    public subscript(key: LockKey) -> LockStats? { index[key].map { table[$0] } }

    func comm(_ pid: Int32) -> InlineName {
        if pid == lastLearned { return lastComm }
        return processes[pid]?.comm ?? InlineName()
    }

    /// Records a process first seen in a lock event, and remembers it (and its
    /// parent) past its exit.
    @inline(__always)
    mutating func learn(_ pid: Int32) {
        guard pid != lastLearned else { return }
        if processes[pid] == nil {
            if let d = describeProcess?(pid) {
                processes[pid] = ProcessRecord(pid: pid, parent: d.parent, comm: InlineName(d.comm), exited: nil)
            } else {
                processes[pid] = ProcessRecord(pid: pid, parent: nil, comm: InlineName(), exited: nil)
            }
        }
        if keep.insert(pid).inserted {
            // Every ancestor, not only the parent: a retry loop is folded under the first
            // one that outlives its attempts (`sh → timeout → flock`), so the records of
            // the ones in between must survive their exits.
            var up = processes[pid]?.parent
            while let a = up, keep.insert(a).inserted { up = processes[a]?.parent }
        }
        lastLearned = pid
        lastComm = processes[pid]?.comm ?? InlineName()
    }

    /// The slot of `key`, created when `create`. The previous event's key is
    /// answered without hashing.
    @inline(__always)
    mutating func slot(_ key: LockKey, create: Bool) -> Int? {
        if lastIndex >= 0, key == lastKey { return lastIndex }
        if let i = index[key] {
            lastKey = key; lastIndex = i
            return i
        }
        guard create else { return nil }
        table.append(LockStats(key: key))
        let i = table.count - 1
        index[key] = i
        lastKey = key; lastIndex = i
        return i
    }

    /// Looks the lock's path up from `pid`'s open files while it is unknown
    /// (a few tries: the first events' processes may be gone by the drain).
    @inline(__always)
    mutating func findPath(_ i: Int, pid: Int32) {
        guard table[i].pathTries < Self.pathTries, let resolve = resolvePath else { return }
        let file = table[i].key.file
        if paths[file] != nil { table[i].pathTries = Self.pathTries; return }
        table[i].pathTries += 1
        if let p = resolve(file, pid) {
            paths[file] = p
            table[i].pathTries = Self.pathTries
        }
    }

    /// Applies one event; returns what it meant for a lock (nil for sched
    /// events and for lock events that change nothing, e.g. the F_UNLCK of a
    /// close on a file that held no lock).
    @discardableResult
    public mutating func apply(_ event: KernelEvent) -> LockOperation? {
        let t = event.header.time
        noteTime(t)
        switch event {
        case .fork(let f):
            // A new thread of an existing process shares its tgid; only processes matter here,
            // and a thread's record (never seen in lock events' tgid) is harmless.
            if f.childPid == lastLearned { lastLearned = 0 }
            processes[f.childPid] = ProcessRecord(pid: f.childPid, parent: f.header.pid, comm: f.childComm, exited: nil,
                                                  started: f.header.time)
            if processes[f.header.pid] == nil {
                processes[f.header.pid] = ProcessRecord(pid: f.header.pid, parent: nil, comm: f.parentComm, exited: nil)
            }
            return nil
        case .exec(let x):
            if x.header.pid == lastLearned { lastComm = x.name }
            if var p = processes[x.header.pid] { p.comm = x.name; processes[x.header.pid] = p }
            else { processes[x.header.pid] = ProcessRecord(pid: x.header.pid, parent: nil, comm: x.name, exited: nil) }
            return nil
        case .exit(let x):
            guard x.groupDead else { return nil }
            return exited(x, at: t)
        case .lock(let e):
            return e.tracepoint.isLease ? applyLease(e) : applyLock(e)
        }
    }

    @inline(__always)
    mutating func noteTime(_ t: UInt64) {
        if firstEventTime == nil { firstEventTime = t }
        if t > lastEventTime { lastEventTime = t }
    }

    /// One raw record straight into the counters: the aggregator ends as
    /// `apply(decoder.decode(header, raw: raw))` leaves it, but a flock or fcntl
    /// record is decoded with the flat layout into the lock path, no `KernelEvent`
    /// is built, and the operation is written into `scratch` (kept by the caller
    /// for the whole drain) instead of a 150-byte `LockOperation?` returned and
    /// copied per event. The hot path of `LockEventSource.drain(into:)`. False for
    /// a record the decoder does not know.
    @inline(__always)
    mutating func apply(_ header: SampleHeader, raw: UnsafeRawBufferPointer, decoder: EventDecoder,
                        scratch: inout LockOperation) -> Bool {
        let flat = decoder.flatLock(raw)
        guard flat >= 0 else {
            guard let event = decoder.decode(header, raw: raw) else { return false }
            apply(event)
            return true
        }
        let e = decoder.flatLocks[flat].decode(header, raw)
        noteTime(header.time)
        if e.tracepoint.isLease { _ = applyLease(e) } else { _ = applyLock(e, into: &scratch) }
        return true
    }

    mutating func exited(_ x: ExitEvent, at t: UInt64) -> LockOperation? {
        let pid = x.header.pid
        if pid == lastLearned { lastLearned = 0 }
        if !keep.contains(pid) {
            processes[pid] = nil
            return nil
        }
        if var p = processes[pid] { p.exited = t; processes[pid] = p }
        else { processes[pid] = ProcessRecord(pid: pid, parent: nil, comm: x.comm, exited: t) }
        // A lease breaker woken and not queued again had its open() return.
        var last = wokenBreakers.isEmpty ? nil : settleWokenBreakers(exiting: pid)
        // A waiter that dies while queued gives up its wait.
        for i in waiting {
            while let wi = table[i].queued.firstIndex(where: { $0.pid == pid }) {
                let w = table[i].queued.remove(at: wi)
                table[i].abandonedWaits += 1
                last = LockOperation(time: t, pid: pid, comm: comm(pid), lock: table[i].key, type: w.range.type,
                                     outcome: .abandoned, waited: t &- w.since, held: nil, blockedBy: nil)
            }
        }
        // The exit closed its files: leases go with them, with no tracepoint.
        if let slots = leaseHolders.removeValue(forKey: pid) {
            for i in slots.sorted() {
                while let hi = table[i].held.firstIndex(where: { $0.pid == pid }) {
                    last = leaseGone(i, hi, at: t, .closed) ?? last
                }
            }
        }
        return last
    }

    mutating func applyLock(_ e: LockEvent) -> LockOperation? {
        var op = LockOperation.blank
        return applyLock(e, into: &op) ? op : nil
    }

    /// Applies a flock/fcntl event; true when it meant something for a lock, which
    /// is then described in `op` (written in place: the hot path keeps one).
    mutating func applyLock(_ e: LockEvent, into op: inout LockOperation) -> Bool {
        // fcntl_setlk and locks_remove_posix repeat posix_lock_inode (see above).
        guard e.tracepoint == .flockLockInode || e.tracepoint == .posixLockInode else { return false }
        let pid = e.header.pid
        learn(pid)
        let kind = LockKind(flags: e.flags, tracepoint: e.tracepoint)
        let key = LockKey(file: e.file, kind: kind)
        // Unlocking what was not held (the close after a failed LOCK_NB): no change.
        guard let i = slot(key, create: e.type != .unlock) else { return false }
        findPath(i, pid: pid)
        if e.type == .unlock && table[i].holdingIndex(e.owner) == nil { return false }
        let request = kind == .flock ? HeldRange.whole(e.type) : HeldRange(start: e.start, end: e.end, type: e.type)
        var blockedBy: Int32?
        if e.ret != 0 && e.type != .unlock {
            if e.ret == 1 { waiting.insert(i) }
            blockedBy = table[i].blocker(of: request, owner: e.owner)?.pid
            if blockedBy == nil, kind == .posix || kind == .ofd,
               let other = index[LockKey(file: e.file, kind: kind == .posix ? .ofd : .posix)] {
                blockedBy = table[other].blocker(of: request, owner: e.owner)?.pid
            }
        }
        op.time = e.header.time; op.pid = pid; op.comm = lastComm; op.lock = key; op.type = e.type
        op.outcome = .acquired; op.waited = nil; op.held = nil; op.blockedBy = blockedBy
        op.range = request.isWholeFile ? nil : request
        op.brokenBy = nil; op.breakNanoseconds = nil; op.resolution = nil
        return table[i].apply(e, request: request, comm: lastComm, into: &op)
    }
}

extension LockStats {
    /// Applies the event to this lock; false when it changed nothing. `op` comes
    /// filled as an acquisition by `pid` and is corrected to what happened.
    @inline(__always)
    mutating func apply(_ e: LockEvent, request: HeldRange, comm: InlineName, into op: inout LockOperation) -> Bool {
        let pid = e.header.pid, t = e.header.time
        lastActivity = t
        if e.type == .unlock {
            guard e.ret == 0, let hi = holdingIndex(e.owner) else { return false }
            if held[hi].more.isEmpty && request.start <= held[hi].range.start && request.end >= held[hi].range.end {
                // Everything it held is unlocked (the common case: no range arithmetic).
            } else {
                let left = ByteRanges.apply(held[hi].ranges, request)
                if let first = left.first {
                    held[hi].range = first
                    held[hi].more = Array(left.dropFirst())
                    op.outcome = .released
                    return true  // part of its ranges: still holding
                }
            }
            let (h, d) = release(hi, at: t)
            // Credited to the taker, also when another process sharing the file
            // (a child of flock(1)) released it.
            op.outcome = .released
            op.held = d
            op.pid = h.pid
            op.comm = h.comm
            return true
        }
        let s = slot(pid, comm)
        switch e.ret {
        case 1:  // FILE_LOCK_DEFERRED: queued
            if waitingIndex(e.owner) == nil { queued.append(Waiting(owner: e.owner, pid: pid, since: t, range: request)) }
            processList[s].attempted(at: t)
            op.outcome = .queued
            return true
        case 0:
            let wi = waitingIndex(e.owner)
            if let hi = holdingIndex(e.owner) {
                // A conversion (LOCK_SH → LOCK_EX), another range, or a repeat by the holder: still one hold.
                if held[hi].more.isEmpty && held[hi].range.start == request.start && held[hi].range.end == request.end {
                    held[hi].range.type = request.type
                } else {
                    let now = ByteRanges.apply(held[hi].ranges, request)
                    held[hi].range = now[0]
                    held[hi].more = Array(now.dropFirst())
                }
                guard let wi else { return false }
                // It had to wait for the new range: a contended acquisition.
                let w = queued.remove(at: wi)
                acquisitions += 1
                processList[s].acquisitions += 1
                granted(&op, waited: t &- w.since, slot: s)
                return true
            }
            held.append(Holding(owner: e.owner, pid: pid, comm: comm, since: t, range: request))
            acquisitions += 1
            processList[s].acquisitions += 1
            if let wi {
                let w = queued.remove(at: wi)
                granted(&op, waited: t &- w.since, slot: s)
                return true
            }
            processList[s].attempted(at: t)
            op.outcome = .acquired
            return true
        default:
            if let wi = waitingIndex(e.owner) {
                // A queued request that ended in an error (-EINTR, -ERESTARTSYS, -EDEADLK).
                let w = queued.remove(at: wi)
                abandonedWaits += 1
                op.outcome = .abandoned
                op.waited = t &- w.since
                return true
            }
            failedAttempts += 1
            processList[s].failedAttempts += 1
            processList[s].attempted(at: t)
            op.outcome = .failed(errno: -e.ret)
            return true
        }
    }

    @inline(__always)
    mutating func granted(_ op: inout LockOperation, waited: UInt64, slot s: Int) {
        contended += 1
        wait.record(nanoseconds: waited)
        processList[s].waits += 1
        processList[s].waitNanoseconds += waited
        op.outcome = .granted
        op.waited = waited
        op.blockedBy = nil
    }
}
