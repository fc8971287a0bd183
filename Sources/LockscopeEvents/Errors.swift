import SystemPackage

/// Everything the kernel-event module can fail with, with its context. The
/// executable turns these into messages and exit codes.
public enum EventsError: Error, Equatable, Sendable {
    /// perf_event_open or tracefs needs privileges this process lacks
    /// (not root, or perf_event_paranoid refuses tracepoints).
    case notPermitted(String)
    /// No tracefs is mounted and a private mount was impossible.
    case tracefsUnavailable(String)
    /// The running kernel has no such tracepoint (`filelock/flock_lock_inode`).
    case noSuchTracepoint(String)
    /// A `format` file that does not parse.
    case malformedFormat(tracepoint: String, line: String)
    /// A tracepoint lacks a field the decoder needs.
    case missingField(tracepoint: String, field: String)
    /// perf_event_open(2) failed for a tracepoint on a CPU.
    case perfOpen(tracepoint: String, cpu: Int, errno: Errno)
    /// An ioctl or mmap on a perf fd failed.
    case perfSetup(call: String, errno: Errno)
    /// The kernel refused an in-kernel filter expression.
    case badFilter(String, Errno)
}

extension EventsError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .notPermitted(let s): return s
        case .tracefsUnavailable(let s): return "tracefs unavailable: \(s)"
        case .noSuchTracepoint(let s): return "this kernel has no tracepoint \(s)"
        case .malformedFormat(let t, let l): return "tracepoint \(t): unexpected format line: \(l)"
        case .missingField(let t, let f): return "tracepoint \(t) has no field \(f)"
        case .perfOpen(let t, let cpu, let e): return "perf_event_open(\(t), cpu \(cpu)): \(e)"
        case .perfSetup(let c, let e): return "\(c): \(e)"
        case .badFilter(let f, let e): return "tracepoint filter \"\(f)\" refused: \(e)"
        }
    }
}
