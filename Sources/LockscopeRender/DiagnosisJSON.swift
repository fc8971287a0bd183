import LockscopeCore
import LockscopeDiagnosis
import LockscopeTrace

/// `lockscope diagnose --json` (schema `lockscope.diagnosis/1`, docs/diagnose.md).
/// Each lock object is the `lockscope.report/1` lock (same keys as `who --json`)
/// with the diagnosis fields added; findings carry their evidence as typed values.
public struct DiagnosisJSON {
    public var syscallName: SyscallNamer
    /// The exit status the command gives each outcome (the executable's table).
    public var exitCode: (Diagnosis.Outcome) -> Int32

    public init(syscallName: @escaping SyscallNamer, exitCode: @escaping (Diagnosis.Outcome) -> Int32) {
        self.syscallName = syscallName
        self.exitCode = exitCode
    }

    public func value(_ d: Diagnosis) -> JSONValue {
        let report = LockReport(targets: d.targets, locks: d.locks.map(\.lock),
                                openers: d.locks.flatMap(\.openers), coverage: d.coverage)
        let base = ReportJSON(syscallName: syscallName).value(report)
        var baseLocks: [JSONValue] = []
        var targets: JSONValue = .array([])
        var openers: JSONValue = .array([])
        var coverage: JSONValue = .null
        if case .object(let fields) = base {
            for (k, v) in fields {
                switch k {
                case "locks": if case .array(let a) = v { baseLocks = a }
                case "targets": targets = v
                case "openers": openers = v
                case "coverage": coverage = v
                default: break
                }
            }
        }
        var locks: [JSONValue] = []
        for (i, ld) in d.locks.enumerated() {
            var fields: [(String, JSONValue)] = []
            if i < baseLocks.count, case .object(let f) = baseLocks[i] { fields = f }
            fields += [
                ("verdict", .string(ld.verdict)),
                ("waiting", .int(Int64(ld.waitingCount))),
                ("blocked", .int(Int64(ld.blockedCount))),
                ("polling", .int(Int64(ld.pollingCount))),
                ("oldest_wait_seconds", .double(ld.oldestWaitSeconds)),
                ("oldest_wait_source", .string(ld.oldestWait?.source.rawValue)),
                ("cause", ld.cause.map { finding($0) } ?? .null),
                ("holder_uninspectable", .bool(ld.holderUninspectable)),
            ]
            locks.append(.object(fields))
        }
        return .object([
            ("schema", .string("lockscope.diagnosis/1")),
            ("outcome", .string(d.outcome.rawValue)),
            ("exit_code", .int(Int64(exitCode(d.outcome)))),
            ("verdict", .array(d.verdict.map { .string($0) })),
            ("window_seconds", .double(d.windowSeconds)),
            ("activity_source", .string(d.activitySource?.rawValue)),
            ("activity_fallback", .string(d.activityFallback)),
            ("targets", targets),
            ("unlocked_targets", .array(d.unlockedTargets.map { .string($0.path ?? $0.argument) })),
            ("locks", .array(locks)),
            ("openers", openers),
            ("findings", .array(d.findings.map(finding))),
            ("activity", .array(d.activity.keys.sorted().map { activity(d.activity[$0]!) })),
            ("coverage", coverage),
        ] + (d.lockEvents.map { [("lock_events", ReportJSON.lockEvents($0))] } ?? []))
    }

    public func finding(_ f: Finding) -> JSONValue {
        .object([
            ("rule", .string(f.rule.rawValue)),
            ("severity", .string(f.severity.rawValue)),
            ("pid", .int(Int64(f.pid))),
            ("pids", .array(f.pids.map { .int(Int64($0)) })),
            ("lock", f.lock.map { .object([("device", .string($0.device)), ("inode", .int(Int64(bitPattern: $0.inode)))]) } ?? .null),
            ("summary", .string(f.summary)),
            ("evidence", .object(f.evidence.map { ($0.key, Self.value($0.value)) })),
            ("suggestion", .string(f.suggestion)),
        ])
    }

    public static func value(_ v: EvidenceValue) -> JSONValue {
        switch v {
        case .int(let i): return .int(i)
        case .double(let d): return .double(d)
        case .string(let s): return .string(s)
        case .bool(let b): return .bool(b)
        case .pid(let p): return .int(Int64(p))
        case .pids(let ps): return .array(ps.map { .int(Int64($0)) })
        case .strings(let ss): return .array(ss.map { .string($0) })
        case .ints(let xs): return .array(xs.map { .int($0) })
        }
    }

    func activity(_ a: ProcessActivity) -> JSONValue {
        .object([
            ("pid", .int(Int64(a.pid))),
            ("source", .string(a.source.rawValue)),
            ("window_seconds", .double(a.windowSeconds)),
            ("cpu_seconds", .double(a.cpuSeconds)),
            ("threads", .array(a.threads.map(thread))),
        ])
    }

    func thread(_ t: ThreadActivity) -> JSONValue {
        .object([
            ("tid", .int(Int64(t.tid))),
            ("state", .string(String(t.state))),
            ("syscall", .string(t.syscall)),
            ("call", .string(t.current.map { CallText.call($0, escaped: false) })),
            ("in_call_seconds", .double(t.inCallSeconds)),
            ("in_call_exact", .bool(t.inCallExact)),
            ("wchan", .string(t.wchan)),
            ("kernel_stack", t.kernelStack.map { .array($0.map { .string($0) }) } ?? .null),
            ("cpu_seconds", .double(t.cpuSeconds)),
            ("running_fraction", .double(t.runningFraction)),
            ("histogram", .array(t.histogram.map { .object([("label", .string($0.label)), ("fraction", .double($0.fraction))]) })),
            ("calls", .array(t.calls.map(observed))),
        ])
    }

    /// One call an event engine saw (kernel, ptrace): exact start and duration.
    func observed(_ c: ObservedCall) -> JSONValue {
        var result: JSONValue = .null
        switch c.result {
        case .value(let v)?: result = .object([("value", .int(v))])
        case .error(let e, let name)?: result = .object([("error", .string(name)), ("errno", .int(Int64(e)))])
        case nil: break
        }
        return .object([
            ("start_seconds", .double(c.startSeconds)),
            ("duration_seconds", .double(c.durationSeconds)),
            ("started_before", .bool(c.startedBefore)),
            ("name", .string(c.call.name)),
            ("call", .string(CallText.call(c.call, escaped: false))),
            ("result", result),
        ])
    }
}
