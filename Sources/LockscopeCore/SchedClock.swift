import CLockscope

/// The scheduler clock of a thread, from /proc/PID/task/TID/sched
/// (kernel/sched/debug.c `proc_sched_show_task()`: `se.exec_start`, the time the
/// thread last started running, in milliseconds of the scheduler clock).
///
/// That clock is the *runqueue's* `clock_task` (kernel/sched/core.c
/// `update_rq_clock_task()`: the CPU's clock minus its IRQ and steal time), so each
/// CPU's runs at its own offset; on this 2-vCPU VM the two differed by 1.2 s after
/// five hours of uptime, and the gap grows. An `exec_start` is only comparable with
/// another reading from the same CPU.
public enum SchedClock {
    /// The `clock_task` of `cpu` now, in ms: the calling thread is moved onto that
    /// CPU (sched_setaffinity migrates it before returning), so its own
    /// `se.exec_start` is that CPU's clock a moment ago, read through `readOwnSched`
    /// (`/proc/thread-self/sched`). The thread's affinity is restored. nil when the
    /// CPU is not allowed here (a cpuset) or the file is unreadable.
    public static func nowMilliseconds(onCPU cpu: Int, readOwnSched: () -> [UInt8]?) -> Double? {
        guard let c = Int32(exactly: cpu) else { return nil }
        let saved = UnsafeMutableRawPointer.allocate(byteCount: cls_cpu_mask_bytes(), alignment: 8)
        defer { saved.deallocate() }
        guard cls_pin_to_cpu(c, saved) == 0 else { return nil }
        defer { _ = cls_restore_cpus(saved) }
        return execStartMilliseconds(readOwnSched())
    }


    /// `se.exec_start   :   3131175.206397` → 3131175.206397 (ms); nil when absent.
    /// Bytes, not lines: it is read for every waiter, and the file has ~40 lines.
    public static func execStartMilliseconds(_ bytes: [UInt8]?) -> Double? {
        guard let bytes else { return nil }
        let key = Array("se.exec_start".utf8)
        var i = 0
        while i + key.count <= bytes.count {
            // At a line start: the key, or skip to the next line.
            if bytes[i] == key[0] && bytes[i..<(i + key.count)].elementsEqual(key) {
                var j = i + key.count
                while j < bytes.count && (bytes[j] == UInt8(ascii: " ") || bytes[j] == UInt8(ascii: "\t")) { j += 1 }
                guard j < bytes.count, bytes[j] == UInt8(ascii: ":") else { return nil }
                j += 1
                while j < bytes.count && bytes[j] == UInt8(ascii: " ") { j += 1 }
                var end = j
                while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
                return Double(String(decoding: bytes[j..<end], as: UTF8.self))
            }
            while i < bytes.count && bytes[i] != UInt8(ascii: "\n") { i += 1 }
            i += 1
        }
        return nil
    }
}

/// How long threads have been off a CPU — for a thread asleep in a lock call, how long
/// it has waited since it last woke — each measured against the clock of the CPU it
/// last ran on (`StatFields.processor`), as `SchedClock` requires: this thread visits
/// each such CPU once per instance. A recorded tree has no CPUs to visit; its own
/// `thread-self/sched` is then the one reference.
public struct OffCPUClock {
    public let proc: ProcRoot
    private var nowByCPU: [Int: Double?] = [:]
    private var recordedNow: Double??

    public init(proc: ProcRoot) { self.proc = proc }

    /// Seconds since thread `tid` of `pid` last ran; nil when its files are unreadable.
    /// `lastCPU` saves the read of its stat when the caller has it (`StatFields.processor`).
    public mutating func secondsSinceLastRan(pid: Int32, tid: Int32, lastCPU: Int? = nil) -> Double? {
        guard let theirs = SchedClock.execStartMilliseconds(try? proc.readBytes("\(pid)/task/\(tid)/sched")),
              let now = reference(pid: pid, tid: tid, lastCPU: lastCPU) else { return nil }
        return max(0, (now - theirs) / 1000)
    }

    private mutating func reference(pid: Int32, tid: Int32, lastCPU: Int?) -> Double? {
        guard proc.isLive else {
            if recordedNow == nil { recordedNow = SchedClock.execStartMilliseconds(try? proc.readBytes("thread-self/sched")) }
            return recordedNow ?? nil
        }
        guard let cpu = lastCPU ?? (try? proc.readBytes("\(pid)/task/\(tid)/stat")).flatMap({ bytes in
            bytes.withUnsafeBytes { StatFields.parse($0)?.processor }
        }) else { return nil }
        if let known = nowByCPU[cpu] { return known }
        let now = SchedClock.nowMilliseconds(onCPU: cpu) { [proc] in try? proc.readBytes("thread-self/sched") }
        nowByCPU[cpu] = now
        return now
    }
}
