import LockscopeCore

/// An exiting owner (`OwnerStatus.exiting`) in every output: the threads still closing
/// its files, each with its state, wchan and (as root) kernel stack.
enum ExitingRender {
    /// `exiting: 1 thread still closing files`, then `tid 4243  D  request_wait_answer`
    /// and the stack frames under each thread. Empty unless the owner is exiting.
    static func lines(_ l: LockEntry) -> [String] {
        guard l.ownerStatus == .exiting else { return [] }
        var out = [ExitingProcess.summary(closing: l.exitingThreads.count)]
        for t in l.exitingThreads {
            out.append("  tid \(t.tid)  \(t.state)  " + terminalSafe(t.wchan ?? "-"))
            out += (t.kernelStack ?? []).map { "    " + terminalSafe($0) }
        }
        return out
    }

    /// `"exiting_threads"` on a lock whose owner is exiting (docs/json-schema.md); no field otherwise.
    static func json(_ l: LockEntry) -> [(String, JSONValue)] {
        guard l.ownerStatus == .exiting else { return [] }
        return [("exiting_threads", .array(l.exitingThreads.map { t in
            .object([
                ("tid", .int(Int64(t.tid))),
                ("state", .string(String(t.state))),
                ("wchan", .string(t.wchan)),
                ("kernel_stack", t.kernelStack.map { .array($0.map { .string($0) }) } ?? .null),
            ])
        }))]
    }
}
