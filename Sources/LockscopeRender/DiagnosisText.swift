import LockscopeCore
import LockscopeDiagnosis
import LockscopeTrace
#if canImport(Glibc)
import Glibc
#endif

/// `lockscope diagnose` for people: the verdict first, then the wait-for tree,
/// then each finding with its evidence and suggestion. Every name, path and
/// command line goes through `terminalSafe`.
public struct DiagnosisText {
    public var style: Style
    /// Show every evidence item (the default); false keeps only the summary and suggestion.
    public var evidence = true

    public init(style: Style, evidence: Bool = true) {
        self.style = style
        self.evidence = evidence
    }

    public func render(_ d: Diagnosis) -> [String] {
        var out: [String] = []
        for line in d.verdict {
            out += wrap(terminalSafe(line), indent: "", hanging: "  ").enumerated().map { i, l in i == 0 ? style.bold(l) : l }
        }
        let tree = TreeBuilder(d: d)
        for ld in d.locks {
            out.append("")
            out += tree.lines(for: ld).map { style.fit($0) }
        }
        if !d.findings.isEmpty {
            out.append("")
            out.append(style.bold("Findings"))
            // Several locks (diagnose with no FILE): each finding names the lock it explains.
            let files = Set(d.locks.compactMap(\.lock.file))
            for f in d.findings {
                out += finding(f, lock: files.count > 1 ? lockName(f.lock, in: d) : nil)
            }
        }
        out += notes(d)
        return out
    }

    /// `/run/xtables.lock (fe:00:16015361)`, or the identity alone when no path is known.
    func lockName(_ file: FileIdentity?, in d: Diagnosis) -> String? {
        guard let file else { return nil }
        let path = (d.locks.map(\.lock) + d.graph.locks).first { $0.file == file && $0.path != nil }?.path
        return path.map { terminalSafe($0) + " (" + file.description + ")" } ?? file.description
    }

    func finding(_ f: Finding, lock: String? = nil) -> [String] {
        var out: [String] = []
        let tag = "[" + f.rule.rawValue + "]"
        let coloured: String
        switch f.severity {
        case .critical: coloured = style.red(tag)
        case .warning: coloured = style.yellow(tag)
        case .info: coloured = style.dim(tag)
        }
        let head = wrap(terminalSafe(f.summary), indent: "", hanging: "    ", firstWidthPenalty: tag.count + 3)
        out.append("  " + coloured + " " + (head.first ?? ""))
        out += head.dropFirst()
        if let lock { out.append(style.fit("    " + style.dim("lock:") + " " + lock)) }
        if evidence {
            for e in f.evidence {
                out.append(style.fit("    " + style.dim(e.key + ":") + " " + terminalSafe(Self.format(e.value))))
            }
        }
        out += wrap("→ " + terminalSafe(f.suggestion), indent: "    ", hanging: "      ")
        return out
    }

    func notes(_ d: Diagnosis) -> [String] {
        var out: [String] = []
        let c = d.coverage
        if c.processesDenied > 0 {
            out.append("")
            let advice = geteuid() == 0
                ? "permission denied even as root (protected, or in another user namespace)"
                : "permission denied — run as root for a complete answer"
            out.append(style.yellow("note: \(c.processesDenied) process\(c.processesDenied == 1 ? "" : "es") could not be inspected: \(advice)"))
        }
        switch d.activitySource {
        case .snapshot?:
            out.append(style.dim("note: activity is a single snapshot of /proc (no sampling window, no memory reads)"))
        case .kernel?:
            out.append(style.dim("note: activity from the kernel engine (raw_syscalls tracepoints): every system call in the window, exact durations, nothing stopped"))
        case .sampler? where d.activityFallback != nil:
            out.append(style.dim("note: activity from the sampler: " + terminalSafe(d.activityFallback ?? "")))
        default:
            break
        }
        if let e = d.lockEvents {
            if case .unavailable = e { out.append(style.yellow("note: " + terminalSafe(e.note))) } else { out.append(style.dim("note: " + e.note)) }
        }
        return out
    }

    /// Evidence values in prose form: pids as numbers, lists comma-separated.
    public static func format(_ v: EvidenceValue) -> String {
        switch v {
        case .int(let i): return String(i)
        case .double(let d): return formatDecimal(d, places: d == d.rounded() ? 0 : (abs(d) < 10 ? 2 : 1))
        case .string(let s): return s
        case .bool(let b): return b ? "yes" : "no"
        case .pid(let p): return String(p)
        case .pids(let ps): return ps.isEmpty ? "none" : ps.map(String.init).joined(separator: ", ")
        case .strings(let ss): return ss.isEmpty ? "none" : ss.joined(separator: "; ")
        case .ints(let xs): return xs.map(String.init).joined(separator: ", ")
        }
    }

    /// Word-wraps to the terminal width; unchanged when not on a terminal.
    func wrap(_ text: String, indent: String, hanging: String, firstWidthPenalty: Int = 0) -> [String] {
        guard let width = style.width, width > 20 else { return [indent + text] }
        var lines: [String] = []
        var current = indent
        var limit = width - firstWidthPenalty
        for word in text.split(separator: " ", omittingEmptySubsequences: false) {
            let candidate = current.isEmpty || current == indent || current == hanging ? current + word : current + " " + word
            if candidate.count > limit && current != indent && current != hanging {
                lines.append(current)
                current = hanging + word
                limit = width
            } else {
                current = candidate
            }
        }
        lines.append(current)
        return lines
    }
}

/// The wait-for tree: the lock, its holders and what each is doing, the chain
/// onward (another lock, a child), then the waiters grouped by command.
struct TreeBuilder {
    let d: Diagnosis

    func lines(for ld: LockDiagnosis) -> [String] {
        var out: [String] = [lockLine(ld.lock)]
        var items: [[String]] = []
        var visited: Set<LockID> = [ld.lock.id]
        if let p = ld.lockProtocol { items.append(["protocol: " + ProtocolRender.line(p, name: name)]) }
        for h in ld.lock.holders {
            items.append(holder(h.pid, role: h.isOwner ? "holder" : "co-holder", fd: h.fd, lock: ld.lock, depth: 0, visited: &visited))
        }
        if ld.lock.holders.isEmpty {
            items.append(["holder: pid \(ld.lock.kernelPid) (\(ld.lock.ownerStatus.rawValue), not visible)"])
        }
        for g in groups(ld.lock.waiters.map { ($0.process?.comm ?? "?", $0.pid, $0.wait) }) {
            items.append(["waiting: " + g])
        }
        let polling = ld.openers.filter { $0.activity == .polling }
        for g in groups(polling.filter { $0.attempts == nil }.map { ($0.process?.comm ?? "?", $0.pid, Self.ageEstimate($0.process)) }) {
            items.append(["polling: " + g])
        }
        // Seen in lock events: each with its attempts (they are few, and each says something different).
        for o in polling where o.attempts != nil { items.append(["polling: " + terminalSafe(o.process?.comm ?? o.attempts?.comm ?? "?") + "[\(o.pid)]  " + ReportText.attemptsText(o.attempts!)]) }
        out += attach(items, prefix: "")
        return out
    }

    func lockLine(_ l: LockEntry) -> String {
        let range = (l.start == 0 && l.end == nil) ? "" : " bytes \(l.start)–\(l.end.map(String.init) ?? "EOF")"
        return terminalSafe(l.path ?? "(unknown path)") + "  " + (l.file?.description ?? "?") + "  " + l.kind.rawValue + " " + l.access.rawValue + range
    }

    /// A holder line and, under it, where it leads: the lock it waits for, or its children.
    func holder(_ pid: Int32, role: String, fd: Int32?, lock: LockEntry, depth: Int, visited: inout Set<LockID>) -> [String] {
        var first = role + ": " + name(pid)
        if let fd { first += " fd \(fd)" }
        // Lock events saw it take the lock during the window.
        if let held = lock.holders.first(where: { $0.pid == pid })?.heldSeconds { first += "  held exactly " + secondsText(held) }
        first += "  " + doing(pid)
        var children: [[String]] = []
        let exiting = pid == lock.kernelPid ? ExitingRender.lines(lock) : []
        if !exiting.isEmpty { children.append(exiting) }
        guard depth < 8 else { return [first] }
        // Another lock it is queued behind.
        for l in d.graph.locksWaited(by: pid) where l.id != lock.id {
            guard visited.insert(l.id).inserted else {
                children.append(["waits for: " + lockLine(l) + "  (cycle)"])
                continue
            }
            var sub: [[String]] = []
            for h in l.holders {
                sub.append(holder(h.pid, role: h.isOwner ? "holder" : "co-holder", fd: h.fd, lock: l, depth: depth + 1, visited: &visited))
            }
            children.append(["waits for: " + lockLine(l)] + attach(sub, prefix: ""))
        }
        // Children it waits for.
        if let act = d.activity[pid] {
            for t in act.threads {
                guard case .waitChild(let c)? = t.call else { continue }
                let kids = (c.map { $0 > 0 ? [$0] : nil } ?? nil) ?? d.processes.values.filter { $0.ppid == pid }.map(\.pid).sorted()
                for k in kids where !lock.holders.contains(where: { $0.pid == k }) {
                    children.append(holder(k, role: "child", fd: nil, lock: lock, depth: depth + 1, visited: &visited))
                }
                break
            }
        }
        return [first] + attach(children, prefix: "")
    }

    func name(_ pid: Int32) -> String {
        let p = d.processes[pid]
        return terminalSafe(p?.comm ?? "?") + "[\(pid)]" + (ProcessPlace.text(p, observer: nil).map { " (" + $0 + ")" } ?? "")
    }

    /// `S  poll([{fd=4 UDP → 10.0.0.1:53, POLLIN}], 1, 2000 ms) for 1.4 s`.
    func doing(_ pid: Int32) -> String {
        let p = d.processes[pid]
        guard let act = d.activity[pid], !act.threads.isEmpty else {
            return p.map { "state \($0.state)" } ?? "(not inspected)"
        }
        let t = act.threads.first { $0.tid == pid } ?? act.threads[0]
        var s = String(t.state) + "  "
        if let c = t.current {
            s += CallText.call(c, escaped: false)
        } else {
            s += t.state == "R" ? "running" : "-"
        }
        if let secs = t.inCallSeconds, secs >= 0.05 { s += " for " + durationText(secs) }
        if act.threads.count > 1 { s += "  (+\(act.threads.count - 1) thread\(act.threads.count == 2 ? "" : "s"))" }
        if let tracer = p?.tracerPid, tracer > 0 { s += "  traced by \(tracer)" }
        return terminalSafe(s)
    }

    /// A process's age as the estimate of its wait.
    static func ageEstimate(_ p: ProcessFacts?) -> WaitDuration? {
        p?.ageSeconds.map { WaitDuration(seconds: $0, source: .estimate) }
    }

    /// `iptables ×61  oldest 41 s  pids 100 101 … 160` (`oldest exactly 1.23 s` when lock events measured it).
    func groups(_ members: [(name: String, pid: Int32, age: WaitDuration?)]) -> [String] {
        var order: [String] = []
        var byName: [String: [(pid: Int32, age: WaitDuration?)]] = [:]
        for m in members {
            if byName[m.name] == nil { order.append(m.name) }
            byName[m.name, default: []].append((m.pid, m.age))
        }
        return order.map { n in
            let list = byName[n]!
            let pids = list.map { String($0.pid) }
            let shown = pids.count <= 6 ? pids.joined(separator: " ") : (pids.prefix(4) + ["…", pids.last!]).joined(separator: " ")
            var s = terminalSafe(n) + " ×\(list.count)"
            if let oldest = WaitDuration.longest(list.compactMap(\.age)) { s += "  oldest " + waitText(oldest) }
            return s + "  pid\(list.count == 1 ? "" : "s") " + shown
        }
    }

    /// Draws `├─`/`└─` branches for each item (an item's first line is its label).
    func attach(_ items: [[String]], prefix: String) -> [String] {
        var out: [String] = []
        for (i, item) in items.enumerated() {
            let last = i == items.count - 1
            for (j, line) in item.enumerated() {
                if j == 0 {
                    out.append(prefix + (last ? "└─ " : "├─ ") + line)
                } else {
                    out.append(prefix + (last ? "   " : "│  ") + line)
                }
            }
        }
        return out
    }
}
