import CLockscope
import LockscopeCore
#if canImport(Glibc)
import Glibc
#endif

/// One sampling window. Each round reads, per thread, `stat` (state, CPU time),
/// `syscall` (number, registers) and, when asleep, `wchan` — from descriptors
/// kept open across rounds (a pread at offset 0 regenerates a /proc file). Only
/// the last round decodes arguments (memory reads, fd resolution), so the rounds
/// themselves stay cheap; `sched` is read once at the end for the time since
/// each thread last ran.
struct SamplingRun {
    let sampler: Sampler
    let pids: [Int32]
    let duration: Duration
    let hz: Int

    final class ThreadState {
        let tid: Int32
        var statFd: Int32 = -1
        var syscallFd: Int32 = -1
        var wchanFd: Int32 = -1
        var name = ""
        var state: Character = "?"
        var samples = 0
        var counts: [SampleBucket: Int] = [:]
        var firstCPU: UInt64?
        var lastCPU: UInt64 = 0
        var key: [UInt64] = []       // number, six args, sp, pc of the current call
        var streakStart: Int64 = 0
        var lastSeen: Int64 = 0
        var inSyscall = false
        var rawNumber = -1
        var rawArgs: [UInt64] = []
        var wchan: String?
        var exited = false
        var decoded: DecodedSyscall?
        var sinceLastRan: Double?

        init(tid: Int32) { self.tid = tid }

        func closeAll() {
            for fd in [statFd, syscallFd, wchanFd] where fd >= 0 { close(fd) }
            statFd = -1
            syscallFd = -1
            wchanFd = -1
        }
    }

    final class ProcessState {
        let pid: Int32
        var comm = ""
        var cmdline: [String] = []
        var tracerPid: Int32 = 0
        var firstCPU: UInt64 = 0
        var lastCPU: UInt64 = 0
        var state: Character = "?"
        var threads: [Int32: ThreadState] = [:]
        var order: [Int32] = []
        var exited = false
        init(pid: Int32) { self.pid = pid }
    }

    func run(shouldStop: () -> Bool) throws(TraceError) -> SamplerReport {
        let proc = sampler.proc
        var skipped: [TraceError] = []
        var processes: [ProcessState] = []
        for pid in pids {
            do throws(TraceError) {
                try TargetCheck(proc: proc).checkReadable(pid: pid)
                let p = ProcessState(pid: pid)
                if let stat = try? proc.readText("\(pid)/stat"), let f = StatFields.parse(stat) {
                    p.comm = f.comm
                    p.firstCPU = f.utime + f.stime
                    p.lastCPU = p.firstCPU
                    p.state = f.state
                }
                if let bytes = try? proc.readBytes("\(pid)/cmdline") {
                    p.cmdline = bytes.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
                    if p.cmdline.last == "" { p.cmdline.removeLast() }
                }
                if let status = try? proc.readText("\(pid)/status") { p.tracerPid = StatusFields.parse(status).tracerPid }
                processes.append(p)
            } catch {
                skipped.append(error)
            }
        }
        if processes.isEmpty, let first = skipped.first { throw first }

        let hz = max(1, min(self.hz, 10_000))
        let period = Int64(1_000_000_000 / hz)
        let (secs, attos) = duration.components
        let totalNs = max(0, secs * 1_000_000_000 + attos / 1_000_000_000)
        let start = cls_monotonic_ns()
        let deadline = start + totalNs
        var buffer = [UInt8](repeating: 0, count: 1024)
        var rounds = 0
        var interrupted = false
        var next = start

        while true {
            let now = cls_monotonic_ns()
            let last = now + period > deadline || shouldStop()
            if shouldStop() { interrupted = true }
            rounds += 1
            var anyAlive = false
            for p in processes where !p.exited {
                sampleRound(p, now: now, buffer: &buffer, decode: last)
                if !p.exited { anyAlive = true }
            }
            if last || !anyAlive { break }
            next += period
            // Sleep to the next tick; a stop signal interrupts the sleep (EINTR).
            var remaining = next - cls_monotonic_ns()
            while remaining > 0 && !shouldStop() {
                var ts = timespec(tv_sec: Int(remaining / 1_000_000_000), tv_nsec: Int(remaining % 1_000_000_000))
                _ = nanosleep(&ts, nil)
                remaining = next - cls_monotonic_ns()
            }
            if next > deadline { next = deadline }
        }
        let end = cls_monotonic_ns()

        // Time since each sleeping thread last ran, against our own thread's clock.
        let selfExec = Self.execStart(try? proc.readText("thread-self/sched"))
        let ticks = Double(max(1, sysconf(Int32(_SC_CLK_TCK))))
        var out: [SampledProcess] = []
        for p in processes {
            if !p.exited, let stat = try? proc.readText("\(p.pid)/stat"), let f = StatFields.parse(stat) {
                p.lastCPU = f.utime + f.stime
                p.state = f.state
            }
            var threads: [SampledThread] = []
            for tid in p.order {
                guard let t = p.threads[tid] else { continue }
                if !t.exited && t.state != "R" && t.decoded != nil, let selfExec,
                   let theirs = Self.execStart(try? proc.readText("\(p.pid)/task/\(tid)/sched")) {
                    t.sinceLastRan = max(0, (selfExec - theirs) / 1000)
                }
                t.closeAll()
                let histogram = t.counts.map { SampleCount(bucket: $0.key, count: $0.value, fraction: t.samples > 0 ? Double($0.value) / Double(t.samples) : 0) }
                    .sorted { $0.count != $1.count ? $0.count > $1.count : $0.bucket.label < $1.bucket.label }
                threads.append(SampledThread(
                    tid: tid, name: t.name, state: t.state, samples: t.samples, histogram: histogram,
                    current: t.decoded,
                    currentObservedSeconds: t.decoded != nil ? Double(t.lastSeen - t.streakStart) / 1e9 : nil,
                    sinceLastRanSeconds: t.sinceLastRan, wchan: t.wchan,
                    cpuSeconds: Double(t.lastCPU - (t.firstCPU ?? t.lastCPU)) / ticks, exited: t.exited))
            }
            out.append(SampledProcess(pid: p.pid, comm: p.comm, cmdline: p.cmdline, state: p.state, tracerPid: p.tracerPid,
                                      cpuSeconds: Double(p.lastCPU &- p.firstCPU) / ticks, threads: threads, exited: p.exited))
        }
        return SamplerReport(hz: hz, requestedSeconds: Double(totalNs) / 1e9, observedSeconds: Double(end - start) / 1e9,
                             rounds: rounds, interrupted: interrupted, processes: out, skipped: skipped)
    }

    /// One round over every thread of `p`.
    private func sampleRound(_ p: ProcessState, now: Int64, buffer: inout [UInt8], decode: Bool) {
        let proc = sampler.proc
        guard let tids = try? proc.listDirectory("\(p.pid)/task") else {
            p.exited = true
            for t in p.threads.values { t.exited = true; t.closeAll() }
            return
        }
        var seen = Set<Int32>()
        for name in tids {
            guard let tid = Int32(name) else { continue }
            seen.insert(tid)
            let t: ThreadState
            if let existing = p.threads[tid] { t = existing } else {
                t = ThreadState(tid: tid)
                let base = proc.absolute("\(p.pid)/task/\(tid)/")
                t.statFd = open(base + "stat", O_RDONLY | O_CLOEXEC)
                t.syscallFd = open(base + "syscall", O_RDONLY | O_CLOEXEC)
                t.wchanFd = open(base + "wchan", O_RDONLY | O_CLOEXEC)
                p.threads[tid] = t
                p.order.append(tid)
            }
            if t.exited { continue }
            sampleThread(t, now: now, buffer: &buffer)
            if decode && t.inSyscall && !t.exited {
                let resolver = FdResolver(proc: proc, peerPids: pids)
                var call = SyscallDecoder.live(pid: p.pid, tid: tid, resolver: resolver,
                                               table: .forArch(sampler.arch)).decode(number: t.rawNumber, args: t.rawArgs)
                if call.name == "restart_syscall", let resumed = Self.resumedCall(wchan: t.wchan) { call.name = resumed }
                t.decoded = call
            }
        }
        for (tid, t) in p.threads where !seen.contains(tid) && !t.exited {
            t.exited = true
            t.closeAll()
        }
        // A zombie keeps its /proc entries until reaped: every thread dead means the process has exited.
        if p.threads.values.allSatisfy({ $0.exited || $0.state == "Z" || $0.state == "X" }) {
            p.exited = true
            for t in p.threads.values where !t.exited {
                t.exited = true
                t.closeAll()
            }
        }
    }

    private func readFile(_ fd: Int32, _ buffer: inout [UInt8]) -> Substring? {
        guard fd >= 0 else { return nil }
        let n = buffer.withUnsafeMutableBytes { cls_pread0(fd, $0.baseAddress!, $0.count) }
        guard n > 0 else { return nil }
        return Substring(String(decoding: buffer[0..<n], as: UTF8.self))
    }

    private func sampleThread(_ t: ThreadState, now: Int64, buffer: inout [UInt8]) {
        guard let stat = readFile(t.statFd, &buffer), let f = StatFields.parse(String(stat)) else {
            t.exited = true
            t.closeAll()
            return
        }
        t.name = f.comm
        t.state = f.state
        let cpu = f.utime + f.stime
        if t.firstCPU == nil { t.firstCPU = cpu }
        t.lastCPU = cpu
        t.samples += 1
        let bucket: SampleBucket
        let sys = readFile(t.syscallFd, &buffer).map { SyscallFileParser.parse(String($0)) } ?? .unavailable
        var inSyscall = false
        switch (sys, f.state) {
        case (_, "Z"), (_, "X"): bucket = .unknown
        case (.running, _), (_, "R"): bucket = .running
        case (_, "T"), (_, "t"): bucket = .stopped
        case (.notInSyscall, "D"): bucket = .ioWait
        case (.notInSyscall, _): bucket = .kernel
        case (.inSyscall(let nr, let args, let sp, let pc), _):
            inSyscall = true
            let key = [UInt64(nr)] + args + [sp, pc]
            if key != t.key || !t.inSyscall {
                t.key = key
                t.streakStart = now
            }
            t.lastSeen = now
            t.rawNumber = nr
            t.rawArgs = args
            bucket = .syscall(SyscallTable.forArch(sampler.arch).name(of: nr) ?? "syscall_\(nr)")
        case (.unavailable, "D"): bucket = .ioWait
        case (.unavailable, _): bucket = .unknown
        }
        if !inSyscall { t.key = [] }
        t.inSyscall = inSyscall
        t.counts[bucket, default: 0] += 1
        if f.state != "R", let w = readFile(t.wchanFd, &buffer) {
            t.wchan = (w.isEmpty || w == "0") ? nil : String(w)
        } else if f.state == "R" {
            t.wchan = nil
        }
    }

    /// `se.exec_start : 3131175.206397` (milliseconds of the scheduler clock) from
    /// /proc/…/sched; nil when absent or unreadable.
    static func execStart(_ text: String?) -> Double? {
        guard let text else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("se.exec_start") {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return Double(line[line.index(after: colon)...].trimmingCharacters(in: " "))
        }
        return nil
    }

    /// The call a thread in `restart_syscall` resumes, from the kernel function it sleeps in.
    static func resumedCall(wchan: String?) -> String? {
        guard let w = wchan else { return nil }
        if w.contains("nanosleep") { return "nanosleep" }
        if w.contains("poll") { return "poll" }
        if w.contains("futex") { return "futex" }
        return nil
    }
}

extension Substring {
    func trimmingCharacters(in set: Character) -> Substring {
        var s = self
        while s.first == set { s.removeFirst() }
        while s.last == set || s.last == "\n" { s.removeLast() }
        return s
    }
}

/// Checks a target before sampling or tracing: exists, is not lockscope, is not a
/// kernel thread or a zombie, and (for tracing) is not traced by someone else.
struct TargetCheck {
    let proc: ProcRoot

    /// For the sampler: the process exists, is a user process, and its threads' syscall files are readable.
    func checkReadable(pid: Int32) throws(TraceError) {
        guard proc.isLive || proc.exists("\(pid)") else { throw .noSuchProcess(pid) }
        if proc.isLive && pid == getpid() { throw .ownProcess(pid) }
        let stat: String
        do { stat = try proc.readText("\(pid)/stat") } catch {
            if error.isDenied { throw .permissionDenied(pid: pid, errno: error.errno.rawValue) }
            throw .noSuchProcess(pid)
        }
        guard let f = StatFields.parse(stat) else { throw .noSuchProcess(pid) }
        if Self.isKernelThread(stat: stat) { throw .kernelThread(pid: pid, comm: f.comm) }
        if f.state == "Z" || f.state == "X" { throw .zombie(pid) }
        do { _ = try proc.readBytes("\(pid)/syscall", limit: 256) } catch {
            if error.isDenied { throw .permissionDenied(pid: pid, errno: error.errno.rawValue) }
            if error.isGone { throw .noSuchProcess(pid) }
        }
    }

    /// `PF_KTHREAD` (0x00200000) in field 9 of /proc/PID/stat.
    static func isKernelThread(stat: String) -> Bool {
        guard let close = stat.lastIndex(of: ")") else { return false }
        let rest = stat[stat.index(after: close)...].split(separator: " ")
        guard rest.count > 6, let flags = UInt64(rest[6]) else { return false }
        return flags & 0x0020_0000 != 0
    }
}
