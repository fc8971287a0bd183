import Dispatch
import LockscopeCore
import LockscopeEvents
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where kernel lock events come from during a window (`diagnose`, `waiters
/// --window`): the filelock tracepoints live, or recorded events in tests.
/// Injected, like `ActivityProvider`, so the window is tested on fixtures.
public protocol LockEventsProvider: Sendable {
    /// Starts recording lock requests on `files` (nil: every file); returns the
    /// running recording, or why events cannot be read (never throws: callers
    /// fall back to the snapshot).
    func start(files: [FileIdentity]?) -> Result<any LockEventsRecording, LockEventsUnavailable>
}

/// A recording in progress; `stop()` ends it and says what was seen.
public protocol LockEventsRecording: AnyObject, Sendable {
    func stop() -> LockEventsObservation
}

public struct LockEventsUnavailable: Error, Sendable, Hashable {
    /// `not root`, `no filelock tracepoints …`: what the note says in parentheses.
    public var reason: String
    public init(reason: String) { self.reason = reason }
}

/// One process's attempts on one file over the window.
public struct EventPoller: Sendable, Hashable {
    /// The process, or for a retry loop the persistent ancestor that starts the attempts.
    public var pid: Int32
    public var comm: String
    public var file: FileIdentity
    public var attempts: LockAttempts
}

/// A request still queued behind a lock when the window ended.
public struct EventWait: Sendable, Hashable {
    public var pid: Int32
    public var file: FileIdentity
    public var kind: LockKind
    public var access: LockAccess
    public var start: Int64
    /// Nil: to the end of the file.
    public var end: Int64?
    /// The holder it queued behind, as the events saw it.
    public var blockedBy: Int32?
    /// From the first queueing seen (FILE_LOCK_DEFERRED) to the window's end.
    public var seconds: Double
    /// Whether the queueing seen began the wait (see `WaitStarts`).
    public var certainty: WaitStarts.Start
}

extension LockAccess {
    /// The access of an event's `fl_type` (F_RDLCK, F_WRLCK, F_UNLCK).
    init(_ type: LockType) {
        switch type {
        case .read: self = .read
        case .unlock: self = .unlock
        default: self = .write
        }
    }
}

/// A lock held when the window ended whose grant the window saw.
public struct EventHold: Sendable, Hashable {
    public var pid: Int32
    public var file: FileIdentity
    public var kind: LockKind
    /// From the grant to the window's end.
    public var seconds: Double
}

public struct LockEventsObservation: Sendable {
    public var seconds: Double
    public var lostEvents: UInt64
    /// Processes that were refused at least once (LOCK_NB / F_SETLK conflicts).
    public var pollers: [EventPoller]
    /// Lease breaks still in progress when the recording stopped.
    public var leaseBreaks: [EventLeaseBreak] = []
    /// Requests still queued at the end, with how long they had waited.
    public var waits: [EventWait] = []
    /// Locks held at the end that were granted during the window (a new hold, not one
    /// from before: see `WaitStarts.newHold`).
    public var holds: [EventHold] = []
    /// The window's end on the live clock (CLOCK_MONOTONIC ns), what durations are
    /// measured to; nil for recorded events (their clock is their own).
    public var endedAt: Int64? = nil
    public init(seconds: Double, lostEvents: UInt64, pollers: [EventPoller], leaseBreaks: [EventLeaseBreak] = [],
                waits: [EventWait] = [], holds: [EventHold] = []) {
        self.seconds = seconds
        self.lostEvents = lostEvents
        self.pollers = pollers
        self.leaseBreaks = leaseBreaks
        self.waits = waits
        self.holds = holds
    }
}

/// A lease break in progress at the end of the recording, as the filelock
/// tracepoints showed it (LockscopeEvents/LeaseAggregation.swift).
public struct EventLeaseBreak: Sendable, Hashable {
    public var file: FileIdentity
    /// 0 for a lease taken before the recording whose holder no event named.
    public var holder: Int32
    /// The opener whose open() or truncate() began the break (nil when only the flag was seen).
    public var breaker: Int32?
    public var breakerComm: String?
    /// The breaker opens for writing: the lease must go (a read breaker waits for a downgrade).
    public var write: Bool
    /// Seconds since the kernel set the deadline of the break, at the end of the
    /// recording: exact, since the events saw the conflicting open that set it. Nil
    /// when the break began before the recording (only an estimate is possible).
    public var deadlineSetSecondsAgo: Double?

    public init(file: FileIdentity, holder: Int32, breaker: Int32?, breakerComm: String?, write: Bool,
                deadlineSetSecondsAgo: Double?) {
        self.file = file
        self.holder = holder
        self.breaker = breaker
        self.breakerComm = breakerComm
        self.write = write
        self.deadlineSetSecondsAgo = deadlineSetSecondsAgo
    }
}

/// Which waits and holds the window saw begin, from the aggregator's operations
/// and the raw events, so that a duration measured from an event is exact and
/// not a wait from before the window that the events only saw resume.
///
/// fs/locks.c: a blocking request that conflicts is queued (`locks_insert_block()`)
/// and `flock_lock_inode()` / `posix_lock_inode()` return FILE_LOCK_DEFERRED (1),
/// which the `flock_lock_inode` / `posix_lock_inode` tracepoints report as `ret=1`
/// (include/trace/events/filelock.h, `filelock_lock` class: `__entry->ret`). When a
/// blocker goes away `locks_wake_up_blocks()` wakes its waiters and each loops in
/// `flock_lock_inode_wait()` / `posix_lock_inode_wait()` calling the same function
/// again: a waiter that loses the race is queued again and fires `ret=1` a second
/// time. So the first `ret=1` of a process in the window is the start of its wait
/// only when it cannot be such a retry: the window saw its previous request end
/// (granted, refused, released, abandoned), it was forked during the window, or —
/// for a process that was not waiting when the snapshot was read — no waiter on the
/// file could have been woken yet (no request on it ended before, other than a refusal:
/// an unlock, a grant, an interrupted wait all wake the waiters behind them).
public struct WaitStarts: Sendable {
    public enum Start: Sendable, Hashable {
        /// Its previous request was seen ending, or it was forked in the window: the wait began here.
        case seen
        /// Its first request in the window, before any wake-up on the file: the wait
        /// began here unless it was already queued when the window began.
        case firstBeforeWakeups
        /// It may have been woken and queued again: the wait may be older.
        case unknown
    }
    struct Key: Hashable {
        var lock: LockKey
        var pid: Int32
    }
    /// Files on which a queued waiter may have been woken (a release, a grant, an abandoned wait).
    var wakeups: Set<FileIdentity> = []
    /// Requests whose end the window saw (the next one is a new request).
    var ended: Set<Key> = []
    /// The current wait of each (lock, pid): how its start is known, and who it queued behind.
    var queued: [Key: (start: Start, blockedBy: Int32?)] = [:]
    /// Processes seen unlocking a lock (raw `F_UNLCK` events, also of a hold from before
    /// the window, which the aggregator does not report; a close that drops it fires one
    /// too: `locks_remove_flock()`, `locks_remove_posix()`), and when first.
    var unlocked: [LockKey: [Int32: UInt64]] = [:]

    public init() {}

    /// Takes one raw event and what the aggregator made of it.
    public mutating func take(_ event: KernelEvent, _ op: LockOperation?) {
        if case .lock(let e) = event, e.type == .unlock, e.ret == 0,
           e.tracepoint == .flockLockInode || e.tracepoint == .posixLockInode {
            // Also the unlock of a hold from before the window, of which the aggregator says nothing.
            let key = LockKey(file: e.file, kind: LockKind(flags: e.flags, tracepoint: e.tracepoint))
            if unlocked[key]?[e.header.pid] == nil { unlocked[key, default: [:]][e.header.pid] = e.header.time }
            wakeups.insert(e.file)
        }
        guard let op else { return }
        let key = Key(lock: op.lock, pid: op.pid)
        switch op.outcome {
        case .queued:
            guard queued[key] == nil else { return }
            let start: Start = ended.contains(key) ? .seen : (wakeups.contains(op.lock.file) ? .unknown : .firstBeforeWakeups)
            queued[key] = (start, op.blockedBy)
            return
        case .granted, .abandoned:
            queued[key] = nil
        case .failed(let errno) where errno == EAGAIN || errno == EDEADLK:
            // Refused at once: nobody was woken.
            ended.insert(key)
            return
        case .acquired, .released, .failed:
            // `.acquired` may be a waiter from before the window being granted, `.failed` one
            // being interrupted (-ERESTARTSYS): either wakes the waiters queued behind it.
            break
        }
        ended.insert(key)
        wakeups.insert(op.lock.file)
    }

    /// What is still queued and held at `now`, from the aggregator's state (the
    /// truth for who still waits) and what was seen begin.
    public func outcome(_ agg: LockAggregator, now: UInt64) -> (waits: [EventWait], holds: [EventHold]) {
        var waits: [EventWait] = []
        var holds: [EventHold] = []
        for stats in agg.table where stats.key.kind != .lease {
            for w in stats.queued {
                let key = Key(lock: stats.key, pid: w.pid)
                var start = queued[key]?.start ?? .unknown
                // Forked during the window: it cannot have queued before it.
                if start != .seen, let born = agg.processes[w.pid]?.started, born <= w.since { start = .seen }
                waits.append(EventWait(pid: w.pid, file: stats.key.file, kind: stats.key.kind, access: LockAccess(w.range.type),
                                       start: w.range.start, end: w.range.end == .max ? nil : w.range.end,
                                       blockedBy: queued[key]?.blockedBy, seconds: Double(now &- min(now, w.since)) / 1e9, certainty: start))
            }
            for h in stats.held where !h.preexisting && newHold(h, lock: stats.key, agg: agg) {
                holds.append(EventHold(pid: h.pid, file: stats.key.file, kind: stats.key.kind, seconds: Double(now &- min(now, h.since)) / 1e9))
            }
        }
        return (waits, holds)
    }

    /// Whether a holding the aggregator started in the window is a new hold. It starts
    /// one at the first grant it sees for an owner, which for a hold from before the
    /// window may be only a conversion or another byte range of it; the hold is new
    /// when the window saw the taker unlock that lock (or close it) before the grant,
    /// or the taker was forked in the window.
    func newHold(_ h: Holding, lock: LockKey, agg: LockAggregator) -> Bool {
        if let born = agg.processes[h.pid]?.started, born <= h.since { return true }
        guard let at = unlocked[lock]?[h.pid] else { return false }
        return at <= h.since
    }
}

extension LockAggregator {
    /// Every process refused at least once, per file (flock and fcntl requests on
    /// one file added up). A retry loop folded by the summary is reported under its
    /// persistent ancestor; a lone per-attempt process that exited (one attempt of a
    /// loop in a short window) also under the first ancestor that outlived it, so
    /// the answer names a process that is still there. Pure.
    public func pollers(now: UInt64) -> [EventPoller] {
        struct Key: Hashable { var file: FileIdentity; var pid: Int32 }
        var out: [Key: EventPoller] = [:]
        var order: [Key] = []
        for l in summary(now: now, durationSeconds: 0, lostEvents: 0).locks {
            for p in l.processes where p.failedAttempts > 0 {
                var pid = p.pid, comm = p.comm, command = p.attemptCommand, members = p.attemptPids
                if command == nil, processes[p.pid]?.exited != nil, let up = persistentAncestor(of: p.pid) {
                    pid = up
                    comm = processes[up]?.comm.description ?? ""
                    command = p.comm
                    members = [p.pid]
                }
                let key = Key(file: l.lock.file, pid: pid)
                let mine = LockAttempts(attempts: p.attempts, failed: p.failedAttempts, retryIntervalSeconds: p.retryIntervalSeconds,
                                        attemptCommand: command, attemptPids: members, comm: comm.isEmpty ? nil : comm)
                guard var e = out[key] else {
                    out[key] = EventPoller(pid: pid, comm: comm, file: l.lock.file, attempts: mine)
                    order.append(key)
                    continue
                }
                // The same process on another kind of lock on the same file: one entry.
                e.attempts.attempts += mine.attempts
                e.attempts.failed += mine.failed
                e.attempts.retryIntervalSeconds = e.attempts.retryIntervalSeconds ?? mine.retryIntervalSeconds
                e.attempts.attemptPids = (e.attempts.attemptPids + mine.attemptPids).sorted()
                if e.comm.isEmpty { e.comm = comm; e.attempts.comm = mine.comm }
                out[key] = e
            }
        }
        return order.compactMap { out[$0] }
    }
}

extension LockAggregator {
    /// The lease breaks in progress at `now` (CLOCK_MONOTONIC ns), by file. The
    /// kernel's deadline is in jiffies (`fl_break_time` in the `time_out_leases`
    /// record, include/trace/events/filelock.h), which user space cannot put on the
    /// monotonic clock; the event that set it has a timestamp, and the deadline is
    /// that plus lease-break-time (to a jiffy). Pure.
    public func pendingLeaseBreaks(now: UInt64) -> [EventLeaseBreak] {
        var out: [EventLeaseBreak] = []
        for (key, stats) in locks where key.kind == .lease {
            for h in stats.held {
                guard let b = h.pendingBreak else { continue }
                out.append(EventLeaseBreak(file: key.file, holder: h.pid, breaker: b.breaker,
                                           breakerComm: b.breaker == nil ? nil : b.breakerComm.description, write: b.write,
                                           deadlineSetSecondsAgo: b.deadlineSet.map { Double(now > $0 ? now - $0 : 0) / 1e9 }))
            }
        }
        return out.sorted { ($0.file.description, $0.holder) < ($1.file.description, $1.holder) }
    }
}

extension LockReport {
    /// Adds the breaks lock events saw begin during the window to the leases they
    /// break (a lease held, not yet broken, when the snapshot was read): the lease
    /// becomes `BREAKING` and its breaker a waiter (source `events`), as /proc/locks
    /// would now list them. Breaks that began before the window are the snapshot's
    /// already. `facts` describes the breakers. Pure.
    public mutating func add(leaseBreaks: [EventLeaseBreak], facts: (Int32) -> ProcessFacts?) {
        for b in leaseBreaks where b.deadlineSetSecondsAgo != nil {
            for i in locks.indices where locks[i].kind == .lease && locks[i].file == b.file {
                let holder = locks[i].holders.first?.pid ?? locks[i].kernelPid
                guard b.holder == 0 || b.holder == holder else { continue }
                locks[i].mode = "BREAKING"
                guard let pid = b.breaker, pid > 0, !locks[i].waiters.contains(where: { $0.pid == pid }) else { continue }
                locks[i].waiters.append(Waiter(pid: pid, tid: nil, fd: nil, kind: .lease, access: b.write ? .write : .read,
                                               start: 0, end: nil, blockedBy: holder, directBlocker: holder,
                                               queuePosition: locks[i].waiters.count + 1, source: .event, process: facts(pid)))
            }
        }
    }

    /// Adds what lock events saw to a snapshot report, each process once: a pid
    /// the snapshot already lists as holder or kernel waiter of the file is left
    /// as it is (a blocked waiter is not also a poller); an opener becomes a poller
    /// with its attempts; anyone else is added as a poller with no descriptor
    /// (`fd` nil). Openers that were one attempt of a retry loop now reported under
    /// its ancestor are dropped. `facts` names the added processes. Pure.
    public mutating func add(_ observation: LockEventsObservation, facts: (Int32) -> ProcessFacts?) {
        lockEvents = .observed(seconds: observation.seconds, lostEvents: observation.lostEvents)
        addWaits(observation.waits, facts: facts)
        addHolds(observation.holds)
        restateEstimates(at: observation.endedAt)
        for p in observation.pollers {
            let onFile = locks.filter { $0.file == p.file }
            if onFile.contains(where: { l in l.holders.contains { $0.pid == p.pid } || l.waiters.contains { $0.pid == p.pid } }) {
                continue
            }
            openers.removeAll { $0.file == p.file && p.attempts.attemptPids.contains($0.pid) }
            if let i = openers.firstIndex(where: { $0.file == p.file && $0.pid == p.pid }) {
                openers[i].activity = .polling
                openers[i].attempts = p.attempts
                continue
            }
            openers.append(Opener(pid: p.pid, fd: nil, file: p.file, activity: .polling, process: facts(p.pid), attempts: p.attempts))
        }
        demoteUnseenPollers(observation)
    }

    /// Exact waits where the events saw the wait begin. A waiter the snapshot lists
    /// (it queued before the window) gets one only when the window saw its earlier
    /// request end and a new one queue (`WaitStarts.Start.seen`): a first `ret=1` of
    /// it may be the same wait queued again after a wake-up. A process that queued
    /// during the window is added as a waiter (`source` `event`, no tid or fd) under
    /// the snapshot's entry of that lock, with its exact wait unless it may have been
    /// queued already (then its age, as for any waiter); it leaves `openers`. A wait on a
    /// file the snapshot saw unlocked has no entry to go under and is left out.
    mutating func addWaits(_ waits: [EventWait], facts: (Int32) -> ProcessFacts?) {
        for w in waits.sorted(by: { ($0.seconds, $0.pid) > ($1.seconds, $1.pid) }) {
            let family = locks.indices.filter { locks[$0].file == w.file && Self.sameFamily(locks[$0].kind, w.kind) }
            var listed = false
            for li in family {
                guard let wi = locks[li].waiters.firstIndex(where: { $0.pid == w.pid }) else { continue }
                if w.certainty == .seen { locks[li].waiters[wi].waitedSeconds = w.seconds }
                listed = true
                break
            }
            if listed { continue }
            // Already a holder of the file (queued for another range, or a conversion): not a new waiter.
            if family.contains(where: { li in locks[li].holders.contains { $0.pid == w.pid } }) { continue }
            let byHolder = family.first { li in w.blockedBy.map { b in locks[li].holders.contains { $0.pid == b } } ?? false }
            let byRange = family.first { li in locks[li].start <= (w.end ?? .max) && (locks[li].end ?? .max) >= w.start }
            guard let li = byHolder ?? byRange ?? family.first else { continue }
            let owner = locks[li].holders.first { $0.isOwner }?.pid ?? (locks[li].kernelPid > 0 ? locks[li].kernelPid : nil)
            let opener = openers.first { $0.file == w.file && $0.pid == w.pid }
            var waiter = Waiter(pid: w.pid, tid: nil, fd: opener?.fd, kind: w.kind, access: w.access, start: w.start, end: w.end,
                                blockedBy: w.blockedBy ?? owner, directBlocker: nil,
                                queuePosition: (locks[li].waiters.map(\.queuePosition).max() ?? 0) + 1, source: .event,
                                process: opener?.process ?? facts(w.pid))
            if w.certainty != .unknown { waiter.waitedSeconds = w.seconds }
            locks[li].waiters.append(waiter)
            openers.removeAll { $0.file == w.file && $0.pid == w.pid }
        }
    }

    /// Estimates (process ages when scanned) stated at the window's end, as exact
    /// waits are: plus the time from the scan's start to the end, so still an upper bound.
    mutating func restateEstimates(at end: Int64?) {
        guard let end, let scannedAt, end > scannedAt else { return }
        let later = Double(end - scannedAt) / 1e9
        for li in locks.indices {
            for wi in locks[li].waiters.indices where locks[li].waiters[wi].waitedSeconds == nil {
                locks[li].waiters[wi].estimateLaterSeconds = later
            }
        }
    }

    /// Exact hold times of the snapshot's holders whose grant the window saw (they
    /// unlocked and took the lock again, or were forked in it): every holder of that
    /// entry shares the lock, so each gets it.
    mutating func addHolds(_ holds: [EventHold]) {
        for h in holds {
            for li in locks.indices where locks[li].file == h.file && locks[li].kind == h.kind
                && locks[li].holders.contains(where: { $0.pid == h.pid && $0.isOwner }) {
                for hi in locks[li].holders.indices { locks[li].holders[hi].heldSeconds = h.seconds }
            }
        }
    }

    /// With lock events that watched for at least `protocolRetrySeconds`, an opener the
    /// snapshot called polling only because it slept with the file of a retrying lock
    /// protocol, and of which the events saw no attempt, is idle (open, asleep): the
    /// retry intervals of those protocols are at most a second (iptables -w's default
    /// `-W` 1 s, apt's lock timeout 1 s, SQLite's busy handler ≤ 100 ms), so one that
    /// polled would have been seen. One caught in the attempt itself stays polling.
    mutating func demoteUnseenPollers(_ observation: LockEventsObservation) {
        guard observation.seconds >= Self.protocolRetrySeconds else { return }
        for i in openers.indices where openers[i].activity == .polling && openers[i].asleep && openers[i].attempts == nil {
            openers[i].activity = .idle
        }
    }

    /// The longest retry interval of the lock protocols whose sleepers are called polling.
    static let protocolRetrySeconds = 1.0

    /// flock locks and POSIX/OFD locks never conflict with each other; POSIX and OFD do.
    static func sameFamily(_ a: LockKind, _ b: LockKind) -> Bool {
        (a == .flock) == (b == .flock)
    }
}

extension LockEventsProvider {
    /// Runs `window` (the sampler's window, or a plain wait) with lock events
    /// recording on `files` (nil: every file), then adds what they saw to
    /// `report`; when events cannot be read, the report says why and stays the
    /// snapshot's. `facts` describes processes the report does not list yet.
    /// `seen` is handed the observation (what `report` has no place for).
    public func observe<T>(files: [FileIdentity]?, report: inout LockReport, facts: (Int32) -> ProcessFacts?,
                           during window: () -> T, seen: (LockEventsObservation) -> Void = { _ in }) -> T {
        switch start(files: files) {
        case .failure(let why):
            let out = window()
            report.lockEvents = .unavailable(reason: why.reason)
            return out
        case .success(let recording):
            let out = window()
            let observation = recording.stop()
            report.add(observation, facts: facts)
            seen(observation)
            return out
        }
    }
}

/// The live source: the `watch` event feed (perf on the filelock and sched
/// tracepoints, filtered in the kernel to the files), drained on a thread of its
/// own for the window. Nothing is written to tracefs.
public struct KernelLockEvents: LockEventsProvider {
    public var proc: ProcRoot
    public init(proc: ProcRoot = ProcRoot()) { self.proc = proc }

    public func start(files: [FileIdentity]?) -> Result<any LockEventsRecording, LockEventsUnavailable> {
        guard proc.isLive else { return .failure(LockEventsUnavailable(reason: "not the live /proc")) }
        guard geteuid() == 0 else { return .failure(LockEventsUnavailable(reason: "not root")) }
        let recording = KernelLockRecording(proc: proc)
        if let reason = recording.begin(files: files ?? []) { return .failure(LockEventsUnavailable(reason: reason)) }
        return .success(recording)
    }
}

final class KernelLockRecording: LockEventsRecording {
    let proc: ProcRoot
    let stopRequested = Atomic<Bool>(false)
    /// When `stop()` was called (CLOCK_MONOTONIC ns): the window's end, what durations
    /// are measured to (not the drain after it, up to a poll timeout later).
    let stoppedAt = Atomic<Int64>(0)
    let finished = DispatchSemaphore(value: 0)
    let result = Mutex<LockEventsObservation?>(nil)

    init(proc: ProcRoot) { self.proc = proc }

    /// Opens and enables the events on the recording's thread; nil once they run, else why not.
    func begin(files: [FileIdentity]) -> String? {
        let proc = self.proc
        let failed = LockEventSource.startOnItsOwnThread(label: "lockscope.diagnose.events",
                                                        opening: { () throws(EventsError) in try LockEventSource(files: files) }) { source in
            let start = UInt64(MonotonicClock.nanoseconds)
            var aggregator = LockAggregator()
            var starts = WaitStarts()
            aggregator.describeProcess = { pid in
                guard let text = try? proc.readText("\(pid)/stat"), let stat = StatFields.parse(text) else { return nil }
                return (stat.comm, stat.ppid)
            }
            func take(_ e: KernelEvent) { starts.take(e, aggregator.apply(e)) }
            while !self.stopRequested.load(ordering: .acquiring) {
                _ = source.wait(timeoutMilliseconds: 50)
                source.drain(take)
            }
            source.session.disable()
            source.drain(everything: true, take)
            // The events' clock is CLOCK_MONOTONIC (perf `use_clockid`, CLockscopeEvents), as this is.
            let stopped = self.stoppedAt.load(ordering: .acquiring)
            let end = UInt64(stopped > 0 ? stopped : MonotonicClock.nanoseconds)
            let (waits, holds) = starts.outcome(aggregator, now: end)
            var observation = LockEventsObservation(seconds: Double(end &- min(end, start)) / 1e9, lostEvents: source.lostEvents,
                                                    pollers: aggregator.pollers(now: end),
                                                    leaseBreaks: aggregator.pendingLeaseBreaks(now: end),
                                                    waits: waits, holds: holds)
            observation.endedAt = Int64(end)
            source.close()
            self.result.withLock { $0 = observation }
            self.finished.signal()
        }
        guard let failed else { return nil }
        finished.signal()
        return terminalSafe(failed.description)
    }

    func stop() -> LockEventsObservation {
        stoppedAt.store(MonotonicClock.nanoseconds, ordering: .releasing)
        stopRequested.store(true, ordering: .releasing)
        finished.wait()
        return result.withLock { $0 } ?? LockEventsObservation(seconds: 0, lostEvents: 0, pollers: [])
    }
}

/// Recorded events (a fixture, or built by hand), applied when the recording
/// stops: the window's logic tested without root or a kernel.
public struct RecordedLockEvents: LockEventsProvider {
    public var events: [KernelEvent]
    public var describeProcess: (@Sendable (Int32) -> (comm: String, parent: Int32?)?)?
    public init(events: [KernelEvent], describeProcess: (@Sendable (Int32) -> (comm: String, parent: Int32?)?)? = nil) {
        self.events = events
        self.describeProcess = describeProcess
    }

    public func start(files: [FileIdentity]?) -> Result<any LockEventsRecording, LockEventsUnavailable> {
        .success(Replay(events: events, files: files.map(Set.init), describe: describeProcess))
    }

    final class Replay: LockEventsRecording {
        let events: [KernelEvent]
        let files: Set<FileIdentity>?
        let describe: (@Sendable (Int32) -> (comm: String, parent: Int32?)?)?
        init(events: [KernelEvent], files: Set<FileIdentity>?, describe: (@Sendable (Int32) -> (comm: String, parent: Int32?)?)?) {
            self.events = events
            self.files = files
            self.describe = describe
        }

        func stop() -> LockEventsObservation {
            var agg = LockAggregator()
            var starts = WaitStarts()
            agg.describeProcess = describe
            for e in events {
                // The in-kernel filter's job: only lock events on the files (sched events always).
                if case .lock(let l) = e, let files, !files.contains(l.file) { continue }
                starts.take(e, agg.apply(e))
            }
            let first = agg.firstEventTime ?? 0
            // The window ends at the last event.
            let (waits, holds) = starts.outcome(agg, now: agg.lastEventTime)
            return LockEventsObservation(seconds: Double(agg.lastEventTime &- first) / 1e9, lostEvents: 0,
                                         pollers: agg.pollers(now: agg.lastEventTime),
                                         leaseBreaks: agg.pendingLeaseBreaks(now: agg.lastEventTime),
                                         waits: waits, holds: holds)
        }
    }
}
