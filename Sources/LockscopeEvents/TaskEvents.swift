/// The task tracepoints the kernel engine reads beside raw_syscalls, to print
/// what `--ptrace` prints between calls:
/// - `signal:signal_deliver` (include/trace/events/signal.h: `sig`, `errno`,
///   `code`, `sa_handler`, `sa_flags`), fired by get_signal() in
///   kernel/signal.c in the receiving task for every signal it dequeues, before
///   the signal is ignored, handled, stops the group (a stop signal whose
///   action is SIG_DFL) or kills it (a fatal signal whose action is SIG_DFL;
///   a group already dying is traced as SIGKILL with SIG_DFL).
/// - `sched:sched_process_exec` (include/trace/events/sched.h: `filename`,
///   `pid`, `old_pid`), fired by exec_binprm() in fs/exec.c after a successful
///   execve, in the task that exec'd (`old_pid` is its tid before de_thread()
///   made it the leader).
/// Both fire in the task itself, so a perf event bound to the task sees them.
public enum TaskTracepoint: String, Sendable, CaseIterable {
    case signalDeliver = "signal_deliver"
    case exec = "sched_process_exec"
    public var tracepoint: TracepointName {
        switch self {
        case .signalDeliver: return TracepointName("signal", rawValue)
        case .exec: return TracepointName("sched", rawValue)
        }
    }
}

/// One task record, decoded in place.
public enum TaskRecord: Sendable, Equatable {
    /// A signal dequeued for delivery, and the action it met (`SIG_DFL` 0, `SIG_IGN` 1, or a handler's address).
    case signal(number: Int32, handler: UInt64)
    /// A successful execve: the task's tid now (its process's pid) and before.
    case exec(pid: Int32, oldPid: Int32)
}

/// What a delivered signal does (kernel/signal.c, `SIG_KERNEL_STOP_MASK`,
/// `SIG_KERNEL_IGNORE_MASK`; a SIG_DFL signal in neither terminates or dumps core).
public enum SignalAction: Sendable, Equatable {
    case handled
    case ignored
    case groupStop
    case fatal

    public init(signal: Int32, handler: UInt64) {
        switch handler {
        case 0:
            switch signal {
            case 19, 20, 21, 22: self = .groupStop           // SIGSTOP SIGTSTP SIGTTIN SIGTTOU
            case 17, 18, 23, 28: self = .ignored             // SIGCHLD SIGCONT SIGURG SIGWINCH
            default: self = .fatal
            }
        case 1: self = .ignored
        default: self = .handled
        }
    }
}

/// Decodes the task records by field name from the running kernel's formats. Pure.
public struct TaskEventDecoder: Sendable {
    public let deliverId: UInt16
    public let execId: UInt16
    let signal: FieldSlot
    let handler: FieldSlot
    let pid: FieldSlot
    let oldPid: FieldSlot

    public init(deliver: TracepointFormat, exec: TracepointFormat) throws(EventsError) {
        func need(_ f: TracepointFormat, _ n: String) throws(EventsError) -> FieldSlot {
            guard let x = f.field(n) else { throw .missingField(tracepoint: f.name, field: n) }
            return FieldSlot(x)
        }
        deliverId = UInt16(truncatingIfNeeded: deliver.id)
        execId = UInt16(truncatingIfNeeded: exec.id)
        signal = try need(deliver, "sig")
        handler = try need(deliver, "sa_handler")
        pid = try need(exec, "pid")
        oldPid = try need(exec, "old_pid")
    }

    /// From a map of formats; nil when either is missing.
    public init?(formats: [TracepointName: TracepointFormat]) throws(EventsError) {
        guard let d = formats[TaskTracepoint.signalDeliver.tracepoint], let e = formats[TaskTracepoint.exec.tracepoint] else { return nil }
        try self.init(deliver: d, exec: e)
    }

    /// The record of type `type` (its common_type), or nil for another tracepoint.
    public func decode(type: UInt16, _ raw: UnsafeRawBufferPointer) -> TaskRecord? {
        if type == deliverId {
            return .signal(number: Int32(truncatingIfNeeded: signal.bits(raw)), handler: handler.bits(raw))
        }
        if type == execId {
            return .exec(pid: Int32(truncatingIfNeeded: pid.bits(raw)), oldPid: Int32(truncatingIfNeeded: oldPid.bits(raw)))
        }
        return nil
    }
}
