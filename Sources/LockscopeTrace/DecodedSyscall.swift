import LockscopeCore

// A decoded system call and its argument values. Plain data: decoding never
// prints; renderers format these.

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
    public var takesFlock: Bool { FcntlCmd.takesFlock.contains(raw) }
    /// The command blocks until the lock is granted (`F_SETLKW`, `F_OFD_SETLKW`).
    public var waitsForLock: Bool { raw == FcntlCmd.setlkw || raw == FcntlCmd.ofdSetlkw }
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
    /// The pointed-to memory was read after the call had returned (the kernel
    /// engine decodes when it processes the event): the call may have seen
    /// something else. Rendered with a trailing `~`.
    public var readAfterReturn = false
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
