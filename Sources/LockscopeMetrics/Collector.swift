#if canImport(Glibc)
import Glibc
#endif
import LockscopeCore
import LockscopeDiagnosis
import LockscopeTrace

/// One scrape of the live system: one read of /proc/locks (through `LockScanner`,
/// without the descriptor scan: the owners' fds name the paths, as `list` does),
/// the waiters' scheduler clocks for their wait ages, and a quick diagnosis of the
/// contended locks' holders (one /proc snapshot, no window).
///
/// /proc/locks is read exactly once per `collect()`: reading it takes the kernel's
/// file-lock spinlocks, which stall every lock operation on the machine, so the
/// server never calls this more often than its minimum interval.
public struct Collector: Sendable {
    public var proc: ProcRoot
    public var top: Int
    /// Run the quick diagnosis (reason labels and `lockscope_diagnosis_findings`).
    public var diagnose: Bool
    public var excludedPids: Set<Int32>

    public init(proc: ProcRoot = ProcRoot(), top: Int = 20, diagnose: Bool = true, excludedPids: Set<Int32> = [getpid()]) {
        self.proc = proc
        self.top = top
        self.diagnose = diagnose
        self.excludedPids = excludedPids
    }

    /// What one collection found.
    public struct Result: Sendable {
        public var report: LockReport
        public var metrics: LockMetrics
        /// Findings of the quick diagnosis per rule (every rule present, zeros included); nil when it did not run.
        public var findings: [String: Int]?
    }

    /// Reads the system once. `held` supplies how long each lock has been held
    /// when something has watched it (the server's first-seen times, or events).
    public func collect(held: (LockReport) -> [LockKey: LockMetrics.Held] = { _ in [:] }) throws(LockscopeError) -> Result {
        let scanner = LockScanner(proc: proc, excludedPids: excludedPids)
        // As cheap as `list`: no descriptor scan, facts for the owners only (the waiters'
        // facts cost more than the rest of the snapshot together on a box with 60 waiters).
        let report = try scanner.allLocks(options: .init(coHolders: false, processFacts: true, waiterDetails: false))
        var facts = LockMetrics.Facts()
        facts.oldestWait = waitAges(report)
        facts.held = held(report)
        var findings: [String: Int]? = nil
        if diagnose {
            let quick = QuickDiagnosis(proc: proc, limit: top).run(report)
            facts.reason = quick.reasons
            findings = quick.findings
        }
        return Result(report: report, metrics: LockMetrics(report: report, facts: facts, top: top), findings: findings)
    }

    /// The longest wait of each contended lock, estimated per waiter as the time since
    /// its blocked thread last ran on a CPU (a thread asleep in `flock`/`F_SETLKW` does
    /// not run; `OffCPUClock`, each against its own CPU's clock). Waiters whose files
    /// cannot be read are left out.
    ///
    /// The oldest processes are measured first: no thread has slept longer than its
    /// process has lived, so once the longest sleep found is within `tolerance` of the
    /// next waiter's age, none of the rest can raise the answer by more than that, and
    /// their sched files (the costliest read here: ~45 formatted lines each) are not
    /// read. Waiters usually queue as they start (60 forked in one clock tick, in the
    /// benchmark load): that is after the first.
    /// How far below the longest wait `waitAges` may report, at most: a tenth of a
    /// second, ten clock ticks of the ages it compares, and finer than the estimate
    /// itself (a waiter woken by a release and queued again starts its sleep anew).
    static let waitTolerance = 0.1

    func waitAges(_ report: LockReport) -> [LockKey: Double] {
        var out: [LockKey: Double] = [:]
        guard report.locks.contains(where: { !$0.waiters.isEmpty }) else { return out }
        let reader = ProcessReader(proc: proc, passwd: "")
        var clock = OffCPUClock(proc: proc)
        for l in report.locks where !l.waiters.isEmpty {
            let byAge = l.waiters.compactMap { w -> (waiter: Waiter, stat: StatFields, age: Double)? in
                guard w.pid > 0, let stat = (try? proc.readBytes("\(w.pid)/stat")).flatMap({ $0.withUnsafeBytes { StatFields.parse($0) } })
                else { return nil }
                return (w, stat, reader.age(of: stat) ?? .infinity)
            }.sorted { $0.age > $1.age }
            var oldest: Double? = nil
            for (w, stat, age) in byAge {
                if let best = oldest, age <= best + Self.waitTolerance { break }
                guard let asleep = secondsAsleep(w, stat: stat, clock: &clock) else { continue }
                oldest = max(oldest ?? 0, asleep)
            }
            if let oldest { out[LockKey(l)] = oldest }
        }
        return out
    }

    /// The usual waiter (`flock`, `iptables`) has one thread, which its /proc/PID/stat
    /// says along with the CPU it last ran on: its sched file is then the only other read.
    func secondsAsleep(_ w: Waiter, stat: StatFields, clock: inout OffCPUClock) -> Double? {
        if let tid = w.tid { return clock.secondsSinceLastRan(pid: w.pid, tid: tid) }
        if stat.threads == 1 { return clock.secondsSinceLastRan(pid: w.pid, tid: w.pid, lastCPU: stat.processor) }
        guard let tid = blockedThread(of: w.pid) else { return nil }
        return clock.secondsSinceLastRan(pid: w.pid, tid: tid)
    }

    /// The waiter's thread that sits in a lock call: the process itself when it has one
    /// thread (the usual `flock`/`iptables` waiter: one directory listing), else the
    /// thread whose current syscall is `flock`/`fcntl(F_SETLKW…)`.
    func blockedThread(of pid: Int32) -> Int32? {
        guard let tids = try? proc.listDirectory("\(pid)/task") else { return nil }
        if tids.count == 1 { return Int32(tids[0]) }
        for t in ProcessReader(proc: proc).threads(of: pid) {
            if case .inSyscall(let nr, let args, _, _) = t.syscall, LockCall(number: nr, args: args) != nil { return t.tid }
        }
        return nil
    }
}

/// The diagnosis rules run on what one /proc snapshot shows of the contended locks'
/// owners (no sampling window, no descriptor scan): enough to name the usual causes
/// (DNS timeout, a stopped or sleeping holder, a holder waiting for the child that
/// shares its lock) at scrape cost. `lockscope diagnose` is the full version.
struct QuickDiagnosis {
    var proc: ProcRoot
    /// At most this many contended locks are diagnosed (the most-waited first).
    var limit: Int

    struct Output {
        var reasons: [LockKey: String] = [:]
        var findings: [String: Int] = [:]
    }

    func run(_ report: LockReport) -> Output {
        var out = Output()
        for r in RuleID.allCases { out.findings[r.rawValue] = 0 }
        let contended = report.locks.filter { !$0.waiters.isEmpty }
            .sorted { ($0.waiters.count, $1.path ?? "") > ($1.waiters.count, $0.path ?? "") }
            .prefix(max(0, limit))
        guard !contended.isEmpty else { return out }

        var facts: [Int32: ProcessFacts] = [:]
        for l in contended {
            for h in l.holders { if let p = h.process { facts[p.pid] = p } }
            for w in l.waiters { if let p = w.process { facts[p.pid] = p } }
        }
        // Holders, and the child a holder waits for by pid (flock(1) runs its command
        // as a child that shares the lock: the child is the one doing the work).
        var pids: [Int32] = []
        var seen = Set<Int32>()
        for l in contended { for h in l.holders where h.pid > 0 && seen.insert(h.pid).inserted { pids.append(h.pid) } }
        // No user names: no rule reads them and the exposition has no user label, while
        // parsing /etc/passwd (the scanner already did, for its own reader) cost about a
        // tenth of this diagnosis.
        let reader = ProcessReader(proc: proc, passwd: "")
        let wait4 = SyscallTable.host.number(of: "wait4")
        for pid in pids {
            if facts[pid]?.threads.isEmpty ?? true, let f = reader.facts(of: pid, withThreads: true) { facts[pid] = f }
            for t in facts[pid]?.threads ?? [] {
                guard case .inSyscall(let nr, let args, _, _) = t.syscall, nr == wait4 else { continue }
                let child = Int32(truncatingIfNeeded: args[0])
                if child > 0, seen.insert(child).inserted, let f = reader.facts(of: child, withThreads: true) {
                    facts[child] = f
                    pids.append(child)
                }
            }
        }
        let activity = SamplerActivity(proc: proc).activity(pids: pids, window: 0, hz: 1, shouldStop: { false })
        let confs = Diagnoser.resolvConfs(pids: pids, activity: activity.activity, proc: proc)

        var subset = report
        subset.locks = Array(contended)
        let input = DiagnosisInput(report: subset, allLocks: report.locks, activity: activity.activity, processes: facts,
                                   resolvConf: confs, uninspectable: activity.uninspectable, windowSeconds: 0)
        let d = RuleEngine().diagnose(input)
        for f in d.findings { out.findings[f.rule.rawValue, default: 0] += 1 }
        for ld in d.locks { if let c = ld.cause { out.reasons[LockKey(ld.lock)] = c.rule.rawValue } }
        return out
    }
}
