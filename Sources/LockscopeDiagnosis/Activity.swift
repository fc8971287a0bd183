import LockscopeCore

/// What diagnosis needs to know about what a process is doing: a narrow view
/// built from the tracer's sampler (live), from the scan's thread snapshot
/// (fallback), or by hand (tests). Rules read only this, never /proc.

/// A socket as /proc/PID/net/{tcp,udp,…} shows it.
public struct SocketInfo: Sendable, Hashable {
    /// `UDP`, `TCP`, `UDP6`, `TCP6`, `UNIX`, `RAW`, `NETLINK` …
    public var proto: String
    public var localAddress: String?
    public var localPort: Int?
    public var remoteAddress: String?
    public var remotePort: Int?
    /// TCP state name (`ESTABLISHED`, `SYN_SENT` …) or nil.
    public var state: String?
    /// Unix socket path, when it has one.
    public var path: String?

    public init(proto: String, localAddress: String? = nil, localPort: Int? = nil, remoteAddress: String? = nil,
                remotePort: Int? = nil, state: String? = nil, path: String? = nil) {
        self.proto = proto
        self.localAddress = localAddress
        self.localPort = localPort
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
        self.state = state
        self.path = path
    }

    public var isInet: Bool { proto.hasPrefix("UDP") || proto.hasPrefix("TCP") }
    public var isUDP: Bool { proto.hasPrefix("UDP") }

    /// `10.0.0.1:53`, `[fe80::1]:53`.
    public var remote: String? { remoteAddress.map { Self.endpoint($0, remotePort) } }
    public var local: String? { localAddress.map { Self.endpoint($0, localPort) } }

    static func endpoint(_ address: String, _ port: Int?) -> String {
        let a = address.contains(":") ? "[" + address + "]" : address
        return port.map { a + ":" + String($0) } ?? a
    }

    /// `UDP 127.0.0.1:56750 → 10.0.0.1:53`.
    public var description: String {
        if proto == "UNIX" { return "UNIX " + (path ?? "(unnamed)") }
        var s = proto
        if let l = local { s += " " + l }
        if let r = remote { s += " → " + r }
        if let st = state, !proto.hasPrefix("UDP") { s += " (" + st + ")" }
        return s
    }
}

/// What a descriptor refers to.
public enum FdTarget: Sendable, Hashable {
    case file(String)
    case socket(SocketInfo)
    case pipe(String)
    /// `anon_inode:[eventfd]` and anything else readlink shows.
    case other(String)

    public var socket: SocketInfo? { if case .socket(let s) = self { return s } else { return nil } }

    public var description: String {
        switch self {
        case .file(let p): return p
        case .socket(let s): return s.description
        case .pipe(let p): return p
        case .other(let o): return o
        }
    }
}

/// One descriptor a blocking call waits on.
public struct WaitedFd: Sendable, Hashable {
    public var fd: Int32
    public var target: FdTarget?
    public init(fd: Int32, target: FdTarget?) {
        self.fd = fd
        self.target = target
    }
}

/// The blocking call a thread is in, decoded as far as the source could.
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
    case io(fds: [WaitedFd], timeoutMs: Int?)
    /// Some other system call.
    case other
}

/// One thread over the observation window.
public struct ThreadActivity: Sendable, Hashable {
    public var tid: Int32
    /// R, S, D, T, t, Z … at the end of the window.
    public var state: Character
    /// The system call it is in, by name (`poll`), or nil when running or unknown.
    public var syscall: String?
    public var call: BlockingCall?
    /// The call as a person reads it: `poll([{fd=4 UDP … → 10.0.0.1:53, POLLIN}], 1, 2000 ms)`.
    public var decoded: String?
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

    public init(tid: Int32, state: Character, syscall: String? = nil, call: BlockingCall? = nil, decoded: String? = nil,
                inCallSeconds: Double? = nil, wchan: String? = nil, kernelStack: [String]? = nil,
                cpuSeconds: Double? = nil, runningFraction: Double? = nil, histogram: [HistogramBin] = []) {
        self.tid = tid
        self.state = state
        self.syscall = syscall
        self.call = call
        self.decoded = decoded
        self.inCallSeconds = inCallSeconds
        self.wchan = wchan
        self.kernelStack = kernelStack
        self.cpuSeconds = cpuSeconds
        self.runningFraction = runningFraction
        self.histogram = histogram
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
    /// Diagnosis's own /proc sampler over a window (the fallback; stops nothing).
    case procSampler = "proc-sampler"
    /// The opt-in ptrace tracer.
    case ptrace
    /// One snapshot of /proc/PID/task/*/syscall from the scan (no window).
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
