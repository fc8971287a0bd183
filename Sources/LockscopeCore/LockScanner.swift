#if canImport(Glibc)
import Glibc
#endif
import CLockscope

/// Builds the holder/waiter graph (`LockReport`) from /proc.
///
/// Order of work, cheapest first: /proc/locks (one read) names the granted locks,
/// their owners and the kernel's waiter trees; the owners' fdinfo gives each lock's
/// link text; one parallel fd scan (`FdScanner`) finds every other descriptor with
/// that text; fdinfo confirms each match by identity and shows which of them carry
/// the lock (co-holders); thread syscalls place waiters the kernel does not name.
public struct LockScanner: Sendable {
    public let proc: ProcRoot
    /// Never reported: lockscope's own descriptors (it opens the target with O_PATH).
    /// Default: our pid on the live /proc, nobody on a recorded tree (its pids are not ours).
    public var excludedPids: Set<Int32>

    public init(proc: ProcRoot = ProcRoot(), excludedPids: Set<Int32>? = nil) {
        self.proc = proc
        self.excludedPids = excludedPids ?? (proc.isLive ? [getpid()] : [])
    }

    public struct Options: Sendable {
        /// Find co-holders (a full fd scan). `who`/`waiters` always do; `list` only with `--holders`.
        public var coHolders = true
        /// Also find processes that merely have the file open (pollers, idle openers).
        /// Needs the link-text scan; without it, co-holders come from the cheaper kcmp scan.
        public var openers = true
        /// Read process facts (comm, cmdline, threads …) for everyone in the report.
        public var processFacts = true
        /// Match each kernel waiter to its blocked thread and read its facts. `list`
        /// only counts waiters, and skipping this keeps it as cheap as lslocks.
        public var waiterDetails = true
        /// Facts from `/proc/PID/stat` alone (comm, state, age) for holders and every
        /// waiter, no threads, no /etc/passwd: what `list`'s columns show, at one read
        /// per process like lslocks (docs/performance.md, "Start-up").
        public var briefFacts = false
        /// Fill `Holder.pathInNamespace`, and give a lock whose owner is in another mount
        /// namespace our path for it (one readlink of ns/mnt per holder pid; mountinfo
        /// only for holders in another namespace). `report(for:)` always does; `list` asks.
        public var namespacePaths = false
        public init(coHolders: Bool = true, openers: Bool = true, processFacts: Bool = true, waiterDetails: Bool = true,
                    briefFacts: Bool = false, namespacePaths: Bool = false) {
            self.coHolders = coHolders
            self.openers = openers
            self.processFacts = processFacts
            self.waiterDetails = waiterDetails
            self.briefFacts = briefFacts
            self.namespacePaths = namespacePaths
        }
    }

    /// The report for specific files.
    public func report(for targets: [Target], options: Options = Options()) throws(LockscopeError) -> LockReport {
        let began = MonotonicClock.nanoseconds
        let kernel = try readKernelLocks()
        let wanted = Set(targets.map(\.file))
        let relevant = kernel.filter { $0.lock.file.map(wanted.contains) ?? false }
        var links = Set(targets.compactMap { $0.path.map(PathText.bytes(of:)) })
        var report = build(kernel: relevant, targets: targets, files: wanted, links: &links, options: options)
        MountView.annotate(&report, proc: proc)
        if proc.isLive { report.scannedAt = began }
        return report
    }

    /// Every lock on the system (`list`).
    public func allLocks(options: Options = Options(coHolders: false)) throws(LockscopeError) -> LockReport {
        let began = MonotonicClock.nanoseconds
        let kernel = try readKernelLocks()
        let files = Set(kernel.compactMap(\.lock.file))
        var links = Set<[UInt8]>()
        var opts = options
        opts.openers = false  // `list` is about locks; openers of every locked file are noise here
        var report = build(kernel: kernel, targets: [], files: files, links: &links, options: opts)
        if options.namespacePaths { MountView.annotate(&report, proc: proc) }
        if proc.isLive { report.scannedAt = began }
        return report
    }

    func readKernelLocks() throws(LockscopeError) -> [KernelLock] {
        do {
            return try proc.readBytes("locks", chunk: 1 << 16).withUnsafeBytes { ProcLocksParser.parse($0) }.locks
        } catch {
            throw .procRead(error.path, error.errno)
        }
    }

    // MARK: - Building the graph

    /// A descriptor confirmed to refer to one of the files.
    struct OpenFd {
        var pid: Int32
        var fd: Int32
        var file: FileIdentity
        var locks: [LockLine]
        var link: String?
    }

    func build(kernel: [KernelLock], targets: [Target], files: Set<FileIdentity>, links: inout Set<[UInt8]>,
               options: Options) -> LockReport {
        var tally = Tally()
        var inspector = FdInspector(proc: proc)
        var open = ownerDescriptors(kernel: kernel, files: files, links: &links, inspector: &inspector, tally: &tally)
        if options.coHolders {
            open += otherDescriptors(kernel: kernel, owners: open, files: files, links: links, openers: options.openers,
                                     inspector: &inspector, tally: &tally)
            open += descriptorsOfUnknownPaths(kernel: kernel, known: open, inspector: &inspector, tally: &tally)
        }
        var coverage = tally.coverage
        coverage.processesDenied = tally.deniedPids.count

        // Locks with holders and waiters (indexed: /proc/locks may list 100k locks).
        let index = OpenIndex(open)
        var threads = ThreadCache(proc: proc)
        var claimedWaitFds = Set<PidFd>()
        var entries = kernel.map {
            entry(for: $0, open: open, index: index, threads: &threads, claimed: &claimedWaitFds, waiterDetails: options.waiterDetails)
        }

        // Waiters the kernel does not name by pid (OFD: -1) or at all: threads blocked
        // in a lock call on a descriptor to the file. The rest are openers.
        var openers: [Opener] = []
        let protocols = ProtocolIndex(entries)
        for o in open where o.locks.isEmpty && !claimedWaitFds.contains(PidFd(pid: o.pid, fd: o.fd)) {
            if let (tid, request) = blockedLockCall(threads[o.pid], fd: o.fd) {
                // Already listed by the kernel under one of the file's locks (its thread was
                // not matched: `list` skips waiter details): the same wait, not another one.
                if let (li, wi) = kernelWaiter(entries, pid: o.pid, file: o.file) {
                    if options.waiterDetails {
                        entries[li].waiters[wi].tid = tid
                        entries[li].waiters[wi].fd = o.fd
                    }
                    continue
                }
                if let li = entries.firstIndex(where: { $0.file == o.file && overlaps($0, request) }) {
                    attachSyscallWaiter(&entries[li], pid: o.pid, tid: tid, fd: o.fd, request: request)
                    continue
                }
            }
            let seen = OpenerActivity(threads[o.pid])
            let retries = protocols[o.file]?.retryMechanism != nil
            openers.append(Opener(pid: o.pid, fd: o.fd, file: o.file, activity: seen.activity(protocolRetries: retries),
                                  asleep: seen == .asleep))
        }

        if options.processFacts { attachFacts(&entries, &openers, threads: &threads, waiters: options.waiterDetails, brief: options.briefFacts) }

        var resolvedTargets = targets
        for i in resolvedTargets.indices where resolvedTargets[i].path == nil {
            resolvedTargets[i].path = index.byFile[resolvedTargets[i].file]?.first.flatMap { open[$0].link }
        }
        // No descriptor on the file could be read (a holder of another user's): the path
        // the user gave names it.
        for i in entries.indices where entries[i].path == nil {
            entries[i].path = resolvedTargets.first { $0.file == entries[i].file && $0.path != nil }?.path
        }
        // comm is world-readable even where the descriptors are not: the note names them.
        for i in coverage.denied.indices {
            let pid = coverage.denied[i].pid
            if let text = try? proc.readText("\(pid)/comm") {
                coverage.denied[i].comm = String(text.prefix { $0 != "\n" })
            } else if let stat = try? proc.readText("\(pid)/stat"),
                      let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")"), open < close {
                coverage.denied[i].comm = String(stat[stat.index(after: open)..<close])  // "1234 (comm) S …"
            }
        }
        return LockReport(targets: resolvedTargets, locks: entries, openers: openers, coverage: coverage,
                          observerPidNamespace: try? proc.readLink("self/ns/pid"))
    }

    /// Step 1: the owners /proc/locks names. Their lock-carrying fds give the link
    /// text (and the kcmp references) for the scan of everyone else.
    func ownerDescriptors(kernel: [KernelLock], files: Set<FileIdentity>, links: inout Set<[UInt8]>,
                          inspector: inout FdInspector, tally: inout Tally) -> [OpenFd] {
        var open: [OpenFd] = []
        let ownerPids = Set(kernel.map(\.lock.pid).filter { $0 > 0 }).subtracting(excludedPids)
        for pid in ownerPids.sorted() {
            switch inspector.lockedFds(of: pid, files: files) {
            case .gone: tally.coverage.processesVanished += 1
            case .denied:
                tally.deniedPids.insert(pid)
                tally.coverage.noteDenied([DeniedProcess(pid: pid)])
            case .fds(let fds):
                tally.coverage.processesScanned += 1
                for f in fds {
                    open.append(f)
                    if let l = f.link { links.insert(PathText.bytes(of: l)) }
                }
            }
        }
        return open
    }

    /// Step 2: everyone else with the file open — one scan of every fd on the box.
    /// kcmp against the owners' descriptors when only co-holders are wanted and every
    /// lock has a live owner fd; link text otherwise (it also finds pollers).
    func otherDescriptors(kernel: [KernelLock], owners: [OpenFd], files: Set<FileIdentity>, links: Set<[UInt8]>,
                          openers: Bool, inspector: inout FdInspector, tally: inout Tally) -> [OpenFd] {
        let ownerIndex = OpenIndex(owners)
        let refs = kernel.compactMap { k in
            ownerIndex.carrying(k.lock).first(where: { owners[$0].pid == k.lock.pid }).map { owners[$0] }
        }
        let unique = Array(Set(refs.map { FdRef(pid: $0.pid, fd: $0.fd) })).sorted { ($0.pid, $0.fd) < ($1.pid, $1.fd) }
        let everyLockHasRef = refs.count == kernel.filter({ $0.lock.file != nil }).count
        let useKcmp = !openers && everyLockHasRef && !unique.isEmpty && unique.count <= 8 && proc.isLive
            && unique.allSatisfy { cls_kcmp_file($0.pid, $0.pid, $0.fd, $0.fd) == 0 }  // ENOSYS/EPERM: fall back
        let linkList = Array(links)
        let criterion: FdScanner.Criterion
        if useKcmp {
            criterion = .sameOpenFile(unique)
        } else if !linkList.isEmpty {
            criterion = .links(linkList)
        } else {
            return []
        }
        let scan = FdScanner(proc: proc).scan(criterion, excluding: excludedPids.union(owners.map(\.pid)))
        tally.add(scan)
        var found: [OpenFd] = []
        for m in scan.matches {
            guard let (file, locks) = inspector.confirm(pid: m.pid, fd: m.fd, files: files) else { continue }
            let link = useKcmp
                ? refs.first(where: { $0.pid == unique[m.target].pid && $0.fd == unique[m.target].fd })?.link
                : PathText.decode(linkList[m.target])
            found.append(OpenFd(pid: m.pid, fd: m.fd, file: file, locks: locks, link: link))
        }
        return found
    }

    /// Step 2b: locks whose path is still unknown (OFD locks, or an owner that exited,
    /// asked for by MAJ:MIN:INODE): confirm every path-like fd by identity. Slow on a
    /// big box, so only when needed.
    func descriptorsOfUnknownPaths(kernel: [KernelLock], known: [OpenFd], inspector: inout FdInspector,
                                   tally: inout Tally) -> [OpenFd] {
        let unresolved = Set(kernel.compactMap(\.lock.file)).subtracting(known.map(\.file))
        guard !unresolved.isEmpty else { return [] }
        let seen = Set(known.map { PidFd(pid: $0.pid, fd: $0.fd) })
        let scan = FdScanner(proc: proc).scan(.anyPath, excluding: excludedPids)
        // The first scan saw no descriptor (everyone refused, or none to compare): this one's
        // counts; a refused process is counted once either way.
        if tally.coverage.descriptorsScanned == 0 { tally.add(scan) } else { tally.deniedPids.formUnion(scan.deniedPids) }
        var found: [OpenFd] = []
        for m in scan.matches where !seen.contains(PidFd(pid: m.pid, fd: m.fd)) {
            guard let (file, locks) = inspector.confirm(pid: m.pid, fd: m.fd, files: unresolved) else { continue }
            found.append(OpenFd(pid: m.pid, fd: m.fd, file: file, locks: locks, link: try? proc.readLink("\(m.pid)/fd/\(m.fd)")))
        }
        return found
    }

    /// Step 5: facts about everyone named, read once per pid.
    func attachFacts(_ entries: inout [LockEntry], _ openers: inout [Opener], threads: inout ThreadCache, waiters: Bool,
                     brief: Bool = false) {
        let reader = ProcessReader(proc: proc, passwd: brief ? "" : nil)
        var cache: [Int32: ProcessFacts?] = [:]
        func facts(_ pid: Int32) -> ProcessFacts? {
            if let f = cache[pid] { return f }
            if brief {
                let f = reader.briefFacts(of: pid)
                cache[pid] = f
                return f
            }
            var f = reader.facts(of: pid, withThreads: false)
            f?.threads = threads[pid]
            cache[pid] = f
            return f
        }
        for i in entries.indices {
            for h in entries[i].holders.indices { entries[i].holders[h].process = facts(entries[i].holders[h].pid) }
            for w in entries[i].waiters.indices where (waiters || brief) && entries[i].waiters[w].pid > 0 {
                entries[i].waiters[w].process = facts(entries[i].waiters[w].pid)
            }
        }
        for i in openers.indices { openers[i].process = facts(openers[i].pid) }
    }

    /// What the steps could and could not look at. A process may be refused by more
    /// than one step (an owner, then the scan of everyone): it is counted once.
    struct Tally {
        var coverage = ScanCoverage()
        var deniedPids = Set<Int32>()

        mutating func add(_ scan: FdScanResult) {
            coverage.add(scan.coverage)
            deniedPids.formUnion(scan.deniedPids)
        }
    }

    /// Every thread's current syscall, read at most once per pid per report.
    struct ThreadCache {
        let proc: ProcRoot
        var byPid: [Int32: [ThreadFacts]] = [:]

        subscript(pid: Int32) -> [ThreadFacts] {
            mutating get {
                if let t = byPid[pid] { return t }
                let t = ProcessReader.threadsOnly(proc: proc, pid: pid)
                byPid[pid] = t
                return t
            }
        }
    }

    struct PidFd: Hashable {
        var pid: Int32
        var fd: Int32
    }

    /// One granted lock: its holders (owner + co-holders through the same open
    /// file description) and its waiters with the holder that really blocks them.
    func entry(for k: KernelLock, open: [OpenFd], index: OpenIndex, threads: inout ThreadCache,
               claimed: inout Set<PidFd>, waiterDetails: Bool) -> LockEntry {
        let l = k.lock
        var holders: [Holder] = []
        var path: String? = nil
        for i in index.carrying(l) {
            let o = open[i]
            holders.append(Holder(pid: o.pid, fd: o.fd, isOwner: l.pid > 0 && o.pid == l.pid))
            if path == nil { path = o.link }
        }
        if path == nil, let f = l.file { path = index.byFile[f]?.first.flatMap { open[$0].link } }
        let status: OwnerStatus
        var exiting: [ExitingThread] = []
        if l.kind == .ofd || l.pid == -1 {
            status = .ofd
        } else if l.pid == 0 {
            status = .invisible
        } else if holders.contains(where: { $0.isOwner }) {
            status = .alive
        } else if excludedPids.contains(l.pid) {
            status = .alive
        } else {
            switch (try? proc.readText("\(l.pid)/stat")) {
            case nil: status = (proc.exists("\(l.pid)") ? .unknown : .gone)
            case .some(let text):
                if let stat = StatFields.parse(text), let threads = ExitingProcess.threads(proc: proc, pid: l.pid, leader: stat) {
                    // Its descriptors are gone from /proc, but a close in do_exit() still holds the lock.
                    status = .exiting
                    exiting = threads
                } else {
                    // Alive, but none of its fds carries the lock: the pid was reused
                    // (or it could not be inspected, which the coverage says).
                    status = proc.canList("\(l.pid)/fd") ? .reused : .unknown
                }
            }
            if status == .unknown || status == .exiting { holders.insert(Holder(pid: l.pid, fd: nil, isOwner: true), at: 0) }
        }
        // Owner first, then co-holders by pid.
        holders.sort { ($0.isOwner ? 0 : 1, $0.pid) < ($1.isOwner ? 0 : 1, $1.pid) }

        // Who blocks the waiters: the owner if it still holds, else the first live holder.
        let blocker: Int32? = holders.first(where: { $0.isOwner })?.pid ?? holders.first?.pid
            ?? (l.pid > 0 ? l.pid : nil)
        var waiters: [Waiter] = []
        for (i, w) in k.waiters.enumerated() {
            var waiter = Waiter(pid: w.pid, tid: nil, fd: nil, kind: w.kind, access: w.access, start: w.start,
                                end: w.end, blockedBy: blocker, directBlocker: nil, queuePosition: i + 1,
                                source: .kernel)
            let direct = k.directBlockerPid(ofWaiter: i)
            waiter.directBlocker = direct > 0 ? direct : nil
            if w.pid > 0 && waiterDetails {
                if let (tid, fd) = blockedThread(threads[w.pid], fds: index.fds(of: w.pid, on: l.file)) {
                    waiter.tid = tid
                    waiter.fd = fd
                    claimed.insert(PidFd(pid: w.pid, fd: fd))
                }
            }
            waiters.append(waiter)
        }
        var e = LockEntry(file: l.file, path: path, kind: l.kind, access: l.access, mode: l.mode, start: l.start,
                          end: l.end, kernelPid: l.pid, ownerStatus: status, holders: holders, waiters: waiters)
        e.exitingThreads = exiting
        return e
    }

    /// A kernel-listed waiter (pid known): which thread, on which fd.
    func blockedThread(_ threads: [ThreadFacts], fds: Set<Int32>) -> (Int32, Int32)? {
        for t in threads {
            guard case .inSyscall(let nr, let args, _, _) = t.syscall, LockCall(number: nr, args: args) != nil else { continue }
            let fd = Int32(truncatingIfNeeded: args[0])
            if fds.isEmpty || fds.contains(fd) { return (t.tid, fd) }
        }
        return nil
    }

    /// An opener's thread blocked in a lock call on `fd`, with what it asked for.
    func blockedLockCall(_ threads: [ThreadFacts], fd: Int32) -> (Int32, LockCall)? {
        for t in threads {
            guard case .inSyscall(let nr, let args, _, _) = t.syscall, let call = LockCall(number: nr, args: args),
                  Int32(truncatingIfNeeded: args[0]) == fd, call.blocking else { continue }
            return (t.tid, call)
        }
        return nil
    }

    /// The kernel-listed waiter `pid` (a `->` line with its pid) among the locks on `file`
    /// whose thread is not known yet.
    func kernelWaiter(_ entries: [LockEntry], pid: Int32, file: FileIdentity) -> (Int, Int)? {
        for (li, e) in entries.enumerated() where e.file == file {
            if let wi = e.waiters.firstIndex(where: { $0.pid == pid && $0.source == .kernel && $0.tid == nil }) { return (li, wi) }
        }
        return nil
    }

    func attachSyscallWaiter(_ e: inout LockEntry, pid: Int32, tid: Int32, fd: Int32, request: LockCall) {
        // An OFD waiter appears in /proc/locks as pid -1; fill in the first unclaimed one.
        if let i = e.waiters.firstIndex(where: { $0.pid == -1 && $0.tid == nil }) {
            e.waiters[i].pid = pid
            e.waiters[i].tid = tid
            e.waiters[i].fd = fd
            if e.waiters[i].directBlocker == nil || e.waiters[i].directBlocker == -1 { e.waiters[i].directBlocker = e.waiters[i].blockedBy }
            return
        }
        e.waiters.append(Waiter(pid: pid, tid: tid, fd: fd, kind: request.kind, access: request.access, start: request.start ?? 0,
                                end: nil, blockedBy: e.holders.first?.pid, directBlocker: e.holders.first?.pid,
                                queuePosition: e.waiters.count + 1, source: .syscall))
    }

    func overlaps(_ e: LockEntry, _ call: LockCall) -> Bool {
        switch call.kind {
        case .flock: return e.kind == .flock
        default: return e.kind == .posix || e.kind == .ofd
        }
    }
}

/// What one snapshot shows of an opener that neither holds nor waits: the only
/// place an opener is called polling from /proc.
///
/// Polling means an attempt was seen: caught in the non-blocking attempt itself
/// (`flock(LOCK_NB)`, `F_SETLK`), or asleep with the file of a lock protocol whose
/// clients retry between sleeps (`iptables -w` on xtables.lock, SQLite's busy
/// handler, apt's lock timeout: a retry loop's signature). A process that only
/// keeps the file open and sleeps is idle (open, asleep): one snapshot cannot tell
/// it from a poller, and most are not. Lock events (`diagnose`, `waiters --window`)
/// see the attempts themselves.
public enum OpenerActivity: Sendable, Hashable {
    case tryingNonBlocking
    case asleep
    case other

    public init(_ threads: [ThreadFacts]) {
        var asleep = false
        for t in threads {
            guard case .inSyscall(let nr, let args, _, _) = t.syscall else { continue }
            if let c = LockCall(number: nr, args: args), !c.blocking { self = .tryingNonBlocking; return }
            switch SyscallTable.host.name(of: nr) {
            case "nanosleep", "clock_nanosleep": asleep = true
            // select/poll used purely as a sleep: no descriptors.
            case "select", "pselect6": if args[0] == 0 { asleep = true }
            case "poll", "ppoll": if args[1] == 0 { asleep = true }
            default: break
            }
        }
        self = asleep ? .asleep : .other
    }

    /// `protocolRetries`: the file's lock protocol is one whose clients poll.
    public func activity(protocolRetries: Bool) -> Opener.Activity {
        switch self {
        case .tryingNonBlocking: return .polling
        case .asleep: return protocolRetries ? .polling : .idle
        case .other: return .idle
        }
    }
}

/// Lookups over the confirmed descriptors, so building a report stays linear in
/// the number of locks and descriptors.
struct OpenIndex {
    struct PidFile: Hashable {
        var pid: Int32
        var file: FileIdentity?
    }

    var byLock: [LockID: [Int]] = [:]
    var byFile: [FileIdentity: [Int]] = [:]
    var byPidFile: [PidFile: Set<Int32>] = [:]

    init(_ open: [LockScanner.OpenFd]) {
        for (i, o) in open.enumerated() {
            byFile[o.file, default: []].append(i)
            byPidFile[PidFile(pid: o.pid, file: o.file), default: []].insert(o.fd)
            var seen = Set<LockID>()
            for l in o.locks where seen.insert(l.lockID).inserted { byLock[l.lockID, default: []].append(i) }
        }
    }

    /// Indices of the descriptors whose fdinfo carries this lock.
    func carrying(_ l: LockLine) -> [Int] { byLock[l.lockID] ?? [] }

    func fds(of pid: Int32, on file: FileIdentity?) -> Set<Int32> { byPidFile[PidFile(pid: pid, file: file)] ?? [] }
}

/// A blocking-lock system call decoded from raw syscall arguments (host arch).
public struct LockCall: Sendable, Hashable {
    public var kind: LockKind
    public var access: LockAccess
    public var blocking: Bool
    public var start: Int64?

    /// flock(fd, op) or fcntl(fd, F_SETLK[W]/F_OFD_SETLK[W], …); nil for anything else.
    public init?(number: Int, args: [UInt64]) {
        switch SyscallTable.host.name(of: number) {
        case "flock":
            let op = Int32(truncatingIfNeeded: args[1])
            guard op & (LOCK_SH | LOCK_EX) != 0 else { return nil }
            kind = .flock
            access = op & LOCK_EX != 0 ? .write : .read
            blocking = op & LOCK_NB == 0
            start = nil
        case "fcntl":
            switch Int32(truncatingIfNeeded: args[1]) {
            case FcntlCmd.setlkw: kind = .posix; blocking = true
            case FcntlCmd.ofdSetlkw: kind = .ofd; blocking = true
            case FcntlCmd.setlk: kind = .posix; blocking = false
            case FcntlCmd.ofdSetlk: kind = .ofd; blocking = false
            default: return nil
            }
            access = .write  // the struct flock is in the tracee's memory; the tracer decodes it
            start = nil
        default:
            return nil
        }
    }
}
