import LockscopeCore
import LockscopeTrace

/// Text for the tracer's values: the sampler's per-thread view, strace-like event
/// lines and the summary table. Calls are shown in `CallText`'s one format.
/// Untrusted text (comm, wchan) is escaped for the terminal.
public struct TraceText {
    public var style: Style

    public init(style: Style = .plain) { self.style = style }

    // MARK: - Numbers

    /// `12.345678` with `places` decimals (TraceBytes.fixed, as a String).
    public static func fixed(_ value: Double, places: Int) -> String {
        var out = TraceBytes()
        out.fixed(value, places: places)
        return out.string
    }

    public static func result(_ r: SyscallResult?) -> String {
        switch r {
        case nil: return "?"
        case .value(let v)?: return v > 0xffff_ffff || v < -0xffff ? "0x" + String(UInt64(bitPattern: v), radix: 16) : String(v)
        case .error(let e, let name)?: return "-1 " + name + " (errno " + String(e) + ")"
        }
    }

    // MARK: - Sampler

    /// The sampler's compact per-thread view.
    public func sampler(_ r: SamplerReport) -> [String] {
        var lines: [String] = []
        lines.append(style.dim("sampled \(r.rounds) round\(r.rounds == 1 ? "" : "s") over \(secondsText(r.observedSeconds)) at \(r.hz) Hz"
            + (r.interrupted ? " (interrupted)" : "") + "; nothing was stopped"))
        for p in r.processes {
            lines.append("")
            var head = style.bold("pid \(p.pid)") + " " + terminalSafe(p.comm) + "  " + String(p.state)
            if p.exited { head += "  " + style.yellow("exited during the window") }
            if p.tracerPid != 0 { head += "  " + style.yellow("traced by pid \(p.tracerPid)") }
            head += "  cpu " + secondsText(p.cpuSeconds)
            lines.append(style.fit(head))
            if !p.cmdline.isEmpty { lines.append(style.fit("  " + style.dim(displayCommandLine(p.cmdline, fallback: p.comm)))) }
            for t in p.threads {
                var line = "  tid \(t.tid)"
                if t.name != p.comm { line += " (" + terminalSafe(t.name) + ")" }
                line += "  " + String(t.state) + "  "
                if let c = t.current {
                    line += CallText.call(c)
                    if let s = t.inCallSeconds { line += "  " + style.yellow("in call ≥ " + secondsText(s)) }
                } else if t.exited {
                    line += "exited"
                } else {
                    line += t.dominant?.label ?? "?"
                }
                lines.append(line)
                var detail = "      samples: " + t.histogram.prefix(5).map {
                    $0.bucket.label + " " + formatDecimal($0.fraction * 100, places: 0) + "%"
                }.joined(separator: ", ")
                detail += "  cpu " + secondsText(t.cpuSeconds)
                if let w = t.wchan { detail += "  wchan " + terminalSafe(w) }
                lines.append(style.fit(style.dim(detail)))
            }
        }
        for e in r.skipped { lines.append(style.red("skipped: ") + terminalSafe(e.description)) }
        return lines
    }

    // MARK: - Ptrace

    /// One strace-like line per event.
    public func event(_ e: TraceEvent, multi: Bool = true) -> String {
        func stamp(_ t: Double, _ tid: Int32) -> String { TraceText.fixed(t, places: 6) + " [" + String(tid) + "] " }
        switch e {
        case .attached(let time, let pid, let tid, let inSyscall):
            return style.dim(stamp(time, tid) + "attached (pid \(pid))" + (inSyscall.map { ", in " + CallText.call($0) } ?? ""))
        case .syscall(let s):
            var out = TraceBytes()
            out.syscallLine(s, style: style)
            return out.string
        case .signal(let time, let tid, let sig):
            return stamp(time, tid) + "--- " + signalName(sig) + " ---"
        case .groupStop(let time, let tid, let sig):
            return stamp(time, tid) + "--- stopped by " + signalName(sig) + " ---"
        case .newTask(let time, let parent, let tid, let isThread):
            return style.dim(stamp(time, parent) + (isThread ? "new thread " : "new process ") + String(tid))
        case .exec(let time, let tid, let former):
            return stamp(time, tid) + "+++ execve" + (former != tid ? " (was thread \(former))" : "") + " +++"
        case .exited(let time, let tid, let status, let signal):
            if let s = signal { return stamp(time, tid) + "+++ killed by " + signalName(s) + " +++" }
            return stamp(time, tid) + "+++ exited with " + String(status ?? 0) + " +++"
        case .detached(let time, let tid):
            return style.dim(stamp(time, tid) + "detached")
        }
    }

    /// The summary: blocking calls first, then by total time.
    public func summary(_ s: TraceSummary) -> [String] {
        var lines: [String] = []
        let why: String
        switch s.endedBy {
        case .duration: why = "duration reached"
        case .interrupted(let sig): why = sig == 0 ? "stopped" : "interrupted by " + signalName(sig)
        case .allExited: why = "every traced thread exited"
        case .outputFailed: why = "output failed"
        }
        // The kernel engine attaches nothing; it can lose events when a ring overflows.
        let end = s.lostEvents.map { $0 == 0 ? "no event lost" : "\($0) event(s) lost (ring buffer full)" } ?? "all detached"
        lines.append(style.bold("summary") + style.dim(" — \(secondsText(s.wallSeconds)), \(s.tids.count) thread(s) in \(s.pids.count) process(es), \(why); \(end)"))
        var table = Table(headers: ["SYSCALL", "CALLS", "ERRORS", "TOTAL", "MAX", ""], rightAligned: [1, 2, 3, 4])
        for st in s.stats {
            let blocking = st.classes.contains(.blocking) || st.classes.contains(.lock)
            table.add([st.name, String(st.count), String(st.errors), shortTimeText(st.totalSeconds),
                       shortTimeText(st.maxSeconds), blocking ? "blocking" : ""])
        }
        lines += s.stats.isEmpty ? ["  (no system call completed)"] : table.render(style: style)
        return lines
    }
}

/// The tracer's event line, built on `TraceBytes` (the call through `CallText`'s format).
extension TraceBytes {
    mutating func sgr(_ code: StaticString, _ on: Bool) {
        guard on else { return }
        put("\u{1b}[")
        put(code)
        put("m")
    }

    /// `0.000123 [1234] poll(…) = 0 <3.001234>`.
    public mutating func syscallLine(_ s: TracedSyscall, style: Style) {
        fixed(s.time, places: 6)
        put(" [")
        int(Int64(s.tid))
        put("] ")
        if s.inProgressAtAttach {
            sgr("2", style.color)
            put("<in progress at attach> ")
            sgr("0", style.color)
        }
        call(s.call)
        if s.result == nil {
            put(" = ? ")
            sgr("33", style.color)
            put("<unfinished, ")
            put(secondsText(s.durationSeconds ?? 0))
            put(" so far>")
            sgr("0", style.color)
        } else {
            put(" = ")
            switch s.result {
            case .value(let v)?:
                if v > 0xffff_ffff || v < -0xffff { hex(UInt64(bitPattern: v)) } else { int(v) }
            case .error(let e, let name)?:
                put("-1 ")
                put(name)
                put(" (errno ")
                int(Int64(e))
                put(")")
            case nil: break
            }
            if let d = s.durationSeconds {
                put(" <")
                fixed(d, places: 6)
                put(">")
            }
        }
    }
}
