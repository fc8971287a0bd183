import Dispatch
import LockscopeCore
import LockscopeEvents
import LockscopeMetrics
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `serve`'s kernel lock-event feed: the `watch` event source (perf on the filelock
/// and sched tracepoints; nothing is written to tracefs) run on a thread of its own for
/// the server's lifetime, each lock operation pushed into `EventMetrics`.
final class ServeEventFeed: Sendable {
    let recorder: any LockEventRecorder
    let stopRequested = Atomic<Bool>(false)
    let finished = DispatchSemaphore(value: 0)

    /// The aggregator is replaced once it tracks this many locks or processes, so a
    /// server that runs for months stays small (`watch` keeps every lock it saw). A wait
    /// in progress across a reset is counted as an acquisition that did not wait.
    static let maxLocks = 1024
    static let maxProcesses = 32_768
    /// How often the rings are drained (sooner when a ring is a quarter full): a
    /// scrape's counters are at most this stale. Each wake-up costs CPU on a busy
    /// box (every fork, exec and exit is an event), so not `watch`'s 100 ms.
    static let drainMilliseconds: Int32 = 500
    /// 1 MiB per CPU (watch: 4 MiB): at 500 ms that holds bursts of ~10k events per CPU.
    static let ringPages = 256

    init(recorder: any LockEventRecorder) { self.recorder = recorder }

    /// Opens and enables the events on the feed's thread, then keeps draining them
    /// until `stop()`. Returns nil once they run, or why they cannot (not root, no
    /// filelock tracepoints, perf refused): the exporter then serves snapshots only.
    func start() -> String? {
        guard geteuid() == 0 else {
            return "not root (perf_event_open on the filelock tracepoints needs root or CAP_PERFMON)"
        }
        let failed = LockEventSource.startOnItsOwnThread(label: "lockscope.serve.events",
                                                        opening: { () throws(EventsError) in try LockEventSource(pages: Self.ringPages) }) { source in
            self.run(source)
        }
        if let failed {
            finished.signal()
            return terminalSafe(failed.description)
        }
        recorder.setAvailable(true)
        return nil
    }

    func run(_ source: LockEventSource) {
        var aggregator = LockAggregator()
        let recorder = self.recorder
        func handle(_ e: KernelEvent) {
            if let op = aggregator.apply(e) { Self.record(op, into: recorder) }
        }
        while !stopRequested.load(ordering: .acquiring) {
            _ = source.wait(timeoutMilliseconds: Self.drainMilliseconds)
            source.drain(handle)
            recorder.setLostEvents(source.lostEvents)
            recorder.setHolders(Self.holders(aggregator))
            if aggregator.locks.count >= Self.maxLocks || aggregator.processes.count >= Self.maxProcesses {
                aggregator = LockAggregator()
            }
        }
        source.session.disable()
        source.drain(everything: true, handle)
        recorder.setLostEvents(source.lostEvents)
        source.close()
        recorder.setHolders([])
        recorder.setAvailable(false)
        finished.signal()
    }

    /// The current holders whose grant the aggregator saw (since the feed started or
    /// its last reset): what makes `lockscope_lock_holder_seconds` exact.
    static func holders(_ aggregator: LockAggregator) -> [EventHolder] {
        var out: [EventHolder] = []
        for (key, stats) in aggregator.locks where !stats.holders.isEmpty {
            for h in stats.holders.values { out.append(EventHolder(file: key.file, kind: key.kind, pid: h.pid, since: h.since)) }
        }
        return out
    }

    /// What one lock operation adds to the metrics: a grant (at once, or after a
    /// wait) is an acquisition with its wait; a request refused with EAGAIN
    /// (`LOCK_NB`, `F_SETLK`) is a failed attempt; a release is one observation of the
    /// hold histogram. Queues and abandoned waits add nothing. The path comes from what snapshots learned (`learnPaths`).
    static func record(_ op: LockOperation, into recorder: any LockEventRecorder) {
        switch op.outcome {
        case .acquired:
            recorder.recordAcquisition(file: op.lock.file, path: nil, waitedSeconds: 0)
        case .granted:
            recorder.recordAcquisition(file: op.lock.file, path: nil, waitedSeconds: Double(op.waited ?? 0) / 1e9)
        case .failed(let errno) where errno == EAGAIN:
            recorder.recordFailedAttempt(file: op.lock.file, path: nil)
        case .released:
            if let held = op.held { recorder.recordRelease(file: op.lock.file, path: nil, heldSeconds: Double(held) / 1e9) }
        case .failed, .queued, .abandoned:
            break
        }
    }

    /// Stops the feed and waits until its perf descriptors are closed.
    func stop() {
        stopRequested.store(true, ordering: .releasing)
        finished.wait()
    }
}
