// The system-call ABIs lockscope decodes, and the classes calls are grouped in.

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
