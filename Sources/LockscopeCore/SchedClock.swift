/// The scheduler clock of a thread, from /proc/PID/task/TID/sched
/// (kernel/sched/debug.c `proc_sched_show_task()`: `se.exec_start`, the time the
/// thread last started running, in milliseconds of the scheduler clock).
public enum SchedClock {
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
