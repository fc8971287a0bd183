import LockscopeCore

/// One traced thread's call state, the same for both event engines (ptrace and
/// kernel): the call it is in, since when, and what it was in at attach.
final class TracedThread {
    let tid: Int32
    /// Its process (ptrace: changes when a thread's execve makes it the leader).
    var pid: Int32
    var inSyscall = false
    /// The call being executed (statistics key): the original call for one in progress at attach.
    var number = -1
    var args = [UInt64](repeating: 0, count: 6)
    var entryNs: Int64 = 0
    /// Decoded (or named) when the call matches the filter.
    var current: DecodedSyscall?
    var currentAtAttach = false
    /// The call the thread was blocked in at attach (read from /proc before the engine started).
    var pendingAttach: DecodedSyscall?
    var decoder: SyscallDecoder?
    /// ptrace: in group-stop.
    var groupStopped = false
    /// Kernel engine: passes the filter and is not decoded yet (only its registers are kept).
    var decodePending = false

    init(tid: Int32, pid: Int32) {
        self.tid = tid
        self.pid = pid
    }

    /// The call still in progress at the end — or the one found at attach that
    /// never returned — as an unfinished call, and the state cleared. `decode`
    /// builds a call kept only as registers (`decodePending`).
    func takeUnfinished(nowNs: Int64, startNs: Int64, decode: () -> DecodedSyscall?) -> TracedSyscall? {
        var call: DecodedSyscall?
        var entry = entryNs
        var atAttach = currentAtAttach
        if inSyscall {
            call = decodePending ? decode() : current
        } else if let p = pendingAttach {
            call = p
            atAttach = true
            entry = startNs
        }
        current = nil
        pendingAttach = nil
        decodePending = false
        inSyscall = false
        guard let c = call else { return nil }
        return TracedSyscall(time: Double(entry - startNs) / 1e9, pid: pid, tid: tid, call: c, result: nil,
                             durationSeconds: Double(nowNs - entry) / 1e9, inProgressAtAttach: atAttach)
    }
}
