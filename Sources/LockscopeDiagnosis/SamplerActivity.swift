import LockscopeCore
import LockscopeTrace

/// Activity from the tracer's non-invasive sampler (the default for `diagnose`):
/// nothing is stopped; every thread's current call is decoded from /proc and
/// `process_vm_readv`.
public struct SamplerActivity: ActivityProvider {
    public var proc: ProcRoot

    public init(proc: ProcRoot = ProcRoot()) { self.proc = proc }

    public func activity(pids: [Int32], window: Double, hz: Int, shouldStop: @escaping () -> Bool) -> ActivityResult {
        guard !pids.isEmpty else { return ActivityResult() }
        let sampler = Sampler(proc: proc)
        let ms = Int64((max(0, window) * 1000).rounded())
        do {
            let report = try sampler.sample(pids: pids, duration: .milliseconds(ms), hz: max(1, hz), shouldStop: shouldStop)
            var result = ActivityAdapter.result(report)
            // A thread in D state: its kernel stack says what it waits for (root only).
            let stacks = ProcActivity(proc: proc)
            for (pid, act) in result.activity {
                var a = act
                for i in a.threads.indices where a.threads[i].state == "D" {
                    a.threads[i].kernelStack = stacks.kernelStack(pid: pid, tid: a.threads[i].tid)
                }
                result.activity[pid] = a
            }
            return result
        } catch {
            return ActivityResult(uninspectable: Set(pids))
        }
    }
}

/// The opt-in ptrace tracer (`diagnose --ptrace`): seizes every thread of the
/// processes for the window, then detaches. The call each thread is in at the end
/// (or was in at attach, if it never returned) is its current call; the time
/// spent per call name makes the histogram.
public struct PtraceActivity: ActivityProvider {
    public var proc: ProcRoot

    public init(proc: ProcRoot = ProcRoot()) { self.proc = proc }

    public func activity(pids: [Int32], window: Double, hz: Int, shouldStop: @escaping () -> Bool) -> ActivityResult {
        var out = ActivityResult()
        let tracer = PtraceTracer(proc: proc)
        var traceable: [Int32] = []
        for pid in pids {
            do { try tracer.check(pid: pid); traceable.append(pid) } catch { out.uninspectable.insert(pid) }
        }
        guard !traceable.isEmpty else { return out }
        struct Track { var pid: Int32; var current: DecodedSyscall?; var since: Double; var spent: [String: Double] = [:] }
        var tracks: [Int32: Track] = [:]
        let ms = Int64((max(0.05, window) * 1000).rounded())
        var options = TraceOptions()
        options.duration = .milliseconds(ms)
        options.followChildren = false
        do {
            let summary = try tracer.trace(pids: traceable, options: options, shouldStop: shouldStop) { event in
                switch event {
                case .attached(let time, let pid, let tid, let call):
                    tracks[tid] = Track(pid: pid, current: call, since: time)
                case .syscall(let s):
                    var t = tracks[s.tid] ?? Track(pid: s.pid, current: nil, since: s.time)
                    if s.result == nil {
                        t.current = s.call
                        t.since = s.inProgressAtAttach ? 0 : s.time
                    } else {
                        t.current = nil
                        t.spent[s.call.name, default: 0] += s.durationSeconds ?? 0
                    }
                    tracks[s.tid] = t
                case .exited(_, let tid, _, _):
                    tracks[tid] = nil
                default:
                    break
                }
                return true
            }
            if case .interrupted = summary.endedBy { out.interrupted = true }
            let reader = ProcessReader(proc: proc)
            for pid in traceable {
                let threads = tracks.filter { $0.value.pid == pid }
                let facts = reader.facts(of: pid, withThreads: true)
                let tids = Set(threads.keys)
                var acts: [ThreadActivity] = []
                for (tid, t) in threads.sorted(by: { $0.key < $1.key }) {
                    let state = facts?.threads.first { $0.tid == tid }?.state ?? facts?.state ?? "?"
                    let total = max(summary.wallSeconds, 0.001)
                    var a = ThreadActivity(tid: tid, state: state, syscall: t.current?.name,
                                           call: t.current.map { ActivityAdapter.call($0, processTids: tids) },
                                           decoded: t.current.map(ActivityAdapter.describe),
                                           inCallSeconds: t.current == nil ? nil : summary.wallSeconds - t.since)
                    a.histogram = t.spent.sorted { $0.value > $1.value }.map { HistogramBin(label: $0.key, fraction: min(1, $0.value / total)) }
                    acts.append(a)
                }
                acts.sort { ($0.tid == pid ? 0 : 1, $0.tid) < ($1.tid == pid ? 0 : 1, $1.tid) }
                out.activity[pid] = ProcessActivity(pid: pid, threads: acts, windowSeconds: summary.wallSeconds, source: .ptrace)
            }
        } catch {
            for pid in traceable { out.uninspectable.insert(pid) }
        }
        return out
    }
}

/// The sampler (or tracer) first; any process it could not report is sampled
/// again by the fallback (a holder the tracer may not attach to can often still
/// be read through /proc). Only what neither could read is uninspectable.
public struct FallbackActivity: ActivityProvider {
    public var primary: ActivityProvider
    public var fallback: ActivityProvider

    public init(primary: ActivityProvider, fallback: ActivityProvider) {
        self.primary = primary
        self.fallback = fallback
    }

    public func activity(pids: [Int32], window: Double, hz: Int, shouldStop: @escaping () -> Bool) -> ActivityResult {
        var r = primary.activity(pids: pids, window: window, hz: hz, shouldStop: shouldStop)
        let missing = pids.filter { r.activity[$0] == nil }
        guard !missing.isEmpty, !r.interrupted else { return r }
        let more = fallback.activity(pids: missing, window: window, hz: hz, shouldStop: shouldStop)
        for (k, v) in more.activity {
            r.activity[k] = v
            r.uninspectable.remove(k)
        }
        r.uninspectable.formUnion(more.uninspectable)
        r.interrupted = r.interrupted || more.interrupted
        return r
    }
}

/// Turns the tracer's values into the narrow view the rules read.
public enum ActivityAdapter {
    public static func result(_ r: SamplerReport) -> ActivityResult {
        var out = ActivityResult(interrupted: r.interrupted)
        for p in r.processes {
            out.activity[p.pid] = process(p, window: r.observedSeconds, source: .sampler)
        }
        for e in r.skipped {
            switch e {
            case .permissionDenied(let pid, _): out.uninspectable.insert(pid)
            case .alreadyTraced(let pid, _): out.uninspectable.insert(pid)
            case .ptraceRestricted(let pid, _): out.uninspectable.insert(pid)
            default: break
            }
        }
        return out
    }

    public static func process(_ p: SampledProcess, window: Double, source: ActivitySource) -> ProcessActivity {
        let tids = Set(p.threads.map(\.tid))
        var threads = p.threads.filter { !$0.exited }.map { thread($0, processTids: tids) }
        // The main thread first: verdicts and trees show it when nothing else stands out.
        threads.sort { ($0.tid == p.pid ? 0 : 1, $0.tid) < ($1.tid == p.pid ? 0 : 1, $1.tid) }
        return ProcessActivity(pid: p.pid, threads: threads, cpuSeconds: p.cpuSeconds, windowSeconds: window, source: source)
    }

    public static func thread(_ t: SampledThread, processTids: Set<Int32>) -> ThreadActivity {
        let running = t.histogram.first { $0.bucket == .running }?.fraction ?? 0
        return ThreadActivity(
            tid: t.tid, state: t.state, syscall: t.current?.name,
            call: t.current.map { call($0, processTids: processTids) },
            decoded: t.current.map(describe),
            inCallSeconds: t.inCallSeconds, wchan: t.wchan, kernelStack: nil,
            cpuSeconds: t.cpuSeconds, runningFraction: t.samples > 1 ? running : nil,
            histogram: t.histogram.map { HistogramBin(label: $0.bucket.label, fraction: $0.fraction) })
    }

    /// What kind of wait a decoded call is.
    public static func call(_ c: DecodedSyscall, processTids: Set<Int32>) -> BlockingCall {
        switch c.name {
        case "flock":
            if let op = c.flockOperation, !op.nonBlocking, op.kind != .unlock, let fd = c.fds.first {
                return .lock(fd: fd.fd, file: nil, path: path(fd.what), operation: op.kind.rawValue)
            }
        case "fcntl", "fcntl64":
            if let (cmd, _) = c.fcntl, cmd.waitsForLock, let fd = c.fds.first {
                return .lock(fd: fd.fd, file: nil, path: path(fd.what), operation: cmd.name)
            }
        case "wait4", "waitid", "waitpid":
            if case .child(let pid)? = c.waitTarget { return .waitChild(pid: pid) }
            return .waitChild(pid: nil)
        case "nanosleep", "clock_nanosleep", "pause":
            return .sleep(seconds: c.timeout?.seconds)
        case "futex", "futex_waitv", "futex_wait":
            if let f = c.futex {
                var owner: Int32? = nil
                if let v = f.value {
                    let tid = Int32(bitPattern: v & 0x3fff_ffff)   // FUTEX_TID_MASK
                    // PI futexes hold the owner's tid; pthread_join waits on the joined thread's tid.
                    if f.operation.isPI || processTids.contains(tid) { owner = tid > 0 ? tid : nil }
                }
                return .futex(address: f.address, ownerTid: owner)
            }
            return .futex(address: nil, ownerTid: nil)
        default:
            break
        }
        let fds = c.fds
        let timeoutMs = c.timeout.flatMap { t -> Int? in
            if case .infinite = t { return -1 }
            return t.milliseconds.map { Int($0.rounded()) }
        }
        if c.classes.contains(.poll) || c.classes.contains(.net) || c.classes.contains(.desc) {
            // select/poll with no descriptors is a sleep (old-style retry loops use it).
            if fds.isEmpty && c.classes.contains(.poll) { return .sleep(seconds: c.timeout?.seconds) }
            var waited = fds.map { WaitedFd(fd: $0.fd, target: target($0.what)) }
            // connect/sendto on an unconnected socket: the address argument is the peer.
            if let addr = c.socketAddress?.endpoint, let i = waited.indices.first {
                if case .socket(var s)? = waited[i].target, s.remoteAddress == nil {
                    s.remoteAddress = addr.address
                    s.remotePort = addr.port
                    waited[i].target = .socket(s)
                } else if waited[i].target == nil {
                    waited[i].target = .socket(SocketInfo(proto: "INET", remoteAddress: addr.address, remotePort: addr.port))
                }
            }
            if !waited.isEmpty { return .io(fds: waited, timeoutMs: timeoutMs == -1 ? nil : timeoutMs) }
        }
        return .other
    }

    static func path(_ d: FdDescription?) -> String? {
        if case .path(let p)? = d { return p }
        return nil
    }

    static func target(_ d: FdDescription?) -> FdTarget? {
        guard let d else { return nil }
        switch d {
        case .path(let p): return .file(p)
        case .socket(let s): return .socket(socket(s))
        case .otherSocket(let inode): return .other("socket:[\(inode)]")
        case .pipe(let inode, let peers):
            let peerText = peers.isEmpty ? "" : " (other end: " + peers.map { "pid \($0.pid) fd \($0.fd)" }.joined(separator: ", ") + ")"
            return .pipe("pipe:[\(inode)]" + peerText)
        case .anon(let a): return .other("anon_inode:" + a)
        }
    }

    static func socket(_ s: NetSocket) -> SocketInfo {
        SocketInfo(proto: s.proto.rawValue, localAddress: s.local?.address, localPort: s.local?.port,
                   remoteAddress: s.remote?.address, remotePort: s.remote?.port,
                   state: s.proto.isUDP ? nil : s.state, path: s.path)
    }

    // MARK: - Display

    /// `poll([{fd=4 UDP 127.0.0.1:56750 → 127.0.0.53:53, POLLIN}], 1, 3000 ms)`: the call as
    /// strace would show it, with descriptors resolved. Compact: only the arguments that say
    /// what it waits for.
    public static func describe(_ c: DecodedSyscall) -> String {
        let parts = c.args.map { value($0.value) }
        return c.name + "(" + parts.joined(separator: ", ") + ")"
    }

    static func value(_ v: ArgumentValue) -> String {
        switch v {
        case .int(let i): return String(i)
        case .uint(let u): return String(u)
        case .hex(let h): return "0x" + String(h, radix: 16)
        case .pointer(let p): return p == 0 ? "NULL" : "0x" + String(p, radix: 16)
        case .fd(let f): return fd(f)
        case .atFdcwd: return "AT_FDCWD"
        case .string(let s, let truncated): return "\"" + s + (truncated ? "\"…" : "\"")
        case .pollFds(let ps):
            return "[" + ps.map { "{fd=" + fd($0.fd) + ", " + pollEvents($0.events) + "}" }.joined(separator: ", ") + "]"
        case .fdSet(let fs): return "[" + fs.map(fd).joined(separator: " ") + "]"
        case .timeout(let t):
            switch t {
            case .infinite: return "∞"
            case .relative(let ns):
                if ns % 1_000_000 == 0 { return String(ns / 1_000_000) + " ms" }
                return String(Double(ns) / 1e6) + " ms"
            case .absolute(_, let ns): return "until " + String(ns / 1_000_000_000) + " s"
            }
        case .socketAddress(let a):
            switch a {
            case .inet(let e), .inet6(let e, _): return e.description
            case .unix(let p): return p.isEmpty ? "unix:(unnamed)" : "unix:" + p
            case .netlink(let pid, _): return "netlink:\(pid)"
            case .other(let f): return "family \(f)"
            }
        case .flockOperation(let op): return op.kind.rawValue + (op.nonBlocking ? "|LOCK_NB" : "")
        case .flock(let f): return "{\(f.typeName), \(f.whenceName), start=\(f.start), len=\(f.length)}"
        case .fcntlCommand(let c): return c.name
        case .futexOperation(let op): return op.command + (op.isPrivate ? "_PRIVATE" : "")
        case .futexWord(let addr, let value): return "0x" + String(addr, radix: 16) + (value.map { " [\($0)]" } ?? "")
        case .waitTarget(let w):
            switch w {
            case .anyChild: return "-1"
            case .child(let p): return String(p)
            case .ownProcessGroup: return "0"
            case .processGroup(let g): return String(-g)
            case .pidfd(let fd): return "pidfd \(fd)"
            }
        case .flags(let f): return f.names.isEmpty ? "0x" + String(f.raw, radix: 16) : f.names.joined(separator: "|")
        case .signal(let s): return signalName(s)
        case .clock(let c): return "clock \(c)"
        case .unreadable(let addr, _): return "0x" + String(addr, radix: 16)
        }
    }

    static func fd(_ f: ResolvedFd) -> String {
        guard let what = f.what else { return String(f.fd) }
        switch what {
        case .path(let p): return "\(f.fd) " + p
        case .socket(let s): return "\(f.fd) " + socket(s).description
        case .otherSocket(let i): return "\(f.fd) socket:[\(i)]"
        case .pipe(let i, _): return "\(f.fd) pipe:[\(i)]"
        case .anon(let a): return "\(f.fd) anon_inode:" + a
        }
    }

    static func pollEvents(_ e: UInt16) -> String {
        let set = pollEventNames(e)
        return set.isEmpty ? "0" : set.joined(separator: "|")
    }
}
