import LockscopeCore
import Synchronization
import Prometheus

/// What a kernel lock-events source (perf_event_open on the `filelock:*`
/// tracepoints) tells the exporter, one call per event it has decoded. The
/// exporter owns the counters and histograms; the source only reports.
///
/// Push, not a table of pre-aggregated buckets: swift-prometheus's histograms are
/// built from observations (they keep `_sum` exact), and the source sees every
/// grant anyway.
public protocol LockEventRecorder: Sendable {
    /// A lock request was granted after waiting `waitedSeconds` (0 when it did not block).
    func recordAcquisition(file: FileIdentity?, path: String?, waitedSeconds: Double)
    /// A non-blocking request (`LOCK_NB`, `F_SETLK`, `F_OFD_SETLK`) was refused.
    func recordFailedAttempt(file: FileIdentity?, path: String?)
    /// A lock was released (unlock, or the close that dropped it) after `heldSeconds`.
    func recordRelease(file: FileIdentity?, path: String?, heldSeconds: Double)
    /// The locks held now whose grant the source saw (replaces the previous set).
    func setHolders(_ holders: [EventHolder])
    /// The source started (true) or stopped (false); `lockscope_events_available` follows it.
    func setAvailable(_ available: Bool)
    /// Events the kernel dropped since the source started (ring full): a running total.
    func setLostEvents(_ total: UInt64)
}

/// A lock held now, as lock events saw it granted: what makes
/// `lockscope_lock_holder_seconds{source="event"}` exact.
public struct EventHolder: Sendable, Hashable {
    public var file: FileIdentity
    public var kind: LockKind
    /// The process the grant went to (the pid /proc/locks shows for it).
    public var pid: Int32
    /// When it was granted, CLOCK_MONOTONIC nanoseconds.
    public var since: UInt64
    public init(file: FileIdentity, kind: LockKind, pid: Int32, since: UInt64) {
        self.file = file
        self.kind = kind
        self.pid = pid
        self.since = since
    }
}

/// The event-derived metrics, kept for the exporter's lifetime (counters only grow):
/// `lockscope_lock_acquisitions_total{path}`, `lockscope_lock_failed_attempts_total{path}`
/// and the `lockscope_lock_wait_seconds{path}` and `lockscope_lock_hold_seconds{path}`
/// histograms. The first `maxPaths`
/// distinct paths keep their own label for good; later ones count under `path="other"`,
/// so a machine that locks ever-new temp files cannot grow the label set.
public final class EventMetrics: LockEventRecorder, Sendable {
    /// Upper bounds of the wait histogram, seconds: from an uncontended grant to the
    /// minutes a DNS-timeout holder can keep a lock.
    public static let waitBuckets: [Double] = [0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300]
    /// Upper bounds of the hold histogram: the same, so a wait and the hold that caused
    /// it land in comparable buckets.
    public static let holdBuckets = waitBuckets

    let registry = PrometheusCollectorRegistry()
    let maxPaths: Int
    struct State {
        var admitted = Set<String>()
        var available = false
        /// Paths snapshots found for lock identities (`learnPaths`), so an event, which
        /// carries only device and inode, is counted under the path the gauges use.
        var paths: [FileIdentity: String] = [:]
        var lost: UInt64 = 0
        /// `setHolders`, by file and kind.
        var holders: [HolderKey: [(pid: Int32, since: UInt64)]] = [:]
    }
    struct HolderKey: Hashable {
        var file: FileIdentity
        var kind: LockKind
    }
    /// At most this many identity→path entries are remembered; past it, those whose
    /// path never became a label are forgotten (a box locking ever-new temp files).
    static let maxKnownPaths = 4096
    let state = Mutex(State())

    public init(maxPaths: Int) { self.maxPaths = maxPaths }

    public var available: Bool { state.withLock { $0.available } }

    public func setAvailable(_ available: Bool) {
        state.withLock { $0.available = available }
        // The counter exists (at 0) from the moment a source runs.
        if available { lostCounter.increment(by: Int64(0)) }
    }

    var lostCounter: Counter { registry.makeCounter(descriptor: MetricName.descriptor(MetricName.lostEvents)) }

    public func setLostEvents(_ total: UInt64) {
        let delta = state.withLock { s -> UInt64 in
            guard total > s.lost else { return 0 }
            defer { s.lost = total }
            return total - s.lost
        }
        if delta > 0 { lostCounter.increment(by: Int64(clamping: delta)) }
    }

    /// Remembers the paths a snapshot names for the locks it saw (the holders'
    /// descriptors name them; see `Collector`). Costs nothing extra: the snapshot
    /// has already been read.
    public func learnPaths(_ report: LockReport) {
        state.withLock { s in
            for l in report.locks {
                guard let file = l.file, let path = l.path, !path.isEmpty else { continue }
                s.paths[file] = path
            }
            if s.paths.count > Self.maxKnownPaths {
                let admitted = s.admitted
                s.paths = s.paths.filter { admitted.contains(terminalSafe($0.value)) }
            }
        }
    }

    public func recordAcquisition(file: FileIdentity?, path: String?, waitedSeconds: Double) {
        let label = self.label(file: file, path: path)
        registry.makeCounter(descriptor: MetricName.descriptor(MetricName.acquisitions), labels: [("path", label)]).increment()
        registry.makeValueHistogram(descriptor: MetricName.descriptor(MetricName.waitSeconds), labels: [("path", label)],
                                    buckets: Self.waitBuckets).record(max(0, waitedSeconds))
    }

    public func recordRelease(file: FileIdentity?, path: String?, heldSeconds: Double) {
        registry.makeValueHistogram(descriptor: MetricName.descriptor(MetricName.holdSeconds), labels: [("path", label(file: file, path: path))],
                                    buckets: Self.holdBuckets).record(max(0, heldSeconds))
    }

    public func setHolders(_ holders: [EventHolder]) {
        var table: [HolderKey: [(pid: Int32, since: UInt64)]] = [:]
        for h in holders { table[HolderKey(file: h.file, kind: h.kind), default: []].append((h.pid, h.since)) }
        state.withLock { $0.holders = table }
    }

    /// When the holder of a lock /proc/locks shows was granted it (CLOCK_MONOTONIC ns),
    /// if the events saw that grant: the grant of the same file and kind to the pid
    /// /proc/locks names, or for an OFD lock (no pid there) the earliest current grant.
    public func grantTime(of lock: LockEntry) -> UInt64? {
        guard let file = lock.file else { return nil }
        return state.withLock { s -> UInt64? in
            guard let holders = s.holders[HolderKey(file: file, kind: lock.kind)], !holders.isEmpty else { return nil }
            if lock.kernelPid > 0 { return holders.filter { $0.pid == lock.kernelPid }.map(\.since).min() }
            return holders.map(\.since).min()
        }
    }

    public func recordFailedAttempt(file: FileIdentity?, path: String?) {
        registry.makeCounter(descriptor: MetricName.descriptor(MetricName.failedAttempts), labels: [("path", label(file: file, path: path))])
            .increment()
    }

    /// The same label rule as the snapshot gauges, with the lifetime cap.
    func label(file: FileIdentity?, path: String?) -> String {
        return state.withLock { s in
            let candidate: String
            if let path, !path.isEmpty { candidate = terminalSafe(path) }
            else if let file, let known = s.paths[file] { candidate = terminalSafe(known) }
            else { candidate = file?.description ?? LockMetrics.unknownReason }
            if s.admitted.contains(candidate) { return candidate }
            if s.admitted.count < maxPaths { s.admitted.insert(candidate); return candidate }
            return LockMetrics.otherPath
        }
    }

    func emit(into buffer: inout [UInt8]) { registry.emit(into: &buffer) }
}
