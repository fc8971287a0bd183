import LockscopeCore

/// Everything the rules look at, gathered once (live by `DiagnosisGatherer`,
/// or built by hand in tests). Pure data: the rules never read /proc.
public struct DiagnosisInput: Sendable {
    /// The locks being diagnosed (the targets', or every contended lock) with their openers.
    public var report: LockReport
    /// Every lock on the system, to follow a holder that waits for another lock.
    /// Nil when no holder was in a lock call (then nobody needs it).
    public var allLocks: [LockEntry]?
    /// What the processes of interest did during the window, by pid.
    public var activity: [Int32: ProcessActivity]
    /// Facts about processes the report does not carry (children, tracers, chain members).
    public var processes: [Int32: ProcessFacts]
    /// Each process's own resolver configuration (read through /proc/PID/root), by pid.
    public var resolvConf: [Int32: ResolvConf]
    /// Processes whose activity could not be read (permission denied).
    public var uninspectable: Set<Int32>
    public var windowSeconds: Double
    /// Every descriptor on each pipe a process of interest is blocked on, by pipe inode.
    public var pipeEnds: [UInt64: [PipeEnd]]
    /// /proc/sys/fs/lease-break-time, when a lease is being broken and it was readable.
    public var leaseBreakTime: Int?
    /// Every descriptor on each named FIFO a process of interest is blocked on, by the
    /// path its descriptor link shows.
    public var fifoEnds: [String: [PipeEnd]] = [:]
    /// The peer of each unix socket a process of interest is blocked on, by socket inode.
    public var unixPeers: [UInt64: UnixSocketPeer] = [:]
    /// Why the activity engine asked for did not run (`ActivityResult.fallback`).
    public var activityFallback: String? = nil
    /// Lease breaks in progress at the end of the window, from kernel lock events
    /// (empty without them): an exact clock for those that began in the window.
    public var leaseBreaks: [EventLeaseBreak] = []
    /// Threads blocked in open() of a named FIFO until its other side is opened, by tid.
    public var fifoOpens: [Int32: FifoOpening] = [:]

    public init(report: LockReport, allLocks: [LockEntry]? = nil, activity: [Int32: ProcessActivity] = [:],
                processes: [Int32: ProcessFacts] = [:], resolvConf: [Int32: ResolvConf] = [:],
                uninspectable: Set<Int32> = [], windowSeconds: Double = 1, pipeEnds: [UInt64: [PipeEnd]] = [:],
                leaseBreakTime: Int? = nil) {
        self.pipeEnds = pipeEnds
        self.leaseBreakTime = leaseBreakTime
        self.report = report
        self.allLocks = allLocks
        self.activity = activity
        self.processes = processes
        self.resolvConf = resolvConf
        self.uninspectable = uninspectable
        self.windowSeconds = windowSeconds
    }
}

/// The answer for one lock: who waits, why, and the one-line verdict.
public struct LockDiagnosis: Sendable, Hashable {
    public var lock: LockEntry
    /// Processes with the file open that are not kernel waiters (polling or idle).
    public var openers: [Opener]
    /// `/run/xtables.lock: 61 processes waiting (oldest 41 s). Holder iptables[36057] is stuck …`
    public var verdict: String
    /// The finding that explains the wait, if any (the deepest along chains and children).
    public var cause: Finding?
    /// Findings about this lock, most decisive first.
    public var findings: [Finding]
    /// Kernel-blocked waiters (distinct pids).
    public var blockedCount: Int
    /// Openers seen attempting (caught in a non-blocking attempt, or refused in lock events).
    public var pollingCount: Int
    /// The longest wait, seconds: exact where lock events saw the waiter queue, else the
    /// age of the waiting process (an upper bound on its wait).
    public var oldestWaitSeconds: Double?
    /// How `oldestWaitSeconds` is known (nil with it).
    public var oldestWaitSource: WaitDuration.Source? = nil
    /// True when the holder (or the end of its chain) could not be inspected.
    public var holderUninspectable: Bool
    /// What the lock means to the program that took it (SQLite, dpkg …), when recognised.
    public var lockProtocol: ProtocolReading? = nil

    public var waitingCount: Int { blockedCount + pollingCount }

    /// `oldestWaitSeconds` with how it is known.
    public var oldestWait: WaitDuration? {
        oldestWaitSeconds.map { WaitDuration(seconds: $0, source: oldestWaitSource ?? .estimate) }
    }
}

/// What `diagnose` concludes, as a value the renderers format.
public struct Diagnosis: Sendable {
    /// What scripts key on (the executable maps it to an exit status, docs/diagnose.md).
    public enum Outcome: String, Sendable, Hashable {
        /// Nobody waits for any lock that was looked at.
        case noContention = "no-contention"
        /// Someone waits; the findings say why.
        case contention = "contention"
        /// Someone waits, but a holder could not be inspected (permission): run as root.
        case couldNotInspect = "could-not-inspect"
    }

    public var targets: [Target]
    /// Targets that have no lock at all.
    public var unlockedTargets: [Target]
    public var locks: [LockDiagnosis]
    /// Every finding, most decisive first, each once.
    public var findings: [Finding]
    /// One line per lock (and one for unlocked targets), for pasting into an incident channel.
    public var verdict: [String]
    public var outcome: Outcome
    public var coverage: ScanCoverage
    public var activity: [Int32: ProcessActivity]
    public var processes: [Int32: ProcessFacts]
    public var windowSeconds: Double
    public var activitySource: ActivitySource?
    /// Why the preferred engine did not run and `activitySource` did instead.
    public var activityFallback: String? = nil
    /// The report's locks and the others its chains run through (from the system-wide table).
    public var graph = LockGraph()
    /// Whether kernel lock events were read during the window (nil: not tried, e.g. `--window 0`).
    public var lockEvents: LockEventsCoverage?

    public init(targets: [Target], unlockedTargets: [Target], locks: [LockDiagnosis], findings: [Finding],
                verdict: [String], outcome: Outcome, coverage: ScanCoverage, activity: [Int32: ProcessActivity],
                processes: [Int32: ProcessFacts], windowSeconds: Double, activitySource: ActivitySource?) {
        self.targets = targets
        self.unlockedTargets = unlockedTargets
        self.locks = locks
        self.findings = findings
        self.verdict = verdict
        self.outcome = outcome
        self.coverage = coverage
        self.activity = activity
        self.processes = processes
        self.windowSeconds = windowSeconds
        self.activitySource = activitySource
    }
}
