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
        var counts: [Int: Int] = [:]
        var threadCount = 1
        /// Number, six args, sp, pc of the current call, and the buffer the next read parses into.
        var key = [UInt64](repeating: 0, count: 9)
        var scratch = [UInt64](repeating: 0, count: 9)
        var firstCPU: UInt64?
        var lastCPU: UInt64 = 0
        var streakStart: Int64 = 0
        var lastSeen: Int64 = 0
        var inSyscall = false
        var rawNumber = -1
        var rawArgs = [UInt64](repeating: 0, count: 6)
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
        var needsRelist = false
        init(pid: Int32) { self.pid = pid }
    }

    func run(shouldStop: () -> Bool) throws(TraceError) -> SamplerReport {
        let proc = sampler.proc
        var skipped: [TraceError] = []
        var processes: [ProcessState] = []
        for pid in pids {
            do throws(TraceError) {
                if !sampler.bestEffort {
                    try TargetCheck(proc: proc).checkReadable(pid: pid)
                } else if !proc.exists("\(pid)") {
                    throw .noSuchProcess(pid)
                }
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
        // A recorded tree does not change: one round.
        let totalNs = proc.isLive ? max(0, secs * 1_000_000_000 + attos / 1_000_000_000) : 0
        let start = MonotonicClock.nanoseconds
        let deadline = start + totalNs
        var buffer = [UInt8](repeating: 0, count: 1024)
        var rounds = 0
        var interrupted = false
        var next = start

        var last = totalNs == 0
        while true {
            let now = MonotonicClock.nanoseconds
            if shouldStop() {
                interrupted = true
                last = true
            }
            rounds += 1
            var anyAlive = false
            for p in processes where !p.exited {
                sampleRound(p, now: now, round: rounds, buffer: &buffer, decode: last)
                if !p.exited { anyAlive = true }
            }
            if last || !anyAlive { break }
            next = min(next + period, deadline)
            if next == deadline { last = true }
            // Sleep to the next tick; a stop signal interrupts the sleep (EINTR).
            var remaining = next - MonotonicClock.nanoseconds
            while remaining > 0 && !shouldStop() {
                var ts = timespec(tv_sec: Int(remaining / 1_000_000_000), tv_nsec: Int(remaining % 1_000_000_000))
                _ = nanosleep(&ts, nil)
                remaining = next - MonotonicClock.nanoseconds
            }
        }
        let end = MonotonicClock.nanoseconds

        // Time since each sleeping thread last ran (see OffCPUClock: per-CPU clocks).
        var offCPU = OffCPUClock(proc: proc)
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
                if !t.exited && t.state != "R" && t.decoded != nil {
                    t.sinceLastRan = offCPU.secondsSinceLastRan(pid: p.pid, tid: tid)
                }
                t.closeAll()
                let histogram = t.counts.map { SampleCount(bucket: bucket($0.key), count: $0.value, fraction: t.samples > 0 ? Double($0.value) / Double(t.samples) : 0) }
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

    /// One round over every thread of `p`. The task directory is listed on the
    /// first round, when the thread count changes, when a thread vanished, and at
    /// the last round; otherwise a round is two preads per thread.
    private func sampleRound(_ p: ProcessState, now: Int64, round: Int, buffer: inout [UInt8], decode: Bool) {
        let proc = sampler.proc
        var relist = round == 1 || decode || p.needsRelist
        if !relist, let main = p.threads[p.pid], !main.exited {
            relist = main.threadCount != p.threads.values.lazy.filter({ !$0.exited }).count
        }
        if relist {
            p.needsRelist = false
            guard let tids = try? proc.listDirectory("\(p.pid)/task") else {
                p.exited = true
                for t in p.threads.values { t.exited = true; t.closeAll() }
                return
            }
            var seen = Set<Int32>()
            for name in tids {
                guard let tid = Int32(name) else { continue }
                seen.insert(tid)
                if p.threads[tid] == nil {
                    let t = ThreadState(tid: tid)
                    let base = proc.absolute("\(p.pid)/task/\(tid)/")
                    t.statFd = open(base + "stat", O_RDONLY | O_CLOEXEC)
                    t.syscallFd = open(base + "syscall", O_RDONLY | O_CLOEXEC)
                    t.wchanFd = open(base + "wchan", O_RDONLY | O_CLOEXEC)
                    p.threads[tid] = t
                    p.order.append(tid)
                }
            }
            for (tid, t) in p.threads where !seen.contains(tid) && !t.exited {
                t.exited = true
                t.closeAll()
            }
        }
        for tid in p.order {
            guard let t = p.threads[tid], !t.exited else { continue }
            sampleThread(t, now: now, buffer: &buffer)
            if t.exited { p.needsRelist = true; continue }
            if decode {
                t.wchan = t.state == "R" ? nil : readWchan(t.wchanFd, &buffer)
                if t.inSyscall {
                    let resolver = FdResolver(proc: proc, peerPids: pids)
                    let table = SyscallTable.forArch(sampler.arch)
                    let decoder = proc.isLive
                        ? SyscallDecoder.live(pid: p.pid, tid: tid, resolver: resolver, table: table)
                        : SyscallDecoder(table: table, readMemory: { _, _ in .failure(RemoteReadError(errno: .noSuchProcess)) },
                                         describeFd: { [pid = p.pid] in resolver.resolve(pid: pid, fd: $0) })
                    var call = decoder.decode(number: t.rawNumber, args: t.rawArgs)
                    if call.name == "restart_syscall", let resumed = Self.resumedCall(wchan: t.wchan) { call.name = resumed }
                    t.decoded = call
                }
            }
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

    private func readWchan(_ fd: Int32, _ buffer: inout [UInt8]) -> String? {
        guard fd >= 0 else { return nil }
        let n = buffer.withUnsafeMutableBytes { b in (try? retryingOnInterrupt { pread(fd, b.baseAddress!, b.count, 0) }) ?? -1 }
        guard n > 0 else { return nil }
        let w = String(decoding: buffer[0..<n], as: UTF8.self)
        return w == "0" ? nil : w
    }

    /// Bucket codes in the per-thread counts: a syscall number (≥ 0) or one of these.
    static let running = -2, ioWait = -3, stopped = -4, kernel = -5, unknown = -6

    /// Reads stat and syscall into the thread's state, parsing bytes in place (no
    /// strings on this path; the name is taken once).
    private func sampleThread(_ t: ThreadState, now: Int64, buffer: inout [UInt8]) {
        guard t.statFd >= 0 else { t.exited = true; t.closeAll(); return }
        var statOK = false
        buffer.withUnsafeMutableBytes { raw in
            let n = (try? retryingOnInterrupt { pread(t.statFd, raw.baseAddress!, raw.count, 0) }) ?? -1
            guard n > 0 else { return }
            let b = UnsafeRawBufferPointer(rebasing: raw[0..<n])
            guard let f = StatFields.parse(b) else { return }
            if t.name.isEmpty { t.name = f.comm }
            t.state = f.state
            let cpu = f.utime &+ f.stime
            if t.firstCPU == nil { t.firstCPU = cpu }
            t.lastCPU = cpu
            t.threadCount = f.threads
            statOK = true
        }
        guard statOK else { t.exited = true; t.closeAll(); return }
        t.samples += 1
        var code = Self.unknown
        var inSyscall = false
        let state = t.state
        buffer.withUnsafeMutableBytes { raw in
            // Not opened (another user's process, best effort): unreadable, by state.
            let n = t.syscallFd >= 0 ? (try? retryingOnInterrupt { pread(t.syscallFd, raw.baseAddress!, raw.count, 0) }) ?? -1 : -1
            let b = UnsafeRawBufferPointer(rebasing: raw[0..<max(0, n)])
            let parsed = n > 0 ? RawSyscall.parse(b, into: &t.scratch) : .unreadable
            switch (parsed, state) {
            case (_, "Z"), (_, "X"): code = Self.unknown
            case (.running, _), (_, "R"): code = Self.running
            case (_, "T"), (_, "t"): code = Self.stopped
            case (.notInSyscall, "D"), (.unreadable, "D"): code = Self.ioWait
            case (.notInSyscall, _): code = Self.kernel
            case (.unreadable, _): code = Self.unknown
            case (.inSyscall(let nr), _):
                inSyscall = true
                code = nr
                if !t.inSyscall || t.scratch != t.key {
                    swap(&t.key, &t.scratch)
                    t.streakStart = now
                }
                t.lastSeen = now
                t.rawNumber = nr
            }
        }
        if inSyscall { for i in 0..<6 { t.rawArgs[i] = t.key[i + 1] } }
        t.inSyscall = inSyscall
        t.counts[code, default: 0] += 1
    }

    func bucket(_ code: Int) -> SampleBucket {
        switch code {
        case Self.running: return .running
        case Self.ioWait: return .ioWait
        case Self.stopped: return .stopped
        case Self.kernel: return .kernel
        case Self.unknown: return .unknown
        default: return .syscall(SyscallTable.forArch(sampler.arch).name(of: code) ?? "syscall_\(code)")
        }
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
            if error.isDenied { throw .permissionDenied(pid: pid, errno: error.errno) }
            throw .noSuchProcess(pid)
        }
        guard let f = StatFields.parse(stat) else { throw .noSuchProcess(pid) }
        if f.isKernelThread { throw .kernelThread(pid: pid, comm: f.comm) }
        if f.state == "Z" || f.state == "X" { throw .zombie(pid) }
        do { _ = try proc.readBytes("\(pid)/syscall", limit: 256) } catch {
            if error.isDenied { throw .permissionDenied(pid: pid, errno: error.errno) }
            if error.isGone { throw .noSuchProcess(pid) }
        }
    }
}

/// /proc/…/syscall parsed from bytes: `running`, `-1 SP PC`, or
/// `NR A0 … A5 SP PC` (hex) written into a 9-element key without allocating.
enum RawSyscall: Equatable {
    case running
    case notInSyscall
    case inSyscall(Int)
    case unreadable

    static func parse(_ b: UnsafeRawBufferPointer, into key: inout [UInt64]) -> RawSyscall {
        guard let first = b.first else { return .unreadable }
        if first == UInt8(ascii: "r") { return .running }
        if first == UInt8(ascii: "-") { return .notInSyscall }
        var field = 0
        var value: UInt64 = 0
        var digits = 0
        var i = 0
        while i <= b.count && field < 9 {
            let c: UInt8 = i < b.count ? b[i] : 10
            if c == UInt8(ascii: " ") || c == 10 {
                if digits > 0 {
                    key[field] = value
                    field += 1
                }
                value = 0
                digits = 0
            } else if c == UInt8(ascii: "x") {
                value = 0  // the 0 of 0x
            } else if field == 0 {
                guard c >= 48 && c <= 57 else { return .unreadable }
                value = value &* 10 &+ UInt64(c - 48)
                digits += 1
            } else {
                let d: UInt8
                switch c {
                case 48...57: d = c - 48
                case 97...102: d = c - 87
                case 65...70: d = c - 55
                default: return .unreadable
                }
                value = value << 4 | UInt64(d)
                digits += 1
            }
            i += 1
        }
        return field == 9 && key[0] <= UInt64(Int32.max) ? .inSyscall(Int(key[0])) : .unreadable
    }
}
