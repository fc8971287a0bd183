// What the ptrace tracer reports: calls with their results, events, the summary.

import LockscopeCore

/// A system call's outcome.
public enum SyscallResult: Sendable, Hashable {
    case value(Int64)
    /// -errno: the number and its name (`EINTR`, `EAGAIN`; `ERESTARTSYS` … for restarts).
    case error(errno: Int32, name: String)

    public init(raw: Int64) {
        if raw < 0 && raw >= -4095 {
            let e = Int32(-raw)
            self = .error(errno: e, name: errnoName(e))
        } else {
            self = .value(raw)
        }
    }
}

/// One system call seen by the ptrace tracer.
public struct TracedSyscall: Sendable, Hashable {
    /// Seconds since the trace started (entry time; attach time for calls in progress at attach).
    public var time: Double
    public var pid: Int32
    public var tid: Int32
    /// Decoded at entry (and for output arguments, updated at exit).
    public var call: DecodedSyscall
    /// Nil when the call had not returned when the trace ended.
    public var result: SyscallResult?
    /// Entry to exit, seconds (from attach for calls in progress at attach).
    public var durationSeconds: Double?
    /// The thread was already in this call when the tracer attached
    /// (`restart_syscall` is reported under the name of the call it resumes).
    public var inProgressAtAttach: Bool

    public init(time: Double, pid: Int32, tid: Int32, call: DecodedSyscall, result: SyscallResult?,
                durationSeconds: Double?, inProgressAtAttach: Bool) {
        self.time = time
        self.pid = pid
        self.tid = tid
        self.call = call
        self.result = result
        self.durationSeconds = durationSeconds
        self.inProgressAtAttach = inProgressAtAttach
    }
}

/// Something the ptrace tracer saw, in order.
public enum TraceEvent: Sendable, Hashable {
    /// A thread was seized; `inSyscall` is the call it was blocked in, if any.
    case attached(time: Double, pid: Int32, tid: Int32, inSyscall: DecodedSyscall?)
    /// A completed (or, at the end, unfinished) system call.
    case syscall(TracedSyscall)
    /// A signal delivered to the thread (passed through unchanged).
    case signal(time: Double, tid: Int32, signal: Int32)
    /// The thread entered group-stop (SIGSTOP, SIGTSTP …); it stays stopped until SIGCONT, as untraced.
    case groupStop(time: Double, tid: Int32, signal: Int32)
    /// A new thread (clone with CLONE_THREAD) or child process, auto-attached.
    case newTask(time: Double, parent: Int32, tid: Int32, isThread: Bool)
    /// The thread called execve successfully (its tid may have become the pid).
    case exec(time: Double, tid: Int32, formerTid: Int32)
    /// The thread exited with a status, or was killed by a signal.
    case exited(time: Double, tid: Int32, status: Int32?, signal: Int32?)
    /// The tracer let go of the thread.
    case detached(time: Double, tid: Int32)
}

/// Per-syscall totals for the summary.
public struct SyscallStats: Sendable, Hashable {
    public var name: String
    public var classes: SyscallClass
    public var count: Int
    public var errors: Int
    public var totalSeconds: Double
    public var maxSeconds: Double
    public init(name: String, classes: SyscallClass, count: Int, errors: Int, totalSeconds: Double, maxSeconds: Double) {
        self.name = name
        self.classes = classes
        self.count = count
        self.errors = errors
        self.totalSeconds = totalSeconds
        self.maxSeconds = maxSeconds
    }
}

extension SyscallStats {
    /// The summary rows from per-number totals (arrays indexed by syscall number), blocking first.
    static func blockingFirst(table: SyscallTable, counts: [Int], errors: [Int], totalNs: [Int64], maxNs: [Int64]) -> [SyscallStats] {
        var stats: [SyscallStats] = []
        for nr in counts.indices where counts[nr] > 0 {
            let info = table[nr]
            stats.append(SyscallStats(name: info?.name ?? "syscall_\(nr)", classes: info?.classes ?? [], count: counts[nr],
                                      errors: errors[nr], totalSeconds: Double(totalNs[nr]) / 1e9,
                                      maxSeconds: Double(maxNs[nr]) / 1e9))
        }
        sortBlockingFirst(&stats)
        return stats
    }

    /// The summary's order: blocking and lock calls first, then by total time, then by name.
    public static func sortBlockingFirst(_ stats: inout [SyscallStats]) {
        stats.sort { a, b in
            let ab = a.classes.contains(.blocking) || a.classes.contains(.lock)
            let bb = b.classes.contains(.blocking) || b.classes.contains(.lock)
            if ab != bb { return ab }
            if a.totalSeconds != b.totalSeconds { return a.totalSeconds > b.totalSeconds }
            return a.name < b.name
        }
    }
}

/// Why a trace ended.
public enum TraceEnd: Sendable, Hashable {
    /// `--duration` elapsed.
    case duration
    /// SIGINT, SIGTERM, SIGHUP or SIGPIPE (the number), or the caller's stop check (0).
    case interrupted(signal: Int32)
    /// Every traced thread exited.
    case allExited
    /// The output could not be written (EPIPE …): detached at once.
    case outputFailed
}

/// The end of a ptrace session: totals, blocking calls first, then by total time.
public struct TraceSummary: Sendable, Hashable {
    public var endedBy: TraceEnd
    public var wallSeconds: Double
    /// Every process/thread that was traced (initial and auto-attached).
    public var pids: [Int32]
    public var tids: [Int32]
    public var stats: [SyscallStats]
    /// Tracer cost indicator: syscall stops handled.
    public var stops: Int
    /// The kernel engine: samples the kernel dropped because a ring buffer was
    /// full (nil for ptrace, which cannot lose a call).
    public var lostEvents: UInt64?
    public init(endedBy: TraceEnd, wallSeconds: Double, pids: [Int32], tids: [Int32], stats: [SyscallStats], stops: Int) {
        self.endedBy = endedBy
        self.wallSeconds = wallSeconds
        self.pids = pids
        self.tids = tids
        self.stats = stats
        self.stops = stops
    }
}
