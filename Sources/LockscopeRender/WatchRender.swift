import LockscopeCore
import LockscopeEvents

/// `watch` output: one line (or JSON line) per lock operation, the summary as
/// text or as the `lockscope.watch/1` document, and the live terminal view.
/// Times are seconds since the watch started.
public struct WatchRender: Sendable {
    public var style: Style
    /// CLOCK_MONOTONIC ns at the start of the watch.
    public var start: UInt64

    public init(style: Style, start: UInt64) {
        self.style = style
        self.start = start
    }

    func since(_ t: UInt64) -> Double { Double(Int64(bitPattern: t &- start)) / 1e9 }

    public static func lockName(_ key: LockKey, path: String?) -> String {
        path.map(terminalSafe) ?? key.file.description
    }

    static func typeName(_ t: LockType) -> String {
        switch t {
        case .read: return "READ"
        case .write: return "WRITE"
        case .unlock: return "UNLOCK"
        default: return t.description
        }
    }

    public static func outcomeName(_ o: LockOperation.Outcome) -> String {
        switch o {
        case .acquired: return "acquired"
        case .queued: return "queued"
        case .granted: return "granted"
        case .failed: return "failed"
        case .abandoned: return "abandoned"
        case .released: return "released"
        }
    }

    static func errnoName(_ e: Int32) -> String {
        switch e {
        case 11: return "EAGAIN"
        case 35: return "EDEADLK"
        case 4: return "EINTR"
        case 512: return "ERESTARTSYS"
        case 37: return "ENOLCK"
        default: return "errno \(e)"
        }
    }

    /// `   1.204513  flock[27892]  FLOCK WRITE  /tmp/lock  granted  waited 0.203s`
    public func eventLine(_ op: LockOperation, path: String?) -> String {
        var line = pad(formatDecimal(since(op.time), places: 6), 11) + "  "
        line += terminalSafe(op.comm.description) + "[\(op.pid)]  " + op.lock.kind.rawValue + " "
        line += (op.outcome == .released ? "UNLOCK" : Self.typeName(op.type)) + "  "
        line += Self.lockName(op.lock, path: path) + "  "
        if let r = op.range { line += Self.rangeText(r) + "  " }
        switch op.outcome {
        case .acquired: line += style.green("acquired")
        case .granted: line += style.green("granted") + "  waited " + seconds(op.waited)
        case .queued: line += style.yellow("queued") + (op.blockedBy.map { "  behind \($0)" } ?? "")
        case .failed(let e): line += style.red("failed " + Self.errnoName(e)) + (op.blockedBy.map { "  held by \($0)" } ?? "")
        case .abandoned: line += style.red("gave up") + "  waited " + seconds(op.waited)
        case .released:
            line += "released  held " + seconds(op.held)
            if let b = op.brokenBy { line += "  broken by \(b)" }
            if let d = op.breakNanoseconds { line += " after " + seconds(d) }
            if let r = op.resolution, r != .released { line += "  (" + Self.resolutionName(r) + ")" }
        }
        return line
    }

    /// `bytes 0-99`, `bytes 100-EOF` (inclusive, as fs/locks.c keeps them).
    public static func rangeText(_ r: HeldRange) -> String {
        "bytes \(r.start)-" + (r.end == .max ? "EOF" : String(r.end))
    }

    public static func resolutionName(_ r: LeaseBreak.Resolution) -> String {
        switch r {
        case .released: return "released"
        case .downgraded: return "downgraded"
        case .timedOut: return "lease-break-time ran out"
        case .closed: return "closed without F_SETLEASE"
        case .pending: return "still breaking"
        }
    }

    static func rangeJSON(_ r: HeldRange) -> JSONValue {
        .object([("start", .int(r.start)), ("end", r.end == .max ? .null : .int(r.end)), ("type", .string(typeName(r.type)))])
    }

    func seconds(_ ns: UInt64?) -> String { ns.map { formatDecimal(Double($0) / 1e9, places: 3) + "s" } ?? "-" }

    func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }

    /// One JSON line per operation (`--events --json`, docs/watch.md).
    public func eventJSON(_ op: LockOperation, path: String?) -> JSONValue {
        var errnoValue: JSONValue = .null
        if case .failed(let e) = op.outcome { errnoValue = .string(Self.errnoName(e)) }
        return .object([
            ("time", .double(since(op.time))),
            ("pid", .int(Int64(op.pid))),
            ("comm", .string(op.comm.description)),
        ] + JSONValue.pathFields("path", path) + [
            ("device", .string(op.lock.file.device)),
            ("inode", .int(Int64(bitPattern: op.lock.file.inode))),
            ("kind", .string(op.lock.kind.rawValue)),
            ("type", .string(op.outcome == .released ? "UNLOCK" : Self.typeName(op.type))),
            ("outcome", .string(Self.outcomeName(op.outcome))),
            ("errno", errnoValue),
            ("waited_seconds", .double(op.waited.map { Double($0) / 1e9 })),
            ("held_seconds", .double(op.held.map { Double($0) / 1e9 })),
            ("blocked_by", .int(op.blockedBy)),
            ("range", op.range.map(Self.rangeJSON) ?? .null),
            ("broken_by", .int(op.brokenBy)),
            ("break_seconds", .double(op.breakNanoseconds.map { Double($0) / 1e9 })),
            ("resolution", .string(op.resolution?.rawValue)),
        ])
    }

    static func durations(_ d: DurationSummary) -> JSONValue {
        .object([("count", .int(Int64(d.count))), ("sum", .double(d.sum)), ("max", .double(d.max)),
                 ("p50", .double(d.p50)), ("p90", .double(d.p90)), ("p99", .double(d.p99))])
    }

    /// The `lockscope.watch/1` summary document.
    public static func summaryJSON(_ s: WatchSummary, source: String) -> JSONValue {
        .object([
            ("schema", .string("lockscope.watch/1")),
            ("source", .string(source)),
            ("duration_seconds", .double(s.durationSeconds)),
            ("locks", .array(s.locks.map { l in
                .object(JSONValue.pathFields("path", l.path) + [
                    ("device", .string(l.lock.file.device)),
                    ("inode", .int(Int64(bitPattern: l.lock.file.inode))),
                    ("kind", .string(l.lock.kind.rawValue)),
                    ("acquisitions", .int(Int64(l.acquisitions))),
                    ("contended", .int(Int64(l.contended))),
                    ("failed_attempts", .int(Int64(l.failedAttempts))),
                    ("abandoned_waits", .int(Int64(l.abandonedWaits))),
                    ("wait_seconds", durations(l.wait)),
                    ("hold_seconds", durations(l.hold)),
                    ("holder", .int(l.holder)),
                    ("holder_seconds", .double(l.holderSeconds)),
                    ("waiters_now", .int(Int64(l.waitersNow))),
                    ("holders", .array(l.holders.map { h in
                        .object([("pid", h.pid == 0 ? .null : .int(Int64(h.pid))), ("comm", .string(h.pid == 0 ? nil : h.comm)),
                                 ("seconds", .double(h.seconds)), ("ranges", .array(h.ranges.map(rangeJSON)))])
                    })),
                    ("lease_breaks", l.lock.kind != .lease ? .null : .object([
                        ("count", .int(Int64(l.breakCount))), ("sum", .double(l.breakSeconds)), ("max", .double(l.breakMaxSeconds)),
                        ("breaks", .array(l.breaks.map { b in
                            .object([("holder", b.holder == 0 ? .null : .int(Int64(b.holder))),
                                     ("holder_comm", .string(b.holder == 0 ? nil : b.holderComm)),
                                     ("breaker", .int(b.breaker)), ("breaker_comm", .string(b.breakerComm)),
                                     ("seconds", .double(b.seconds)), ("resolution", .string(b.resolution.rawValue))])
                        })),
                    ])),
                    ("processes", .array(l.processes.map { p in
                        .object([
                            ("pid", .int(Int64(p.pid))),
                            ("comm", .string(p.comm)),
                            ("acquisitions", .int(Int64(p.acquisitions))),
                            ("waits", .int(Int64(p.waits))),
                            ("wait_seconds", .double(p.waitSeconds)),
                            ("failed_attempts", .int(Int64(p.failedAttempts))),
                            ("hold_seconds", .double(p.holdSeconds)),
                            ("attempts", .int(Int64(p.attempts))),
                            ("retry_interval_seconds", .double(p.retryIntervalSeconds)),
                            ("attempt_command", .string(p.attemptCommand)),
                            ("attempt_processes", .int(Int64(p.attemptProcesses))),
                        ])
                    })),
                ])
            })),
            ("lost_events", .int(Int64(s.lostEvents))),
        ])
    }

    static func secs(_ v: Double) -> String { formatDecimal(v, places: 3) + "s" }

    /// `python3[812]`, or `?` for a holder from before the watch.
    static func pidText(_ pid: Int32, _ comm: String) -> String {
        pid == 0 ? "?" : terminalSafe(comm) + "[\(pid)]"
    }

    /// The summary for people: one block per lock with its processes.
    public func summaryText(_ s: WatchSummary, source: String) -> [String] {
        var out: [String] = []
        let lost = s.lostEvents > 0 ? ", \(s.lostEvents) events lost" : ""
        let head = style.fit("lock activity over " + formatDecimal(s.durationSeconds, places: 1) + "s" + lost + " (" + source + ")")
        out.append(style.color ? style.bold(head) : head)
        if s.locks.isEmpty { out.append("  no lock activity"); return out }
        for l in s.locks {
            out.append("")
            var head = style.bold(Self.lockName(l.lock, path: l.path)) + "  " + l.lock.kind.rawValue
            if l.path != nil { head += "  " + l.lock.file.description }
            out.append(style.fit(head))
            out.append("  acquisitions \(l.acquisitions), contended \(l.contended), failed attempts \(l.failedAttempts)"
                       + (l.abandonedWaits > 0 ? ", gave up \(l.abandonedWaits)" : ""))
            if l.wait.count > 0 {
                out.append("  wait  n=\(l.wait.count) total " + Self.secs(l.wait.sum) + "  p50 " + Self.secs(l.wait.p50)
                           + "  p90 " + Self.secs(l.wait.p90) + "  p99 " + Self.secs(l.wait.p99) + "  max " + Self.secs(l.wait.max))
            }
            if l.hold.count > 0 {
                out.append("  hold  n=\(l.hold.count) total " + Self.secs(l.hold.sum) + "  p50 " + Self.secs(l.hold.p50)
                           + "  p90 " + Self.secs(l.hold.p90) + "  p99 " + Self.secs(l.hold.p99) + "  max " + Self.secs(l.hold.max))
            }
            if l.holders.count > 1 || l.holders.contains(where: { !($0.ranges.count == 1 && $0.ranges[0].isWholeFile) }) {
                for h in l.holders {
                    out.append("  held now by " + Self.pidText(h.pid, h.comm) + " for " + formatAge(h.seconds) + ": "
                               + h.ranges.map { Self.typeName($0.type) + " " + Self.rangeText($0) }.joined(separator: ", "))
                }
                if l.waitersNow > 0 { out.append("  \(l.waitersNow) waiting") }
            } else if let h = l.holder {
                out.append("  held now by " + (h == 0 ? "a process from before the watch" : "\(h)") + " for " + formatAge(l.holderSeconds)
                           + (l.waitersNow > 0 ? ", \(l.waitersNow) waiting" : ""))
            }
            if l.lock.kind == .lease && !l.breaks.isEmpty {
                out.append("  lease breaks \(l.breakCount), total " + Self.secs(l.breakSeconds) + ", max " + Self.secs(l.breakMaxSeconds))
                for b in l.breaks.suffix(5) {
                    out.append("    lease of " + Self.pidText(b.holder, b.holderComm) + " broken by "
                               + (b.breaker.map { Self.pidText($0, b.breakerComm ?? "") } ?? "?") + ": "
                               + Self.resolutionName(b.resolution) + " after " + Self.secs(b.seconds))
                }
            }
            var table = Table(headers: ["PID", "COMMAND", "ACQ", "WAITS", "WAITED", "FAILED", "HELD", "RETRIES"],
                              rightAligned: [0, 2, 3, 4, 5, 6])
            for p in l.processes {
                var retries = "-"
                if let cmd = p.attemptCommand {
                    retries = "\(p.attemptProcesses)× " + terminalSafe(cmd)
                        + (p.retryIntervalSeconds.map { " every " + formatDecimal($0, places: 1) + "s" } ?? "")
                } else if let r = p.retryIntervalSeconds, p.failedAttempts > 0 {
                    retries = "every " + formatDecimal(r, places: 1) + "s"
                }
                table.add(["\(p.pid)", terminalSafe(p.comm), "\(p.acquisitions)", "\(p.waits)", Self.secs(p.waitSeconds),
                           "\(p.failedAttempts)", Self.secs(p.holdSeconds), retries])
            }
            out += table.render(style: style)
        }
        return out
    }

    /// The live view (a full screen, top-like): one row per lock with activity,
    /// cut to the terminal width and to `rows` lines.
    public func liveView(_ s: WatchSummary, elapsed: Double, events: UInt64, rows: Int) -> [String] {
        var out: [String] = []
        out.append(style.fit("lockscope watch  " + formatDecimal(elapsed, places: 0) + "s  \(events) events"
                             + (s.lostEvents > 0 ? "  \(s.lostEvents) lost" : "") + "  (q to quit)"))
        var table = Table(headers: ["ACQ", "WAITS", "WAITED", "MAXWAIT", "FAILED", "WAITING", "HOLDER", "HELD", "KIND", "LOCK"],
                          rightAligned: [0, 1, 2, 3, 4, 5])
        for l in s.locks.prefix(max(0, rows - 3)) {
            table.add(["\(l.acquisitions)", "\(l.contended)", Self.secs(l.wait.sum), Self.secs(l.wait.max), "\(l.failedAttempts)",
                       "\(l.waitersNow)", l.holder.map { String($0) + (l.holders.count > 1 ? "+\(l.holders.count - 1)" : "") } ?? "-", l.holder == nil ? "-" : formatAge(l.holderSeconds),
                       l.lock.kind.rawValue, Self.lockName(l.lock, path: l.path)])
        }
        out += table.render(style: style, indent: "")
        if s.locks.isEmpty { out.append("no lock activity yet") }
        return out
    }
}
