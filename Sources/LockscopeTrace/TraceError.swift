import LockscopeCore
import SystemPackage

/// Why a target cannot be sampled or traced. The executable maps these to one
/// line and an exit code (docs/trace.md); the library never prints or exits.
public enum TraceError: Error, Hashable, Sendable {
    case noSuchProcess(Int32)
    /// Not allowed to read the process's memory or attach (different user, no CAP_SYS_PTRACE).
    case permissionDenied(pid: Int32, errno: Errno)
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
    case system(call: String, pid: Int32, errno: Errno)
}

extension TraceError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .noSuchProcess(let p): return "no such process: \(p)"
        case .permissionDenied(let p, let e):
            return "\(p): permission denied (\(errnoName(e.rawValue))): run as the process's user or as root"
        case .alreadyTraced(let p, let t): return "\(p): already traced by pid \(t)"
        case .ptraceRestricted(let p, let s):
            return "\(p): ptrace not allowed by kernel.yama.ptrace_scope=\(s)" + (s >= 3 ? "" : " (run as root)")
        case .kernelThread(let p, let c): return "\(p) [\(c)]: a kernel thread cannot be traced"
        case .ownProcess(let p): return "\(p): is lockscope itself"
        case .zombie(let p): return "\(p): a zombie (exited, not yet reaped): nothing to trace"
        case .notLive(let r): return "tracing needs the live /proc, not \(r)"
        case .unknownSyscall(let s): return "--syscalls: \(s): not a system call or class (classes: lock, net, poll, sleep, futex, process, file, desc, signal, memory, ipc, blocking)"
        case .system(let c, let p, let e): return "\(c)(\(p)): \(errnoName(e.rawValue))"
        }
    }
}
