import LockscopeCore

// The values the tracer produces: decoded system calls, what descriptors are,
// the sampler's per-thread summary and the ptrace tracer's events. Plain data:
// decoding never prints; renderers (LockscopeRender/Trace*.swift) format these.

// MARK: - Architectures

/// A system-call ABI lockscope has a table for.
public enum SyscallArch: String, Sendable, Hashable, CaseIterable {
    case x86_64
    case aarch64

    /// The machine lockscope runs on (tracees share it; compat 32-bit tracees are
    /// recognised by `PTRACE_GET_SYSCALL_INFO`'s `arch` and left undecoded).
    public static var host: SyscallArch {
        #if arch(arm64)
        return .aarch64
        #else
        return .x86_64
        #endif
    }

    /// The `AUDIT_ARCH_*` value `PTRACE_GET_SYSCALL_INFO` reports (include/uapi/linux/audit.h).
    public var auditArch: UInt32 {
        switch self {
        case .x86_64: return 0xC000_003E
        case .aarch64: return 0xC000_00B7
        }
    }
}

// MARK: - Descriptors

/// What a file descriptor refers to, resolved without ever `stat()`ing through
/// /proc/PID/fd (readlink, then the net tables by socket inode).
public enum FdDescription: Sendable, Hashable {
    /// A file, directory or device: the readlink text (may end in ` (deleted)`).
    case path(String)
    /// A TCP/UDP/UNIX socket found in the process's own net tables by inode.
    case socket(NetSocket)
    /// `socket:[INODE]` not in the tcp/udp/unix tables (netlink, raw, packet…).
    case otherSocket(inode: UInt64)
    /// `pipe:[INODE]`; `peers` lists the other descriptors on the same pipe found
    /// among the processes looked at (cheap: no system-wide scan). Empty when none were seen.
    case pipe(inode: UInt64, peers: [PipePeer])
    /// `anon_inode:[eventfd]`, `anon_inode:[eventpoll]` …: the text inside `anon_inode:`.
    case anon(String)

    /// The socket, when this is one of the tabled kinds.
    public var socket: NetSocket? { if case .socket(let s) = self { return s } else { return nil } }
}

/// Another descriptor open on the same pipe.
public struct PipePeer: Sendable, Hashable {
    public var pid: Int32
    public var fd: Int32
    public init(pid: Int32, fd: Int32) {
        self.pid = pid
        self.fd = fd
    }
}

/// A descriptor number with what it refers to (nil: closed, or not readable).
public struct ResolvedFd: Sendable, Hashable {
    public var fd: Int32
    public var what: FdDescription?
    public init(fd: Int32, what: FdDescription?) {
        self.fd = fd
        self.what = what
    }
}

// MARK: - Decoded arguments

/// A socket address read from the tracee's memory (`connect`, `sendto`, `bind` …).
public enum SocketAddress: Sendable, Hashable {
    case inet(NetEndpoint)
    case inet6(NetEndpoint, scopeID: UInt32)
    /// A path; abstract names start with `@`; empty for an unnamed socket.
    case unix(String)
    case netlink(pid: UInt32, groups: UInt32)
    /// `AF_UNSPEC` or a family we do not decode.
    case other(family: Int)

    /// The IP endpoint, for inet and inet6.
    public var endpoint: NetEndpoint? {
        switch self {
        case .inet(let e), .inet6(let e, _): return e
        default: return nil
        }
    }
}

/// A timeout or a sleep: what the call was given.
public enum SyscallTimeout: Sendable, Hashable {
    /// Wait forever (negative poll timeout, NULL timespec/timeval).
    case infinite
    /// A relative duration (0 = do not block).
    case relative(nanoseconds: Int64)
    /// An absolute deadline on `clock` (`clock_nanosleep(TIMER_ABSTIME)`, `FUTEX_WAIT_BITSET`).
    case absolute(clock: Int32, nanoseconds: Int64)

    /// The relative duration in milliseconds, when relative.
    public var milliseconds: Double? {
        if case .relative(let ns) = self { return Double(ns) / 1e6 }
        return nil
    }
    public var seconds: Double? { milliseconds.map { $0 / 1000 } }
}

/// One element of a `pollfd` array.
public struct PollFd: Sendable, Hashable {
    public var fd: ResolvedFd
    /// `POLLIN` = 0x1, `POLLPRI` = 0x2, `POLLOUT` = 0x4 … (renderers name them with `pollEventNames`).
    public var events: UInt16
    /// Set on syscall exit by the ptrace tracer; nil while the call is in progress.
    public var revents: UInt16?
    public init(fd: ResolvedFd, events: UInt16, revents: UInt16? = nil) {
        self.fd = fd
        self.events = events
        self.revents = revents
    }
}

/// The second argument of `flock(2)`.
public struct FlockOperation: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case shared = "LOCK_SH"
        case exclusive = "LOCK_EX"
        case unlock = "LOCK_UN"
        case invalid = "?"
    }
    public var kind: Kind
    /// `LOCK_NB`: try once, do not wait.
    public var nonBlocking: Bool
    public var raw: Int64

    public init(raw: Int64) {
        self.raw = raw
        nonBlocking = raw & 4 != 0
        switch raw & ~4 {
        case 1: kind = .shared
        case 2: kind = .exclusive
        case 8: kind = .unlock
        default: kind = .invalid
        }
    }
}

/// A `struct flock` (fcntl F_GETLK/F_SETLK/F_SETLKW and the OFD variants).
public struct FlockRecord: Sendable, Hashable {
    /// `F_RDLCK` = 0, `F_WRLCK` = 1, `F_UNLCK` = 2.
    public var type: Int16
    /// `SEEK_SET` = 0, `SEEK_CUR` = 1, `SEEK_END` = 2.
    public var whence: Int16
    public var start: Int64
    /// 0 = to the end of the file.
    public var length: Int64
    public var pid: Int32
    public init(type: Int16, whence: Int16, start: Int64, length: Int64, pid: Int32) {
        self.type = type
        self.whence = whence
        self.start = start
        self.length = length
        self.pid = pid
    }
    public var typeName: String { [0: "F_RDLCK", 1: "F_WRLCK", 2: "F_UNLCK"][Int(type)] ?? String(type) }
    public var whenceName: String { [0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END"][Int(whence)] ?? String(whence) }
}

/// An fcntl(2) command.
public struct FcntlCommand: Sendable, Hashable {
    public var raw: Int32
    /// `F_SETLKW`, `F_OFD_SETLKW`, `F_GETFL` …, or the number as text.
    public var name: String
    /// The command takes a `struct flock *` (any of the lock commands).
    public var takesFlock: Bool { [5, 6, 7, 36, 37, 38].contains(raw) }
    /// The command blocks until the lock is granted (`F_SETLKW`, `F_OFD_SETLKW`).
    public var waitsForLock: Bool { raw == 7 || raw == 38 }
    public init(raw: Int32, name: String) {
        self.raw = raw
        self.name = name
    }
}

/// A futex(2) operation word.
public struct FutexOperation: Sendable, Hashable {
    public var raw: Int32
    /// `FUTEX_WAIT`, `FUTEX_WAKE`, `FUTEX_WAIT_BITSET`, `FUTEX_LOCK_PI` …
    public var command: String
    /// `FUTEX_PRIVATE_FLAG`.
    public var isPrivate: Bool
    /// `FUTEX_CLOCK_REALTIME`.
    public var realtime: Bool
    public init(raw: Int32, command: String, isPrivate: Bool, realtime: Bool) {
        self.raw = raw
        self.command = command
        self.isPrivate = isPrivate
        self.realtime = realtime
    }
    /// The call sleeps until woken (or until its timeout).
    public var isWait: Bool {
        ["FUTEX_WAIT", "FUTEX_WAIT_BITSET", "FUTEX_LOCK_PI", "FUTEX_LOCK_PI2", "FUTEX_WAIT_REQUEUE_PI"].contains(command)
    }
    /// The word holds the owner's TID (priority-inheritance futexes).
    public var isPI: Bool { command.contains("_PI") }
}

/// Which child(ren) `wait4`/`waitid` waits for.
public enum WaitTarget: Sendable, Hashable {
    /// pid -1 / P_ALL.
    case anyChild
    /// A specific child pid.
    case child(Int32)
    /// pid 0: any child in the caller's process group.
    case ownProcessGroup
    /// pid < -1 / P_PGID: any child in that process group.
    case processGroup(Int32)
    /// P_PIDFD.
    case pidfd(Int32)
}

/// A flag word with its symbolic names (`O_RDWR|O_CLOEXEC`, `WNOHANG`, `MSG_DONTWAIT`).
public struct FlagSet: Sendable, Hashable {
    public var raw: UInt64
    /// Names of the recognised bits/values, in table order; bits left over are in `unknown`.
    public var names: [String]
    public var unknown: UInt64
    public init(raw: UInt64, names: [String], unknown: UInt64) {
        self.raw = raw
        self.names = names
        self.unknown = unknown
    }
}

/// One decoded argument value. Memory that could not be read stays a pointer
/// (`unreadable`), never a guess.
public enum ArgumentValue: Sendable, Hashable {
    case int(Int64)
    case uint(UInt64)
    /// Shown in hex (masks, addresses of output buffers, unknown arguments).
    case hex(UInt64)
    /// A user pointer whose target is not decoded (0 = NULL).
    case pointer(UInt64)
    case fd(ResolvedFd)
    /// `AT_FDCWD` as a directory-fd argument.
    case atFdcwd
    /// A NUL-terminated string (paths); `truncated` when longer than the read limit.
    case string(String, truncated: Bool)
    case pollFds([PollFd])
    /// The descriptors set in an `fd_set` (select/pselect6).
    case fdSet([ResolvedFd])
    case timeout(SyscallTimeout)
    case socketAddress(SocketAddress)
    case flockOperation(FlockOperation)
    case flock(FlockRecord)
    case fcntlCommand(FcntlCommand)
    case futexOperation(FutexOperation)
    /// A futex word's address and its value at the time of reading (nil: unreadable).
    case futexWord(address: UInt64, value: UInt32?)
    case waitTarget(WaitTarget)
    case flags(FlagSet)
    case signal(Int32)
    case clock(Int32)
    /// A pointer whose memory could not be read (errno of `process_vm_readv`).
    case unreadable(address: UInt64, errno: Int32)
}

/// A named argument (`fd`, `timeout`, `operation` …; names follow the man pages).
public struct DecodedArgument: Sendable, Hashable {
    public var name: String
    public var value: ArgumentValue
    public init(name: String, value: ArgumentValue) {
        self.name = name
        self.value = value
    }
}

/// A system call with its arguments decoded as values.
///
/// Built by `SyscallDecoder` from a number and six raw registers (from
/// /proc/PID/task/TID/syscall or `PTRACE_GET_SYSCALL_INFO`), reading pointed-to
/// memory with `process_vm_readv` (never stopping the thread).
public struct DecodedSyscall: Sendable, Hashable {
    public var arch: SyscallArch
    public var number: Int
    /// `poll`, or `syscall_NNN` when the table does not know the number.
    public var name: String
    public var classes: SyscallClass
    /// Decoded arguments in order (only as many as the call takes; six hex values when unknown).
    public var args: [DecodedArgument]
    /// The six raw argument registers.
    public var raw: [UInt64]

    public init(arch: SyscallArch, number: Int, name: String, classes: SyscallClass, args: [DecodedArgument], raw: [UInt64]) {
        self.arch = arch
        self.number = number
        self.name = name
        self.classes = classes
        self.args = args
        self.raw = raw
    }

    /// The first argument with this name.
    public func argument(_ name: String) -> ArgumentValue? { args.first { $0.name == name }?.value }

    /// The descriptors the call waits on or works with: a pollfd array, the fds of
    /// fd_sets, or the `fd`/`sockfd` argument of read/recv/connect/flock/fcntl/epoll_wait ….
    public var fds: [ResolvedFd] {
        var out: [ResolvedFd] = []
        for a in args {
            switch a.value {
            case .pollFds(let p): out += p.map(\.fd)
            case .fdSet(let s): for f in s where !out.contains(where: { $0.fd == f.fd }) { out.append(f) }
            case .fd(let f) where a.name != "dirfd": out.append(f)
            default: break
            }
        }
        return out
    }

    /// The call's timeout or sleep duration (`poll`'s ms, `nanosleep`'s request, `futex`'s timeout …).
    public var timeout: SyscallTimeout? {
        for a in args { if case .timeout(let t) = a.value { return t } }
        return nil
    }

    /// `flock(2)`'s operation.
    public var flockOperation: FlockOperation? {
        for a in args { if case .flockOperation(let op) = a.value { return op } }
        return nil
    }

    /// `fcntl(2)`'s command and, for lock commands, the `struct flock`.
    public var fcntl: (command: FcntlCommand, lock: FlockRecord?)? {
        guard case .fcntlCommand(let c)? = argument("cmd") else { return nil }
        if case .flock(let f)? = argument("lock") { return (c, f) }
        return (c, nil)
    }

    /// Which child `wait4`/`waitid` waits for.
    public var waitTarget: WaitTarget? {
        for a in args { if case .waitTarget(let w) = a.value { return w } }
        return nil
    }

    /// `futex(2)`'s operation and word.
    public var futex: (operation: FutexOperation, address: UInt64, value: UInt32?)? {
        guard case .futexOperation(let op)? = argument("futex_op"),
              case .futexWord(let addr, let value)? = argument("uaddr") else { return nil }
        return (op, addr, value)
    }

    /// The destination of `connect`/`sendto`/`sendmsg`, when given.
    public var socketAddress: SocketAddress? {
        for a in args { if case .socketAddress(let s) = a.value { return s } }
        return nil
    }
}

// MARK: - Syscall classes

/// Groups of system calls for `--syscalls` filters and for "blocking first" summaries.
public struct SyscallClass: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// flock, fcntl (lock commands are what make fcntl interesting).
    public static let lock = SyscallClass(rawValue: 1 << 0)
    /// Sockets: socket, connect, send*/recv*, accept, bind, listen …
    public static let net = SyscallClass(rawValue: 1 << 1)
    /// Waiting for descriptors: poll, ppoll, select, pselect6, epoll_wait, epoll_pwait(2).
    public static let poll = SyscallClass(rawValue: 1 << 2)
    /// Sleeping: nanosleep, clock_nanosleep, pause.
    public static let sleep = SyscallClass(rawValue: 1 << 3)
    /// futex and friends.
    public static let futex = SyscallClass(rawValue: 1 << 4)
    /// Processes: fork/clone/execve/exit/wait4/waitid/kill.
    public static let process = SyscallClass(rawValue: 1 << 5)
    /// Calls taking a path name (open, stat, unlink …).
    public static let file = SyscallClass(rawValue: 1 << 6)
    /// Calls on a descriptor (read, write, close, dup …).
    public static let desc = SyscallClass(rawValue: 1 << 7)
    /// Signals: rt_sigaction, rt_sigprocmask, kill, tgkill, rt_sigtimedwait …
    public static let signal = SyscallClass(rawValue: 1 << 8)
    /// Memory: mmap, munmap, mprotect, brk, madvise …
    public static let memory = SyscallClass(rawValue: 1 << 9)
    /// System V and POSIX IPC: msg*, sem*, shm*, mq_*.
    public static let ipc = SyscallClass(rawValue: 1 << 10)
    /// Can wait indefinitely for something outside the thread (summary lists these first).
    public static let blocking = SyscallClass(rawValue: 1 << 11)

    /// Names accepted by `--syscalls` (`lock,net,poll`) with their class.
    public static let named: [(String, SyscallClass)] = [
        ("lock", .lock), ("net", .net), ("network", .net), ("poll", .poll), ("sleep", .sleep), ("futex", .futex),
        ("process", .process), ("file", .file), ("desc", .desc), ("signal", .signal), ("memory", .memory),
        ("ipc", .ipc), ("blocking", .blocking),
    ]
}

// MARK: - Sampler result

/// Where one sample of a thread fell.
public enum SampleBucket: Sendable, Hashable {
    /// Blocked or sleeping in this system call (by name).
    case syscall(String)
    /// On CPU (state R, or /proc/…/syscall said `running`).
    case running
    /// Uninterruptible sleep (state D) outside a known system call, e.g. page-fault I/O.
    case ioWait
    /// Stopped by a signal or a tracer (state T or t).
    case stopped
    /// Sleeping in the kernel but not in a system call (`-1` in /proc/…/syscall).
    case kernel
    /// Zombie, or nothing could be read for this sample.
    case unknown

    /// A stable label for text and JSON: the syscall name, or `running`, `io-wait`, `stopped`, `kernel`, `unknown`.
    public var label: String {
        switch self {
        case .syscall(let n): return n
        case .running: return "running"
        case .ioWait: return "io-wait"
        case .stopped: return "stopped"
        case .kernel: return "kernel"
        case .unknown: return "unknown"
        }
    }
}

/// One histogram bar: how many samples fell in `bucket`.
public struct SampleCount: Sendable, Hashable {
    public var bucket: SampleBucket
    public var count: Int
    /// count / samples of the thread (0…1).
    public var fraction: Double
    public init(bucket: SampleBucket, count: Int, fraction: Double) {
        self.bucket = bucket
        self.count = count
        self.fraction = fraction
    }
}

/// What one thread did during the sampling window.
public struct SampledThread: Sendable, Hashable {
    public var tid: Int32
    /// The thread's own comm (threads can name themselves).
    public var name: String
    /// State at the last sample (R, S, D, T, t, Z …).
    public var state: Character
    /// Samples taken of this thread (threads born or dead mid-window have fewer).
    public var samples: Int
    /// Where the samples fell, largest first.
    public var histogram: [SampleCount]
    /// The bucket most samples fell in.
    public var dominant: SampleBucket? { histogram.first?.bucket }
    /// The system call the thread was in at the last sample, decoded; nil when
    /// running, not in a syscall, or gone.
    public var current: DecodedSyscall?
    /// How long the thread has been seen continuously in `current` (same number,
    /// arguments, stack and program counter) up to the last sample: a lower bound.
    public var currentObservedSeconds: Double?
    /// Time since the scheduler last ran the thread (/proc/…/sched `se.exec_start`),
    /// when it was asleep at the last sample. Also a lower bound on the time in
    /// `current`, often much longer than the window (a thread in `poll` since
    /// before sampling began). Nil when unavailable.
    public var sinceLastRanSeconds: Double?
    /// `/proc/…/wchan` at the last sample (the kernel function it sleeps in), if any.
    public var wchan: String?
    /// CPU time (user + system) used during the window, seconds.
    public var cpuSeconds: Double
    /// The thread exited during the window.
    public var exited: Bool

    public init(tid: Int32, name: String, state: Character, samples: Int, histogram: [SampleCount],
                current: DecodedSyscall?, currentObservedSeconds: Double?, sinceLastRanSeconds: Double?,
                wchan: String?, cpuSeconds: Double, exited: Bool) {
        self.tid = tid
        self.name = name
        self.state = state
        self.samples = samples
        self.histogram = histogram
        self.current = current
        self.currentObservedSeconds = currentObservedSeconds
        self.sinceLastRanSeconds = sinceLastRanSeconds
        self.wchan = wchan
        self.cpuSeconds = cpuSeconds
        self.exited = exited
    }

    /// The best lower bound on how long the thread has been in `current`:
    /// the larger of the observed streak and the time since it last ran.
    public var inCallSeconds: Double? {
        guard current != nil else { return nil }
        switch (currentObservedSeconds, sinceLastRanSeconds) {
        case let (a?, b?): return max(a, b)
        case let (a?, nil): return a
        case let (nil, b?): return b
        default: return nil
        }
    }
}

/// What one process did during the sampling window.
public struct SampledProcess: Sendable, Hashable {
    public var pid: Int32
    public var comm: String
    public var cmdline: [String]
    /// State of the main thread at the last sample.
    public var state: Character
    /// Non-zero when another process ptraces it (read from status at the start).
    public var tracerPid: Int32
    /// CPU time of the whole process during the window, seconds.
    public var cpuSeconds: Double
    public var threads: [SampledThread]
    /// The process exited during the window (threads keep what was seen).
    public var exited: Bool

    public init(pid: Int32, comm: String, cmdline: [String], state: Character, tracerPid: Int32, cpuSeconds: Double,
                threads: [SampledThread], exited: Bool) {
        self.pid = pid
        self.comm = comm
        self.cmdline = cmdline
        self.state = state
        self.tracerPid = tracerPid
        self.cpuSeconds = cpuSeconds
        self.threads = threads
        self.exited = exited
    }
}

/// The sampler's answer: per process, per thread, where time went and the call it is in now.
public struct SamplerReport: Sendable, Hashable {
    /// Sampling rate asked for.
    public var hz: Int
    public var requestedSeconds: Double
    /// Wall time actually covered (shorter when interrupted or when every target exited).
    public var observedSeconds: Double
    /// Sampling rounds taken (each round reads every thread once).
    public var rounds: Int
    /// Ended early by SIGINT/SIGTERM/SIGHUP/SIGPIPE (or the caller's stop check).
    public var interrupted: Bool
    public var processes: [SampledProcess]
    /// Targets that could not be sampled at all, with why.
    public var skipped: [TraceError]

    public init(hz: Int, requestedSeconds: Double, observedSeconds: Double, rounds: Int, interrupted: Bool,
                processes: [SampledProcess], skipped: [TraceError]) {
        self.hz = hz
        self.requestedSeconds = requestedSeconds
        self.observedSeconds = observedSeconds
        self.rounds = rounds
        self.interrupted = interrupted
        self.processes = processes
        self.skipped = skipped
    }
}

// MARK: - Ptrace tracer result

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
    public init(endedBy: TraceEnd, wallSeconds: Double, pids: [Int32], tids: [Int32], stats: [SyscallStats], stops: Int) {
        self.endedBy = endedBy
        self.wallSeconds = wallSeconds
        self.pids = pids
        self.tids = tids
        self.stats = stats
        self.stops = stops
    }
}

// MARK: - Errors

/// Why a target cannot be sampled or traced. The executable maps these to one
/// line and an exit code (docs/trace.md); the library never prints or exits.
public enum TraceError: Error, Hashable, Sendable {
    case noSuchProcess(Int32)
    /// Not allowed to read the process's memory or attach (different user, no CAP_SYS_PTRACE).
    case permissionDenied(pid: Int32, errno: Int32)
    /// Another process already ptraces it.
    case alreadyTraced(pid: Int32, tracerPid: Int32)
    /// Yama `kernel.yama.ptrace_scope` forbids attaching (the level read).
    case ptraceRestricted(pid: Int32, scope: Int)
    /// A kernel thread has no user space to trace.
    case kernelThread(pid: Int32, comm: String)
    /// lockscope itself (or one of its threads).
    case ownProcess(Int32)
    /// A zombie: it has exited and only waits to be reaped.
    case zombie(Int32)
    /// Tracing needs the live /proc; a fixture tree was given.
    case notLive(String)
    /// `--syscalls` named something that is neither a syscall nor a class.
    case unknownSyscall(String)
    /// A system call of the tracer itself failed unexpectedly.
    case system(call: String, pid: Int32, errno: Int32)
}

extension TraceError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .noSuchProcess(let p): return "no such process: \(p)"
        case .permissionDenied(let p, let e):
            return "\(p): permission denied (\(errnoName(e))): run as the process's user or as root"
        case .alreadyTraced(let p, let t): return "\(p): already traced by pid \(t)"
        case .ptraceRestricted(let p, let s):
            return "\(p): ptrace not allowed by kernel.yama.ptrace_scope=\(s)" + (s >= 3 ? "" : " (run as root)")
        case .kernelThread(let p, let c): return "\(p) [\(c)]: a kernel thread cannot be traced"
        case .ownProcess(let p): return "\(p): is lockscope itself"
        case .zombie(let p): return "\(p): a zombie (exited, not yet reaped): nothing to trace"
        case .notLive(let r): return "tracing needs the live /proc, not \(r)"
        case .unknownSyscall(let s): return "--syscalls: \(s): not a system call or class (classes: lock, net, poll, sleep, futex, process, file, desc, signal, memory, ipc, blocking)"
        case .system(let c, let p, let e): return "\(c)(\(p)): \(errnoName(e))"
        }
    }
}
