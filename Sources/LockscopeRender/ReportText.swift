import LockscopeCore
#if canImport(Glibc)
import Glibc
#endif

/// Text for people: `who`, `waiters` and `list` views of a `LockReport`.
/// Every name and command line goes through `terminalSafe` before it is printed.
public struct ReportText {
    public var style: Style
    public var syscallName: SyscallNamer
    /// `waiters`: list each waiter instead of grouping identical ones.
    public var each = false

    public init(style: Style, syscallName: @escaping SyscallNamer, each: Bool = false) {
        self.style = style
        self.syscallName = syscallName
        self.each = each
    }

    // MARK: who

    public func who(_ r: LockReport) -> [String] {
        let idx = ProtocolIndex(r.locks)
        return perTarget(r) { _, locks, openers, out in
            if locks.isEmpty {
                out.append("  no locks" + (openers.isEmpty ? "" : " (open in \(openers.count) process\(openers.count == 1 ? "" : "es"))"))
                return
            }
            for (i, l) in locks.enumerated() {
                out.append("  " + lockSummary(l) + waitSummary(l, openers: openers))
                if i == 0 { out += protocolLines(idx[l.file], r) }
                if let note = ownerNote(l) { out += style.wrap("  " + note, indent: "    ").map(style.yellow) }
                out += ExitingRender.lines(l).enumerated().map { "  " + ($0.offset == 0 ? style.yellow($0.element) : $0.element) }
                var table = Table(headers: ["ROLE", "PID", "FD", "USER", "ST", "AGE", "IN", "COMMAND"], rightAligned: [1, 2])
                for h in l.holders {
                    let p = h.process
                    table.add([h.isOwner ? "owner" : "shared", "\(h.pid)", h.fd.map(String.init) ?? "-", p?.user ?? p?.uid.map(String.init) ?? "-",
                               p.map { String($0.state) } ?? "?", formatAge(p?.ageSeconds), currentCall(p), command(p) + containerSuffix(p, observer: r.observerPidNamespace)
                               + (h.pathInNamespace.map { "  (sees " + terminalSafe($0) + ")" } ?? "")])
                }
                out += table.render(style: style, indent: "    ")
            }
        }
    }

    /// One block per target: a heading, then what `body` adds for its locks and
    /// openers; the coverage note once at the end.
    func perTarget(_ r: LockReport, _ body: (Target, [LockEntry], [Opener], inout [String]) -> Void) -> [String] {
        var out: [String] = []
        for (i, t) in r.targets.enumerated() {
            if i > 0 { out.append("") }
            out.append(heading(t))
            body(t, r.locks.filter { $0.file == t.file }, r.openers.filter { $0.file == t.file }, &out)
        }
        // No line wider than the terminal, whatever built it.
        return (out + coverageNote(r.coverage)).map(style.fit)
    }

    // MARK: waiters

    public func waiters(_ r: LockReport) -> [String] {
        let idx = ProtocolIndex(r.locks)
        let lines = perTarget(r) { _, locks, openers, out in
            if locks.isEmpty && openers.isEmpty { out.append("  no locks, nobody waiting"); return }
            for (i, l) in locks.enumerated() {
                let holder = l.holders.first.map { "\(terminalSafe($0.process?.comm ?? "?"))[\($0.pid)]" } ?? "pid \(l.kernelPid)"
                out.append("  " + lockSummary(l) + " held by " + style.bold(holder))
                if i == 0 { out += protocolLines(idx[l.file], r) }
                if l.waiters.isEmpty { out.append("    nobody blocked in the kernel"); continue }
                out.append("    " + style.red("blocked in the kernel: \(l.waiters.count)"))
                if each {
                    var table = Table(headers: ["POS", "PID", "TID", "FD", "WANTS", "AGE", "BLOCKED_BY", "BEHIND", "COMMAND"], rightAligned: [0, 1, 2, 3])
                    for w in l.waiters {
                        table.add(["\(w.queuePosition)", "\(w.pid)", w.tid.map(String.init) ?? "-", w.fd.map(String.init) ?? "-",
                                   w.access.rawValue, Self.waitColumn(w.wait), w.blockedBy.map(String.init) ?? "-",
                                   w.directBlocker.map(String.init) ?? "-", command(w.process)])
                    }
                    out += table.render(style: style, indent: "      ")
                } else {
                    for g in groups(l.waiters.map { ($0.process?.comm ?? "?", $0.pid, $0.wait) }) {
                        let first = l.waiters.first(where: { ($0.process?.comm ?? "?") == g.name })!
                        out.append(style.fit("      " + g.line + "  queue \(queueRange(l.waiters, comm: g.name))  blocked by \(first.blockedBy.map(String.init) ?? "?")"))
                    }
                }
                if l.waiters.contains(where: { $0.waitedSeconds != nil }) {
                    out.append(style.fit("      * exact wait, from lock events; other ages: the process's age (an upper bound), at the window's end too"))
                }
            }
            let polling = openers.filter { $0.activity == .polling }
            let asleep = openers.filter { $0.activity == .idle && $0.asleep }
            let idle = openers.filter { $0.activity == .idle && !$0.asleep }
            if !polling.isEmpty {
                let how = idx[locks.first?.file].flatMap(\.retryMechanism)
                    ?? (locks.first.map { pollWording($0.kind) } ?? "non-blocking attempts between sleeps")
                out.append("  " + style.yellow("polling (\(how)): \(polling.count)"))
                out += openerLines(polling.filter { $0.attempts == nil })
                out += polling.filter { $0.attempts != nil }.map(eventPollerLine)
            }
            if !asleep.isEmpty {
                out.append("  idle (open, asleep): \(asleep.count)")
                out += openerLines(asleep)
            }
            if !idle.isEmpty {
                out.append("  open but not waiting: \(idle.count)")
                out += openerLines(idle)
            }
        }
        return lines + (r.lockEvents.map { e -> [String] in
            if case .unavailable = e { return [style.yellow("note: " + terminalSafe(e.note))] }
            return [style.dim("note: " + e.note)]
        } ?? [])
    }

    /// `3 attempts, 3 refused, every 1 s` (+ `: flock, a new process each, pids 9 10 11`).
    public static func attemptsText(_ a: LockAttempts) -> String {
        var s = "\(a.attempts) attempt\(a.attempts == 1 ? "" : "s"), \(a.failed) refused"
        if let iv = a.retryIntervalSeconds { s += ", every " + durationText(iv) }
        if let cmd = a.attemptCommand {
            s += "; each by a new " + terminalSafe(cmd)
            let pids = a.attemptPids.map(String.init)
            if !pids.isEmpty { s += " (pid\(pids.count == 1 ? "" : "s") " + (pids.count <= 6 ? pids : pids.prefix(4) + ["…", pids.last!]).joined(separator: " ") + ")" }
        }
        return s + " (lock events)"
    }

    /// A poller kernel lock events saw: `      apt-get[812]  3 attempts, 3 refused, every 1 s (lock events)`
    /// (`fd 3` after the name when it had the file open when scanned).
    func eventPollerLine(_ o: Opener) -> String {
        let who = terminalSafe(o.process?.comm ?? o.attempts?.comm ?? "?") + "[\(o.pid)]" + (o.fd.map { " fd \($0)" } ?? "")
        return style.fit("      " + who + "  " + Self.attemptsText(o.attempts!))
    }

    /// What a poller of this kind of lock retries with: flock's `LOCK_NB`, fcntl's `F_SETLK`.
    func pollWording(_ kind: LockKind) -> String {
        switch kind {
        case .flock: return "LOCK_NB attempts between sleeps"
        case .posix: return "F_SETLK attempts between sleeps"
        case .ofd: return "F_OFD_SETLK attempts between sleeps"
        default: return "non-blocking attempts between sleeps"
        }
    }

    /// `    SQLite database: python3[812] holds EXCLUSIVE (writing)` and what that means, once per file.
    func protocolLines(_ p: ProtocolReading?, _ r: LockReport) -> [String] {
        guard let p else { return [] }
        let name: (Int32) -> String = { pid in
            let comm = r.locks.lazy.flatMap(\.holders).first { $0.pid == pid }?.process?.comm
                ?? r.locks.lazy.flatMap(\.waiters).first { $0.pid == pid }?.process?.comm
                ?? r.openers.first { $0.pid == pid }?.process?.comm
            return comm.map { terminalSafe($0) + "[\(pid)]" } ?? "pid \(pid)"
        }
        return [style.fit("    " + ProtocolRender.line(p, name: name)), style.fit("      " + p.meaning)]
    }

    func openerLines(_ openers: [Opener]) -> [String] {
        if each {
            var table = Table(headers: ["PID", "FD", "AGE", "IN", "COMMAND"], rightAligned: [0, 1])
            for o in openers {
                table.add(["\(o.pid)", o.fd.map(String.init) ?? "-", formatAge(o.process?.ageSeconds), currentCall(o.process), command(o.process)])
            }
            return table.render(style: style, indent: "      ")
        }
        return groups(openers.map { ($0.process?.comm ?? "?", $0.pid, $0.process?.ageSeconds.map { WaitDuration(seconds: $0, source: .estimate) }) })
            .map { style.fit("      " + $0.line) }
    }

    // MARK: list

    /// `list`: the chosen columns (ListColumns) of each row, then the coverage note.
    public func list(_ r: LockReport, rows: [ListRow], columns: [ListColumn], context: ColumnContext, layout: ColumnLayout) -> [String] {
        if r.locks.isEmpty { return ["no locks"] + coverageNote(r.coverage) }
        return renderColumns(rows, columns: columns, context: context, layout: layout, style: style) + exitingNotes(r)
            + coverageNote(r.coverage)
    }

    // MARK: pieces

    func heading(_ t: Target) -> String {
        style.bold(terminalSafe(t.path ?? t.argument)) + "  " + style.dim(t.file.description)
    }

    func lockSummary(_ l: LockEntry) -> String {
        let range: String
        if l.start == 0 && l.end == nil { range = "whole file" } else { range = "bytes \(l.start)–\(l.end.map(String.init) ?? "EOF")" }
        return "\(l.kind.rawValue) \(l.access.rawValue) (\(range))"
    }

    func waitSummary(_ l: LockEntry, openers: [Opener]) -> String {
        var parts: [String] = []
        if !l.waiters.isEmpty { parts.append(style.red("\(l.waiters.count) waiting")) }
        let polling = openers.filter { $0.activity == .polling }.count
        if polling > 0 { parts.append(style.yellow("\(polling) polling")) }
        return parts.isEmpty ? "" : "; " + parts.joined(separator: ", ") + " (lockscope waiters)"
    }

    func ownerNote(_ l: LockEntry) -> String? {
        switch l.ownerStatus {
        case .gone: return "the owner /proc/locks names (pid \(l.kernelPid)) has exited; the lock lives on in a descriptor it passed on"
        case .reused: return "pid \(l.kernelPid) from /proc/locks now belongs to a process that does not hold the lock (pid reused); the lock lives on in an inherited descriptor"
        case .ofd: return "open-file-description lock: the kernel names no pid (-1); holders found through fdinfo"
        case .invisible: return "the owner is not visible from this pid namespace (pid 0 in /proc/locks)"
        case .unknown: return l.holders.isEmpty ? "could not inspect the owner's descriptors" : nil
        case .alive, .exiting: return nil
        }
    }

    func currentCall(_ p: ProcessFacts?) -> String {
        guard let p, let main = p.threads.first(where: { $0.tid == p.pid }) ?? p.threads.first else { return "-" }
        let extra = p.threads.count > 1 ? " +\(p.threads.count - 1)t" : ""
        switch main.syscall {
        case .running: return "running" + extra
        case .notInSyscall: return (main.state == "D" ? "D:" + (main.wchan ?? "?") : "-") + extra
        case .unavailable: return "?" + extra
        case .inSyscall(let nr, _, _, _): return (syscallName(nr) ?? "syscall \(nr)") + extra
        }
    }

    func command(_ p: ProcessFacts?) -> String {
        guard let p else { return "(gone)" }
        return displayCommandLine(p.cmdline, fallback: p.comm)
    }

    /// `  (pid 7 in docker container 0123456789ab)`, `  (in pid ns pid:[4026532201])`, or "".
    func containerSuffix(_ p: ProcessFacts?, observer: String?) -> String {
        ProcessPlace.text(p, observer: observer).map { "  (" + $0 + ")" } ?? ""
    }

    struct Group {
        var name: String
        var line: String
    }

    /// The AGE column of a waiter: its wait, `*` when lock events measured it exactly.
    static func waitColumn(_ w: WaitDuration?) -> String {
        guard let w else { return "-" }
        return formatAge(w.seconds) + (w.source == .event ? "*" : "")
    }

    /// "iptables ×61  pids 36060 36061 … 36121  oldest 41s", in first-seen order
    /// (`oldest 1.2s*` when lock events measured it exactly).
    func groups(_ members: [(name: String, pid: Int32, age: WaitDuration?)]) -> [Group] {
        var order: [String] = []
        var byName: [String: [(pid: Int32, age: WaitDuration?)]] = [:]
        for m in members {
            if byName[m.name] == nil { order.append(m.name) }
            byName[m.name, default: []].append((m.pid, m.age))
        }
        return order.map { name in
            let list = byName[name]!
            let pids = list.map { "\($0.pid)" }
            let shown = pids.count <= 6 ? pids.joined(separator: " ") : (pids.prefix(4) + ["…", pids.last!]).joined(separator: " ")
            let oldest = WaitDuration.longest(list.compactMap(\.age))
            return Group(name: name, line: "\(terminalSafe(name)) ×\(list.count)  pid\(list.count == 1 ? "" : "s") \(shown)  oldest \(Self.waitColumn(oldest))")
        }
    }

    func queueRange(_ waiters: [Waiter], comm: String) -> String {
        let positions = waiters.filter { ($0.process?.comm ?? "?") == comm }.map(\.queuePosition)
        guard let lo = positions.min(), let hi = positions.max() else { return "-" }
        return lo == hi ? "\(lo)" : "\(lo)–\(hi)"
    }

    /// `list`: one note per lock whose owner is exiting, with the threads still closing files.
    func exitingNotes(_ r: LockReport) -> [String] {
        r.locks.filter { $0.ownerStatus == .exiting }.flatMap { l -> [String] in
            var lines = ExitingRender.lines(l)
            lines[0] = style.yellow("note: pid \(l.kernelPid) holding \(l.file?.description ?? "?") is " + lines[0])
            return lines.map { style.fit($0) }
        }
    }

    func coverageNote(_ c: ScanCoverage) -> [String] {
        guard c.processesDenied > 0 else { return [] }
        var n = "\(c.processesDenied) process\(c.processesDenied == 1 ? "" : "es")"
        // Few enough to name: "pid 1 (init), pid 412 (systemd-journal)".
        if c.processesDenied <= 5 && c.denied.count == c.processesDenied {
            n += " (" + c.denied.map { "pid \($0.pid)" + ($0.comm.map { " (" + terminalSafe($0) + ")" } ?? "") }.joined(separator: ", ") + ")"
        }
        let advice = geteuid() == 0
            ? "permission denied even as root (protected or in another user namespace)"
            : "permission denied — run as root for a complete answer"
        return style.wrap("note: \(n) could not be inspected: \(advice)", indent: "  ").map(style.yellow)
    }
}
