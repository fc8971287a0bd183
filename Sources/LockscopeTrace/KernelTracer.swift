import LockscopeCore
import LockscopeEvents
#if canImport(Glibc)
import Glibc
#endif

/// Why the kernel engine cannot run here. The executable prints one line and
/// exits 69 for `--kernel`, or falls back to the sampler and says why.
public enum KernelUnavailable: Error, Sendable, Hashable, CustomStringConvertible {
    /// perf tracepoints and tracefs need root (or CAP_PERFMON + CAP_SYS_ADMIN).
    case notRoot
    /// No raw_syscalls tracepoints: tracefs missing, or a kernel without them.
    case noTracepoints(String)
    /// perf_event_open(2) itself failed (perf_event_paranoid, seccomp, a kernel without perf).
    case perfRefused(String, errno: Int32)

    public var description: String {
        switch self {
        case .notRoot: return "the kernel engine needs root (perf tracepoints and tracefs)"
        case .noTracepoints(let why): return "no raw_syscalls tracepoints: \(why)"
        case .perfRefused(let what, let e): return "perf_event_open refused (\(what)): \(errnoName(e)) (errno \(e))"
        }
    }
}

/// A kernel-engine trace failed: the target (same refusals as the sampler) or the engine.
public enum KernelTraceError: Error, Sendable, Hashable {
    case target(TraceError)
    case unavailable(KernelUnavailable)
}

/// The third engine of `lockscope trace`: every system call of the targets from
/// the `raw_syscalls:sys_enter`/`sys_exit` tracepoints, opened with
/// perf_event_open on each thread (one ring per CPU, `inherit` to follow new
/// threads and children). Nothing is ever stopped or ptrace-attached: the
/// kernel writes a record at each entry and exit, lockscope reads the rings.
///
/// Arguments are decoded when the records are processed, with the same
/// `SyscallDecoder` as `--ptrace` (memory through `process_vm_readv`). A call
/// still in progress at that moment is decoded as the call sees it; a call that
/// has already returned is decoded from memory read afterwards, and every
/// argument read from memory is then marked `readAfterReturn`.
///
/// The events live as long as the session's fds: a killed lockscope leaves
/// nothing enabled (the kernel frees them when the fds close).
public struct KernelTracer: Sendable {
    public let proc: ProcRoot
    public let tracefs: TracefsSource
    /// Ring size per CPU, in pages (a power of two).
    public var pages: Int

    /// The default ring per CPU: 64 MiB shared among the online CPUs, at least
    /// 1 MiB and at most 16 MiB each (a power of two of 4 KiB pages): 16 MiB on a
    /// 2-CPU machine. A syscall-heavy tracee writes ~1.2 million records (~100 MB)
    /// a second onto the ring of the CPU it runs on; 16 MiB holds ~200,000 of
    /// them (~0.17 s) while lockscope decodes and prints behind it.
    public static func defaultPages(cpus: Int = PerfSession.onlineCPUs().count) -> Int {
        let pageSize = max(4096, Int(sysconf(Int32(_SC_PAGESIZE))))
        let perCPU = min(16 << 20, max(1 << 20, (64 << 20) / max(1, cpus)))
        var pages = 1
        while pages * 2 * pageSize <= perCPU { pages *= 2 }
        return pages
    }

    public init(proc: ProcRoot = ProcRoot(), tracefs: TracefsSource = .current(), pages: Int = KernelTracer.defaultPages()) {
        self.proc = proc
        self.tracefs = tracefs
        self.pages = pages
    }

    /// Whether the engine can run here: root, the two tracepoints' formats, and a
    /// perf_event_open of sys_enter on lockscope itself that succeeds.
    public func probe() -> Result<RawSyscallDecoder, KernelUnavailable> {
        if geteuid() != 0 { return .failure(.notRoot) }
        let formats: [TracepointName: TracepointFormat]
        do { formats = try tracefs.formats(RawSyscallTracepoint.allCases.map(\.tracepoint)) } catch {
            return .failure(.noTracepoints(error.description))
        }
        var decoder: RawSyscallDecoder
        do {
            guard let d = try RawSyscallDecoder(formats: formats) else {
                return .failure(.noTracepoints("this kernel has no raw_syscalls/sys_enter and sys_exit"))
            }
            decoder = d
        } catch {
            return .failure(.noTracepoints(error.description))
        }
        // Signals and execve, where the kernel has the tracepoints (the calls are traced without them).
        if let f = try? tracefs.formats(TaskTracepoint.allCases.map(\.tracepoint)) {
            decoder.tasks = (try? TaskEventDecoder(formats: f)) ?? nil
        }
        let cpu = PerfSession.onlineCPUs().first ?? 0
        do {
            let s = try PerfSession(tracepointIds: [UInt64(decoder.enterId)], target: .task(pid: getpid(), inherit: false),
                                    cpus: [cpu], pages: 1)
            s.close()
        } catch {
            return .failure(Self.unavailable(error))
        }
        return .success(decoder)
    }

    static func unavailable(_ e: EventsError) -> KernelUnavailable {
        switch e {
        case .perfOpen(let tp, _, let errno): return .perfRefused(tp, errno: errno.rawValue)
        case .perfSetup(let call, let errno): return .perfRefused(call, errno: errno.rawValue)
        case .badFilter(_, let errno): return .perfRefused("tracepoint filter", errno: errno.rawValue)
        case .notPermitted(let s): return s.contains("perf_event_open") ? .perfRefused(s, errno: EACCES) : .notRoot
        case .tracefsUnavailable(let s), .noSuchTracepoint(let s): return .noTracepoints(s)
        case .malformedFormat(let t, _), .missingField(let t, _): return .noTracepoints("unexpected format of \(t)")
        }
    }

    /// The sampler's refusals: no such process, lockscope itself, a kernel thread, a zombie, permission.
    public func check(pid: Int32) throws(TraceError) {
        guard proc.isLive else { throw .notLive(proc.path) }
        try TargetCheck(proc: proc).checkReadable(pid: pid)
    }

    /// Traces every thread of `pids` until `options.duration`, a stop signal,
    /// `shouldStop`, or the exit of every traced process. `onEvent` gets each
    /// event in order; it returns false to end the trace (output failed).
    public func trace(pids: [Int32], decoder raw: RawSyscallDecoder, options: TraceOptions = TraceOptions(),
                      shouldStop: () -> Bool = { StopSignals.requested != 0 },
                      onEvent: (TraceEvent) -> Bool) throws(KernelTraceError) -> TraceSummary {
        for pid in pids {
            do { try check(pid: pid) } catch { throw .target(error) }
        }
        let run = KernelRun(proc: proc, options: options, table: .host, raw: raw)
        let session = try run.open(pids: pids, pages: pages)
        defer { session.close() }
        var outputOK = true
        for e in run.attachedEvents where outputOK { outputOK = onEvent(e) }
        var end = TraceEnd.outputFailed
        if outputOK {
            let deadline = options.duration.map { d -> Int64 in
                let (s, a) = d.components
                return run.startNs + s * 1_000_000_000 + a / 1_000_000_000
            }
            end = run.loop(session, until: deadline, shouldStop: shouldStop, onEvent: onEvent)
        }
        session.disable()
        var stillWriting = end != .outputFailed
        run.collect(session, everything: true)
        _ = run.process(limit: Int.max) { e in
            if stillWriting { stillWriting = onEvent(e) }
            return stillWriting
        }
        run.flushUnfinished { e in
            if stillWriting { stillWriting = onEvent(e) }
            return stillWriting
        }
        if !stillWriting { end = .outputFailed }
        var summary = run.summary(endedBy: end)
        summary.lostEvents = session.lostEvents
        return summary
    }
}

/// The addresses a decoder read since the last reset: which arguments came from memory.
final class ReadLog {
    var addresses: [UInt64] = []
}

/// The state of one kernel-engine trace: threads, fd cache, totals.
final class KernelRun {
    let proc: ProcRoot
    let options: TraceOptions
    let table: SyscallTable
    let raw: RawSyscallDecoder
    let resolver: FdResolver
    let readLog = ReadLog()
    var threads: [Int32: TracedThread] = [:]
    /// The thread of the previous record (consecutive records are mostly one thread's).
    var lastThread: TracedThread?
    var allTids: [Int32] = []
    var allPids: [Int32] = []
    var attachedEvents: [TraceEvent] = []
    var startNs: Int64 = 0
    let matches: [Bool]
    let cacheEffects: [PtraceSession.CacheEffect]
    var counts: [Int]
    var errors: [Int]
    var totalNs: [Int64]
    var maxNs: [Int64]
    /// Syscall numbers whose exit starts a task (its result is the new tid).
    let spawners: [Int: String]
    /// exit and exit_group: calls that never return (no sys_exit record).
    let enders: Set<Int>
    /// Records seen that no thread state explains (an exit without entry, after a lost record).
    var unmatched = 0

    init(proc: ProcRoot, options: TraceOptions, table: SyscallTable, raw: RawSyscallDecoder) {
        self.proc = proc
        self.options = options
        self.table = table
        self.raw = raw
        resolver = FdResolver(proc: proc)
        let size = (table.all.last?.number ?? 0) + 1
        matches = (0..<size).map { n in table[n].map { options.filter.matches(name: $0.name, classes: $0.classes) } ?? options.filter.matchesAll }
        cacheEffects = PtraceSession.cacheEffects(table)
        counts = [Int](repeating: 0, count: size)
        errors = counts
        totalNs = [Int64](repeating: 0, count: size)
        maxNs = totalNs
        var sp: [Int: String] = [:]
        for n in ["clone", "clone3", "fork", "vfork"] { if let nr = table.number(of: n) { sp[nr] = n } }
        spawners = sp
        enders = Set(["exit", "exit_group"].compactMap { table.number(of: $0) })
    }

    func seconds(_ ns: Int64) -> Double { Double(ns - startNs) / 1e9 }

    /// The in-kernel filter for `--syscalls`: the calls asked for, plus those that
    /// start tasks (to follow them). Nil when every call is wanted.
    func kernelFilter() -> String? {
        guard !options.filter.matchesAll else { return nil }
        var numbers = Set(matches.indices.filter { matches[$0] })
        for nr in spawners.keys { numbers.insert(nr) }
        return RawSyscallDecoder.filter(numbers: Array(numbers))
    }

    // MARK: - Attach

    /// Every thread of `pids`, read from /proc with the call each is in, then the
    /// events opened on all of them (disabled), re-listed until no thread was
    /// missed, then enabled. A thread that exits meanwhile makes the open fail
    /// with ESRCH: list and open again.
    func open(pids: [Int32], pages: Int) throws(KernelTraceError) -> PerfSession {
        var filters: [UInt64: String] = [:]
        if let f = kernelFilter() {
            filters[UInt64(raw.enterId)] = f
            filters[UInt64(raw.exitId)] = f
        }
        var attempt = 0
        while true {
            attempt += 1
            threads = [:]
            allTids = []
            allPids = []
            attachedEvents = []
            var tids: [Int32] = []
            for pid in pids {
                let listed = listTids(pid)
                if listed.isEmpty { throw .target(.noSuchProcess(pid)) }
                for tid in listed where threads[tid] == nil {
                    let t = TracedThread(tid: tid, pid: pid)
                    if case .inSyscall(let nr, let args, _, _)? = (try? proc.readText("\(pid)/task/\(tid)/syscall")).map(SyscallFileParser.parse) {
                        t.pendingAttach = decoder(for: t).decode(number: nr, args: args)
                    }
                    threads[tid] = t
                    tids.append(tid)
                    allTids.append(tid)
                }
                allPids.append(pid)
            }
            var ids = [UInt64(raw.enterId), UInt64(raw.exitId)]
            var names = [UInt64(raw.enterId): "raw_syscalls/sys_enter", UInt64(raw.exitId): "raw_syscalls/sys_exit"]
            if let t = raw.tasks {
                ids += [UInt64(t.deliverId), UInt64(t.execId)]
                names[UInt64(t.deliverId)] = "signal/signal_deliver"
                names[UInt64(t.execId)] = "sched/sched_process_exec"
            }
            let session: PerfSession
            do {
                session = try PerfSession(tracepointIds: ids, target: .tasks(pids: tids, inherit: options.followChildren),
                                          filters: filters, pages: pages, names: names)
            } catch {
                if case .perfOpen(_, _, let e) = error, e == .noSuchProcess, attempt < 10 { continue }
                throw .unavailable(KernelTracer.unavailable(error))
            }
            // A thread created between the listing and the open is not covered
            // (inherit covers only children of tasks already opened): start over.
            let missed = pids.contains { pid in listTids(pid).contains { threads[$0] == nil } }
            if missed && attempt < 10 {
                session.close()
                continue
            }
            startNs = MonotonicClock.nanoseconds
            do { try session.enable() } catch {
                session.close()
                throw .unavailable(KernelTracer.unavailable(error))
            }
            for tid in allTids {
                guard let t = threads[tid] else { continue }
                attachedEvents.append(.attached(time: 0, pid: t.pid, tid: tid, inSyscall: t.pendingAttach))
            }
            resolver.peerPids = allPids
            return session
        }
    }

    func listTids(_ pid: Int32) -> [Int32] {
        ((try? proc.listDirectory("\(pid)/task")) ?? []).compactMap { Int32($0) }.sorted()
    }

    /// A decoder for the thread whose memory reads are logged (to mark arguments read late).
    func decoder(for t: TracedThread) -> SyscallDecoder {
        if let d = t.decoder { return d }
        var memory = RemoteMemory(pid: t.tid)
        let log = readLog
        let resolver = self.resolver
        let pid = t.pid
        let d = SyscallDecoder(table: table,
                               readMemory: { address, count in
                                   log.addresses.append(address)
                                   return memory.read(address, count: count)
                               },
                               describeFd: { resolver.resolve(pid: pid, fd: $0) })
        t.decoder = d
        return d
    }

    // MARK: - Loop

    func loop(_ session: PerfSession, until deadlineNs: Int64?, shouldStop: () -> Bool,
              onEvent: (TraceEvent) -> Bool) -> TraceEnd {
        var nextLivenessCheck = MonotonicClock.nanoseconds + 100_000_000
        while true {
            let sig = StopSignals.requested
            if sig != 0 { return .interrupted(signal: sig) }
            if shouldStop() { return .interrupted(signal: 0) }
            let now = MonotonicClock.nanoseconds
            if let d = deadlineNs, now >= d { return .duration }
            var timeout: Int64 = backlog > 0 ? 0 : 100
            if let d = deadlineNs { timeout = max(0, min(timeout, (d - now) / 1_000_000)) }
            let waited = MonotonicClock.nanoseconds
            _ = session.wait(timeoutMilliseconds: Int32(timeout))
            let before = queue.count
            collect(session, everything: false)
            // A traced task that exited leaves its ring fd readable (POLLHUP) for good:
            // when a wait returns at once with nothing new, sleep instead of spinning.
            if timeout > 0 && queue.count == before && MonotonicClock.nanoseconds - waited < 1_000_000 {
                usleep(UInt32(min(timeout, 20) * 1000))
            }
            // Small slices: the rings are emptied every few milliseconds even while decoding lags.
            if !process(limit: 2_048, onEvent) { return .outputFailed }
            // Only when caught up is a call still pending really in progress.
            if options.decode && backlog == 0 { decodeInProgress() }
            if MonotonicClock.nanoseconds >= nextLivenessCheck {
                nextLivenessCheck = MonotonicClock.nanoseconds + 100_000_000
                if !allPids.contains(where: isAlive) { return .allExited }
            }
        }
    }

    /// The process still runs (not gone, not a zombie).
    func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? proc.readText("\(pid)/stat"), let f = StatFields.parse(stat) else { return false }
        return f.state != "Z" && f.state != "X"
    }

    // MARK: - Queue

    /// A record moved out of a ring, waiting to be decoded and printed.
    struct Queued {
        var header: SampleHeader
        var record: RawSyscallRecord
    }
    var queue: [Queued] = []
    var queueHead = 0
    /// Records waiting in lockscope's memory (~90 bytes each).
    var backlog: Int { queue.count - queueHead }
    /// At most this many records wait in memory (~90 MiB) before the rings are left
    /// to fill (and the kernel to drop and count what does not fit). Moving a record
    /// out of a ring costs ~0.1 µs, decoding and printing it ~1 µs: the queue lets
    /// lockscope absorb a burst far longer than the rings alone hold.
    static let maxQueued = 1 << 20

    /// Moves every complete record from the rings into the queue, in time order
    /// (unless the queue is full and `everything` is not asked for).
    func collect(_ session: PerfSession, everything: Bool) {
        guard everything || backlog < Self.maxQueued else { return }
        let raw = self.raw
        session.drain(everything: everything) { sample in
            if let r = raw.decode(sample.raw) { queue.append(Queued(header: sample.header, record: r)) }
        }
    }

    /// Handles up to `limit` queued records; false when the output failed.
    func process(limit: Int, _ onEvent: (TraceEvent) -> Bool) -> Bool {
        var n = 0
        var ok = true
        while ok && queueHead < queue.count && n < limit {
            let q = queue[queueHead]
            queueHead += 1
            n += 1
            ok = handle(q.record, header: q.header, onEvent: onEvent)
        }
        if queueHead == queue.count {
            queue.removeAll(keepingCapacity: queue.capacity <= 1 << 16)
            queueHead = 0
        } else if queueHead >= 1 << 16 && queueHead * 2 >= queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
        return ok
    }

    /// One record.
    @inline(__always)
    func handle(_ record: RawSyscallRecord, header: SampleHeader, onEvent: (TraceEvent) -> Bool) -> Bool {
        let tid = header.tid
        let t: TracedThread
        if let last = lastThread, last.tid == tid { t = last }
        else if let known = threads[tid] { t = known } else { t = adopt(tid: tid, pid: header.pid) }
        lastThread = t
        let now = Int64(header.time)
        switch record {
        case .enter(let nr64, let args):
            let nr = Int(nr64)
            // An entry while in a call: its exit was lost (or a new image after execve).
            t.pendingAttach = nil
            t.inSyscall = true
            t.number = nr
            t.entryNs = now
            t.args[0] = args.a0; t.args[1] = args.a1; t.args[2] = args.a2
            t.args[3] = args.a3; t.args[4] = args.a4; t.args[5] = args.a5
            t.currentAtAttach = false
            t.current = nil
            t.decodePending = false
            // Without decoding (--summary-only) nothing is built per call: the exit only counts it.
            if options.decode && (nr >= 0 && nr < matches.count ? matches[nr] : options.filter.matchesAll) {
                t.decodePending = true
            }
            if enders.contains(nr) { return threadExits(t, status: args.a0, now: now, onEvent: onEvent) }
            return true
        case .exit(let nr64, let result):
            let nr = Int(nr64)
            if !t.inSyscall {
                // The call it was in when the events were enabled, now returning.
                guard let p = t.pendingAttach, p.number == nr else {
                    // A new task's first return (from clone/fork), or a lost entry.
                    if t.pendingAttach == nil && !spawners.keys.contains(nr) { unmatched += 1 }
                    t.pendingAttach = nil
                    return true
                }
                t.pendingAttach = nil
                t.inSyscall = true
                t.number = nr
                t.entryNs = startNs
                t.current = matches.indices.contains(nr) && !matches[nr] ? nil : p
                t.currentAtAttach = true
                t.decodePending = false
            } else if nr != t.number {
                unmatched += 1
                t.inSyscall = false
                t.current = nil
                t.decodePending = false
                return true
            }
            return syscallExit(t, result: result, now: now, onEvent: onEvent)
        case .task(let r):
            return task(r, t, now: now, onEvent: onEvent)
        }
    }

    /// A signal or an execve, printed as `--ptrace` prints them. A fatal signal
    /// under its default action ends every thread of the process (killed by it);
    /// a stop signal under it stops the group.
    func task(_ r: TaskRecord, _ t: TracedThread, now: Int64, onEvent: (TraceEvent) -> Bool) -> Bool {
        switch r {
        case .signal(let sig, let handler):
            switch SignalAction(signal: sig, handler: handler) {
            case .groupStop:
                return onEvent(.groupStop(time: seconds(now), tid: t.tid, signal: sig))
            case .fatal:
                // A fatal signal sent from outside is made a group kill when sent (complete_signal()
                // in kernel/signal.c): the task dequeues SIGKILL, never shown as a delivery (as strace).
                if sig != SIGKILL && !onEvent(.signal(time: seconds(now), tid: t.tid, signal: sig)) { return false }
                var ok = true
                for tid in allTids {
                    guard ok, let other = threads[tid], other.pid == t.pid else { continue }
                    // What it was in never returns: shown unfinished, then the kill.
                    if let u = other.takeUnfinished(nowNs: now, startNs: startNs, decode: { decodeNow(other) }) {
                        ok = onEvent(.syscall(u))
                    }
                    if ok { ok = onEvent(.exited(time: seconds(now), tid: tid, status: nil, signal: sig)) }
                    threads[tid] = nil
                }
                lastThread = nil
                return ok
            case .handled, .ignored:
                return onEvent(.signal(time: seconds(now), tid: t.tid, signal: sig))
            }
        case .exec(let pid, let oldPid):
            if oldPid != pid {
                // A thread's execve made it the leader (de_thread): it carries on under the pid,
                // and the process's other threads are gone without a word of their own.
                let moved = TracedThread(tid: pid, pid: pid)
                moved.inSyscall = t.inSyscall; moved.number = t.number; moved.args = t.args
                moved.entryNs = t.entryNs; moved.current = t.current; moved.decodePending = t.decodePending
                moved.currentAtAttach = t.currentAtAttach; moved.decoder = t.decoder
                for (tid, other) in threads where other.pid == t.pid { threads[tid] = nil }
                threads[pid] = moved
                lastThread = nil
            } else {
                for (tid, other) in threads where other.pid == pid && tid != pid { threads[tid] = nil }
            }
            // The new image's memory is another: decoders read it afresh.
            threads[pid]?.decoder = nil
            return onEvent(.exec(time: seconds(now), tid: pid, formerTid: oldPid))
        }
    }

    /// A call kept only as registers, decoded now.
    func decodeNow(_ t: TracedThread) -> DecodedSyscall {
        readLog.addresses.removeAll(keepingCapacity: true)
        return decoder(for: t).decode(number: t.number, args: t.args)
    }

    /// exit/exit_group never return: the call is shown unfinished at once (as
    /// --ptrace shows it when the thread dies), then the thread's exit.
    func threadExits(_ t: TracedThread, status: UInt64, now: Int64, onEvent: (TraceEvent) -> Bool) -> Bool {
        var ok = true
        if t.decodePending {
            let call = decodeNow(t)
            ok = onEvent(.syscall(TracedSyscall(time: seconds(now), pid: t.pid, tid: t.tid, call: call, result: nil,
                                                durationSeconds: 0, inProgressAtAttach: false)))
        }
        t.inSyscall = false
        t.decodePending = false
        t.current = nil
        return onEvent(.exited(time: seconds(now), tid: t.tid, status: Int32(truncatingIfNeeded: status & 0xff), signal: nil)) && ok
    }

    /// A task seen for the first time: a new thread or child (inherit), never a stranger.
    func adopt(tid: Int32, pid: Int32) -> TracedThread {
        let t = TracedThread(tid: tid, pid: pid)
        threads[tid] = t
        allTids.append(tid)
        if !allPids.contains(pid) { allPids.append(pid) }
        return t
    }

    @inline(__always)
    func syscallExit(_ t: TracedThread, result rval: Int64, now: Int64, onEvent: (TraceEvent) -> Bool) -> Bool {
        t.inSyscall = false
        let nr = t.number
        let elapsed = now - t.entryNs
        let failed = rval < 0 && rval >= -4095
        if nr >= 0 && nr < counts.count && (t.current != nil || t.decodePending || matches[nr]) {
            counts[nr] += 1
            if failed { errors[nr] += 1 }
            totalNs[nr] += elapsed
            if elapsed > maxNs[nr] { maxNs[nr] = elapsed }
        }
        var ok = true
        if let child = spawners[nr], rval > 0, rval < Int64(Int32.max), options.followChildren {
            let tid = Int32(rval)
            ok = onEvent(.newTask(time: seconds(now), parent: t.tid, tid: tid, isThread: spawnsThread(t, child: tid, call: child)))
        }
        if t.decodePending {
            t.decodePending = false
            readLog.addresses.removeAll(keepingCapacity: true)
            var call = decoder(for: t).decode(number: nr, args: t.args)
            markReadLate(&call, descriptors: true)
            t.current = call
        }
        if options.decode && nr >= 0 && nr < cacheEffects.count {
            PtraceSession.apply(cacheEffects[nr], to: resolver, pid: t.pid, args: t.args, result: rval)
        }
        guard var call = t.current else { return ok }
        t.current = nil
        if options.decode, let d = t.decoder {
            readLog.addresses.removeAll(keepingCapacity: true)
            d.updateAtExit(&call, result: rval)
            markReadLate(&call, descriptors: false)
        }
        let line = TracedSyscall(time: seconds(t.entryNs), pid: t.pid, tid: t.tid, call: call,
                                 result: SyscallResult(raw: rval), durationSeconds: Double(elapsed) / 1e9,
                                 inProgressAtAttach: t.currentAtAttach)
        return onEvent(.syscall(line)) && ok
    }

    /// Whether `child` is a thread of `t`'s process: from its own records when
    /// seen, else /proc, else the call's flags (clone with CLONE_THREAD, 0x10000;
    /// clone3's `struct clone_args` starts with the flags, read late).
    func spawnsThread(_ t: TracedThread, child: Int32, call: String) -> Bool {
        if let c = threads[child] { return c.pid == t.pid }
        if proc.exists("\(t.pid)/task/\(child)") { return true }
        if proc.exists("\(child)") { return false }
        switch call {
        case "clone": return t.args[0] & 0x10000 != 0
        case "clone3":
            var m = RemoteMemory(pid: t.tid)
            if case .success(let b) = m.read(t.args[0], count: 8) { return b.le(0, as: UInt64.self) & 0x10000 != 0 }
            return false
        default: return false
        }
    }

    /// Marks the arguments whose memory the decoder just read (by the register
    /// holding the address: every pointer argument is read at its own address)
    /// and, with `descriptors`, the descriptors it resolved through /proc: all of
    /// it happened after the call returned, so the call may have seen otherwise.
    @inline(__always)
    func markReadLate(_ call: inout DecodedSyscall, descriptors: Bool) {
        for i in call.args.indices where i < call.raw.count {
            if descriptors, case .fd(let f) = call.args[i].value, f.what != nil {
                call.args[i].readAfterReturn = true
                continue
            }
            let r = call.raw[i]
            if r != 0 && readLog.addresses.contains(r) { call.args[i].readAfterReturn = true }
        }
    }

    /// Decodes the calls still in progress after a drain while they still are:
    /// /proc/PID/task/TID/syscall must show the same call with the same arguments
    /// (one read per such thread, once per call).
    func decodeInProgress() {
        for t in threads.values where t.decodePending && t.inSyscall {
            guard case .inSyscall(let nr, let args, _, _)? = (try? proc.readText("\(t.pid)/task/\(t.tid)/syscall")).map(SyscallFileParser.parse),
                  nr == t.number, args == t.args else { continue }
            let call = decoder(for: t).decode(number: nr, args: t.args)
            // Still the same call after the read: what was read is what it sees.
            guard case .inSyscall(let nr2, let args2, _, _)? = (try? proc.readText("\(t.pid)/task/\(t.tid)/syscall")).map(SyscallFileParser.parse),
                  nr2 == nr, args2 == args else { continue }
            t.current = call
            t.decodePending = false
        }
    }

    /// Calls still running at the end, reported unfinished (as `--ptrace` does at detach).
    func flushUnfinished(_ onEvent: (TraceEvent) -> Bool) {
        let now = MonotonicClock.nanoseconds
        var ok = true
        for tid in allTids {
            guard ok, let t = threads[tid] else { continue }
            let unfinished = t.takeUnfinished(nowNs: now, startNs: startNs) { decodeNow(t) }
            if let u = unfinished { ok = onEvent(.syscall(u)) }
        }
    }

    func summary(endedBy: TraceEnd) -> TraceSummary {
        let stats = SyscallStats.blockingFirst(table: table, counts: counts, errors: errors, totalNs: totalNs, maxNs: maxNs)
        return TraceSummary(endedBy: endedBy, wallSeconds: Double(MonotonicClock.nanoseconds - startNs) / 1e9,
                            pids: allPids, tids: allTids, stats: stats, stops: 0)
    }
}
