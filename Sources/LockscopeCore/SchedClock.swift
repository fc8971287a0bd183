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

    /// Field 39 of /proc/PID/task/TID/stat (fs/proc/array.c `do_task_stat()`:
    /// `task_cpu(task)`), the CPU the thread last ran on; fields resume after the
    /// last `)` as in `StatFields`. nil when the line is shorter.
    public static func lastCPU(statLine: String) -> Int? {
        guard let close = statLine.lastIndex(of: ")") else { return nil }
        // After ") " the state is field 3, so field 39 is the 37th word.
        let words = statLine[statLine.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        guard words.count >= 37, let cpu = Int(words[36]), cpu >= 0 else { return nil }
        return cpu
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
