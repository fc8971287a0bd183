import LockscopeCore
import LockscopeDiagnosis
import LockscopeTrace

/// `lockscope diagnose --dot`: the wait-for graph for Graphviz (`| dot -Tsvg`).
///
/// Nodes: locks (boxes), processes (ellipses), and identical waiters merged
/// into one node per command (`iptables ×61`). Edges point the way waiting
/// flows: waiter → lock ("waits"), lock → holder ("held by"), holder → the
/// lock it is itself queued behind, parent → child it waits for. A deadlock is
/// a cycle, drawn in red. Output is deterministic (sorted), so it diffs.
public struct DiagnosisDOT {
    public init() {}

    public func render(_ d: Diagnosis) -> String {
        var nodes: [String: String] = [:]   // id → attributes
        var edges: [String] = []
        var edgeSet = Set<String>()
        let cyclePids = Set(d.findings.filter { $0.rule == .deadlock }.flatMap(\.pids))
        var causes: [Int32: String] = [:]
        for f in d.findings {
            let who = f.rule == .deadlock ? f.pids : [f.pid]
            for p in who where causes[p] == nil { causes[p] = f.rule.rawValue }
        }

        func edge(_ from: String, _ to: String, _ attrs: String) {
            let line = "  \(quote(from)) -> \(quote(to)) [\(attrs)];"
            if edgeSet.insert(line).inserted { edges.append(line) }
        }
        func processNode(_ pid: Int32) -> String {
            let id = "pid:\(pid)"
            if nodes[id] == nil {
                let p = d.processes[pid]
                var label = [(p?.comm ?? "?") + "[\(pid)]"]
                if let act = d.activity[pid], let t = act.threads.first(where: { $0.tid == pid }) ?? act.threads.first {
                    label.append(String(t.state) + " " + (t.syscall.map { $0 + "()" } ?? (t.state == "R" ? "running" : "-")))
                    if case .io(let fds, let ms)? = t.call {
                        if let s = fds.compactMap({ $0.what?.socket }).first { label.append(CallText.socket(s, escaped: false)) }
                        if let ms { label.append("timeout \(ms) ms") }
                    }
                } else if let p {
                    label.append("state \(p.state)")
                }
                var attrs = "shape=ellipse, label=\(labelText(label))"
                if let rule = causes[pid] {
                    attrs = "shape=ellipse, label=\(labelText(label + [rule]))"
                    attrs += cyclePids.contains(pid) ? ", color=red, penwidth=2" : ", color=orange, penwidth=2"
                }
                nodes[id] = attrs
            }
            return id
        }
        // A lock's node is named by file, kind and start; access and owner are added
        // only where two locks share those (two READ locks on one range).
        func shortKey(_ l: LockEntry) -> String { "lock:\(l.file?.description ?? "?"):\(l.kind.rawValue):\(l.start)" }
        var sharing: [String: Int] = [:]
        for l in d.graph.locks { sharing[shortKey(l), default: 0] += 1 }
        func lockKey(_ l: LockEntry) -> String {
            sharing[shortKey(l), default: 0] > 1 ? shortKey(l) + ":\(l.access.rawValue):\(l.kernelPid)" : shortKey(l)
        }
        let diagnosed = Dictionary(d.locks.map { ($0.lock.id, $0) }, uniquingKeysWith: { a, _ in a })
        for l in d.graph.locks {
            var label = [l.path ?? l.file?.description ?? "?", l.kind.rawValue + " " + l.access.rawValue]
            let w = diagnosed[l.id]?.waitingCount ?? l.waiters.count
            if w > 0 { label.append("\(w) waiting") }
            nodes[lockKey(l)] = "shape=box, style=filled, fillcolor=\"#fff2cc\", label=\(labelText(label))"
        }

        for l in d.graph.locks {
            let lid = lockKey(l)
            for h in l.holders {
                let pid = processNode(h.pid)
                let red = cyclePids.contains(h.pid) ? ", color=red" : ""
                edge(lid, pid, "label=\(labelText([h.isOwner ? "held by" : "shared with"] + (h.fd.map { ["fd \($0)"] } ?? [])))\(red)")
            }
            // Waiters that are themselves holders elsewhere get their own node (chains, cycles);
            // the rest are merged by command.
            var groups: [String: [Int32]] = [:]
            for w in l.waiters {
                if d.graph.isHolder(w.pid) {
                    let red = cyclePids.contains(w.pid) ? ", color=red" : ""
                    edge(processNode(w.pid), lid, "label=\"waits\"\(red)")
                } else {
                    groups[w.process?.comm ?? "?", default: []].append(w.pid)
                }
            }
            var polling: [String: [Int32]] = [:]
            for o in diagnosed[l.id]?.openers ?? [] where o.activity == .polling { polling[o.process?.comm ?? "?", default: []].append(o.pid) }
            for (comm, pids) in groups.sorted(by: { $0.key < $1.key }) {
                let id = "waiters:\(lid):\(comm)"
                let ages = l.waiters.filter { pids.contains($0.pid) }.compactMap(\.wait)
                var label = ["\(comm) ×\(pids.count)"]
                if let oldest = WaitDuration.longest(ages) { label.append("oldest " + waitText(oldest)) }
                nodes[id] = "shape=ellipse, style=dashed, label=\(labelText(label))"
                edge(id, lid, "label=\"waits\"")
            }
            for (comm, pids) in polling.sorted(by: { $0.key < $1.key }) {
                let id = "polling:\(lid):\(comm)"
                nodes[id] = "shape=ellipse, style=dotted, label=\(labelText(["\(comm) ×\(pids.count)", "polling"]))"
                edge(id, lid, "label=\"polls\", style=dotted")
            }
        }
        // Parents waiting for children.
        for f in d.findings where f.rule == .holderWaitsChild {
            if case .pids(let kids)? = f["children"] {
                for k in kids { edge(processNode(f.pid), processNode(k), "label=\"waits for child\", style=dashed") }
            }
        }

        var out = "digraph lockscope {\n"
        out += "  rankdir=LR;\n"
        out += "  node [fontname=\"monospace\", fontsize=10];\n"
        out += "  edge [fontname=\"monospace\", fontsize=9];\n"
        if !d.verdict.isEmpty {
            out += "  labelloc=t;\n  labeljust=l;\n  label=\(labelText(d.verdict));\n"
        }
        for id in nodes.keys.sorted() { out += "  \(quote(id)) [\(nodes[id]!)];\n" }
        for e in edges.sorted() { out += e + "\n" }
        out += "}\n"
        return out
    }

    /// A DOT string: control characters escaped as in the terminal, then `\` and `"` escaped for DOT.
    func quote(_ s: String) -> String { "\"" + dotEscape(terminalSafe(s)) + "\"" }

    func labelText(_ lines: [String]) -> String {
        "\"" + lines.map { dotEscape(terminalSafe($0)) }.joined(separator: "\\n") + "\""
    }

    func dotEscape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            default: out.append(c)
            }
        }
        return out
    }
}
