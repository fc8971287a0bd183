import LockscopeCore
import LockscopeTrace

/// One builder per rule: the summary sentence, the evidence as values, and the
/// suggestion. Evidence keys are documented in docs/diagnose.md.
enum Rules {
    // MARK: - Predicates

    /// A socket to port 53, or to a nameserver the process's own resolv.conf lists,
    /// or a local resolver daemon's unix socket (nscd, systemd-resolved).
    static func isDNS(_ s: NetSocket, conf: ResolvConf?) -> Bool {
        if let r = s.remote {
            if r.port == 53 { return true }
            if let conf, conf.nameserverIndex(of: r.address) != nil, r.port != 0, !(conf.nameservers.isEmpty) {
                return s.proto.isUDP
            }
            return false
        }
        if s.proto == .unix, let p = s.path {
            return p.hasSuffix("/nscd/socket") || p.contains("systemd/resolve/io.systemd.Resolve")
        }
        return false
    }

    /// On CPU for most of the window (or, with a single snapshot, running right now).
    static func isBusy(_ t: ThreadActivity, window: Double) -> Bool {
        if let f = t.runningFraction { return f >= 0.5 }
        if let cpu = t.cpuSeconds, window > 0 { return cpu / window >= 0.5 }
        return t.state == "R" && t.syscall == nil
    }

    // MARK: - Common evidence

    static func threadEvidence(_ t: ThreadActivity?, pid: Int32) -> [EvidenceItem] {
        guard let t else { return [] }
        var e: [EvidenceItem] = []
        if t.tid != pid { e.append(EvidenceItem("tid", .int(Int64(t.tid)))) }
        e.append(EvidenceItem("state", .string(String(t.state))))
        if let s = t.syscall { e.append(EvidenceItem("syscall", .string(s))) }
        if let c = t.current { e.append(EvidenceItem("call", .string(CallText.call(c, escaped: false)))) }
        if let s = t.inCallSeconds { e.append(EvidenceItem("observed_seconds", .double(s))) }
        if let w = t.wchan { e.append(EvidenceItem("wchan", .string(w))) }
        return e
    }

    static func callText(_ t: ThreadActivity?) -> String {
        guard let t else { return "an unknown call" }
        if let s = t.syscall { return s + "()" }
        return t.state == "R" ? "running" : "an unknown call"
    }

    static func forText(_ t: ThreadActivity?) -> String {
        guard let t, let s = t.inCallSeconds, s >= 0.05 else { return "" }
        return (t.inCallExact ? " for " : " for at least ") + durationText(s)
    }

    // MARK: - stopped

    static func stopped(ctx: RuleContext, pid: Int32, lock: LockEntry) -> Finding? {
        let facts = ctx.facts[pid]
        let threads = ctx.input.activity[pid]?.threads ?? []
        let stateStopped = facts.map { $0.state == "T" || $0.state == "t" } ?? false
        let threadsStopped = !threads.isEmpty && threads.allSatisfy { $0.state == "T" || $0.state == "t" }
        guard stateStopped || threadsStopped else { return nil }
        let state = facts?.state ?? threads.first?.state ?? "T"
        let tracer = facts?.tracerPid ?? 0
        var e: [EvidenceItem] = [EvidenceItem("pid", .pid(pid)), EvidenceItem("state", .string(String(state)))]
        var summary: String
        var suggestion: String
        if tracer > 0 {
            e.append(EvidenceItem("tracer_pid", .pid(tracer)))
            if let c = ctx.comm(tracer) { e.append(EvidenceItem("tracer_comm", .string(c))) }
            summary = "\(ctx.name(pid)) is stopped under the tracer \(ctx.name(tracer))"
            suggestion = "Detach or end the tracer \(ctx.name(tracer)) (a debugger or strace left it stopped); the holder resumes and can release the lock."
        } else {
            summary = "\(ctx.name(pid)) is stopped (job control: SIGSTOP/SIGTSTP) while holding the lock"
            suggestion = "Resume it with `kill -CONT \(pid)`; nothing releases the lock while it is stopped."
        }
        if state == "t" && tracer == 0 { summary = "\(ctx.name(pid)) is in a tracing stop" }
        return Finding(rule: .holderStopped, severity: .critical, lock: lock.file, pid: pid, summary: summary,
                       evidence: e, suggestion: suggestion)
    }

    // MARK: - holder-exiting

    /// The owner is in `do_exit()` and a thread is still closing its files (`.exiting`):
    /// the lock goes when that close returns, and no signal speeds it up.
    static func exiting(ctx: RuleContext, pid: Int32, lock: LockEntry) -> Finding {
        let threads = lock.exitingThreads
        var e: [EvidenceItem] = [
            EvidenceItem("pid", .pid(pid)),
            EvidenceItem("owner_status", .string(lock.ownerStatus.rawValue)),
            EvidenceItem("closing_tids", .pids(threads.map(\.tid))),
            EvidenceItem("states", .strings(threads.map { String($0.state) })),
        ]
        let wchans = threads.compactMap(\.wchan)
        if !wchans.isEmpty { e.append(EvidenceItem("wchans", .strings(wchans))) }
        if let stack = threads.lazy.compactMap(\.kernelStack).first {
            e.append(EvidenceItem("kernel_stack", .strings(Array(stack.prefix(8)))))
        }
        let inWhat = threads.first.flatMap { t in t.wchan ?? t.kernelStack?.first }.map { " (in \($0))" } ?? ""
        let summary = "\(ctx.name(pid)) is " + ExitingProcess.summary(closing: threads.count) + inWhat + "; "
            + "the lock is released when the last close returns"
        let suggestion = "Look at the filesystem the lock file (or another file it had open) is on: a close waits for its flush — a FUSE daemon that stopped answering (abort it: `echo 1 > /sys/fs/fuse/connections/N/abort`), an NFS server that is gone. Killing the process does not help: it is already exiting."
        return Finding(rule: .holderExiting, severity: .critical, lock: lock.file, pid: pid, summary: summary,
                       evidence: e, suggestion: suggestion)
    }

    // MARK: - dns-timeout

    static func dnsTimeout(ctx: RuleContext, pid: Int32, thread t: ThreadActivity, fd: ResolvedFd?, socket s: NetSocket?,
                           lock: LockEntry) -> Finding {
        let conf = ctx.input.resolvConf[pid]
        var e: [EvidenceItem] = [EvidenceItem("pid", .pid(pid))]
        e += threadEvidence(t, pid: pid)
        if let fd { e.append(EvidenceItem("fd", .int(Int64(fd.fd)))) }
        if let s { e.append(EvidenceItem("socket", .string(CallText.socket(s, escaped: false)))) }
        if let r = s?.remote { e.append(EvidenceItem("peer", .string(r.description))) }
        if let ms = timeoutMs(t) { e.append(EvidenceItem("timeout_ms", .int(Int64(ms)))) }
        let (lookupCalls, waits) = dnsTries(t, conf: conf)
        if !lookupCalls.isEmpty {
            e.append(EvidenceItem("lookup_calls", .strings(lookupCalls)))
            e.append(EvidenceItem("nameserver_waits", .strings(waits)))
        }

        var where_ = callText(t)
        if let s {
            where_ += " on " + (s.proto != .unix ? s.proto.rawValue + (s.remote.map { " → " + $0.description } ?? "") : CallText.socket(s, escaped: false))
        }
        var serverNote = ""
        var costText = ""
        var suggestion = ""
        if let conf {
            let servers = conf.effectiveNameservers
            e.append(EvidenceItem("resolv_conf", .string("/proc/\(pid)/root/etc/resolv.conf")))
            e.append(EvidenceItem("nameservers", .strings(servers)))
            if let addr = s?.remote?.address, let i = conf.nameserverIndex(of: addr) {
                e.append(EvidenceItem("nameserver_index", .int(Int64(i + 1))))
                serverNote = " (nameserver \(i + 1) of \(servers.count))"
            } else if s?.proto == .unix {
                serverNote = " (local resolver daemon)"
            } else if s != nil {
                serverNote = " (not a nameserver in its resolv.conf)"
            }
            e.append(EvidenceItem("options", .string(conf.optionsText)))
            e.append(EvidenceItem("timeout", .int(Int64(conf.timeout))))
            e.append(EvidenceItem("attempts", .int(Int64(conf.attempts))))
            e.append(EvidenceItem("rotate", .bool(conf.rotate)))
            e.append(EvidenceItem("single_request", .bool(conf.singleRequest || conf.singleRequestReopen)))
            e.append(EvidenceItem("ndots", .int(Int64(conf.ndots))))
            e.append(EvidenceItem("search", .strings(conf.search)))
            if s?.proto == .unix {
                costText = "; it asks a local resolver daemon, whose own upstream timeouts decide the wait"
                suggestion = "Check the local resolver daemon (systemd-resolved / nscd) and its upstream servers; avoid name lookups while holding the lock."
            } else {
                let cost = DNSCost(conf: conf)
                e.append(EvidenceItem("per_server_seconds", .ints(cost.perServerSeconds.map(Int64.init))))
                e.append(EvidenceItem("per_query_seconds", .int(Int64(cost.perQuerySeconds))))
                e.append(EvidenceItem("names_tried", .int(Int64(cost.namesTried))))
                e.append(EvidenceItem("worst_case_seconds", .int(Int64(cost.worstCaseSeconds))))
                e.append(EvidenceItem("naive_seconds", .int(Int64(cost.naiveSeconds))))
                e.append(EvidenceItem("formula", .string(cost.formula)))
                let quoted = quotedOptions(conf)
                costText = "; resolv.conf \(quoted)with \(servers.count) nameserver\(servers.count == 1 ? "" : "s") makes one failed lookup cost up to \(cost.perQuerySeconds) s"
                if cost.namesTried > 1 { costText += " (\(cost.worstCaseSeconds) s for a name expanded with the search list)" }
                let shorter = cost.shortenings
                e.append(EvidenceItem("shortened_by", .strings(shorter.map { "\($0.change): \($0.worstCaseSeconds) s" })))
                var parts: [String] = []
                if let best = shorter.first(where: { $0.change != "all of the above" }) {
                    parts.append("`\(best.change)` would cut the worst case from \(cost.worstCaseSeconds) s to \(best.worstCaseSeconds) s")
                }
                if let all = shorter.first(where: { $0.change == "all of the above" }) {
                    parts.append("all together to \(all.worstCaseSeconds) s")
                }
                if conf.rotate { parts.append("rotate does not shorten it (it only changes which server is asked first)") }
                if conf.singleRequest || conf.singleRequestReopen {
                    parts.append("single-request does not help when no server answers")
                }
                suggestion = "Make the nameserver reachable or remove it from /proc/\(pid)/root/etc/resolv.conf. "
                if !parts.isEmpty { suggestion += parts.joined(separator: "; ").capitalizedFirst + ". " }
                suggestion += "Better: do not resolve names while holding the lock (numeric addresses, e.g. iptables -n)."
            }
        } else {
            e.append(EvidenceItem("resolv_conf", .string("unreadable")))
            costText = "; its resolv.conf could not be read, so the worst case is unknown"
            suggestion = "Check the nameserver \(s?.remote?.description ?? "") is reachable; avoid name lookups while holding the lock. Run as root to read /proc/\(pid)/root/etc/resolv.conf."
        }
        let timeoutNote = timeoutMs(t).map { ", " + durationText(Double($0) / 1000) + " timeout" } ?? ""
        let summary = "\(ctx.name(pid)) is stuck in a DNS lookup: \(where_)\(serverNote)\(timeoutNote)\(forText(t))\(costText)"
        return Finding(rule: .dnsTimeout, severity: .warning, lock: lock.file, pid: pid, summary: summary, evidence: e,
                       suggestion: suggestion)
    }

    /// What an event engine saw of the lookup in the window: every call on a
    /// nameserver socket (`+0.004 s sendmmsg(…) = 2 <0.000018>`), and each wait
    /// for an answer, server by server: `127.0.0.141:53 (nameserver 1): poll
    /// 2000 ms timeout → no answer after 2.002 s`. Empty from the sampler.
    static func dnsTries(_ t: ThreadActivity, conf: ResolvConf?) -> (calls: [String], waits: [String]) {
        var calls: [String] = []
        var waits: [String] = []
        for c in t.calls {
            guard case .io(let fds, let timeoutMs) = BlockingCall(c.call, processTids: []),
                  let s = fds.lazy.compactMap({ f -> NetSocket? in if case .socket(let s)? = f.what { return s } else { return nil } })
                    .first(where: { isDNS($0, conf: conf) }) else { continue }
            calls.append(c.text)
            guard c.call.classes.contains(.poll) else { continue }
            var w = s.remote?.description ?? CallText.socket(s, escaped: false)
            if let a = s.remote?.address, let i = conf?.nameserverIndex(of: a) { w += " (nameserver \(i + 1))" }
            w += ": " + c.call.name + (timeoutMs.map { " \($0) ms timeout" } ?? "")
            // A wait that began before the window: only its end was seen.
            let took = (c.startedBefore ? "at least " : "") + formatDecimal(c.durationSeconds, places: 3) + " s"
            switch c.result {
            case .value(0)?: w += " → no answer after " + took
            case .value?: w += " → readable after " + took
            case .error(_, let name)?: w += " → " + name + " after " + took
            case nil: w += " → still waiting after " + took
            }
            waits.append(w)
        }
        return (calls, waits)
    }

    static func quotedOptions(_ conf: ResolvConf) -> String {
        var words: [String] = []
        if conf.timeoutSet { words.append("timeout:\(conf.timeout)") }
        if conf.attemptsSet { words.append("attempts:\(conf.attempts)") }
        if conf.rotate { words.append("rotate") }
        if conf.singleRequest { words.append("single-request") }
        if conf.singleRequestReopen { words.append("single-request-reopen") }
        if words.isEmpty { return "(defaults timeout:5 attempts:2) " }
        return "\"" + words.joined(separator: " ") + "\" "
    }

    static func timeoutMs(_ t: ThreadActivity?) -> Int? {
        if case .io(_, let ms)? = t?.call, let ms, ms >= 0 { return ms }
        return nil
    }

    // MARK: - holder-network

    static func network(ctx: RuleContext, pid: Int32, thread t: ThreadActivity, fd: ResolvedFd, socket s: NetSocket,
                        lock: LockEntry) -> Finding {
        var e: [EvidenceItem] = [EvidenceItem("pid", .pid(pid))]
        e += threadEvidence(t, pid: pid)
        e.append(EvidenceItem("fd", .int(Int64(fd.fd))))
        // A UDP socket's "state" only says it is connected.
        let state = s.proto.isTCP ? s.state : nil
        e.append(EvidenceItem("socket", .string(CallText.socket(s, escaped: false))))
        e.append(EvidenceItem("peer", .string(s.remote?.description ?? "none (not connected)")))
        if let st = state { e.append(EvidenceItem("tcp_state", .string(st))) }
        if let ms = timeoutMs(t) { e.append(EvidenceItem("timeout_ms", .int(Int64(ms)))) }
        let timeoutNote = timeoutMs(t).map { ", " + durationText(Double($0) / 1000) + " timeout" } ?? ", no timeout"
        let peer = s.remote.map { " → " + $0.description } ?? ""
        let summary = "\(ctx.name(pid)) is blocked on the network: \(callText(t)) on \(s.proto.rawValue)\(peer)\(state.map { " (" + $0 + ")" } ?? "")\(timeoutNote)\(forText(t))"
        let suggestion = "Check that \(s.remote?.description ?? "the peer") is reachable and answering; the holder should not wait on the network while holding the lock (or should use a short timeout)."
        return Finding(rule: .holderNetwork, severity: .warning, lock: lock.file, pid: pid, summary: summary,
                       evidence: e, suggestion: suggestion)
    }

    // MARK: - holder-io

    static func io(ctx: RuleContext, pid: Int32, thread t: ThreadActivity, lock: LockEntry) -> Finding {
        var e: [EvidenceItem] = [EvidenceItem("pid", .pid(pid))]
        e += threadEvidence(t, pid: pid)
        if let stack = t.kernelStack, !stack.isEmpty { e.append(EvidenceItem("kernel_stack", .strings(Array(stack.prefix(8))))) }
        var files: [String] = []
        if case .io(let fds, _)? = t.call { files = fds.compactMap { $0.what.map { CallText.describe($0, escaped: false) } } }
        if !files.isEmpty { e.append(EvidenceItem("files", .strings(files))) }
        let inWhat = t.wchan.map { " in \($0)" } ?? (t.kernelStack?.first.map { " in \($0)" } ?? "")
        let summary = "\(ctx.name(pid)) is in uninterruptible I/O (D state\(inWhat)) during \(callText(t))\(forText(t))"
        let suggestion = "Look at the device or filesystem it waits on (dmesg, a frozen filesystem, a dead NFS server, a failing disk); a process in D state cannot be killed until the I/O completes."
        return Finding(rule: .holderIO, severity: .warning, lock: lock.file, pid: pid, summary: summary, evidence: e,
                       suggestion: suggestion)
    }

    // MARK: - holder-futex

    static func futex(ctx: RuleContext, pid: Int32, thread t: ThreadActivity, lock: LockEntry) -> Finding {
        var e: [EvidenceItem] = [EvidenceItem("pid", .pid(pid))]
        e += threadEvidence(t, pid: pid)
        var ownerText = ""
        if case .futex(let addr, let owner)? = t.call {
            if let addr { e.append(EvidenceItem("futex_address", .string("0x" + String(addr, radix: 16)))) }
            if let owner {
                e.append(EvidenceItem("owner_tid", .int(Int64(owner))))
                let ownerThread = ctx.input.activity[pid]?.threads.first { $0.tid == owner }
                ownerText = " held by thread \(owner)"
                if let ot = ownerThread {
                    let what = ot.current.map { CallText.call($0, escaped: false) } ?? (ot.state == "R" ? "running" : "state \(ot.state)")
                    ownerText += ", which is in \(what)"
                    e.append(EvidenceItem("owner_state", .string(String(ot.state))))
                    if let s = ot.syscall { e.append(EvidenceItem("owner_syscall", .string(s))) }
                }
            }
        }
        let others = (ctx.input.activity[pid]?.threads ?? []).filter { $0.tid != t.tid }
        if !others.isEmpty { e.append(EvidenceItem("threads", .int(Int64(others.count + 1)))) }
        let summary = "\(ctx.name(pid)) is waiting on a user-space lock (futex)\(ownerText)\(forText(t))"
        let suggestion = "A lock inside the process holds it up: inspect its threads (`gdb -p \(pid) -batch -ex 'thread apply all bt'`, or `lockscope trace \(pid)`)."
        return Finding(rule: .holderFutex, severity: .warning, lock: lock.file, pid: pid, summary: summary, evidence: e,
                       suggestion: suggestion)
    }

    // MARK: - holder-sleeping

    static func sleeping(ctx: RuleContext, pid: Int32, thread t: ThreadActivity, lock: LockEntry) -> Finding {
        var e: [EvidenceItem] = [EvidenceItem("pid", .pid(pid))]
        e += threadEvidence(t, pid: pid)
        var requested = ""
        if case .sleep(let s)? = t.call, let s {
            e.append(EvidenceItem("sleep_seconds", .double(s)))
            requested = " (\(durationText(s)) at a time)"
        }
        let asleep = t.histogram.filter { $0.label.contains("sleep") }.map(\.fraction).reduce(0, +)
        let loop = asleep > 0 && asleep < 0.95 && t.histogram.count > 1
        if !t.histogram.isEmpty { e.append(EvidenceItem("asleep_fraction", .double(asleep))) }
        e.append(EvidenceItem("retry_loop", .bool(loop)))
        let summary = loop
            ? "\(ctx.name(pid)) is in a sleep-and-retry loop\(requested) while holding the lock"
            : "\(ctx.name(pid)) is sleeping\(requested) while holding the lock\(forText(t))"
        let suggestion = "It will release the lock only after it wakes and finishes; see what it waits for between sleeps (`lockscope trace --ptrace \(pid)`), or stop it if the work is not needed."
        return Finding(rule: .holderSleeping, severity: .info, lock: lock.file, pid: pid, summary: summary, evidence: e,
                       suggestion: suggestion)
    }

    // MARK: - holder-busy

    static func busy(ctx: RuleContext, pid: Int32, thread t: ThreadActivity, lock: LockEntry) -> Finding {
        var e: [EvidenceItem] = [EvidenceItem("pid", .pid(pid))]
        e += threadEvidence(t, pid: pid)
        let window = ctx.input.activity[pid]?.windowSeconds ?? 0
        var cpuText = ""
        if let cpu = ctx.input.activity[pid]?.cpuSeconds ?? t.cpuSeconds {
            e.append(EvidenceItem("cpu_seconds", .double(cpu)))
            if window > 0 {
                let pct = Int((cpu / window * 100).rounded())
                e.append(EvidenceItem("cpu_percent", .int(Int64(pct))))
                cpuText = " (\(pct)% of one CPU over \(durationText(window)))"
            }
        }
        if let f = t.runningFraction { e.append(EvidenceItem("running_fraction", .double(f))) }
        let summary = "\(ctx.name(pid)) is busy on CPU\(cpuText) while holding the lock"
        let suggestion = "It is computing, not waiting: profile it (`perf top -p \(pid)`) or let it finish; if it loops forever, it must be restarted."
        return Finding(rule: .holderBusy, severity: .info, lock: lock.file, pid: pid, summary: summary, evidence: e,
                       suggestion: suggestion)
    }

    // MARK: - holder-waits-child

    static func waitsChild(ctx: RuleContext, pid: Int32, thread t: ThreadActivity, children: [Int32], childCause: Finding?,
                           lock: LockEntry) -> Finding {
        var e: [EvidenceItem] = [EvidenceItem("pid", .pid(pid))]
        e += threadEvidence(t, pid: pid)
        e.append(EvidenceItem("children", .pids(children)))
        let sharing = children.filter { c in lock.holders.contains { $0.pid == c } }
        e.append(EvidenceItem("children_sharing_lock", .pids(sharing)))
        if let c = childCause { e.append(EvidenceItem("child_rule", .string(c.rule.rawValue))) }
        let who = children.isEmpty ? "a child that is gone or not visible" : children.map { ctx.name($0) }.joined(separator: ", ")
        var summary = "\(ctx.name(pid)) waits in \(callText(t)) for its child \(who)"
        if !sharing.isEmpty { summary += ", which shares the lock" }
        if let c = childCause { summary += "; the child is what holds things up (\(c.rule.rawValue))" }
        let first = children.first.map { ctx.name($0) } ?? "the child"
        let suggestion = childCause.map { "The lock is released when \(first) exits and \(ctx.name(pid)) returns; fix what the child waits for (see the \($0.rule.rawValue) finding for \(ctx.name($0.pid)))." }
            ?? "The lock is released when the child exits; look at what it does (`lockscope trace \(children.first.map(String.init) ?? "CHILD")`)."
        return Finding(rule: .holderWaitsChild, severity: .info, lock: lock.file, pid: pid, summary: summary, evidence: e,
                       suggestion: suggestion)
    }

    // MARK: - wait-chain

    static func waitChain(ctx: RuleContext, pid: Int32, thread t: ThreadActivity?, holds: LockEntry, waitsFor: LockEntry,
                          rest: Explanation, root: Int32?) -> Finding {
        var e: [EvidenceItem] = [EvidenceItem("pid", .pid(pid))]
        e += threadEvidence(t, pid: pid)
        e.append(EvidenceItem("holds", .string(ctx.lockName(holds))))
        e.append(EvidenceItem("waits_for", .string(ctx.lockName(waitsFor))))
        let nextHolders = waitsFor.holders.map(\.pid)
        e.append(EvidenceItem("waits_for_holders", .pids(nextHolders)))
        // The chain as pids: this holder, then each further holder down to the root.
        var chain: [Int32] = [pid]
        var lockChain: [String] = [ctx.lockName(holds), ctx.lockName(waitsFor)]
        for f in rest.findings where f.rule == .waitChain {
            chain.append(f.pid)
            if case .string(let w)? = f["waits_for"] { lockChain.append(w) }
        }
        if let r = root, !chain.contains(r) { chain.append(r) }
        e.append(EvidenceItem("chain", .pids(chain)))
        e.append(EvidenceItem("chain_locks", .strings(lockChain)))
        if let r = root { e.append(EvidenceItem("root_pid", .pid(r))) }
        if let c = rest.cause { e.append(EvidenceItem("root_rule", .string(c.rule.rawValue))) }
        let heldBy = nextHolders.first.map { ctx.name($0) } ?? "a holder that could not be seen"
        var summary = "\(ctx.name(pid)) holds \(ctx.lockName(holds)) and waits for \(ctx.lockName(waitsFor)), held by \(heldBy)"
        if let c = rest.cause, c.rule != .waitChain {
            summary += "; at the end of the chain, " + c.summary
        }
        let suggestion = rest.cause.map { "Fix the end of the chain — " + $0.suggestion.lowercasedFirst }
            ?? "Find out why \(heldBy) does not release \(ctx.lockName(waitsFor)) (`lockscope diagnose \(ctx.lockName(waitsFor))`)."
        return Finding(rule: .waitChain, severity: .warning, lock: holds.file, pid: pid, summary: summary, evidence: e,
                       suggestion: suggestion)
    }

    // MARK: - deadlock

    static func deadlock(ctx: RuleContext, cycle: [(pid: Int32, holds: LockEntry)], wants closing: LockEntry,
                         lock: LockEntry) -> Finding {
        // Member i holds cycle[i].holds and wants cycle[i+1].holds; the last wants `closing`.
        var members: [String] = []
        var e: [EvidenceItem] = [EvidenceItem("members", .pids(cycle.map(\.pid)))]
        var holdsList: [String] = []
        var wantsList: [String] = []
        for (i, step) in cycle.enumerated() {
            let wants = i + 1 < cycle.count ? cycle[i + 1].holds : closing
            members.append("\(ctx.name(step.pid)) holds \(ctx.lockName(step.holds)) and waits for \(ctx.lockName(wants))")
            holdsList.append(ctx.lockName(step.holds))
            wantsList.append(ctx.lockName(wants))
        }
        e.append(EvidenceItem("holds", .strings(holdsList)))
        e.append(EvidenceItem("wants", .strings(wantsList)))
        e.append(EvidenceItem("kinds", .strings(cycle.map { $0.holds.kind.rawValue })))
        let kernelNote = cycle.allSatisfy({ $0.holds.kind == .posix })
            ? "" : " The kernel detects only POSIX lock cycles (EDEADLK); flock and OFD cycles wait forever."
        let summary = "Deadlock: " + members.joined(separator: "; ")
        let victim = cycle.map(\.pid).max() ?? cycle[0].pid
        let suggestion = "Nothing in the cycle can proceed: kill one member (e.g. `kill \(victim)`) to break it.\(kernelNote) Fix the programs to take these locks in one fixed order."
        return Finding(rule: .deadlock, severity: .critical, lock: lock.file, pid: cycle[0].pid, summary: summary,
                       evidence: e, suggestion: suggestion)
    }

    // MARK: - leaked-fd

    static func leakedFd(ctx: RuleContext, lock: LockEntry, keepers: [Holder]) -> Finding {
        var e: [EvidenceItem] = [
            EvidenceItem("kernel_pid", .pid(lock.kernelPid)),
            EvidenceItem("owner_status", .string(lock.ownerStatus.rawValue)),
            EvidenceItem("keepers", .pids(keepers.map(\.pid))),
        ]
        e.append(EvidenceItem("keeper_fds", .ints(keepers.map { Int64($0.fd ?? -1) })))
        let daemonized = keepers.filter { ($0.process?.ppid ?? ctx.facts[$0.pid]?.ppid) == 1 }.map(\.pid)
        e.append(EvidenceItem("daemonized", .pids(daemonized)))
        let owner = lock.ownerStatus == .gone
            ? "pid \(lock.kernelPid), which took it, has exited"
            : "pid \(lock.kernelPid), which took it, no longer has it open (the pid may have been reused)"
        let who = keepers.map { k in "\(ctx.name(k.pid))" + (k.fd.map { " (fd \($0))" } ?? "") }.joined(separator: ", ")
        let summary = "\(ctx.lockName(lock)) is held through an inherited descriptor: \(owner); \(who) keeps it locked"
            + (daemonized.isEmpty ? "" : " (daemonised)")
        let suggestion = "Open the lock file with O_CLOEXEC (or close it in the child before exec/daemonising) so children do not inherit it. To release it now, stop \(keepers.map { String($0.pid) }.joined(separator: ", "))."
        return Finding(rule: .leakedFd, severity: .warning, lock: lock.file, pid: keepers[0].pid, summary: summary,
                       evidence: e, suggestion: suggestion)
    }
}

extension String {
    var capitalizedFirst: String { first.map { String($0).uppercased() + dropFirst() } ?? self }
    var lowercasedFirst: String {
        // Keep a leading code span or proper noun as is.
        guard let f = first, f.isUppercase, dropFirst().first?.isLowercase ?? false else { return self }
        return String(f).lowercased() + dropFirst()
    }
}
