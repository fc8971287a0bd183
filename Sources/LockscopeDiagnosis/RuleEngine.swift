import LockscopeCore
import LockscopeTrace

/// Turns a `DiagnosisInput` into a `Diagnosis`: classifies what every holder is
/// doing, follows holders that wait for other locks or for their children, finds
/// cycles, and writes the verdict. Pure: the same input always gives the same
/// report, so every rule is tested on hand-built and recorded data.
public struct RuleEngine: Sendable {
    /// How deep to follow chains and children before giving up (a guard, not a limit anyone should hit).
    public var maxDepth = 16

    public init() {}

    public func diagnose(_ input: DiagnosisInput) -> Diagnosis {
        let ctx = RuleContext(input: input)
        var all: [Finding] = []
        var lockResults: [LockDiagnosis] = []
        let protocols = ProtocolIndex(input.report.locks)
        // WAL-mode writers retrying in SQLite's busy handler hold only read locks on the
        // -shm: waiters for the writer's WAL_WRITE_LOCK, not more holders.
        var readings = protocols.byFile
        var walWaiting: [FileIdentity: [Int32]] = [:]
        for (file, r) in readings where r.name == "sqlite-wal" {
            let retrying = Set(r.participants.map(\.pid).filter { Rules.retriesBetweenSleeps(input.activity[$0]) })
            let (amended, waiting) = LockProtocols.walWritersWaiting(r, retrying: retrying)
            readings[file] = amended
            walWaiting[file] = waiting
        }

        for lock in input.report.locks {
            let openers = input.report.openers.filter { $0.file == lock.file }
            // The holders in report order: the owner first, then co-holders.
            let explained = lock.holders.map { ctx.explain(pid: $0.pid, lock: lock, depth: 0, chain: [], maxDepth: maxDepth) }
            var findings = explained.flatMap(\.findings) + ctx.leakedFd(lock)
            if let lease = Rules.leaseBreak(ctx: ctx, lock: lock) { findings.insert(lease, at: 0) }
            let reading = lock.file.flatMap { readings[$0] }
            // Counted once, on the entry that is the write lock (byte 120, WRITE).
            let walPollers = lock.access == .write && lock.start <= LockProtocols.shmBase && (lock.end ?? Int64.max) >= LockProtocols.shmBase
                ? lock.file.flatMap { walWaiting[$0] } ?? [] : []
            let pollers = openers.filter { $0.activity == .polling }.map(\.pid) + walPollers
            if let reading, let f = Rules.protocolFinding(ctx: ctx, lock: lock, reading: reading, pollers: pollers,
                                                          blocked: lock.waiters.map(\.pid)) {
                findings.append(f)
            }
            // The cause: the owner's explanation unless it is only "waits for a child" and a
            // co-holder says more, then anything decisive (a leak, a lease the kernel is breaking).
            let candidates = explained.compactMap(\.cause) + findings.filter { $0.rule == .leakedFd || $0.rule == .leaseBreak }
            let cause = candidates.min { a, b in (causeRank(a), a.pid) < (causeRank(b), b.pid) }
            // No holder visible, or none could be looked at.
            let uninspectable = explained.allSatisfy(\.uninspectable)

            for i in findings.indices where findings[i].lock == nil { findings[i].lock = lock.file }
            findings = dedupe(findings)
            let blocked = Set(lock.waiters.map(\.pid)).count
            let polling = pollers.count
            // Waiters: exact where lock events saw them queue, else their age; pollers: their age.
            // A retry loop's shell is older than any wait of its attempts: its age says nothing.
            let pollerAges = openers.filter { $0.activity == .polling && $0.attempts?.attemptCommand == nil }.compactMap { $0.process?.ageSeconds }
                + walPollers.compactMap { ctx.facts[$0]?.ageSeconds }
            let oldest = WaitDuration.longest(lock.waiters.compactMap(\.wait) + pollerAges.map { WaitDuration(seconds: $0, source: .estimate) })
            var result = LockDiagnosis(lock: lock, openers: openers, verdict: "", cause: cause, findings: findings,
                                       blockedCount: blocked, pollingCount: polling, oldestWaitSeconds: oldest?.seconds,
                                       holderUninspectable: uninspectable)
            result.oldestWaitSource = oldest?.source
            result.lockProtocol = reading
            result.verdict = VerdictWriter(ctx: ctx).verdict(for: result)
            lockResults.append(result)
            all += findings
        }

        all = dedupe(all).sorted { ($0.rule.rank, $0.pid) < ($1.rule.rank, $1.pid) }
        let unlocked = input.report.targets.filter { t in !input.report.locks.contains { $0.file == t.file } }
        var verdict = lockResults.map(\.verdict)
        for t in unlocked {
            verdict.append(VerdictWriter(ctx: ctx).unlocked(t, openers: input.report.openers.filter { $0.file == t.file }))
        }
        if input.report.locks.isEmpty && input.report.targets.isEmpty {
            verdict.append("No process is waiting for a file lock.")
        }

        let contended = lockResults.filter { $0.waitingCount > 0 || $0.findings.contains { $0.rule == .deadlock } }
        let outcome: Diagnosis.Outcome
        if contended.isEmpty {
            outcome = .noContention
        } else if contended.contains(where: { $0.holderUninspectable && $0.cause == nil }) {
            outcome = .couldNotInspect
        } else {
            outcome = .contention
        }
        let source = input.activity.values.first?.source
        var d = Diagnosis(targets: input.report.targets, unlockedTargets: unlocked, locks: lockResults, findings: all,
                          verdict: verdict, outcome: outcome, coverage: input.report.coverage, activity: input.activity,
                          processes: ctx.facts, windowSeconds: input.windowSeconds, activitySource: source)
        d.graph = ctx.graph
        d.activityFallback = input.activityFallback
        d.lockEvents = input.report.lockEvents
        return d
    }

    /// The cause a verdict leads with: a cycle, then the end of a chain, then the rest by rule order.
    func causeRank(_ f: Finding) -> Int {
        // A cycle first; then a leak (the lock outlived its taker: that is the news,
        // whatever the keeper does); then the rest in rule order.
        switch f.rule {
        case .deadlock: return 0
        case .leakedFd, .leaseBreak: return 1
        default: return 2 + f.rule.rank
        }
    }

    /// Each finding once: per rule and pid, a deadlock per set of members (whoever it was found from).
    func dedupe(_ findings: [Finding]) -> [Finding] {
        var seen = Set<[Int32]>()
        return findings.filter { f in
            seen.insert([Int32(f.rule.rank)] + (f.rule == .deadlock ? f.pids.sorted() : [f.pid])).inserted
        }
    }
}

/// What explaining one holder produced: every finding met on the way, and the
/// one that answers "why does it not release the lock".
struct Explanation {
    var findings: [Finding] = []
    var cause: Finding?
    var uninspectable = false
}

/// The classification of one thread: what kind of wait it is in.
enum Doing {
    case waitsLock(ThreadActivity?, LockEntry)
    case dns(ThreadActivity, ResolvedFd?, NetSocket?)
    case network(ThreadActivity, ResolvedFd, NetSocket)
    case pipe(ThreadActivity, fd: Int32, channel: Rules.Channel, side: PipeSide)
    case io(ThreadActivity)
    case waitsChild(ThreadActivity, [Int32])
    case futex(ThreadActivity)
    case sleeping(ThreadActivity)
    case busy(ThreadActivity)
    case other(ThreadActivity)

    var rank: Int {
        switch self {
        case .waitsLock: return 0
        case .dns: return 1
        case .network: return 2
        case .pipe: return 3
        case .io: return 4
        case .waitsChild: return 5
        case .futex: return 6
        case .sleeping: return 7
        case .busy: return 8
        case .other: return 9
        }
    }
}

struct RuleContext {
    let input: DiagnosisInput
    /// Facts for every pid anyone mentions: the report's, the global locks', the extras.
    var facts: [Int32: ProcessFacts] = [:]
    /// The report's locks and the system-wide ones its chains run through.
    let graph: LockGraph

    init(input: DiagnosisInput) {
        self.input = input
        var facts = input.processes
        let named = (input.report.locks + (input.allLocks ?? [])).flatMap { l in l.holders.map(\.process) + l.waiters.map(\.process) }
        for case let p? in named + input.report.openers.map(\.process) where facts[p.pid] == nil { facts[p.pid] = p }
        self.facts = facts
        self.graph = LockGraph(input.report.locks, others: input.allLocks ?? [])
    }

    // MARK: - Names

    func comm(_ pid: Int32) -> String? { facts[pid]?.comm }

    /// `iptables[36057]`, or `pid 36057` when nothing is known about it.
    func name(_ pid: Int32) -> String {
        if let c = comm(pid) { return "\(c)[\(pid)]" }
        return "pid \(pid)"
    }

    func lockName(_ l: LockEntry) -> String { l.path ?? l.file?.description ?? "(unknown file)" }

    func children(of pid: Int32) -> [Int32] {
        facts.values.filter { $0.ppid == pid && $0.pid != pid }.map(\.pid).sorted()
    }

    // MARK: - Explaining a holder

    /// Why `pid`, which holds `lock`, does not release it: classify what it is doing,
    /// and follow it into the lock it waits for or the child it waits on.
    func explain(pid: Int32, lock: LockEntry, depth: Int, chain: [Int32], maxDepth: Int) -> Explanation {
        guard depth <= maxDepth else { return Explanation() }

        // Stopped outranks whatever call it was stopped in.
        if let stopped = Rules.stopped(ctx: self, pid: pid, lock: lock) { return Explanation(findings: [stopped], cause: stopped) }
        // Exiting: whatever its threads were doing is over; only the close in do_exit() is left.
        if lock.ownerStatus == .exiting && pid == lock.kernelPid {
            let f = Rules.exiting(ctx: self, pid: pid, lock: lock)
            return Explanation(findings: [f], cause: f)
        }

        // Queued behind another lock: follow the chain (the kernel lists it as a waiter).
        let myChain = chain + [pid]
        if let next = graph.next(after: pid, holding: lock.id) {
            // A cycle: this one waits, through others, for what it holds itself.
            if let cycle = graph.cycle(through: pid), let last = cycle.last {
                let f = Rules.deadlock(ctx: self, cycle: cycle.map { ($0.pid, $0.holds) }, wants: last.waitsFor, lock: last.holds)
                return Explanation(findings: [f], cause: f)
            }
            guard let nextHolder = next.holders.first else { return Explanation(uninspectable: true) }
            let inner = explain(pid: nextHolder.pid, lock: next, depth: depth + 1, chain: myChain, maxDepth: maxDepth)
            if inner.cause?.rule == .deadlock {
                // The cycle was found further down; this holder is stuck behind it.
                return inner
            }
            let thread = activityThread(pid: pid, matching: { if case .lock = $0 { return true } else { return false } })
            let f = Rules.waitChain(ctx: self, pid: pid, thread: thread, holds: lock, waitsFor: next,
                                    rest: inner, root: inner.cause?.pid ?? nextHolder.pid)
            return Explanation(findings: [f] + inner.findings, cause: inner.cause ?? f, uninspectable: inner.uninspectable)
        }

        // No thread's call could be read (another user's process, /proc/PID/syscall denied):
        // not inspected, whatever its state says.
        let blind = input.activity[pid].map { $0.threads.allSatisfy { $0.current == nil && $0.state != "R" } } ?? true
        guard let doing = classify(pid: pid) else {
            return Explanation(uninspectable: blind || facts[pid] == nil || input.uninspectable.contains(pid))
        }
        var inner = Explanation()
        let f: Finding
        switch doing {
        case .waitsLock(let t, let entry):
            // A lock call on an fd whose lock the kernel does not list as a waiter (OFD, or raced).
            f = Rules.waitChain(ctx: self, pid: pid, thread: t, holds: lock, waitsFor: entry, rest: Explanation(),
                                root: entry.holders.first?.pid)
        case .dns(let t, let fd, let sock): f = Rules.dnsTimeout(ctx: self, pid: pid, thread: t, fd: fd, socket: sock, lock: lock)
        case .network(let t, let fd, let sock): f = Rules.network(ctx: self, pid: pid, thread: t, fd: fd, socket: sock, lock: lock)
        case .pipe(let t, let fd, let channel, let side):
            f = Rules.holderPipe(ctx: self, pid: pid, thread: t, fd: fd, channel: channel, side: side, lock: lock)
        case .io(let t): f = Rules.io(ctx: self, pid: pid, thread: t, lock: lock)
        case .waitsChild(let t, let kids):
            for child in kids where !myChain.contains(child) {
                let e = explain(pid: child, lock: lock, depth: depth + 1, chain: chain, maxDepth: maxDepth)
                inner.findings += e.findings
                if inner.cause == nil || (e.cause.map { $0.rule.rank } ?? 99) < (inner.cause?.rule.rank ?? 99) {
                    inner.cause = e.cause ?? inner.cause
                }
            }
            f = Rules.waitsChild(ctx: self, pid: pid, thread: t, children: kids, childCause: inner.cause, lock: lock)
        case .futex(let t): f = Rules.futex(ctx: self, pid: pid, thread: t, lock: lock)
        case .sleeping(let t): f = Rules.sleeping(ctx: self, pid: pid, thread: t, lock: lock)
        case .busy(let t): f = Rules.busy(ctx: self, pid: pid, thread: t, lock: lock)
        case .other: return Explanation(uninspectable: blind)
        }
        // What a child is stuck in is the cause; the finding about this one says how it leads there.
        return Explanation(findings: [f] + inner.findings, cause: inner.cause ?? f)
    }

    func activityThread(pid: Int32, matching: (BlockingCall) -> Bool) -> ThreadActivity? {
        input.activity[pid]?.threads.first { $0.call.map(matching) ?? false }
    }

    // MARK: - Classification

    /// What the process is doing, from its most telling thread; nil when nothing is known.
    func classify(pid: Int32) -> Doing? {
        guard let act = input.activity[pid] else { return nil }
        // The first of the most telling, in thread order.
        return act.threads.compactMap { classify(thread: $0, pid: pid, activity: act) }.min { $0.rank < $1.rank }
    }

    func classify(thread t: ThreadActivity, pid: Int32, activity: ProcessActivity) -> Doing? {
        if t.state == "Z" || t.state == "X" { return nil }
        if case .lock(_, let file, _, _)? = t.call, let file,
           let entry = graph.locks.first(where: { $0.file == file }) {
            return .waitsLock(t, entry)
        }
        // Sockets first: a DNS query in D state is still a DNS query.
        if case .io(let fds, _)? = t.call {
            let conf = input.resolvConf[pid]
            for f in fds {
                guard let target = f.what else { continue }
                if case .socket(let s) = target {
                    if Rules.isDNS(s, conf: conf) { return .dns(t, f, s) }
                }
            }
            for f in fds {
                if case .socket(let s)? = f.what, s.proto != .unix { return .network(t, f, s) }
            }
        }
        if t.state == "D" { return .io(t) }
        if let o = Rules.blockedOpeningFifo(ctx: self, t) { return .pipe(t, fd: -1, channel: .fifoOpening(o), side: o.side) }
        if let p = Rules.blockedPipe(t) { return .pipe(t, fd: p.fd, channel: p.channel, side: p.side) }
        switch t.call {
        case .waitChild(let child)?:
            var kids = children(of: pid)
            if let c = child, c > 0 { kids = [c] }
            return .waitsChild(t, kids)
        case .futex?:
            return .futex(t)
        case .sleep?:
            return .sleeping(t)
        default:
            break
        }
        if Rules.isBusy(t, window: activity.windowSeconds) { return .busy(t) }
        return .other(t)
    }

    // MARK: - Leaks

    /// `leaked-fd`: the pid /proc/locks names has exited (or no longer holds it)
    /// while another process keeps the lock alive through an inherited descriptor.
    func leakedFd(_ lock: LockEntry) -> [Finding] {
        guard lock.ownerStatus == .gone || lock.ownerStatus == .reused else { return [] }
        let keepers = lock.holders.filter { !$0.isOwner }
        guard !keepers.isEmpty else { return [] }
        return [Rules.leakedFd(ctx: self, lock: lock, keepers: keepers)]
    }
}
