import CLockscopeTrace
import LockscopeCore
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The ptrace event loop. Shaped like strace's `next_event()`/`dispatch_event()`:
/// a wait status becomes a named stop, each case says how the tracee is restarted.
final class PtraceSession {
    let proc: ProcRoot
    let options: TraceOptions
    let table: SyscallTable
    let resolver: FdResolver
    var threads: [Int32: TracedThread] = [:]
    var allTids: [Int32] = []
    var allPids: [Int32] = []
    let startNs: Int64
    var stops = 0
    /// Per syscall number: does it pass the filter?
    let matches: [Bool]
    var counts: [Int]
    var errors: [Int]
    var totalNs: [Int64]
    var maxNs: [Int64]
    let restartNumber: Int
    let seizeOptions: UInt64
    let cacheEffects: [CacheEffect]
    /// x86_64: PTRACE_PEEKUSER for single registers (aarch64 has no PEEKUSER for them).
    let peekRegisters: Bool

    init(proc: ProcRoot, options: TraceOptions, table: SyscallTable) {
        self.proc = proc
        self.options = options
        self.table = table
        resolver = FdResolver(proc: proc)
        startNs = MonotonicClock.nanoseconds
        let size = (table.all.last?.number ?? 0) + 1
        matches = (0..<size).map { n in table[n].map { options.filter.matches(name: $0.name, classes: $0.classes) } ?? options.filter.matchesAll }
        counts = [Int](repeating: 0, count: size)
        errors = counts
        totalNs = [Int64](repeating: 0, count: size)
        maxNs = totalNs
        restartNumber = table.number(of: "restart_syscall") ?? -1
        cacheEffects = PtraceSession.cacheEffects(table)
        peekRegisters = table.arch == .x86_64 && SyscallArch.host == .x86_64
        var o = UInt64(CLS_PTRACE_O_TRACESYSGOOD | CLS_PTRACE_O_TRACEEXEC)
        if options.followChildren {
            o |= UInt64(CLS_PTRACE_O_TRACECLONE | CLS_PTRACE_O_TRACEFORK | CLS_PTRACE_O_TRACEVFORK)
        }
        // Never PTRACE_O_EXITKILL: if lockscope dies, the kernel detaches and the tracee runs on.
        seizeOptions = o
    }

    func seconds(_ ns: Int64) -> Double { Double(ns - startNs) / 1e9 }

    // MARK: - Attach

    /// Seizes every thread of every pid (re-listing until no new thread appears),
    /// then interrupts them all. On failure, lets go of what was seized and throws.
    func attach(_ pids: [Int32], check: (Int32) throws(TraceError) -> Void) throws(TraceError) -> [TraceEvent] {
        for pid in pids { try check(pid) }
        var events: [TraceEvent] = []
        for pid in pids {
            var seen = Set<Int32>()
            while true {
                let tids = ((try? proc.listDirectory("\(pid)/task")) ?? []).compactMap { Int32($0) }.filter { !seen.contains($0) }
                if tids.isEmpty { break }
                for tid in tids {
                    seen.insert(tid)
                    if threads[tid] != nil { continue }
                    // What it is blocked in, read before anything touches it.
                    var pending: DecodedSyscall?
                    if case .inSyscall(let nr, let args, _, _)? = (try? proc.readText("\(pid)/task/\(tid)/syscall")).map(SyscallFileParser.parse) {
                        pending = decoder(pid: pid, tid: tid).decode(number: nr, args: args)
                    }
                    if cls_ptrace(CLS_PTRACE_SEIZE, tid, 0, seizeOptions) < 0 {
                        let e = errno
                        if e == ESRCH { continue }  // the thread exited meanwhile
                        // A thread cloned by one we already seized is attached automatically.
                        if e == EPERM, (try? proc.readText("\(pid)/task/\(tid)/status")).map(StatusFields.parse)?.tracerPid == getpid() {
                            _ = adopt(tid)
                            continue
                        }
                        abandon()
                        throw attachError(pid: pid, tid: tid, errno: e)
                    }
                    let t = TracedThread(tid: tid, pid: pid)
                    t.pendingAttach = pending
                    threads[tid] = t
                    allTids.append(tid)
                    events.append(.attached(time: seconds(MonotonicClock.nanoseconds), pid: pid, tid: tid, inSyscall: pending))
                }
            }
            if seen.isEmpty {
                abandon()
                throw .noSuchProcess(pid)
            }
            allPids.append(pid)
        }
        for t in threads.values { _ = cls_ptrace(CLS_PTRACE_INTERRUPT, t.tid, 0, 0) }
        return events
    }

    /// Maps a failed PTRACE_SEIZE to the reason a person can act on.
    func attachError(pid: Int32, tid: Int32, errno e: Int32) -> TraceError {
        if e == ESRCH { return .noSuchProcess(pid) }
        let status = (try? proc.readText("\(pid)/task/\(tid)/status")).map(StatusFields.parse)
        if let tracer = status?.tracerPid, tracer != 0 { return .alreadyTraced(pid: pid, tracerPid: tracer) }
        if e == EPERM, let scope = PtraceTracer.yamaScope(proc: proc), scope >= 3 || (scope >= 1 && geteuid() != 0) {
            return .ptraceRestricted(pid: pid, scope: scope)
        }
        if e == EPERM || e == EACCES { return .permissionDenied(pid: pid, errno: Errno(rawValue: e)) }
        return .system(call: "PTRACE_SEIZE", pid: tid, errno: Errno(rawValue: e))
    }

    func decoder(pid: Int32, tid: Int32) -> SyscallDecoder {
        SyscallDecoder.live(pid: pid, tid: tid, resolver: resolver, table: table)
    }

    // MARK: - Loop

    enum Outcome { case end(TraceEnd) }

    /// Runs until `until` says stop or every tracee is gone. Returns why it ended.
    func run(until deadlineNs: Int64?, shouldStop: () -> Bool, onEvent: (TraceEvent) -> Bool) -> TraceEnd {
        var status: Int32 = 0
        // The caller's check and the deadline cost a clock read each; a stop comes every
        // ~10-100 µs while tracees are busy, so every 16th stop is often enough, and
        // the ticker's EINTR (every 50 ms) forces a check while they are quiet.
        var sinceCheck = 0
        while true {
            if threads.isEmpty { return .allExited }
            let sig = StopSignals.requested
            if sig != 0 { return .interrupted(signal: sig) }
            if sinceCheck == 0 {
                if shouldStop() { return .interrupted(signal: 0) }
                if let d = deadlineNs, MonotonicClock.nanoseconds >= d { return .duration }
            }
            sinceCheck = (sinceCheck + 1) & 15

            let tid = waitpid(-1, &status, CLS_WALL)
            if tid < 0 {
                if errno == EINTR { sinceCheck = 0; continue }  // the ticker or a stop signal: re-check above
                return .allExited                               // ECHILD: nothing left to wait for
            }
            stops += 1
            let now = MonotonicClock.nanoseconds
            guard let t = threads[tid] else {
                // A task we did not know: a new thread/child reporting before its parent's
                // event, or an unrelated child of ours (not ptrace-stopped: ignore it).
                if cls_wifstopped(status) != 0, let t = adopt(tid) {
                    if !dispatch(t, status: status, now: now, onEvent: onEvent) { return .outputFailed }
                }
                continue
            }
            if !dispatch(t, status: status, now: now, onEvent: onEvent) { return .outputFailed }
        }
    }

    /// Registers an auto-attached task (new thread or child).
    func adopt(_ tid: Int32) -> TracedThread? {
        if let t = threads[tid] { return t }
        let tgid = (try? proc.readText("\(tid)/status")).flatMap { text -> Int32? in
            text.split(separator: "\n").first { $0.hasPrefix("Tgid:") }.flatMap { Int32($0.dropFirst(5).trimmingCharacters(in: "\t")) }
        } ?? tid
        let t = TracedThread(tid: tid, pid: tgid)
        threads[tid] = t
        allTids.append(tid)
        if !allPids.contains(tgid) { allPids.append(tgid) }
        return t
    }

    /// Acts on one wait status; returns false when the output failed.
    func dispatch(_ t: TracedThread, status: Int32, now: Int64, onEvent: (TraceEvent) -> Bool) -> Bool {
        let tid = t.tid
        if cls_wifexited(status) != 0 || cls_wifsignaled(status) != 0 {
            // Gone: nothing to restart.
            threads[tid] = nil
            let ok = flushUnfinished(t, now: now, onEvent: onEvent)
            let exited = cls_wifexited(status) != 0
            return onEvent(.exited(time: seconds(now), tid: tid, status: exited ? cls_wexitstatus(status) : nil,
                                   signal: exited ? nil : cls_wtermsig(status))) && ok
        }
        guard cls_wifstopped(status) != 0 else { return true }
        let sig = cls_wstopsig(status)
        let event = cls_wptrace_event(status)
        var ok = true
        switch event {
        case 0 where sig == (SIGTRAP | 0x80):
            // Syscall-enter or -exit stop: restart with PTRACE_SYSCALL, no signal.
            ok = syscallStop(t, now: now, onEvent: onEvent)
            _ = cls_ptrace(CLS_PTRACE_SYSCALL, tid, 0, 0)
        case 0:
            // Signal-delivery-stop: pass the signal through unchanged.
            ok = onEvent(.signal(time: seconds(now), tid: tid, signal: sig))
            _ = cls_ptrace(CLS_PTRACE_SYSCALL, tid, 0, UInt64(sig))
        case CLS_PTRACE_EVENT_CLONE, CLS_PTRACE_EVENT_FORK, CLS_PTRACE_EVENT_VFORK:
            // The new task is attached already; it reports its own first stop.
            var msg: UInt = 0
            _ = withUnsafeMutablePointer(to: &msg) { cls_ptrace(CLS_PTRACE_GETEVENTMSG, tid, 0, UInt64(UInt(bitPattern: $0))) }
            let child = Int32(truncatingIfNeeded: msg)
            if let c = adopt(child) {
                ok = onEvent(.newTask(time: seconds(now), parent: tid, tid: child, isThread: c.pid == t.pid))
            }
            _ = cls_ptrace(CLS_PTRACE_SYSCALL, tid, 0, 0)
        case CLS_PTRACE_EVENT_EXEC:
            // execve succeeded; a non-leader thread takes over the leader's tid.
            var msg: UInt = 0
            _ = withUnsafeMutablePointer(to: &msg) { cls_ptrace(CLS_PTRACE_GETEVENTMSG, tid, 0, UInt64(UInt(bitPattern: $0))) }
            let former = Int32(truncatingIfNeeded: msg)
            if former != tid, let old = threads[former] {
                threads[former] = nil
                t.inSyscall = old.inSyscall
                t.number = old.number
                t.entryNs = old.entryNs
                t.current = old.current
            }
            resolver.invalidate(pid: t.pid)
            t.decoder = nil
            ok = onEvent(.exec(time: seconds(now), tid: tid, formerTid: former))
            _ = cls_ptrace(CLS_PTRACE_SYSCALL, tid, 0, 0)
        case CLS_PTRACE_EVENT_STOP:
            if sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU {
                // Group-stop: keep it stopped as it would be untraced, but keep listening
                // (PTRACE_LISTEN) so SIGCONT and new events still reach us.
                if !t.groupStopped { ok = onEvent(.groupStop(time: seconds(now), tid: tid, signal: sig)) }
                t.groupStopped = true
                _ = cls_ptrace(CLS_PTRACE_LISTEN, tid, 0, 0)
            } else {
                // PTRACE_INTERRUPT stop (our attach) or a new task's first stop, or the
                // notification that a group-stop ended: start (or resume) syscall tracing.
                t.groupStopped = false
                _ = cls_ptrace(CLS_PTRACE_SYSCALL, tid, 0, 0)
            }
        default:
            _ = cls_ptrace(CLS_PTRACE_SYSCALL, tid, 0, 0)
        }
        return ok
    }

    /// Entry: remember the call (decode it when it passes the filter). Exit: account
    /// for it and report it.
    func syscallStop(_ t: TracedThread, now: Int64, onEvent: (TraceEvent) -> Bool) -> Bool {
        // Entry and exit alternate per thread (an attach never lands between them:
        // the interrupt stop comes after the exit work of the interrupted call). On
        // x86_64 the exit reads only RAX with PTRACE_PEEKUSER, and an entry that
        // needs no decoding only ORIG_RAX; otherwise PTRACE_GET_SYSCALL_INFO.
        if !t.inSyscall {
            var nr = -1
            if peekRegisters && !options.decode {
                var v: UInt64 = 0
                guard cls_ptrace_peek_user(t.tid, CLS_X86_64_ORIG_RAX_OFFSET, &v) == 0 else { return true }
                nr = Int(Int64(bitPattern: v))
                return syscallEntry(t, number: nr, now: now, arch: table.arch.auditArch, fromInfo: false)
            }
            var info = cls_syscall_info()
            guard cls_ptrace_get_syscall_info(t.tid, &info) > 0 else { return true }
            if info.op == 2 {
                // Out of step (should not happen): take it as the exit it is.
                t.inSyscall = true
                return syscallExit(t, rval: info.u.exit.rval, failed: info.u.exit.is_error != 0, now: now, onEvent: onEvent)
            }
            guard info.op == 1 else { return true }
            nr = Int(truncatingIfNeeded: info.u.entry.nr)
            let a = info.u.entry.args
            t.args[0] = a.0; t.args[1] = a.1; t.args[2] = a.2; t.args[3] = a.3; t.args[4] = a.4; t.args[5] = a.5
            return syscallEntry(t, number: nr, now: now, arch: info.arch, fromInfo: true)
        }
        if peekRegisters {
            var v: UInt64 = 0
            guard cls_ptrace_peek_user(t.tid, CLS_X86_64_RAX_OFFSET, &v) == 0 else { return true }
            let rval = Int64(bitPattern: v)
            return syscallExit(t, rval: rval, failed: rval < 0 && rval >= -4095, now: now, onEvent: onEvent)
        }
        var info = cls_syscall_info()
        guard cls_ptrace_get_syscall_info(t.tid, &info) > 0 else { return true }
        guard info.op == 2 else {
            if info.op == 1 {
                // Out of step: this is an entry.
                t.inSyscall = false
                let a = info.u.entry.args
                t.args[0] = a.0; t.args[1] = a.1; t.args[2] = a.2; t.args[3] = a.3; t.args[4] = a.4; t.args[5] = a.5
                return syscallEntry(t, number: Int(truncatingIfNeeded: info.u.entry.nr), now: now, arch: info.arch, fromInfo: true)
            }
            return true
        }
        return syscallExit(t, rval: info.u.exit.rval, failed: info.u.exit.is_error != 0, now: now, onEvent: onEvent)
    }

    /// Remembers the call (decoded when it passes the filter and decoding is on).
    @inline(__always)
    func syscallEntry(_ t: TracedThread, number nr: Int, now: Int64, arch: UInt32, fromInfo: Bool) -> Bool {
        t.inSyscall = true
        t.entryNs = now
        t.number = nr
        t.current = nil
        t.currentAtAttach = false
        if let pending = t.pendingAttach {
            t.pendingAttach = nil
            if nr == restartNumber || nr == pending.number {
                // The call it was blocked in when we attached, resumed.
                t.current = pending
                t.currentAtAttach = true
                t.number = pending.number
                t.entryNs = startNs
                return true
            }
        }
        guard nr >= 0 && nr < matches.count ? matches[nr] : options.filter.matchesAll else { return true }
        guard arch == table.arch.auditArch else {
            t.current = DecodedSyscall(arch: table.arch, number: nr, name: "syscall_\(nr)(arch 0x\(String(arch, radix: 16)))",
                                       classes: [], args: [], raw: t.args)
            return true
        }
        if options.decode && fromInfo {
            if t.decoder == nil { t.decoder = decoder(pid: t.pid, tid: t.tid) }
            t.current = t.decoder!.decode(number: nr, args: t.args)
        } else {
            t.current = DecodedSyscall(arch: table.arch, number: nr, name: table.name(of: nr) ?? "syscall_\(nr)",
                                       classes: table[nr]?.classes ?? [], args: [], raw: fromInfo ? t.args : [])
        }
        return true
    }

    /// Accounts for the call and reports it.
    @inline(__always)
    func syscallExit(_ t: TracedThread, rval: Int64, failed: Bool, now: Int64, onEvent: (TraceEvent) -> Bool) -> Bool {
        t.inSyscall = false
        let nr = t.number
        let elapsed = now - t.entryNs
        if nr >= 0 && nr < counts.count && (t.current != nil || matches[nr]) {
            counts[nr] += 1
            if failed { errors[nr] += 1 }
            totalNs[nr] += elapsed
            if elapsed > maxNs[nr] { maxNs[nr] = elapsed }
        }
        if options.decode { invalidateAfter(t, number: nr, result: rval) }
        guard var call = t.current else { return true }
        t.current = nil
        if options.decode { t.decoder?.updateAtExit(&call, result: rval) }
        return onEvent(.syscall(TracedSyscall(time: seconds(t.entryNs), pid: t.pid, tid: t.tid, call: call,
                                              result: SyscallResult(raw: rval), durationSeconds: Double(elapsed) / 1e9,
                                              inProgressAtAttach: t.currentAtAttach)))
    }

    /// What a call's exit means for the fd cache, by syscall number (looked up once).
    enum CacheEffect: UInt8 {
        case none, closesArg0, replacesArg1, resetsProcess, returnsFd, touchesSocket
    }

    static func cacheEffects(_ table: SyscallTable) -> [CacheEffect] {
        let fdReturning: Set<String> = ["open", "openat", "openat2", "creat", "dup", "fcntl", "socket", "accept", "accept4",
                                        "epoll_create", "epoll_create1", "eventfd", "eventfd2", "signalfd", "signalfd4",
                                        "timerfd_create", "inotify_init", "inotify_init1", "memfd_create", "pidfd_open",
                                        "pidfd_getfd", "io_uring_setup", "mq_open", "perf_event_open", "userfaultfd",
                                        "fanotify_init", "open_tree", "fsopen", "fsmount", "fspick", "memfd_secret"]
        let resets: Set<String> = ["pipe", "pipe2", "socketpair", "close_range", "execve", "execveat", "unshare",
                                   "clone", "clone3", "fork", "vfork"]
        var out = [CacheEffect](repeating: .none, count: (table.all.last?.number ?? 0) + 1)
        for info in table.all {
            let e: CacheEffect
            switch info.name {
            case "close": e = .closesArg0
            case "dup2", "dup3": e = .replacesArg1
            case _ where resets.contains(info.name): e = .resetsProcess
            case _ where info.classes.contains(.net): e = .touchesSocket
            case _ where fdReturning.contains(info.name): e = .returnsFd
            default: e = .none
            }
            out[info.number] = e
        }
        return out
    }

    /// Keeps the fd cache true after calls that change the descriptor table or a socket.
    @inline(__always)
    func invalidateAfter(_ t: TracedThread, number: Int, result: Int64) {
        guard number >= 0 && number < cacheEffects.count else { return }
        Self.apply(cacheEffects[number], to: resolver, pid: t.pid, args: t.args, result: result)
    }

    /// What one call's exit does to the fd cache (shared with the kernel engine).
    @inline(__always)
    static func apply(_ effect: CacheEffect, to resolver: FdResolver, pid: Int32, args: [UInt64], result: Int64) {
        switch effect {
        case .none: return
        case .closesArg0: resolver.invalidate(pid: pid, fd: Int32(truncatingIfNeeded: args[0]))
        case .replacesArg1: resolver.invalidate(pid: pid, fd: Int32(truncatingIfNeeded: args[1]))
        case .resetsProcess: resolver.invalidate(pid: pid)
        case .returnsFd:
            if result >= 0 && result < 1 << 24 { resolver.invalidate(pid: pid, fd: Int32(result)) }
        case .touchesSocket:
            resolver.invalidate(pid: pid, fd: Int32(truncatingIfNeeded: args[0]))
            resolver.invalidateSockets(pid: pid)
            // socket/accept return a new fd (send/recv a count: a spurious miss at worst).
            if result >= 0 && result < 1 << 24 { resolver.invalidate(pid: pid, fd: Int32(result)) }
        }
    }

    /// Reports a call still in progress (or the one found at attach) as unfinished.
    func flushUnfinished(_ t: TracedThread, now: Int64, onEvent: (TraceEvent) -> Bool) -> Bool {
        guard let s = t.takeUnfinished(nowNs: now, startNs: startNs, decode: { nil }) else { return true }
        return onEvent(.syscall(s))
    }

    // MARK: - Detach

    /// Stops every tracee (PTRACE_INTERRUPT) and detaches it at its next stop,
    /// passing a pending signal on. Gives up after `timeoutNs` (a thread in
    /// uninterruptible sleep cannot stop); the kernel detaches those when lockscope exits.
    func detachAll(timeoutNs: Int64 = 3_000_000_000, onEvent: (TraceEvent) -> Bool) {
        for t in threads.values { _ = cls_ptrace(CLS_PTRACE_INTERRUPT, t.tid, 0, 0) }
        let deadline = MonotonicClock.nanoseconds + timeoutNs
        var status: Int32 = 0
        var outputOK = true
        while !threads.isEmpty && MonotonicClock.nanoseconds < deadline {
            let tid = waitpid(-1, &status, CLS_WALL)
            if tid < 0 {
                if errno == EINTR { continue }
                break
            }
            let now = MonotonicClock.nanoseconds
            guard let t = threads[tid] else {
                // A task born during the drain: it is attached and stopped; let it go.
                if cls_wifstopped(status) != 0 { _ = cls_ptrace(CLS_PTRACE_DETACH, tid, 0, 0) }
                continue
            }
            if cls_wifexited(status) != 0 || cls_wifsignaled(status) != 0 {
                threads[tid] = nil
                if outputOK { outputOK = flushUnfinished(t, now: now, onEvent: onEvent) }
                let exited = cls_wifexited(status) != 0
                if outputOK {
                    outputOK = onEvent(.exited(time: seconds(now), tid: tid, status: exited ? cls_wexitstatus(status) : nil,
                                               signal: exited ? nil : cls_wtermsig(status)))
                }
                continue
            }
            guard cls_wifstopped(status) != 0 else { continue }
            let sig = cls_wstopsig(status)
            let event = cls_wptrace_event(status)
            if event == CLS_PTRACE_EVENT_CLONE || event == CLS_PTRACE_EVENT_FORK || event == CLS_PTRACE_EVENT_VFORK {
                // The new task is attached too and will stop: track it so it is detached.
                var msg: UInt = 0
                _ = withUnsafeMutablePointer(to: &msg) { cls_ptrace(CLS_PTRACE_GETEVENTMSG, tid, 0, UInt64(UInt(bitPattern: $0))) }
                _ = adopt(Int32(truncatingIfNeeded: msg))
            }
            // A signal-delivery-stop carries a signal the tracee must still get.
            let pass: Int32 = (event == 0 && sig != (SIGTRAP | 0x80)) ? sig : 0
            if pass != 0, outputOK { outputOK = onEvent(.signal(time: seconds(now), tid: tid, signal: pass)) }
            // At a syscall-entry stop the call still runs after detach; report it unfinished.
            if outputOK { outputOK = flushUnfinished(t, now: now, onEvent: onEvent) }
            _ = cls_ptrace(CLS_PTRACE_DETACH, tid, 0, UInt64(pass))
            threads[tid] = nil
            if outputOK { outputOK = onEvent(.detached(time: seconds(now), tid: tid)) }
        }
    }

    /// Lets go of tasks seized during a failed attach (none has been restarted yet).
    func abandon() {
        detachAll(timeoutNs: 2_000_000_000, onEvent: { _ in true })
        threads = [:]
    }

    // MARK: - Summary

    func summary(endedBy: TraceEnd) -> TraceSummary {
        let stats = SyscallStats.blockingFirst(table: table, counts: counts, errors: errors, totalNs: totalNs, maxNs: maxNs)
        return TraceSummary(endedBy: endedBy, wallSeconds: Double(MonotonicClock.nanoseconds - startNs) / 1e9,
                            pids: allPids, tids: allTids, stats: stats, stops: stops)
    }
}
