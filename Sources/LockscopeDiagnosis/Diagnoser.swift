#if canImport(Glibc)
import Glibc
#endif
import LockscopeCore

/// Where activity comes from during a live diagnosis: the tracer's sampler by
/// default, its ptrace session with `--ptrace`, a single /proc snapshot for
/// fixture trees. Injected so the gatherer is tested without a live system.
public protocol ActivityProvider: Sendable {
    func activity(pids: [Int32], window: Double, hz: Int, shouldStop: @escaping () -> Bool) -> ActivityResult
}

public struct ActivityResult: Sendable {
    public var activity: [Int32: ProcessActivity]
    /// Pids that could not be read (permission denied, or traced by someone else for ptrace).
    public var uninspectable: Set<Int32>
    /// Ended early by a signal (Ctrl-C): the report is partial.
    public var interrupted: Bool
    /// Why the preferred engine did not run and another did (`kernel engine
    /// unavailable: the kernel engine needs root …`); nil when it ran.
    public var fallback: String? = nil
    public init(activity: [Int32: ProcessActivity] = [:], uninspectable: Set<Int32> = [], interrupted: Bool = false) {
        self.activity = activity
        self.uninspectable = uninspectable
        self.interrupted = interrupted
    }
}

/// The live side of `lockscope diagnose`: scans the locks, decides which
/// processes matter (holders, co-holders, the chain onward, children waited on,
/// tracers), samples them for the window, reads each one's own resolv.conf, and
/// hands the lot to the `RuleEngine`.
public struct Diagnoser: Sendable {
    public var proc: ProcRoot
    public var window: Double
    public var hz: Int
    public var provider: ActivityProvider
    public var excludedPids: Set<Int32>
    /// Kernel lock events read during the window (pollers no snapshot sees); nil: none.
    public var lockEvents: LockEventsProvider?
    /// How far to follow chains and children (guard against pathological graphs).
    public var maxDepth = 16

    public init(proc: ProcRoot = ProcRoot(), window: Double = 1, hz: Int = 100, provider: ActivityProvider,
                excludedPids: Set<Int32>? = nil, lockEvents: LockEventsProvider? = nil) {
        self.proc = proc
        self.lockEvents = lockEvents
        self.window = window
        self.hz = hz
        self.provider = provider
        self.excludedPids = excludedPids ?? (proc.isLive ? [getpid()] : [])
    }

    /// The activity source `diagnose` and `demo` use: on the live system the
    /// kernel engine (every call, exact durations, stops nothing), which falls
    /// back to the sampler where it cannot run (not root, no tracepoints) and says
    /// why; `sampler` asks for the sampler; one snapshot on a fixture tree.
    /// `ptrace`: the tracer, with the sampler for anything it could not attach to.
    public static func liveProvider(proc: ProcRoot = ProcRoot(), ptrace: Bool = false, sampler: Bool = false) -> ActivityProvider {
        guard proc.isLive else { return SamplerActivity(proc: proc) }
        if ptrace { return FallbackActivity(primary: PtraceActivity(proc: proc), fallback: SamplerActivity(proc: proc)) }
        if sampler { return SamplerActivity(proc: proc) }
        return KernelActivity(proc: proc)
    }

    /// Diagnoses `targets`, or every contended lock on the system when nil.
    public func diagnose(targets: [Target]?, shouldStop: @escaping () -> Bool = { false }) throws(LockscopeError) -> Diagnosis {
        let (input, _) = try gather(targets: targets, shouldStop: shouldStop)
        return RuleEngine().diagnose(input)
    }

    /// Everything the rules need; the flag says the window was cut short.
    public func gather(targets: [Target]?, shouldStop: @escaping () -> Bool = { false }) throws(LockscopeError) -> (DiagnosisInput, Bool) {
        let scanner = LockScanner(proc: proc, excludedPids: excludedPids)
        let everyLock = LockScanner.Options(coHolders: true, openers: false, processFacts: true)
        var report: LockReport
        // Every lock on the system, read when a chain needs it (or up front without targets).
        var global: LockGraph? = nil
        if let targets {
            report = try scanner.report(for: targets)
        } else {
            let all = try scanner.allLocks(options: everyLock)
            global = LockGraph(all.locks)
            report = all
            report.locks = all.locks.filter { !$0.waiters.isEmpty }
        }

        var facts: [Int32: ProcessFacts] = [:]
        func remember(_ p: ProcessFacts?) { if let p, facts[p.pid] == nil { facts[p.pid] = p } }
        for l in report.locks {
            l.holders.forEach { remember($0.process) }
            l.waiters.forEach { remember($0.process) }
        }
        report.openers.forEach { remember($0.process) }

        // Who matters: every holder; then whatever they lead to.
        var interesting: [Int32] = []
        var seen = Set<Int32>()
        func add(_ pid: Int32) { if pid > 0, seen.insert(pid).inserted { interesting.append(pid) } }
        for l in report.locks { l.holders.forEach { add($0.pid) } }

        let reader = ProcessReader(proc: proc)
        var frontier = interesting
        var depth = 0
        var childrenIndex: [Int32: [Int32]]? = nil
        while !frontier.isEmpty && depth < maxDepth {
            depth += 1
            var next: [Int32] = []
            for pid in frontier {
                if facts[pid] == nil { remember(reader.facts(of: pid, withThreads: true)) }
                guard let f = facts[pid] else { continue }
                if f.tracerPid > 0 { remember(reader.facts(of: f.tracerPid, withThreads: false)) }
                for t in f.threads {
                    guard case .inSyscall(let nr, let args, _, _) = t.syscall else { continue }
                    // Queued behind another lock: the system-wide table has its holder.
                    if LockCall(number: nr, args: args) != nil {
                        if global == nil { global = LockGraph((try? scanner.allLocks(options: everyLock))?.locks ?? []) }
                        for l in global?.locksWaited(by: pid) ?? [] {
                            for h in l.holders { remember(h.process); if !seen.contains(h.pid) { next.append(h.pid) }; add(h.pid) }
                        }
                    }
                    // Waiting for a child: the child (often sharing the lock fd) matters.
                    let name = SyscallTable.host.name(of: nr)
                    if name == "wait4" || name == "waitid" {
                        if childrenIndex == nil { childrenIndex = childrenByParent(reader: reader) }
                        let wanted = Int32(truncatingIfNeeded: args[0])
                        let kids = name == "wait4" && wanted > 0 ? [wanted] : (childrenIndex?[pid] ?? [])
                        for k in kids where !seen.contains(k) { next.append(k); add(k) }
                    }
                }
            }
            frontier = next
        }
        for pid in interesting where facts[pid] == nil { remember(reader.facts(of: pid, withThreads: true)) }
        // Children of waited-on parents: facts carry the ppid the rules use to find them.
        if let idx = childrenIndex {
            for kids in idx.values { for k in kids where seen.contains(k) && facts[k] == nil { remember(reader.facts(of: k, withThreads: true)) } }
        }

        // A process blocked reading or writing a pipe, a named FIFO or a unix socket:
        // who has the other end, and what it does.
        var pipeEnds: [UInt64: [PipeEnd]] = [:]
        var fifoEnds: [String: [PipeEnd]] = [:]
        var unixPeers: [UInt64: UnixSocketPeer] = [:]
        var unixTable: [UInt64: UnixDiagSocket]? = nil
        var unixUnavailable: String? = nil
        func sample(_ ends: [PipeEnd]) {
            for e in ends where !seen.contains(e.pid) && !excludedPids.contains(e.pid) {
                add(e.pid)
                remember(reader.facts(of: e.pid, withThreads: true))
            }
        }
        for pid in interesting {
            for t in facts[pid]?.threads ?? [] {
                // The calls a pipe, FIFO or stream socket end blocks in (fd in the first argument).
                guard case .inSyscall(let nr, let args, _, _) = t.syscall,
                      Self.channelCalls.contains(SyscallTable.host.name(of: nr) ?? "") else { continue }
                let fd = Int32(truncatingIfNeeded: args[0])
                guard let link = try? proc.readLink("\(pid)/fd/\(fd)") else { continue }
                if let inode = PipeEnds.inode(ofLink: link) {
                    guard pipeEnds[inode] == nil else { continue }
                    pipeEnds[inode] = PipeEnds.find(inode: inode, proc: proc)
                    sample(pipeEnds[inode] ?? [])
                } else if let inode = UnixDiag.inode(ofLink: link) {
                    guard unixPeers[inode] == nil else { continue }
                    if unixTable == nil && unixUnavailable == nil {
                        if !proc.isLive {
                            unixUnavailable = "not the live system"
                        } else {
                            do { unixTable = try UnixDiag.dump() } catch { unixUnavailable = "sock_diag: \(error)" }
                        }
                    }
                    if let table = unixTable {
                        // Not a unix socket (TCP, UDP …): the network rules speak about it.
                        guard let mine = table[inode] else { continue }
                        let ends = mine.peer.map { PipeEnds.find(link: "socket:[\($0)]", proc: proc) } ?? []
                        unixPeers[inode] = UnixSocketPeer(socket: mine, peerSocket: mine.peer.flatMap { table[$0] }, ends: ends)
                        sample(ends)
                    } else {
                        unixPeers[inode] = UnixSocketPeer(socket: nil, ends: [], unavailable: unixUnavailable)
                    }
                } else if link.hasPrefix("/"), Rules.inPipeWait(t.wchan), fifoEnds[link] == nil {
                    // A named FIFO (the kernel waits in pipe_read/pipe_write for it too).
                    let ino = (try? proc.readText("\(pid)/fdinfo/\(fd)")).flatMap { FdInfo.parse($0).inode }
                    fifoEnds[link] = PipeEnds.find(link: link, inode: ino, proc: proc)
                    sample(fifoEnds[link] ?? [])
                }
            }
        }
        // A lease being broken: its breakers are sampled too (how long they have waited in open()).
        var leaseBreakTime: Int? = nil
        for l in report.locks where l.kind == .lease && (l.mode == "BREAKING" || !l.waiters.isEmpty) {
            if leaseBreakTime == nil { leaseBreakTime = (try? proc.readText("sys/fs/lease-break-time")).flatMap(LeaseFacts.breakTime) }
            for w in l.waiters where w.pid > 0 { add(w.pid) }
        }

        let sample = { provider.activity(pids: interesting, window: window, hz: hz, shouldStop: shouldStop) }
        var result: ActivityResult
        var leaseBreaks: [EventLeaseBreak] = []
        if let lockEvents, window > 0 {
            // Recorded while the sampler runs: the same window.
            let before = Set(report.openers.map { OpenerKey(pid: $0.pid, file: $0.file) })
            // Without targets: every lock, so that a process queued during the window finds
            // the lock it waits for (the uncontended ones are dropped again below).
            if targets == nil, let global { report.locks = global.locks }
            result = lockEvents.observe(files: targets?.map(\.file), report: &report,
                                        facts: { reader.facts(of: $0, withThreads: false) }, during: sample,
                                        seen: { leaseBreaks = $0.leaseBreaks })
            // A lease whose break began in the window is contended too.
            let breaking = Set(leaseBreaks.filter { $0.deadlineSetSecondsAgo != nil }.map(\.file))
            // Queued during the window: named like the snapshot's waiters.
            for l in report.locks { l.waiters.forEach { remember($0.process) } }
            // Without targets: a lock only pollers want is contended too (its holder matters).
            if targets == nil {
                let polled = Set(report.openers.filter { !before.contains(OpenerKey(pid: $0.pid, file: $0.file)) }.map(\.file))
                report.locks = report.locks.filter { l in
                    !l.waiters.isEmpty
                        || (l.file.map { polled.contains($0) || (l.kind == .lease && breaking.contains($0)) } ?? false)
                }
                let locked = Set(report.locks.compactMap(\.file))
                report.openers.removeAll { !locked.contains($0.file) }
                // Their holders were not in the window: one snapshot of each.
                let late = report.locks.flatMap(\.holders).map(\.pid).filter { !seen.contains($0) }
                for pid in late { add(pid); remember(reader.facts(of: pid, withThreads: true)) }
                if !late.isEmpty {
                    let more = provider.activity(pids: late, window: 0, hz: hz, shouldStop: shouldStop)
                    result.activity.merge(more.activity) { a, _ in a }
                    result.uninspectable.formUnion(more.uninspectable)
                }
            }
            // A reader of its own: `reader` read /proc/uptime before the window, and a
            // breaker may have started since (its age would come out near zero).
            let afterWindow = ProcessReader(proc: proc)
            report.add(leaseBreaks: leaseBreaks, facts: { afterWindow.facts(of: $0, withThreads: true) })
            if leaseBreakTime == nil, !breaking.isEmpty {
                leaseBreakTime = (try? proc.readText("sys/fs/lease-break-time")).flatMap(LeaseFacts.breakTime)
            }
        } else {
            result = sample()
        }
        let fifoOpens = fifoOpenings(pids: interesting, activity: result.activity)
        for o in fifoOpens.values { for e in o.ends where facts[e.pid] == nil { remember(reader.facts(of: e.pid, withThreads: true)) } }

        let confs = Self.resolvConfs(pids: interesting, activity: result.activity, proc: proc)
        var uninspectable = result.uninspectable
        for pid in interesting where result.activity[pid] == nil && facts[pid] == nil { uninspectable.insert(pid) }

        var input = DiagnosisInput(report: report, allLocks: global?.locks, activity: result.activity, processes: facts,
                                   resolvConf: confs, uninspectable: uninspectable, windowSeconds: window,
                                   pipeEnds: pipeEnds, leaseBreakTime: leaseBreakTime)
        input.fifoEnds = fifoEnds
        input.unixPeers = unixPeers
        input.activityFallback = result.fallback
        input.leaseBreaks = leaseBreaks
        input.fifoOpens = fifoOpens
        return (input, result.interrupted)
    }

    /// The threads of `pids` blocked in open() of a named FIFO, waiting for the other
    /// side (wchan), by tid: the FIFO's path (the call's pathname against the opener's
    /// cwd, dirfd or root, from here), its inode (live only) and every descriptor on it.
    func fifoOpenings(pids: [Int32], activity: [Int32: ProcessActivity]) -> [Int32: FifoOpening] {
        var out: [Int32: FifoOpening] = [:]
        for pid in pids {
            for t in activity[pid]?.threads ?? [] {
                guard FifoOpen.waitsForPartner(wchan: t.wchan, stack: t.kernelStack), let c = t.current,
                      let side = FifoOpen.side(call: c.name, raw: c.raw), case .string(let given, _)? = c.argument("pathname")
                else { continue }
                let base: String?
                if given.hasPrefix("/") {
                    // An absolute path is the opener's: under its root, which may not be ours.
                    let root = (try? proc.readLink("\(pid)/root")) ?? "/"
                    base = root == "/" ? nil : root
                } else if case .fd(let dir)? = c.argument("dirfd") {
                    base = dir.what?.path ?? (try? proc.readLink("\(pid)/fd/\(dir.fd)"))
                } else {
                    base = try? proc.readLink("\(pid)/cwd")
                }
                let joined = given.hasPrefix("/") ? base.map { $0 + given } ?? given : given
                guard let path = FifoOpen.absolute(joined, base: base) else { continue }
                let inode = proc.isLive ? FifoOpen.inode(ofFifo: path) : nil
                if proc.isLive && inode == nil { continue }   // not a FIFO after all (or gone)
                out[t.tid] = FifoOpening(path: path, inode: inode, side: side,
                                         ends: PipeEnds.find(link: path, inode: inode, proc: proc))
            }
        }
        return out
    }

    /// The calls a thread blocks in on a pipe, FIFO or stream socket, with the fd first.
    static let channelCalls: Set<String> = ["read", "write", "readv", "writev", "sendto", "recvfrom", "sendmsg", "recvmsg"]

    /// Each process's own resolver configuration, as its libc will read it, for the
    /// processes in a socket call only: those are the only ones a DNS rule can be about,
    /// and each read costs a fork (`Careful.read`: /proc/PID/root may be on a dead
    /// filesystem), about a millisecond, more than the rest of a quick diagnosis.
    public static func resolvConfs(pids: some Sequence<Int32>, activity: [Int32: ProcessActivity], proc: ProcRoot) -> [Int32: ResolvConf] {
        var confs: [Int32: ResolvConf] = [:]
        for pid in pids where inSocketCall(activity[pid]) {
            if let c = resolvConf(pid: pid, proc: proc) { confs[pid] = c }
        }
        return confs
    }

    /// `/proc/PID/root/etc/resolv.conf` (the file in the process's own mount
    /// namespace and root: containers and private mounts are respected), with
    /// `RES_OPTIONS`/`LOCALDOMAIN` from its environment when readable.
    ///
    /// On the live system the read is made by a disposable child with a deadline
    /// (`Careful.read`): the process's root may be on a filesystem that does not answer.
    static func resolvConf(pid: Int32, proc: ProcRoot) -> ResolvConf? {
        let relative = "\(pid)/root/etc/resolv.conf"
        let text: String
        if proc.isLive {
            guard case .success(let bytes) = Careful.read(proc.absolute(relative), limit: 1 << 16) else { return nil }
            text = String(decoding: bytes, as: UTF8.self)
        } else {
            guard let t = try? proc.readText(relative) else { return nil }
            text = t
        }
        var conf = ResolvConf.parse(text)
        if let env = try? proc.readBytes("\(pid)/environ") {
            var vars: [String: String] = [:]
            for entry in env.split(separator: 0) {
                let s = String(decoding: entry, as: UTF8.self)
                if s.hasPrefix("RES_OPTIONS=") || s.hasPrefix("LOCALDOMAIN=") {
                    let parts = s.split(separator: "=", maxSplits: 1)
                    vars[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
                }
            }
            if !vars.isEmpty { conf.apply(environment: vars) }
        }
        return conf
    }

    /// Whether a thread of the process is in a call on a socket (what a DNS lookup waits in).
    static func inSocketCall(_ activity: ProcessActivity?) -> Bool {
        activity?.threads.contains { t in
            guard case .io(let fds, _)? = t.call else { return false }
            return fds.contains { if case .socket? = $0.what { return true } else { return false } }
        } ?? false
    }

    struct OpenerKey: Hashable {
        var pid: Int32
        var file: FileIdentity
    }

    /// ppid → children, from every /proc/PID/stat (only when a holder waits for a child).
    func childrenByParent(reader: ProcessReader) -> [Int32: [Int32]] {
        var out: [Int32: [Int32]] = [:]
        guard let pids = try? proc.listPids() else { return out }
        for pid in pids {
            if let text = try? proc.readText("\(pid)/stat"), let f = StatFields.parse(text) { out[f.ppid, default: []].append(pid) }
        }
        return out
    }
}
