/// The values the scanner produces and every later stage (trace, diagnosis,
/// renderers) consumes. Plain data: no I/O, no formatting.

/// The lock personalities /proc/locks distinguishes (fs/locks.c `lock_get_status()`).
public enum LockKind: String, Sendable, Hashable, CaseIterable {
    case flock = "FLOCK"
    case posix = "POSIX"
    case ofd = "OFDLCK"
    case lease = "LEASE"
    case deleg = "DELEG"
    /// `FL_ACCESS`: a transient POSIX entry used while checking mandatory locks (old kernels).
    case access = "ACCESS"
    case unknown = "UNKNOWN"
}

public enum LockAccess: String, Sendable, Hashable {
    case read = "READ"
    case write = "WRITE"
    case unlock = "UNLCK"
}

/// What the kernel says about the process that owns a lock, after checking it.
public enum OwnerStatus: String, Sendable, Hashable {
    /// The pid in /proc/locks is alive and holds the lock through one of its fds.
    case alive
    /// OFD lock: /proc/locks prints -1; owners are resolved from fdinfo.
    case ofd
    /// The pid no longer exists; the lock lives on in a descriptor someone inherited.
    case gone
    /// A process with that pid exists but holds no fd with this lock: the pid was reused.
    case reused
    /// 0 in /proc/locks: the owner is not visible from our pid namespace.
    case invisible
    /// Could not be checked (permission, or a fixture without fdinfo).
    case unknown
    /// The owner is in `do_exit()` and a thread is still closing its files (a slow
    /// `flush`): the lock is held until that close returns (`ExitingProcess`).
    case exiting
}

/// A thread's current system call as `/proc/PID/task/TID/syscall` reports it
/// (`proc_pid_syscall()` in fs/proc/base.c): a number and six raw arguments, or
/// "running", or `-1` (blocked in the kernel but not in a system call).
public enum SyscallState: Sendable, Hashable {
    case running
    case notInSyscall
    case inSyscall(number: Int, args: [UInt64], stackPointer: UInt64, programCounter: UInt64)
    /// Not readable (permission) or the thread vanished.
    case unavailable
}

/// One thread of an interesting process.
public struct ThreadFacts: Sendable, Hashable {
    public var tid: Int32
    public var state: Character
    public var syscall: SyscallState
    public var wchan: String?

    public init(tid: Int32, state: Character, syscall: SyscallState, wchan: String? = nil) {
        self.tid = tid
        self.state = state
        self.syscall = syscall
        self.wchan = wchan
    }
}

/// What we know about a process, read once per scan.
public struct ProcessFacts: Sendable, Hashable {
    public var pid: Int32
    public var ppid: Int32
    public var comm: String
    /// argv, exactly as /proc/PID/cmdline holds it (may contain any bytes but NUL).
    public var cmdline: [String]
    public var uid: UInt32?
    public var user: String?
    /// R, S, D, T, t, Z, I … from /proc/PID/stat.
    public var state: Character
    /// Seconds since the process started (from stat field 22 and /proc/uptime).
    public var ageSeconds: Double?
    /// CPU time consumed so far, in clock ticks (utime + stime).
    public var cpuTicks: UInt64
    public var tracerPid: Int32
    /// `pid:[4026531836]` from /proc/PID/ns/pid.
    public var pidNamespace: String?
    /// `mnt:[4026531841]` from /proc/PID/ns/mnt.
    public var mountNamespace: String?
    /// The container it runs in (runtime, id, pod uid), from its cgroup path.
    public var container: ContainerInfo?
    public var cgroup: String?
    /// Its pid inside its own pid namespace (`NSpid:` last field), when that differs from `pid`.
    public var nsPid: Int32?
    /// `SigBlk`/`SigIgn`/`SigCgt` from /proc/PID/status (nil when unreadable).
    public var signalMasks: SignalMasks?
    public var threads: [ThreadFacts]

    public init(pid: Int32, ppid: Int32 = 0, comm: String, cmdline: [String] = [], uid: UInt32? = nil,
                user: String? = nil, state: Character = "?", ageSeconds: Double? = nil, cpuTicks: UInt64 = 0,
                tracerPid: Int32 = 0, pidNamespace: String? = nil, mountNamespace: String? = nil,
                container: ContainerInfo? = nil, cgroup: String? = nil, nsPid: Int32? = nil,
                signalMasks: SignalMasks? = nil, threads: [ThreadFacts] = []) {
        self.pid = pid
        self.ppid = ppid
        self.comm = comm
        self.cmdline = cmdline
        self.uid = uid
        self.user = user
        self.state = state
        self.ageSeconds = ageSeconds
        self.cpuTicks = cpuTicks
        self.tracerPid = tracerPid
        self.pidNamespace = pidNamespace
        self.mountNamespace = mountNamespace
        self.container = container
        self.cgroup = cgroup
        self.nsPid = nsPid
        self.signalMasks = signalMasks
        self.threads = threads
    }
}

/// A process that holds a granted lock through one of its descriptors.
public struct Holder: Sendable, Hashable {
    public var pid: Int32
    /// The descriptor whose fdinfo carries the `lock:` line; nil when only /proc/locks names the pid.
    public var fd: Int32?
    /// True for the pid /proc/locks names; co-holders that share the open file description are false.
    public var isOwner: Bool
    public var process: ProcessFacts?
    /// The file's path as this process sees it, when it is in another mount namespace and that path differs.
    public var pathInNamespace: String? = nil
    /// Seconds it has held the lock, exact: its grant (ret 0 of `flock_lock_inode` /
    /// `posix_lock_inode`) was seen in the kernel's lock events during the window,
    /// measured to the window's end. Nil when the grant was not seen (taken earlier).
    public var heldSeconds: Double? = nil

    public init(pid: Int32, fd: Int32?, isOwner: Bool, process: ProcessFacts? = nil) {
        self.pid = pid
        self.fd = fd
        self.isOwner = isOwner
        self.process = process
    }
}

/// How a waiter was found.
public enum WaiterSource: String, Sendable, Hashable {
    /// A `->` line in /proc/locks.
    case kernel
    /// A thread whose current syscall is a blocking lock call on an fd to the file (e.g. OFD waiters).
    case syscall
    /// Seen by kernel lock events during a window (`diagnose --window`, `waiters --window`),
    /// after the snapshot was read: queued then (FILE_LOCK_DEFERRED), or an opener
    /// whose open() began breaking a lease.
    case event
}

/// How a duration lockscope reports is known (JSON `*_source`): one vocabulary for a
/// waiter's wait (`WaitDuration`) and a lease break's clock (`LeaseBreakClock`).
public enum TimingSource: String, Sendable, Hashable {
    /// Exact: the kernel's lock events saw it begin during the window (a waiter's
    /// queueing, the open that set a lease break's deadline).
    case event
    /// Bounded from a snapshot: a process's age, the sampler's view of a call.
    case estimate
}

/// How long a waiter has waited, and how that is known.
public struct WaitDuration: Sendable, Hashable {
    /// `event`: its queueing was seen during the window (`Waiter.waitedSeconds`),
    /// measured to the window's end. `estimate`: the waiting process's age when scanned,
    /// an upper bound (it may have started long before it queued), all a snapshot can tell.
    public typealias Source = TimingSource
    public var seconds: Double
    public var source: Source
    public init(seconds: Double, source: Source) {
        self.seconds = seconds
        self.source = source
    }

    /// The longest of `waits` (an estimate wins a tie: it is the weaker claim).
    public static func longest(_ waits: [WaitDuration]) -> WaitDuration? {
        waits.max { ($0.seconds, $0.source == .estimate ? 1 : 0) < ($1.seconds, $1.source == .estimate ? 1 : 0) }
    }
}

/// A process (thread) blocked in the kernel waiting for a lock.
public struct Waiter: Sendable, Hashable {
    public var pid: Int32
    /// The blocked thread; equals pid for single-threaded processes. Nil when no thread could be matched.
    public var tid: Int32?
    public var fd: Int32?
    public var kind: LockKind
    public var access: LockAccess
    public var start: Int64
    public var end: Int64?
    /// The pid of the holder at the root of the kernel's blocking tree (what really blocks it).
    public var blockedBy: Int32?
    /// The pid of the entry directly above it in the kernel's tree (may be another waiter).
    public var directBlocker: Int32?
    /// 1-based position among the waiters of the same lock, in the kernel's order.
    public var queuePosition: Int
    public var source: WaiterSource
    public var process: ProcessFacts?
    /// Seconds it has waited, exact: the kernel's lock events saw it queue (FILE_LOCK_DEFERRED)
    /// during the window, measured to the window's end. Nil when that was not seen (it
    /// queued before the window, or no events were read).
    public var waitedSeconds: Double? = nil
    /// Seconds from the scan to the end of an observation window, added to the estimate
    /// so that it is stated at the same instant as exact waits (0 without a window).
    public var estimateLaterSeconds: Double = 0

    /// Its wait: exact from lock events when they saw it queue, else its process's age
    /// (when scanned, plus `estimateLaterSeconds`): an upper bound.
    public var wait: WaitDuration? {
        if let waitedSeconds { return WaitDuration(seconds: waitedSeconds, source: .event) }
        return process?.ageSeconds.map { WaitDuration(seconds: $0 + estimateLaterSeconds, source: .estimate) }
    }

    public init(pid: Int32, tid: Int32?, fd: Int32?, kind: LockKind, access: LockAccess, start: Int64, end: Int64?,
                blockedBy: Int32?, directBlocker: Int32?, queuePosition: Int, source: WaiterSource,
                process: ProcessFacts? = nil) {
        self.pid = pid
        self.tid = tid
        self.fd = fd
        self.kind = kind
        self.access = access
        self.start = start
        self.end = end
        self.blockedBy = blockedBy
        self.directBlocker = directBlocker
        self.queuePosition = queuePosition
        self.source = source
        self.process = process
    }
}

/// One granted lock with everyone who holds it and everyone queued behind it.
public struct LockEntry: Sendable, Hashable {
    public var file: FileIdentity?
    /// The file's path as the holder's descriptor shows it (readlink), when known.
    public var path: String?
    public var kind: LockKind
    public var access: LockAccess
    /// ADVISORY, MANDATORY, *NOINODE*, ACTIVE, BREAKING, BREAKER.
    public var mode: String
    public var start: Int64
    /// nil means EOF (the lock extends to the end of the file, whatever its size).
    public var end: Int64?
    /// The pid exactly as /proc/locks prints it (-1 for OFD, 0 if not visible).
    public var kernelPid: Int32
    public var ownerStatus: OwnerStatus
    public var holders: [Holder]
    public var waiters: [Waiter]
    /// `.exiting`: the owner's threads still in `do_exit()`, closing its files.
    public var exitingThreads: [ExitingThread] = []

    public init(file: FileIdentity?, path: String?, kind: LockKind, access: LockAccess, mode: String, start: Int64,
                end: Int64?, kernelPid: Int32, ownerStatus: OwnerStatus, holders: [Holder] = [], waiters: [Waiter] = []) {
        self.file = file
        self.path = path
        self.kind = kind
        self.access = access
        self.mode = mode
        self.start = start
        self.end = end
        self.kernelPid = kernelPid
        self.ownerStatus = ownerStatus
        self.holders = holders
        self.waiters = waiters
    }
}

/// A process that has the file open but neither holds nor waits in the kernel,
/// or (`fd` nil) one seen trying for the lock in kernel lock events between
/// attempts it makes with the file closed (apt-get's lock timeout, a shell's
/// `flock -n` loop).
public struct Opener: Sendable, Hashable {
    public enum Activity: String, Sendable, Hashable {
        /// Attempts were seen: caught in a non-blocking attempt (`flock(LOCK_NB)`,
        /// `F_SETLK`), asleep with the file of a lock protocol whose clients retry
        /// (`iptables -w`), or failed attempts in the kernel's lock events.
        case polling
        /// Open, no attempt seen (`asleep` says whether it sleeps).
        case idle
    }
    public var pid: Int32
    /// nil for a poller seen only in lock events (it had no descriptor on the file when scanned).
    public var fd: Int32?
    public var file: FileIdentity
    public var activity: Activity
    public var process: ProcessFacts?
    /// In a sleep (nanosleep, or select/poll with no descriptors) when scanned.
    public var asleep: Bool
    /// What the kernel's lock events showed during the observation window, when they were read.
    public var attempts: LockAttempts?

    public init(pid: Int32, fd: Int32?, file: FileIdentity, activity: Activity, process: ProcessFacts? = nil,
                asleep: Bool = false, attempts: LockAttempts? = nil) {
        self.pid = pid
        self.fd = fd
        self.file = file
        self.activity = activity
        self.process = process
        self.asleep = asleep
        self.attempts = attempts
    }
}

/// One process's lock requests on one file over a window of kernel lock events.
/// For a retry loop that starts a process per attempt, the persistent ancestor
/// (the shell) with the attempts' command and pids.
public struct LockAttempts: Sendable, Hashable {
    /// Every request seen (granted, queued, refused).
    public var attempts: Int
    /// Requests refused (LOCK_NB / F_SETLK conflicts: -EAGAIN).
    public var failed: Int
    /// Mean seconds between attempts (nil with fewer than two).
    public var retryIntervalSeconds: Double?
    /// For a retry loop: the command each attempt ran (`flock`) and the attempts' pids.
    public var attemptCommand: String?
    public var attemptPids: [Int32]
    /// The process's name as the events gave it (for one /proc no longer shows).
    public var comm: String?

    public init(attempts: Int, failed: Int, retryIntervalSeconds: Double?, attemptCommand: String? = nil,
                attemptPids: [Int32] = [], comm: String? = nil) {
        self.comm = comm
        self.attempts = attempts
        self.failed = failed
        self.retryIntervalSeconds = retryIntervalSeconds
        self.attemptCommand = attemptCommand
        self.attemptPids = attemptPids
    }
}

/// What could not be looked at, counted once for the whole scan.
public struct ScanCoverage: Sendable, Hashable {
    public var processesScanned: Int = 0
    public var descriptorsScanned: Int = 0
    /// Processes whose fd table or fdinfo we were not allowed to read.
    public var processesDenied: Int = 0
    /// Processes that vanished while we looked (not an error).
    public var processesVanished: Int = 0
    /// The lowest pids among the denied ones, at most `deniedListLimit`, ascending,
    /// with their `comm` once `LockScanner` has read it: the note names them when few.
    public var denied: [DeniedProcess] = []

    public static let deniedListLimit = 16

    public init() {}

    public mutating func add(_ other: ScanCoverage) {
        processesScanned += other.processesScanned
        descriptorsScanned += other.descriptorsScanned
        processesDenied += other.processesDenied
        processesVanished += other.processesVanished
        noteDenied(other.denied)
    }

    /// Keeps the lowest `deniedListLimit` pids of both lists (each list holds its own
    /// lowest, so the union's lowest are exact).
    public mutating func noteDenied(_ more: [DeniedProcess]) {
        guard !more.isEmpty else { return }
        var seen = Set<Int32>()
        denied = (denied + more).sorted { $0.pid < $1.pid }.filter { seen.insert($0.pid).inserted }
        if denied.count > Self.deniedListLimit { denied.removeLast(denied.count - Self.deniedListLimit) }
    }
}

/// A process whose descriptors could not be read.
public struct DeniedProcess: Sendable, Hashable {
    public var pid: Int32
    /// `/proc/PID/comm`, readable by everyone; nil if it vanished.
    public var comm: String?

    public init(pid: Int32, comm: String? = nil) {
        self.pid = pid
        self.comm = comm
    }
}

/// A file the user asked about, with the identity it resolved to.
public struct Target: Sendable, Hashable {
    /// The argument as given (a path or `MAJ:MIN:INODE`).
    public var argument: String
    public var file: FileIdentity
    /// The canonical path, as readlink of a descriptor on it shows it, when known.
    public var path: String?

    public init(argument: String, file: FileIdentity, path: String?) {
        self.argument = argument
        self.file = file
        self.path = path
    }
}

/// The holder/waiter graph for some files (or for every lock, with `list`).
public struct LockReport: Sendable, Hashable {
    public var targets: [Target]
    public var locks: [LockEntry]
    public var openers: [Opener]
    public var coverage: ScanCoverage
    /// lockscope's own pid namespace (`pid:[…]`), to flag processes in another one.
    public var observerPidNamespace: String?
    /// Whether kernel lock events were read over a window (nil: no window, a snapshot only).
    public var lockEvents: LockEventsCoverage? = nil
    /// When the live scan began (CLOCK_MONOTONIC ns; nil for a recorded tree): process
    /// ages are at most this old, so a window's end can restate them.
    public var scannedAt: Int64? = nil

    public init(targets: [Target] = [], locks: [LockEntry] = [], openers: [Opener] = [], coverage: ScanCoverage = ScanCoverage(),
                observerPidNamespace: String? = nil) {
        self.targets = targets
        self.locks = locks
        self.openers = openers
        self.coverage = coverage
        self.observerPidNamespace = observerPidNamespace
    }
}

/// What the kernel's lock events covered for a report with an observation window.
public enum LockEventsCoverage: Sendable, Hashable {
    /// Every lock request on the files for this long; `lostEvents` dropped by a full ring buffer.
    case observed(seconds: Double, lostEvents: UInt64)
    /// Not read, and why (`not root`, no filelock tracepoints, perf refused).
    case unavailable(reason: String)

    /// The one-line note every renderer prints (`lock events unavailable (not root): …`).
    public var note: String {
        switch self {
        case .observed(let s, let lost):
            let base = "lock events: every lock attempt seen for \(durationText(s)) (kernel filelock tracepoints)"
            return lost == 0 ? base : base + "; \(lost) event\(lost == 1 ? "" : "s") lost (ring buffer full): attempt counts are lower bounds"
        case .unavailable(let reason):
            return "lock events unavailable (\(reason)): pollers that close the file between attempts are not seen"
        }
    }
}
