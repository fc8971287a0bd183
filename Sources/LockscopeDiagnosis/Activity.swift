import LockscopeCore
import LockscopeTrace

/// What diagnosis needs to know about what a process is doing: the tracer's
/// values (the decoded call, the descriptors it waits on), from the sampler
/// (live or on a fixture tree), the ptrace tracer, or built by hand (tests).
/// Rules read only this, never /proc; renderers format the call.

/// The kind of wait a thread's call is, as far as the rules tell waits apart.
public enum BlockingCall: Sendable, Hashable {
    /// flock(fd, op) or fcntl(fd, F_SETLKW / F_OFD_SETLKW).
    case lock(fd: Int32, file: FileIdentity?, path: String?, operation: String)
    /// wait4/waitid/waitpid: `pid` > 0 a specific child, nil or ≤ 0 any child.
    case waitChild(pid: Int32?)
    /// nanosleep/clock_nanosleep (or select/poll with no descriptors).
    case sleep(seconds: Double?)
    /// futex wait; `ownerTid` when the word (or a glibc mutex's owner field) names a thread.
    case futex(address: UInt64?, ownerTid: Int32?)
    /// poll/select/epoll_wait/read/recv/connect/sendto… on descriptors.
    case io(fds: [ResolvedFd], timeoutMs: Int?)
    /// Some other system call.
    case other

    /// What kind of wait `c` is; `processTids` are the threads of its process
    /// (a futex word holding one of them names the thread waited for).
    public init(_ c: DecodedSyscall, processTids: Set<Int32>) {
        switch c.name {
        case "flock":
            if let op = c.flockOperation, !op.nonBlocking, op.kind != .unlock, let fd = c.fds.first {
                self = .lock(fd: fd.fd, file: nil, path: fd.what?.path, operation: op.kind.rawValue)
                return
            }
        case "fcntl", "fcntl64":
            if let (cmd, _) = c.fcntl, cmd.waitsForLock, let fd = c.fds.first {
                self = .lock(fd: fd.fd, file: nil, path: fd.what?.path, operation: cmd.name)
                return
            }
        case "wait4", "waitid", "waitpid":
            if case .child(let pid)? = c.waitTarget { self = .waitChild(pid: pid) } else { self = .waitChild(pid: nil) }
            return
        case "nanosleep", "clock_nanosleep", "pause":
            self = .sleep(seconds: c.timeout?.seconds)
            return
        case "futex", "futex_waitv", "futex_wait":
            var owner: Int32? = nil
            if let f = c.futex, let v = f.value {
                let tid = Int32(bitPattern: v & 0x3fff_ffff)   // FUTEX_TID_MASK
                // PI futexes hold the owner's tid; pthread_join waits on the joined thread's tid.
                if f.operation.isPI || processTids.contains(tid) { owner = tid > 0 ? tid : nil }
            }
            self = .futex(address: c.futex?.address, ownerTid: owner)
            return
        default:
            break
        }
        var fds = c.fds
        let timeoutMs = c.timeout.flatMap { t -> Int? in
            if case .infinite = t { return -1 }
            return t.milliseconds.map { Int($0.rounded()) }
        }
        if c.classes.contains(.poll) || c.classes.contains(.net) || c.classes.contains(.desc) {
            // select/poll with no descriptors is a sleep (old-style retry loops use it);
            // a descriptor list that could not be read (a recorded tree) is not "none".
            let unread = c.args.contains { a in
                if case .unreadable = a.value { return a.name.hasSuffix("fds") } else { return false }
            }
            if fds.isEmpty && !unread && c.classes.contains(.poll) { self = .sleep(seconds: c.timeout?.seconds); return }
            // connect/sendto on an unconnected socket: the address argument is the peer.
            if let addr = c.socketAddress?.endpoint, case .socket(var s)? = fds.first?.what, s.remote == nil {
                s.remote = addr
                fds[0].what = .socket(s)
            }
            if !fds.isEmpty { self = .io(fds: fds, timeoutMs: timeoutMs == -1 ? nil : timeoutMs); return }
        }
        self = .other
    }
}

extension FdDescription {
    /// The file's path, when the descriptor is a file.
    public var path: String? { if case .path(let p) = self { return p } else { return nil } }
}

/// One thread over the observation window.
public struct ThreadActivity: Sendable, Hashable {
    public var tid: Int32
    /// R, S, D, T, t, Z … at the end of the window.
    public var state: Character
    /// The system call it is in, decoded, or nil when running or unknown.
    public var current: DecodedSyscall?
    public var call: BlockingCall?
    /// How long it has been observed in the current call (lower bound).
    public var inCallSeconds: Double?
    public var wchan: String?
    /// /proc/PID/task/TID/stack, where readable (root).
    public var kernelStack: [String]?
    /// CPU time this thread used during the window, in seconds.
    public var cpuSeconds: Double?
    /// Fraction of samples in which the thread was on CPU (0…1).
    public var runningFraction: Double?
    /// Where the samples fell: `poll` 0.98, `running` 0.02 … largest first.
    public var histogram: [HistogramBin]
    /// `inCallSeconds` is exact: an event engine saw the current call enter
    /// during the window (otherwise it is a lower bound).
    public var inCallExact = false
    /// The calls the thread made during the window, in order, with exact
    /// durations (event engines only; empty from the sampler): the last
    /// `ObservedCall.keep` of those that can wait (network, poll, lock, blocking
    /// classes, or any call that took at least a millisecond).
    public var calls: [ObservedCall] = []

    public init(tid: Int32, state: Character, current: DecodedSyscall? = nil, call: BlockingCall? = nil,
                inCallSeconds: Double? = nil, wchan: String? = nil, kernelStack: [String]? = nil,
                cpuSeconds: Double? = nil, runningFraction: Double? = nil, histogram: [HistogramBin] = []) {
        self.tid = tid
        self.state = state
        self.current = current
        self.call = call
        self.inCallSeconds = inCallSeconds
        self.wchan = wchan
        self.kernelStack = kernelStack
        self.cpuSeconds = cpuSeconds
        self.runningFraction = runningFraction
        self.histogram = histogram
    }

    /// The system call it is in, by name (`poll`).
    public var syscall: String? { current?.name }
}

/// One call an event engine saw a thread make during the window.
public struct ObservedCall: Sendable, Hashable {
    /// Entry, in seconds since the window started (0 for a call in progress when it started).
    public var startSeconds: Double
    /// Entry to return; for a call still in progress at the end, entry to the end.
    public var durationSeconds: Double
    public var call: DecodedSyscall
    /// Nil: it had not returned when the window ended.
    public var result: SyscallResult?
    /// It was already in progress when the window started (the duration is a lower bound).
    public var startedBefore: Bool

    /// How many calls a thread keeps (the most recent).
    public static let keep = 64

    public init(startSeconds: Double, durationSeconds: Double, call: DecodedSyscall, result: SyscallResult?,
                startedBefore: Bool = false) {
        self.startSeconds = startSeconds
        self.durationSeconds = durationSeconds
        self.call = call
        self.result = result
        self.startedBefore = startedBefore
    }

    /// `+0.012 s sendmmsg(3 UDP … → 127.0.0.141:53, …) = 2 <0.000021>`: the
    /// strace-like line, with the entry time since the window started.
    public var text: String {
        var s = (startedBefore ? "before " : "+" + formatDecimal(startSeconds, places: 3) + " s ") + CallText.call(call, escaped: false)
        switch result {
        case .value(let v)?: s += " = \(v)"
        case .error(let e, let name)?: s += " = -1 \(name) (errno \(e))"
        case nil: s += " = ? (unfinished)"
        }
        return s + " <" + formatDecimal(durationSeconds, places: 6) + ">"
    }

    /// Whether a call is worth keeping as evidence: one that can wait, or did.
    public static func worthKeeping(_ c: DecodedSyscall, durationSeconds: Double) -> Bool {
        durationSeconds >= 0.001 || !c.classes.isDisjoint(with: [.net, .poll, .lock, .blocking])
    }
}

public struct HistogramBin: Sendable, Hashable {
    public var label: String
    public var fraction: Double
    public init(label: String, fraction: Double) {
        self.label = label
        self.fraction = fraction
    }
}

/// Where activity came from.
public enum ActivitySource: String, Sendable, Hashable {
    /// The tracer's sampler over a window (stops nothing).
    case sampler
    /// The opt-in ptrace tracer.
    case ptrace
    /// The kernel engine (raw_syscalls tracepoints): every call, exact durations, stops nothing.
    case kernel
    /// One sample of a recorded /proc tree (no window, no memory).
    case snapshot
}

/// What one process did over the window.
public struct ProcessActivity: Sendable, Hashable {
    public var pid: Int32
    public var threads: [ThreadActivity]
    /// CPU time the whole process used during the window, in seconds.
    public var cpuSeconds: Double?
    public var windowSeconds: Double
    public var source: ActivitySource

    public init(pid: Int32, threads: [ThreadActivity], cpuSeconds: Double? = nil, windowSeconds: Double = 0,
                source: ActivitySource = .sampler) {
        self.pid = pid
        self.threads = threads
        self.cpuSeconds = cpuSeconds
        self.windowSeconds = windowSeconds
        self.source = source
    }
}
