import LockscopeCore

/// Names a syscall number for the host architecture (the tracer's table); nil if unknown.
public typealias SyscallNamer = @Sendable (Int) -> String?

/// The `--json` form of a `LockReport` (schema: docs/json-schema.md,
/// `lockscope.report/1`). `who`, `waiters` and `list` print this same object.
public struct ReportJSON {
    public var syscallName: SyscallNamer

    public init(syscallName: @escaping SyscallNamer) { self.syscallName = syscallName }

    public func value(_ r: LockReport) -> JSONValue {
        let idx = ProtocolIndex(r.locks)
        return .object([
            ("schema", .string("lockscope.report/1")),
            ("targets", .array(r.targets.map(target))),
            ("locks", .array(r.locks.map { lock($0, idx) })),
            ("openers", .array(r.openers.map { opener($0, idx) })),
            ("coverage", coverage(r.coverage)),
        ] + (r.lockEvents.map { [("lock_events", Self.lockEvents($0))] } ?? []))
    }

    /// `"lock_events"`: present when a window was asked for (`waiters --window`, `diagnose`).
    public static func lockEvents(_ e: LockEventsCoverage) -> JSONValue {
        switch e {
        case .observed(let seconds, let lost):
            return .object([("available", .bool(true)), ("seconds", .double(seconds)), ("lost_events", .int(Int64(lost))),
                            ("unavailable_reason", .null), ("note", .string(e.note))])
        case .unavailable(let reason):
            return .object([("available", .bool(false)), ("seconds", .null), ("lost_events", .null),
                            ("unavailable_reason", .string(reason)), ("note", .string(e.note))])
        }
    }

    /// Writes the same document as `value(_:).serialized()`, one lock at a time, so
    /// memory stays flat when /proc/locks lists 100,000 locks.
    public func write<Out: TextOutputStream>(_ r: LockReport, to out: inout Out) {
        let idx = ProtocolIndex(r.locks)
        out.write("{\n  \"schema\": \"lockscope.report/1\",\n  \"targets\": ")
        writeArray(r.targets, to: &out, target)
        out.write(",\n  \"locks\": ")
        writeArray(r.locks, to: &out) { lock($0, idx) }
        out.write(",\n  \"openers\": ")
        writeArray(r.openers, to: &out) { opener($0, idx) }
        out.write(",\n  \"coverage\": ")
        coverage(r.coverage).write(to: &out, pretty: true, indent: 1)
        if let e = r.lockEvents {
            out.write(",\n  \"lock_events\": ")
            Self.lockEvents(e).write(to: &out, pretty: true, indent: 1)
        }
        out.write("\n}")
    }

    /// An array at the top object's level, formatted exactly as `JSONValue.write` would.
    func writeArray<T, Out: TextOutputStream>(_ items: [T], to out: inout Out, _ element: (T) -> JSONValue) {
        if items.isEmpty { out.write("[]"); return }
        out.write("[")
        for (i, item) in items.enumerated() {
            out.write(i == 0 ? "\n    " : ",\n    ")
            element(item).write(to: &out, pretty: true, indent: 2)
        }
        out.write("\n  ]")
    }

    func target(_ t: Target) -> JSONValue {
        .object(JSONValue.pathFields("argument", t.argument) + JSONValue.pathFields("path", t.path) + [
            ("device", .string(t.file.device)),
            ("inode", .int(Int64(bitPattern: t.file.inode))),
        ])
    }

    func lock(_ l: LockEntry, _ idx: ProtocolIndex) -> JSONValue {
        let proto = idx[l.file]
        var fields: [(String, JSONValue)] = JSONValue.pathFields("path", l.path) + [
            ("device", .string(l.file?.device)),
            ("inode", l.file.map { .int(Int64(bitPattern: $0.inode)) } ?? .null),
            ("kind", .string(l.kind.rawValue)),
            ("access", .string(l.access.rawValue)),
            ("mode", .string(l.mode)),
            ("start", .int(l.start)),
            ("end", .int(l.end)),
            ("kernel_pid", .int(Int64(l.kernelPid))),
            ("owner_status", .string(l.ownerStatus.rawValue)),
        ]
        fields += ExitingRender.json(l)
        fields += [
            ("protocol", ProtocolRender.json(proto, state: idx.state(of: l))),
            ("holders", .array(l.holders.map { holder($0, proto) })),
            ("waiters", .array(l.waiters.map { waiter($0, proto) })),
        ]
        return .object(fields)
    }

    func holder(_ h: Holder, _ proto: ProtocolReading?) -> JSONValue {
        var fields: [(String, JSONValue)] = [
            ("pid", .int(Int64(h.pid))),
            ("comm", .string(h.process?.comm)),
            ("fd", .int(h.fd)),
            ("owner", .bool(h.isOwner)),
            // Exact, from lock events that saw the grant during the window; null otherwise.
            ("held_seconds", .double(h.heldSeconds)),
        ]
        fields += JSONValue.pathFields("path_in_namespace", h.pathInNamespace)
        fields += [("protocol", ProtocolRender.json(proto, pid: h.pid, wanted: false))]
        fields += processFields(h.process)
        return .object(fields)
    }

    func waiter(_ w: Waiter, _ proto: ProtocolReading?) -> JSONValue {
        var fields: [(String, JSONValue)] = [
            ("pid", .int(Int64(w.pid))),
            ("tid", .int(w.tid)),
            ("comm", .string(w.process?.comm)),
            ("fd", .int(w.fd)),
            ("blocked_by", .int(w.blockedBy)),
            ("direct_blocker", .int(w.directBlocker)),
            ("queue_position", .int(Int64(w.queuePosition))),
            ("source", .string(w.source.rawValue)),
            ("kind", .string(w.kind.rawValue)),
            ("access", .string(w.access.rawValue)),
            ("start", .int(w.start)),
            ("end", .int(w.end)),
            // event: exact, lock events saw it queue; estimate: its process's age (an upper bound).
            ("wait_seconds", .double(w.wait?.seconds)),
            ("wait_source", .string(w.wait?.source.rawValue)),
            ("protocol", ProtocolRender.json(proto, pid: w.pid, wanted: true)),
        ]
        fields += processFields(w.process)
        return .object(fields)
    }

    func opener(_ o: Opener, _ idx: ProtocolIndex) -> JSONValue {
        var fields: [(String, JSONValue)] = [
            ("pid", .int(Int64(o.pid))),
            ("comm", .string(o.process?.comm)),
            ("fd", .int(o.fd.map(Int64.init))),
            ("activity", .string(o.activity.rawValue)),
            ("asleep", .bool(o.asleep)),
            // From kernel lock events over the window; null when they were not read or saw nothing.
            ("attempts", .int(o.attempts.map { Int64($0.attempts) })),
            ("failed_attempts", .int(o.attempts.map { Int64($0.failed) })),
            ("retry_interval_seconds", .double(o.attempts?.retryIntervalSeconds)),
            ("attempt_command", .string(o.attempts?.attemptCommand)),
            ("attempt_pids", .array((o.attempts?.attemptPids ?? []).map { .int(Int64($0)) })),
            ("device", .string(o.file.device)),
            ("inode", .int(Int64(bitPattern: o.file.inode))),
            ("protocol", ProtocolRender.json(idx[o.file], pid: o.pid, wanted: false)),
        ]
        fields += processFields(o.process)
        return .object(fields)
    }

    func processFields(_ p: ProcessFacts?) -> [(String, JSONValue)] {
        guard let p else { return [("process_visible", .bool(false))] }
        return [
            ("ppid", .int(Int64(p.ppid))),
            ("cmdline", .array(p.cmdline.map { .string($0) })),
            ("uid", .int(p.uid)),
            ("user", .string(p.user)),
            ("state", .string(String(p.state))),
            ("age_seconds", .double(p.ageSeconds)),
            ("tracer_pid", .int(Int64(p.tracerPid))),
        ] + ProcessPlace.jsonFields(p) + [
            ("cgroup", .string(p.cgroup)),
            ("pid_namespace", .string(p.pidNamespace)),
            ("threads", .array(p.threads.map(thread))),
        ]
    }

    func thread(_ t: ThreadFacts) -> JSONValue {
        .object([
            ("tid", .int(Int64(t.tid))),
            ("state", .string(String(t.state))),
            ("syscall", syscall(t.syscall)),
            ("wchan", .string(t.wchan)),
        ])
    }

    public func syscall(_ s: SyscallState) -> JSONValue {
        switch s {
        case .running: return .object([("status", .string("running"))])
        case .notInSyscall: return .object([("status", .string("blocked-outside-syscall"))])
        case .unavailable: return .object([("status", .string("unavailable"))])
        case .inSyscall(let nr, let args, _, _):
            return .object([
                ("status", .string("in-syscall")),
                ("number", .int(Int64(nr))),
                ("name", .string(syscallName(nr))),
                ("args", .array(args.map { .string("0x" + String($0, radix: 16)) })),
            ])
        }
    }

    func coverage(_ c: ScanCoverage) -> JSONValue {
        .object([
            ("processes_scanned", .int(Int64(c.processesScanned))),
            ("descriptors_scanned", .int(Int64(c.descriptorsScanned))),
            ("processes_denied", .int(Int64(c.processesDenied))),
            ("processes_vanished", .int(Int64(c.processesVanished))),
            // The lowest denied pids, at most 16 (processes_denied counts them all).
            ("denied_pids", .array(c.denied.map { .int(Int64($0.pid)) })),
        ])
    }
}
