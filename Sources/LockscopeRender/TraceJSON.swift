import LockscopeCore
import LockscopeTrace

/// `--json` for `lockscope trace` (schema: docs/trace.md). Every decoded value
/// keeps its structure; `text` fields carry the same rendering as the text output.
public enum TraceJSON {
    // MARK: - Documents

    /// The sampler's document.
    public static func sampler(_ r: SamplerReport, targets: [Int32]) -> JSONValue {
        .object([
            ("mode", .string("sampler")),
            ("targets", .array(targets.map { .int($0) })),
            ("hz", .int(Int64(r.hz))),
            ("requested_seconds", .double(r.requestedSeconds)),
            ("observed_seconds", .double(r.observedSeconds)),
            ("rounds", .int(Int64(r.rounds))),
            ("interrupted", .bool(r.interrupted)),
            ("processes", .array(r.processes.map(process))),
            ("skipped", .array(r.skipped.map(error))),
        ])
    }

    /// The ptrace tracer's document: every event in order, then the summary.
    /// `engine` is `ptrace` or `kernel` (the tracepoint engine); both write this schema.
    public static func ptrace(events: [TraceEvent], summary: TraceSummary, targets: [Int32],
                              engine: String = "ptrace") -> JSONValue {
        .object([
            ("mode", .string(engine)),
            ("engine", .string(engine)),
            ("targets", .array(targets.map { .int($0) })),
            ("events", .array(events.map(event))),
            ("summary", self.summary(summary)),
        ])
    }

    public static func error(_ e: TraceError) -> JSONValue {
        let (code, pid): (String, Int32?) = {
            switch e {
            case .noSuchProcess(let p): return ("no-such-process", p)
            case .permissionDenied(let p, _): return ("permission-denied", p)
            case .alreadyTraced(let p, _): return ("already-traced", p)
            case .ptraceRestricted(let p, _): return ("ptrace-restricted", p)
            case .kernelThread(let p, _): return ("kernel-thread", p)
            case .ownProcess(let p): return ("own-process", p)
            case .zombie(let p): return ("zombie", p)
            case .notLive: return ("not-live", nil)
            case .unknownSyscall: return ("unknown-syscall", nil)
            case .system(_, let p, _): return ("system", p)
            }
        }()
        var fields: [(String, JSONValue)] = [("error", .string(code)), ("pid", .int(pid)), ("message", .string(e.description))]
        if case .alreadyTraced(_, let t) = e { fields.append(("tracer_pid", .int(t))) }
        return .object(fields)
    }

    // MARK: - Sampler parts

    static func process(_ p: SampledProcess) -> JSONValue {
        .object([
            ("pid", .int(p.pid)),
            ("comm", .string(p.comm)),
            ("cmdline", .array(p.cmdline.map { .string($0) })),
            ("state", .string(String(p.state))),
            ("tracer_pid", .int(p.tracerPid)),
            ("cpu_seconds", .double(p.cpuSeconds)),
            ("exited", .bool(p.exited)),
            ("threads", .array(p.threads.map(thread))),
        ])
    }

    static func thread(_ t: SampledThread) -> JSONValue {
        .object([
            ("tid", .int(t.tid)),
            ("name", .string(t.name)),
            ("state", .string(String(t.state))),
            ("samples", .int(Int64(t.samples))),
            ("dominant", .string(t.dominant?.label)),
            ("call", t.current.map(call) ?? .null),
            ("in_call_seconds", .double(t.inCallSeconds)),
            ("observed_in_call_seconds", .double(t.currentObservedSeconds)),
            ("since_last_ran_seconds", .double(t.sinceLastRanSeconds)),
            ("wchan", .string(t.wchan)),
            ("cpu_seconds", .double(t.cpuSeconds)),
            ("exited", .bool(t.exited)),
            ("histogram", .array(t.histogram.map {
                .object([("bucket", .string($0.bucket.label)), ("count", .int(Int64($0.count))), ("fraction", .double($0.fraction))])
            })),
        ])
    }

    // MARK: - Ptrace parts

    public static func event(_ e: TraceEvent) -> JSONValue {
        switch e {
        case .attached(let time, let pid, let tid, let inSyscall):
            return .object([("type", .string("attached")), ("time", .double(time)), ("pid", .int(pid)), ("tid", .int(tid)),
                            ("in_syscall", inSyscall.map(call) ?? .null)])
        case .syscall(let s):
            var result: JSONValue = .null
            switch s.result {
            case .value(let v)?: result = .object([("value", .int(v))])
            case .error(let e, let name)?: result = .object([("error", .string(name)), ("errno", .int(e))])
            case nil: break
            }
            return .object([("type", .string("syscall")), ("time", .double(s.time)), ("pid", .int(s.pid)), ("tid", .int(s.tid)),
                            ("call", call(s.call)), ("result", result), ("duration_seconds", .double(s.durationSeconds)),
                            ("unfinished", .bool(s.result == nil)), ("in_progress_at_attach", .bool(s.inProgressAtAttach))])
        case .signal(let time, let tid, let sig):
            return .object([("type", .string("signal")), ("time", .double(time)), ("tid", .int(tid)),
                            ("signal", .string(signalName(sig))), ("signal_number", .int(sig))])
        case .groupStop(let time, let tid, let sig):
            return .object([("type", .string("group_stop")), ("time", .double(time)), ("tid", .int(tid)),
                            ("signal", .string(signalName(sig))), ("signal_number", .int(sig))])
        case .newTask(let time, let parent, let tid, let isThread):
            return .object([("type", .string("new_task")), ("time", .double(time)), ("parent", .int(parent)), ("tid", .int(tid)),
                            ("thread", .bool(isThread))])
        case .exec(let time, let tid, let former):
            return .object([("type", .string("exec")), ("time", .double(time)), ("tid", .int(tid)), ("former_tid", .int(former))])
        case .exited(let time, let tid, let status, let signal):
            return .object([("type", .string("exited")), ("time", .double(time)), ("tid", .int(tid)), ("status", .int(status)),
                            ("signal", .string(signal.map(signalName)))])
        case .detached(let time, let tid):
            return .object([("type", .string("detached")), ("time", .double(time)), ("tid", .int(tid))])
        }
    }

    public static func summary(_ s: TraceSummary) -> JSONValue {
        var ended: String
        var signal: JSONValue = .null
        switch s.endedBy {
        case .duration: ended = "duration"
        case .interrupted(let sig):
            ended = "interrupted"
            if sig != 0 { signal = .string(signalName(sig)) }
        case .allExited: ended = "all_exited"
        case .outputFailed: ended = "output_failed"
        }
        return .object([
            ("ended_by", .string(ended)),
            ("signal", signal),
            ("wall_seconds", .double(s.wallSeconds)),
            ("pids", .array(s.pids.map { .int($0) })),
            ("tids", .array(s.tids.map { .int($0) })),
            ("stops", .int(Int64(s.stops))),
            ("lost_events", s.lostEvents.map { .int(Int64(clamping: $0)) } ?? .null),
            ("syscalls", .array(s.stats.map { st in
                .object([("name", .string(st.name)), ("count", .int(Int64(st.count))), ("errors", .int(Int64(st.errors))),
                         ("total_seconds", .double(st.totalSeconds)), ("max_seconds", .double(st.maxSeconds)),
                         ("blocking", .bool(st.classes.contains(.blocking) || st.classes.contains(.lock)))])
            })),
        ])
    }

    // MARK: - Calls and values

    public static func call(_ c: DecodedSyscall) -> JSONValue {
        .object([
            ("name", .string(c.name)),
            ("number", .int(Int64(c.number))),
            ("arch", .string(c.arch.rawValue)),
            ("classes", .array(SyscallClass.named.filter { $0.0 != "network" && c.classes.contains($0.1) }.map { .string($0.0) })),
            ("text", .string(CallText.call(c))),
            ("args", .array(c.args.map {
                .object([("name", .string($0.name))] + value($0.value) + ($0.readAfterReturn ? [("read_after_return", .bool(true))] : []))
            })),
            ("raw", .array(c.raw.map { .string("0x" + String($0, radix: 16)) })),
        ])
    }

    static func hex(_ v: UInt64) -> JSONValue { .string("0x" + String(v, radix: 16)) }
    static func uint(_ v: UInt64) -> JSONValue { v <= UInt64(Int64.max) ? .int(Int64(v)) : hex(v) }

    /// The fields of one argument value: `type` and its data.
    public static func valueFields(_ v: ArgumentValue) -> [(String, JSONValue)] { value(v) }

    static func value(_ v: ArgumentValue) -> [(String, JSONValue)] {
        switch v {
        case .int(let i): return [("type", .string("int")), ("value", .int(i))]
        case .uint(let u): return [("type", .string("uint")), ("value", uint(u))]
        case .hex(let h): return [("type", .string("hex")), ("value", hex(h))]
        case .pointer(let p): return [("type", .string("pointer")), ("value", p == 0 ? .null : hex(p))]
        case .fd(let f): return [("type", .string("fd"))] + fd(f)
        case .atFdcwd: return [("type", .string("at_fdcwd"))]
        case .string(let s, let t): return [("type", .string("string")), ("value", .string(s)), ("truncated", .bool(t))]
        case .pollFds(let ps):
            return [("type", .string("pollfds")), ("value", .array(ps.map { p in
                .object(fd(p.fd) + [("events", .array(pollEventNames(p.events).map { .string($0) })),
                                    ("revents", p.revents.map { r in .array(pollEventNames(r).map { .string($0) }) } ?? .null)])
            }))]
        case .fdSet(let fs): return [("type", .string("fd_set")), ("value", .array(fs.map { .object(fd($0)) }))]
        case .timeout(let t):
            switch t {
            case .infinite: return [("type", .string("timeout")), ("kind", .string("infinite"))]
            case .relative(let ns): return [("type", .string("timeout")), ("kind", .string("relative")), ("ms", .double(Double(ns) / 1e6))]
            case .absolute(let clock, let ns):
                return [("type", .string("timeout")), ("kind", .string("absolute")), ("clock", .string(clockName(clock))),
                        ("seconds", .double(Double(ns) / 1e9))]
            }
        case .socketAddress(let a):
            switch a {
            case .inet(let e): return [("type", .string("sockaddr")), ("family", .string("inet")), ("address", .string(e.address)), ("port", .int(Int64(e.port)))]
            case .inet6(let e, let scope):
                return [("type", .string("sockaddr")), ("family", .string("inet6")), ("address", .string(e.address)),
                        ("port", .int(Int64(e.port))), ("scope_id", .int(Int64(scope)))]
            case .unix(let p): return [("type", .string("sockaddr")), ("family", .string("unix"))] + JSONValue.pathFields("path", p)
            case .netlink(let pid, let groups):
                return [("type", .string("sockaddr")), ("family", .string("netlink")), ("port_id", .int(Int64(pid))), ("groups", .int(Int64(groups)))]
            case .other(let f): return [("type", .string("sockaddr")), ("family", .int(Int64(f)))]
            }
        case .flockOperation(let op):
            return [("type", .string("flock_operation")), ("operation", .string(op.kind.rawValue)), ("nonblocking", .bool(op.nonBlocking))]
        case .flock(let f):
            return [("type", .string("flock")), ("l_type", .string(f.typeName)), ("whence", .string(f.whenceName)),
                    ("start", .int(f.start)), ("len", .int(f.length)), ("pid", .int(f.pid))]
        case .fcntlCommand(let c): return [("type", .string("fcntl_command")), ("name", .string(c.name)), ("value", .int(c.raw))]
        case .futexOperation(let op):
            return [("type", .string("futex_operation")), ("command", .string(op.command)), ("private", .bool(op.isPrivate)),
                    ("realtime", .bool(op.realtime))]
        case .futexWord(let addr, let value):
            return [("type", .string("futex_word")), ("address", hex(addr)), ("value", value.map { .int(Int64($0)) } ?? .null)]
        case .waitTarget(let w):
            switch w {
            case .anyChild: return [("type", .string("wait_target")), ("target", .string("any_child"))]
            case .child(let p): return [("type", .string("wait_target")), ("target", .string("child")), ("pid", .int(p))]
            case .ownProcessGroup: return [("type", .string("wait_target")), ("target", .string("own_group"))]
            case .processGroup(let g): return [("type", .string("wait_target")), ("target", .string("group")), ("pgid", .int(g))]
            case .pidfd(let f): return [("type", .string("wait_target")), ("target", .string("pidfd")), ("fd", .int(f))]
            }
        case .flags(let f):
            return [("type", .string("flags")), ("value", uint(f.raw)), ("names", .array(f.names.map { .string($0) })),
                    ("unknown", f.unknown == 0 ? .null : hex(f.unknown))]
        case .signal(let s): return [("type", .string("signal")), ("value", .int(s)), ("name", .string(signalName(s)))]
        case .clock(let c): return [("type", .string("clock")), ("value", .int(c)), ("name", .string(clockName(c)))]
        case .unreadable(let a, let e): return [("type", .string("unreadable")), ("address", hex(a)), ("errno", .string(errnoName(e)))]
        }
    }

    /// `fd` and `target` fields.
    static func fd(_ f: ResolvedFd) -> [(String, JSONValue)] {
        [("fd", .int(f.fd)), ("target", f.what.map(target) ?? .null)]
    }

    public static func target(_ d: FdDescription) -> JSONValue {
        switch d {
        case .path(let p): return .object([("kind", .string("path"))] + JSONValue.pathFields("path", p))
        case .socket(let s):
            return .object([
                ("kind", .string("socket")), ("proto", .string(s.proto.rawValue)), ("inode", .int(Int64(s.inode))),
                ("local", .string(s.local?.description)), ("remote", .string(s.remote?.description)),
                ("local_address", .string(s.local?.address)), ("local_port", .int(s.local?.port)),
                ("remote_address", .string(s.remote?.address)), ("remote_port", .int(s.remote?.port)),
                ("state", .string(s.state)),
            ] + JSONValue.pathFields("path", s.path) + [("text", .string(CallText.socket(s)))])
        case .otherSocket(let inode): return .object([("kind", .string("socket")), ("proto", .null), ("inode", .int(Int64(inode)))])
        case .pipe(let inode, let peers):
            return .object([("kind", .string("pipe")), ("inode", .int(Int64(inode))),
                            ("peers", .array(peers.map { .object([("pid", .int($0.pid)), ("fd", .int($0.fd))]) }))])
        case .anon(let a): return .object([("kind", .string("anon")), ("name", .string(a))])
        }
    }
}
