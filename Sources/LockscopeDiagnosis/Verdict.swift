import LockscopeCore
import LockscopeTrace

/// The one or two lines a person pastes into an incident channel:
/// `/run/xtables.lock: 61 processes waiting (oldest 41 s). Holder iptables[36057] is stuck in a DNS lookup: …`
struct VerdictWriter {
    let ctx: RuleContext

    func verdict(for d: LockDiagnosis) -> String {
        let name = ctx.lockName(d.lock)
        var head = name + ": "
        if d.waitingCount == 0 {
            head += "locked by " + holderList(d.lock) + ", nobody waiting."
        } else {
            head += "\(d.waitingCount) process\(d.waitingCount == 1 ? "" : "es") waiting"
            var paren: [String] = []
            if d.pollingCount > 0 && d.blockedCount > 0 {
                paren.append("\(d.blockedCount) blocked, \(d.pollingCount) polling")
            } else if d.pollingCount > 0 {
                paren.append("polling")
            }
            if let oldest = d.oldestWait { paren.append("oldest " + waitText(oldest)) }
            if !paren.isEmpty { head += " (" + paren.joined(separator: "; ") + ")" }
            head += "."
            if let retries = retrySentence(d.openers) { head += " " + retries + "." }
        }
        // SQLite: say it in SQLite's terms (`SQLite database app.db: python3[5] holds the EXCLUSIVE lock …`).
        if let sq = d.findings.first(where: { $0.rule == .sqliteBusy }) {
            head = sq.summary + (d.oldestWait.map { " (oldest " + waitText($0) + ")" } ?? "") + "."
        }
        if d.waitingCount == 0 && d.cause?.rule != .deadlock { return head }
        guard let cause = d.cause else {
            if d.lock.holders.isEmpty {
                return head + " The holder is not visible from here (another pid namespace, or it has exited)."
            }
            if d.holderUninspectable {
                return head + " Holder " + holderList(d.lock) + " could not be inspected (permission denied) — run as root."
            }
            return head + " Holder " + holderList(d.lock) + " is " + plainActivity(d.lock.holders[0].pid) + "."
        }
        return head + " " + causeSentence(cause, in: d)
    }

    func unlocked(_ t: Target, openers: [Opener]) -> String {
        let name = t.path ?? t.argument
        let polling = openers.filter { $0.activity == .polling }.count
        if polling > 0 {
            return name + ": not locked, \(polling) process\(polling == 1 ? "" : "es") polling for it."
                + (retrySentence(openers).map { " " + $0 + "." } ?? "")
        }
        return name + ": not locked, nobody waiting."
    }

    /// `apt-get[812] retries every 1 s (3 attempts in the window)`, `bash[90] retries flock every 0.5 s (…)`:
    /// the pollers kernel lock events saw, at most three named.
    func retrySentence(_ openers: [Opener]) -> String? {
        let seen = openers.filter { $0.activity == .polling && $0.attempts != nil }
        guard !seen.isEmpty else { return nil }
        var parts = seen.prefix(3).map { o -> String in
            let a = o.attempts!
            let who = ctx.comm(o.pid) ?? a.comm
            var s = (who.map { "\($0)[\(o.pid)]" } ?? "pid \(o.pid)") + " retries" + (a.attemptCommand.map { " " + $0 } ?? "")
            if let iv = a.retryIntervalSeconds { s += " every " + durationText(iv) }
            s += " (\(a.attempts) attempt\(a.attempts == 1 ? "" : "s") in the window"
            if a.attemptCommand != nil { s += ", a new process each" }
            return s + ")"
        }
        if seen.count > 3 { parts.append("\(seen.count - 3) more") }
        return parts.joined(separator: "; ")
    }

    func holderList(_ l: LockEntry) -> String {
        if l.holders.isEmpty { return "pid \(l.kernelPid)" }
        let names = l.holders.prefix(3).map { ctx.name($0.pid) }
        return names.joined(separator: " + ") + (l.holders.count > 3 ? " + \(l.holders.count - 3) more" : "")
    }

    /// The cause as "Holder X is …", or, when the cause is further along, how the
    /// holder leads to it ("Holder A waits for its child B. B is …").
    func causeSentence(_ f: Finding, in d: LockDiagnosis) -> String {
        let lock = d.lock
        let owner = lock.holders.first { $0.isOwner }?.pid ?? lock.holders.first?.pid
        switch f.rule {
        case .deadlock:
            return f.summary + "."
        case .leakedFd:
            // Say what the keeper is doing too, when something is known.
            var sentence = "The lock outlived its taker: " + f.summary + "."
            let keepers: [Int32]
            if case .pids(let k)? = f["keepers"] { keepers = k } else { keepers = [] }
            if let what = d.findings.filter({ keepers.contains($0.pid) && $0.rule != .leakedFd })
                .min(by: { $0.rule.rank < $1.rule.rank }) {
                sentence += " " + what.summary + "."
            }
            return sentence
        default:
            break
        }
        guard let owner, owner != f.pid else { return "Holder " + f.summary + "." }
        return "Holder " + route(from: owner, to: f.pid, in: d) + ". " + f.summary + "."
    }

    /// How the holder is connected to the process the cause is about.
    func route(from owner: Int32, to pid: Int32, in d: LockDiagnosis) -> String {
        // A chain of locks: the wait-chain finding about the first holder lists the hops.
        if let chain = d.findings.first(where: { $0.rule == .waitChain && $0.pid == owner }),
           case .pids(let pids)? = chain["chain"], case .strings(let locks)? = chain["chain_locks"], pids.count >= 2 {
            var hops: [String] = []
            for i in 1..<pids.count where i < locks.count {
                hops.append(locks[i] + " (held by " + ctx.name(pids[i]) + ")")
            }
            if !hops.isEmpty { return ctx.name(owner) + " waits for " + hops.joined(separator: ", which waits for ") }
        }
        let shares = d.lock.holders.contains { $0.pid == pid }
        if ctx.facts[pid]?.ppid == owner {
            return ctx.name(owner) + " waits for its child " + ctx.name(pid) + (shares ? ", which shares the lock" : "")
        }
        if shares { return ctx.name(owner) + " shares the lock with " + ctx.name(pid) }
        return ctx.name(owner) + " waits on " + ctx.name(pid)
    }

    func plainActivity(_ pid: Int32) -> String {
        guard let act = ctx.input.activity[pid], let t = act.threads.first else { return "in an unknown state" }
        if let c = t.current { return "in " + CallText.call(c, escaped: false) }
        return t.state == "R" ? "running" : "in state " + String(t.state)
    }
}
