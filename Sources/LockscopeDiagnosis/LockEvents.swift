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
    public init(seconds: Double, lostEvents: UInt64, pollers: [EventPoller]) {
        self.seconds = seconds
        self.lostEvents = lostEvents
        self.pollers = pollers
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

extension LockReport {
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
    public func observe<T>(files: [FileIdentity]?, report: inout LockReport, facts: (Int32) -> ProcessFacts?,
                           during window: () -> T) -> T {
        switch start(files: files) {
        case .failure(let why):
            let out = window()
            report.lockEvents = .unavailable(reason: why.reason)
            return out
        case .success(let recording):
            let out = window()
            report.add(recording.stop(), facts: facts)
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
            let observation = LockEventsObservation(seconds: Double(end - start) / 1e9, lostEvents: source.lostEvents,
                                                    pollers: aggregator.pollers(now: end))
            source.close()
            self.result.withLock { $0 = observation }
            self.finished.signal()
        }
        guard let failed else { return nil }
        finished.signal()
        return terminalSafe(failed.description)
    }

    func stop() -> LockEventsObservation {
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
                                         pollers: agg.pollers(now: agg.lastEventTime))
        }
    }
}
