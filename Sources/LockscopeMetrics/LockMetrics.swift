import LockscopeCore

/// What one exposition says about the locks on the machine, derived from one
/// `LockReport` (one read of /proc/locks). Pure: the same report and facts always
/// give the same values, so every metric is tested on hand-built reports.
///
/// Label sets are bounded: `kind` and `reason` come from fixed enums, and at most
/// `top` distinct `path` values appear; every other lock is summed (or maxed) under
/// `path="other"`. No label carries a pid.
public struct LockMetrics: Sendable, Equatable {
    /// Granted locks per kind label (every kind present, zeros included).
    public var locksByKind: [KindCount]
    /// `lockscope_lock_waiters`: one series per (path, kind, reason).
    public var waiters: [WaiterSeries]
    /// `lockscope_lock_oldest_wait_seconds` per path label (only where a wait age is known).
    public var oldestWaitSeconds: [PathValue]
    /// `lockscope_lock_holder_seconds` per path label (only where the hold time is known).
    public var holderSeconds: [HolderValue]

    public struct WaiterSeries: Sendable, Hashable {
        public var path: String
        public var kind: String
        public var reason: String
        public var count: Int
        public init(path: String, kind: String, reason: String, count: Int) {
            self.path = path
            self.kind = kind
            self.reason = reason
            self.count = count
        }
    }

    /// The label value that collects every lock beyond `--top`.
    public static let otherPath = "other"
    /// `reason` of a lock nobody waits for.
    public static let noWaitReason = "none"
    /// `reason` when the quick diagnosis found no cause (or did not run).
    public static let unknownReason = "unknown"

    /// Per-lock facts the report does not carry, keyed by `LockKey`.
    public struct Facts: Sendable {
        /// Estimated seconds the longest-waiting waiter of each lock has waited.
        public var oldestWait: [LockKey: Double] = [:]
        /// How long the current holder is known to have held each lock.
        public var held: [LockKey: Held] = [:]
        /// The quick diagnosis's cause rule for each contended lock (`RuleID` raw value).
        public var reason: [LockKey: String] = [:]
        public init() {}
    }

    public struct KindCount: Sendable, Hashable {
        public var kind: String
        public var count: Int
        public init(kind: String, count: Int) {
            self.kind = kind
            self.count = count
        }
    }

    /// How long a lock's current holder has held it, and how that is known.
    public struct Held: Sendable, Hashable {
        public var seconds: Double
        public var source: HeldSource
        public init(seconds: Double, source: HeldSource) {
            self.seconds = seconds
            self.source = source
        }
    }

    /// The `source` label of `lockscope_lock_holder_seconds`.
    public enum HeldSource: String, Sendable, Hashable, Comparable {
        /// Exact: since the kernel lock event that granted the lock to this holder.
        case event
        /// A lower bound: since the first snapshot that saw this exact lock (kind,
        /// range, owner pid); the holder may have taken it earlier.
        case snapshot
        public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    }

    public struct HolderValue: Sendable, Hashable {
        public var path: String
        public var seconds: Double
        public var source: HeldSource
        public init(path: String, seconds: Double, source: HeldSource) {
            self.path = path
            self.seconds = seconds
            self.source = source
        }
    }

    public struct PathValue: Sendable, Hashable {
        public var path: String
        public var seconds: Double
        public init(path: String, seconds: Double) {
            self.path = path
            self.seconds = seconds
        }
    }

    /// Builds the metrics of `report`; `top` paths keep their own label (most waiters
    /// first, then the longest wait, then the path), the rest become `path="other"`.
    public init(report: LockReport, facts: Facts = Facts(), top: Int) {
        var kinds: [String: Int] = [:]
        for k in LockKind.allCases where k != .unknown { kinds[Self.kindLabel(k)] = 0 }
        for l in report.locks { kinds[Self.kindLabel(l.kind), default: 0] += 1 }
        locksByKind = kinds.sorted { $0.key < $1.key }.map { KindCount(kind: $0.key, count: $0.value) }

        // Rank the paths: the most-waited first.
        struct PathStats { var waiters = 0; var oldest: Double? = nil }
        var byPath: [String: PathStats] = [:]
        var labels: [String] = []
        labels.reserveCapacity(report.locks.count)
        for l in report.locks {
            let label = Self.pathLabel(l)
            labels.append(label)
            let key = LockKey(l)
            var s = byPath[label] ?? PathStats()
            s.waiters += l.waiters.count
            s.oldest = Self.maxOptional(s.oldest, facts.oldestWait[key])
            byPath[label] = s
        }
        let ranked = byPath.sorted { a, b in
            if a.value.waiters != b.value.waiters { return a.value.waiters > b.value.waiters }
            let ao = a.value.oldest ?? -1, bo = b.value.oldest ?? -1
            if ao != bo { return ao > bo }
            return a.key < b.key
        }
        let kept = Set(ranked.prefix(max(0, top)).map(\.key))

        var series: [SeriesKey: Int] = [:]
        var oldest: [String: Double] = [:]
        var held: [String: Held] = [:]
        for (i, l) in report.locks.enumerated() {
            let path = kept.contains(labels[i]) ? labels[i] : Self.otherPath
            let key = LockKey(l)
            let reason = l.waiters.isEmpty ? Self.noWaitReason : (facts.reason[key] ?? Self.unknownReason)
            series[SeriesKey(path: path, kind: Self.kindLabel(l.kind), reason: reason), default: 0] += l.waiters.count
            if let o = facts.oldestWait[key] { oldest[path] = max(oldest[path] ?? 0, o) }
            if let h = facts.held[key], h.seconds > held[path]?.seconds ?? -1 { held[path] = h }
        }
        waiters = series.map { WaiterSeries(path: $0.key.path, kind: $0.key.kind, reason: $0.key.reason, count: $0.value) }
            .sorted { ($0.path, $0.kind, $0.reason) < ($1.path, $1.kind, $1.reason) }
        oldestWaitSeconds = oldest.sorted { $0.key < $1.key }.map { PathValue(path: $0.key, seconds: $0.value) }
        holderSeconds = held.sorted { $0.key < $1.key }.map { HolderValue(path: $0.key, seconds: $0.value.seconds, source: $0.value.source) }
    }

    struct SeriesKey: Hashable {
        var path: String
        var kind: String
        var reason: String
    }

    /// `flock`, `posix`, `ofdlck`, `lease`, `deleg`, `access`, `unknown`: the words `list --kind` takes.
    public static func kindLabel(_ k: LockKind) -> String { k.rawValue.lowercased() }

    /// The path as lockscope prints it (control characters escaped, invalid UTF-8
    /// already replaced when the link was read), or the kernel's MAJ:MIN:INODE when
    /// no descriptor named it. Neither can equal `other`: link paths are absolute.
    public static func pathLabel(_ l: LockEntry) -> String {
        if let p = l.path, !p.isEmpty { return terminalSafe(p) }
        if let f = l.file { return f.description }
        return Self.unknownReason
    }

    static func maxOptional(_ a: Double?, _ b: Double?) -> Double? {
        guard let b else { return a }
        guard let a else { return b }
        return max(a, b)
    }
}

/// One granted lock's identity across scrapes: what /proc/locks says about it,
/// without its ordinal (which shifts as other locks come and go).
public struct LockKey: Hashable, Sendable {
    public var file: FileIdentity?
    public var kind: LockKind
    public var access: LockAccess
    public var start: Int64
    public var end: Int64?
    public var pid: Int32

    public init(_ l: LockEntry) {
        file = l.file
        kind = l.kind
        access = l.access
        start = l.start
        end = l.end
        pid = l.kernelPid
    }
}
