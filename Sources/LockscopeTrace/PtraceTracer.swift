import CLockscopeTrace
import LockscopeCore

/// What to trace and for how long.
public struct TraceOptions: Sendable {
    /// Stop after this long (nil: until every tracee exits or a stop signal).
    public var duration: Duration?
    /// Which calls produce events (all are counted in the summary only when they match).
    public var filter: SyscallFilter
    /// Follow new threads and children (`PTRACE_O_TRACECLONE|TRACEFORK|TRACEVFORK`).
    public var followChildren: Bool
    /// Decode arguments (read tracee memory); off = names and raw values only.
    public var decode: Bool

    public init(duration: Duration? = .seconds(3), filter: SyscallFilter = .all, followChildren: Bool = true,
                decode: Bool = true) {
        self.duration = duration
        self.filter = filter
        self.followChildren = followChildren
        self.decode = decode
    }
}

/// `--syscalls lock,net,poll,openat`: names and classes.
public struct SyscallFilter: Sendable, Hashable {
    public var classes: SyscallClass
    public var names: Set<String>
    public var matchesAll: Bool

    public static let all = SyscallFilter(classes: [], names: [], matchesAll: true)

    public init(classes: SyscallClass, names: Set<String>, matchesAll: Bool = false) {
        self.classes = classes
        self.names = names
        self.matchesAll = matchesAll
    }

    /// Parses a comma-separated list of syscall names (for `table`) and class names.
    /// - Throws: `TraceError.unknownSyscall` for a word that is neither.
    public init(parsing text: String, table: SyscallTable = .host) throws(TraceError) {
        var classes: SyscallClass = []
        var names: Set<String> = []
        for word in text.split(separator: ",").map({ String($0).trimmingCharacters() }) where !word.isEmpty {
            if word == "all" { self = .all; return }
            if let c = SyscallClass.named.first(where: { $0.0 == word }) { classes.insert(c.1); continue }
            guard table.number(of: word) != nil else { throw .unknownSyscall(word) }
            names.insert(word)
        }
        self.init(classes: classes, names: names, matchesAll: classes.isEmpty && names.isEmpty)
    }

    public func matches(name: String, classes c: SyscallClass) -> Bool {
        matchesAll || names.contains(name) || !classes.intersection(c).isEmpty
    }
}

extension String {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}

/// The opt-in tracer: `PTRACE_SEIZE`s every thread of the targets, follows new
/// threads and children, and reports every system call with decoded arguments.
/// It slows the tracee (two stops per call) and an interrupt can make a call with
/// `SO_RCVTIMEO` return `EINTR`, which is why the sampler is the default.
///
/// Safety: never `PTRACE_O_EXITKILL` (if lockscope dies, the kernel detaches and
/// the tracee runs on); signals are passed through unchanged; group-stops are
/// kept with `PTRACE_LISTEN`; every exit path detaches every thread.
///
/// Must be used from one thread (ptrace binds a tracee to the tracing thread), and
/// waits for any child with `__WALL`: the calling process should have no other
/// children whose exit status it needs.
public struct PtraceTracer: Sendable {
    public let proc: ProcRoot

    public init(proc: ProcRoot = ProcRoot()) { self.proc = proc }

    /// Checks that `pid` can be traced (exists, not lockscope, not a kernel thread,
    /// not a zombie, not already traced), without attaching.
    public func check(pid: Int32) throws(TraceError) {
        guard proc.isLive else { throw .notLive(proc.path) }
        try TargetCheck(proc: proc).checkReadable(pid: pid)
        if let status = try? proc.readText("\(pid)/status") {
            let tracer = StatusFields.parse(status).tracerPid
            if tracer != 0 { throw .alreadyTraced(pid: pid, tracerPid: tracer) }
        }
        if let scope = Self.yamaScope(proc: proc), scope >= 3 { throw .ptraceRestricted(pid: pid, scope: scope) }
    }

    /// `kernel.yama.ptrace_scope`, or nil without Yama.
    static func yamaScope(proc: ProcRoot) -> Int? {
        (try? proc.readText("sys/kernel/yama/ptrace_scope")).flatMap { Int($0.trimmingCharacters()) }
    }

    /// Attaches to every thread of `pids`, traces until `options.duration`, a stop
    /// signal, `shouldStop`, or every tracee's exit, then detaches everything.
    /// `onEvent` is called for each event in order (from the calling thread); it
    /// returns false to end the trace (e.g. the output failed with EPIPE).
    ///
    /// - Throws: `TraceError` when a target cannot be attached (nothing is left attached).
    public func trace(pids: [Int32], options: TraceOptions = TraceOptions(),
                      shouldStop: () -> Bool = { StopSignals.requested != 0 },
                      onEvent: (TraceEvent) -> Bool) throws(TraceError) -> TraceSummary {
        guard proc.isLive else { throw .notLive(proc.path) }
        let session = PtraceSession(proc: proc, options: options, table: .host)
        StopSignals.wakeThisThread()
        // Wakes waitpid() every 50 ms to look at the clock and the stop flag.
        _ = cls_trace_start_ticker(50_000_000)
        defer { cls_trace_stop_ticker() }
        let attached = try session.attach(pids, check: { (pid: Int32) throws(TraceError) in try self.check(pid: pid) })
        var outputOK = true
        for e in attached where outputOK { outputOK = onEvent(e) }
        var end = TraceEnd.outputFailed
        if outputOK {
            let deadline = options.duration.map { d -> Int64 in
                let (s, a) = d.components
                return session.startNs + s * 1_000_000_000 + a / 1_000_000_000
            }
            end = session.run(until: deadline, shouldStop: shouldStop, onEvent: onEvent)
        }
        var stillWriting = end != .outputFailed
        session.detachAll(onEvent: { e in
            if stillWriting { stillWriting = onEvent(e) }
            return stillWriting
        })
        return session.summary(endedBy: end)
    }
}
