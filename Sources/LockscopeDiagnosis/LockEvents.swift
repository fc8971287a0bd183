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

public struct LockEventsObservation: Sendable {
    public var seconds: Double
    public var lostEvents: UInt64
    /// Processes that were refused at least once (LOCK_NB / F_SETLK conflicts).
    public var pollers: [EventPoller]
    /// Lease breaks still in progress when the recording stopped.
    public var leaseBreaks: [EventLeaseBreak]
    public init(seconds: Double, lostEvents: UInt64, pollers: [EventPoller], leaseBreaks: [EventLeaseBreak] = []) {
        self.seconds = seconds
        self.lostEvents = lostEvents
        self.pollers = pollers
        self.leaseBreaks = leaseBreaks
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
                                               queuePosition: locks[i].waiters.count + 1, source: .events, process: facts(pid)))
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
    /// When `stop()` was called (CLOCK_MONOTONIC ns): the end of the window, which
    /// the lease clocks are given at (the thread notices up to 50 ms later).
    let stopCalledAt = Atomic<UInt64>(0)
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
            aggregator.describeProcess = { pid in
                guard let text = try? proc.readText("\(pid)/stat"), let stat = StatFields.parse(text) else { return nil }
                return (stat.comm, stat.ppid)
            }
            while !self.stopRequested.load(ordering: .acquiring) {
                _ = source.wait(timeoutMilliseconds: 50)
                source.drain { aggregator.apply($0) }
            }
            source.session.disable()
            source.drain(everything: true) { aggregator.apply($0) }
            let end = UInt64(MonotonicClock.nanoseconds)
            let asOf = self.stopCalledAt.load(ordering: .acquiring)
            let observation = LockEventsObservation(seconds: Double(end - start) / 1e9, lostEvents: source.lostEvents,
                                                    pollers: aggregator.pollers(now: end),
                                                    leaseBreaks: aggregator.pendingLeaseBreaks(now: asOf == 0 ? end : asOf))
            source.close()
            self.result.withLock { $0 = observation }
            self.finished.signal()
        }
        guard let failed else { return nil }
        finished.signal()
        return terminalSafe(failed.description)
    }

    func stop() -> LockEventsObservation {
        stopCalledAt.store(UInt64(MonotonicClock.nanoseconds), ordering: .releasing)
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
            agg.describeProcess = describe
            for e in events {
                // The in-kernel filter's job: only lock events on the files (sched events always).
                if case .lock(let l) = e, let files, !files.contains(l.file) { continue }
                agg.apply(e)
            }
            let first = agg.firstEventTime ?? 0
            return LockEventsObservation(seconds: Double(agg.lastEventTime &- first) / 1e9, lostEvents: 0,
                                         pollers: agg.pollers(now: agg.lastEventTime),
                                         leaseBreaks: agg.pendingLeaseBreaks(now: agg.lastEventTime))
        }
    }
}
