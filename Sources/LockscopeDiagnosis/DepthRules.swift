import LockscopeCore
import LockscopeTrace

/// The rules that follow a holder one step further than the lock graph: the
/// lock's own protocol (SQLite, dpkg …), the other end of a pipe it is blocked
/// on, and a lease the kernel is breaking. Evidence keys: docs/diagnose.md.
extension Rules {
    // MARK: - holder-pipe

    /// What a holder is blocked on that has another end: an anonymous pipe, a named
    /// FIFO (by the path its descriptor shows), a unix socket, or a named FIFO it is
    /// still opening (no descriptor yet: open() waits for the other side).
    enum Channel: Hashable {
        case pipe(inode: UInt64)
        case fifo(path: String)
        case unixSocket(inode: UInt64, path: String?)
        case fifoOpening(FifoOpening)
    }

    /// The named FIFO a thread is blocked opening, when the gatherer found one for it
    /// and the thread still waits for a partner.
    static func blockedOpeningFifo(ctx: RuleContext, _ t: ThreadActivity) -> FifoOpening? {
        guard let o = ctx.input.fifoOpens[t.tid], FifoOpen.waitsForPartner(wchan: t.wchan, stack: t.kernelStack) else { return nil }
        return o
    }

    /// The calls that move data through a pipe or socket, and which side they need.
    static func pipeDirection(_ t: ThreadActivity) -> PipeSide? {
        switch t.syscall {
        case "write", "writev", "pwritev", "pwritev2", "vmsplice", "sendto", "sendmsg", "sendmmsg": return .write
        case "read", "readv", "preadv", "preadv2", "recvfrom", "recvmsg", "recvmmsg": return .read
        case "splice", "tee": return .both
        default: return nil
        }
    }

    /// Where a thread waits when a pipe or FIFO is full or empty (fs/pipe.c): in
    /// pipe_read()/pipe_write() themselves since Linux 5.5 (anon_pipe_read()/
    /// anon_pipe_write() in 6.x kernels, for FIFOs too), in pipe_wait() before.
    static func inPipeWait(_ wchan: String?) -> Bool {
        guard let w = wchan else { return false }
        return w.hasSuffix("pipe_read") || w.hasSuffix("pipe_write") || w.hasPrefix("pipe_wait")
    }

    /// The pipe, FIFO or unix socket a thread is blocked on, with the side it needs,
    /// when its call is a read or write on one.
    static func blockedPipe(_ t: ThreadActivity) -> (fd: Int32, channel: Channel, side: PipeSide)? {
        guard let dir = pipeDirection(t), case .io(let fds, _)? = t.call else { return nil }
        for f in fds {
            switch f.what {
            case .pipe(let inode, _)?: return (f.fd, .pipe(inode: inode), dir)
            case .socket(let s)? where s.proto == .unix: return (f.fd, .unixSocket(inode: s.inode, path: s.path), dir)
            case .path(let p)? where inPipeWait(t.wchan): return (f.fd, .fifo(path: p), dir)
            default: continue
            }
        }
        return nil
    }

    /// What a pipe peer does, in a few words: `in clock_nanosleep()`, `stopped (T)`, `running`.
    static func peerDoing(ctx: RuleContext, _ pid: Int32) -> (text: String, moves: Bool) {
        let wantsIO: Set<String> = ["read", "readv", "preadv", "preadv2", "write", "writev", "pwritev", "pwritev2",
                                    "splice", "tee", "poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2",
                                    "recvfrom", "recvmsg", "recvmmsg", "sendto", "sendmsg", "sendmmsg"]
        if let act = ctx.input.activity[pid] {
            let moved = act.threads.contains { t in
                t.histogram.contains { wantsIO.contains($0.label) } || (t.syscall.map(wantsIO.contains) ?? false)
            }
            if let t = act.threads.first {
                if t.state == "T" || t.state == "t" { return ("stopped (state \(t.state))", false) }
                if let s = t.syscall { return ("in \(s)()" + forText(t), moved) }
                return (t.state == "R" ? "running" : "state \(t.state)", moved)
            }
        }
        if let f = ctx.facts[pid] {
            if f.state == "T" || f.state == "t" { return ("stopped (state \(f.state))", false) }
            return ("state \(f.state)", false)
        }
        return ("gone or not visible", false)
    }

    static func holderPipe(ctx: RuleContext, pid: Int32, thread t: ThreadActivity, fd: Int32, channel: Channel,
                           side: PipeSide, lock: LockEntry) -> Finding {
        var e: [EvidenceItem] = [EvidenceItem("pid", .pid(pid))]
        e += threadEvidence(t, pid: pid)
        e.append(EvidenceItem("fd", .int(Int64(fd))))
        // The other end: for a pipe or FIFO the descriptors open for the other side; for
        // a socket every descriptor on its peer socket (a socket is both sides).
        let looked: Bool
        let peers: [Int32]
        let name: String        // how the summary names the channel
        var notLooked = "its other end was not looked for"
        let peerSide: PipeSide = side == .write ? .read : .write
        switch channel {
        case .pipe(let inode):
            looked = ctx.input.pipeEnds[inode] != nil
            peers = PipeEnds.peers(ctx.input.pipeEnds[inode] ?? [], side: peerSide, except: pid)
            e.append(EvidenceItem("pipe_inode", .int(Int64(bitPattern: inode))))
            name = "pipe:[\(inode)]"
        case .fifo(let path):
            looked = ctx.input.fifoEnds[path] != nil
            peers = PipeEnds.peers(ctx.input.fifoEnds[path] ?? [], side: peerSide, except: pid)
            e.append(EvidenceItem("fifo", .string(path)))
            name = "FIFO " + path
        case .fifoOpening(let o):
            return fifoOpen(ctx: ctx, pid: pid, thread: t, opening: o, lock: lock)
        case .unixSocket(let inode, let path):
            let peer = ctx.input.unixPeers[inode]
            looked = peer != nil && peer?.unavailable == nil
            if let why = peer?.unavailable { notLooked = "its peer could not be looked up (\(why))" }
            var pids: [Int32] = []
            for end in peer?.ends ?? [] where end.pid != pid && !pids.contains(end.pid) { pids.append(end.pid) }
            peers = pids
            e.append(EvidenceItem("socket_inode", .int(Int64(bitPattern: inode))))
            if let p = path { e.append(EvidenceItem("socket_path", .string(p))) }
            if let p = peer?.socket?.peer { e.append(EvidenceItem("peer_socket_inode", .int(Int64(p)))) }
            // Bytes sent to the peer that it has not read: a writer blocks once its buffer fills.
            if let q = peer?.peerSocket?.receiveQueue { e.append(EvidenceItem("peer_unread_bytes", .int(Int64(q)))) }
            name = "unix socket" + (path.map { " " + $0 } ?? " socket:[\(inode)]")
        }
        e.append(EvidenceItem("direction", .string(side == .write ? "write" : "read")))
        e.append(EvidenceItem(side == .write ? "readers" : "writers", .pids(peers)))
        var doing: [String] = []
        var anyMoves = false
        for p in peers {
            let d = peerDoing(ctx: ctx, p)
            doing.append("\(ctx.name(p)): \(d.text)")
            anyMoves = anyMoves || d.moves
        }
        if !doing.isEmpty { e.append(EvidenceItem("peer_activity", .strings(doing))) }
        let summary: String
        let first = peers.first.map { peerDoing(ctx: ctx, $0) }
        if case .unixSocket = channel {
            let what = side == .write ? "is blocked writing to a \(name)" : "is blocked reading from a \(name)"
            if !looked {
                summary = "\(ctx.name(pid)) \(what); \(notLooked)"
            } else if peers.isEmpty {
                summary = "\(ctx.name(pid)) \(what); no process visible from here has its peer open"
            } else {
                let who = peers.count == 1 ? "whose peer \(ctx.name(peers[0]))" : "whose peers " + peers.prefix(3).map { ctx.name($0) }.joined(separator: ", ")
                let verb = side == .write ? "reading" : "writing"
                let be = peers.count == 1 ? "is" : "are"
                summary = "\(ctx.name(pid)) \(what) \(who) " + (anyMoves ? "\(be) \(first?.text ?? "")" : "\(be) not \(verb) (\(first?.text ?? ""))")
            }
        } else {
            let full = (t.wchan?.hasSuffix("pipe_write") ?? false) ? "a full " : "a "
            // A pipe is named after the verb only when it matters (no peer); a FIFO always by its path.
            let (kind, inline, aside): (String, String, String) = {
                if case .fifo(let path) = channel { return ("FIFO", " " + path, "") }
                return ("pipe", "", " (\(name))")
            }()
            let what = side == .write ? "is blocked writing into \(full)\(kind)\(inline)" : "is blocked reading from an empty \(kind)\(inline)"
            let role = side == .write ? "reader" : "writer"
            if !looked {
                summary = "\(ctx.name(pid)) \(what)\(aside); \(notLooked)"
            } else if peers.isEmpty {
                summary = "\(ctx.name(pid)) \(what)\(aside); no process visible from here has its other end open"
            } else {
                let verb = side == .write ? "reads" : "writes"
                let who = peers.count == 1 ? "its only \(role), \(ctx.name(peers[0]))," : "its \(role)s, " + peers.prefix(3).map { ctx.name($0) }.joined(separator: ", ") + ","
                summary = "\(ctx.name(pid)) \(what); \(who) " + (anyMoves ? "is \(first?.text ?? "")" : "never \(verb) (\(first?.text ?? ""))")
            }
        }
        let suggestion = peers.isEmpty
            ? "\(findHint(channel)); the holder cannot go on until someone \(side == .write ? "reads" : "writes")."
            : "The holder waits on \(peers.map { ctx.name($0) }.joined(separator: ", ")): make it \(side == .write ? "read (or exit, which makes the write fail with EPIPE)" : "write or close its end"), or restart the pipeline."
        return Finding(rule: .holderPipe, severity: .warning, lock: lock.file, pid: pid, summary: summary, evidence: e,
                       suggestion: suggestion)
    }

    /// How to find who should hold the other end.
    static func findHint(_ channel: Channel) -> String {
        switch channel {
        case .pipe(let inode): return "Find who should hold the other end of pipe:[\(inode)] (`lsof -n | grep \(inode)`)"
        case .fifo(let path): return "Find who should have the FIFO \(path) open (`lsof \(path)`)"
        case .fifoOpening(let o): return "Find who should open the FIFO \(o.path) for \(o.side == .write ? "reading" : "writing") (`lsof \(o.path)` lists who has it open)"
        case .unixSocket(let inode, _): return "Find who should hold the peer of socket:[\(inode)] (`ss -xp | grep \(inode)`)"
        }
    }

    /// A holder blocked in open() of a named FIFO: `fifo_open()` waits in
    /// `wait_for_partner()` until someone opens the other side, so by the kernel's
    /// own count nobody has it open for that side; who has it open on this side is
    /// listed (by link and inode).
    static func fifoOpen(ctx: RuleContext, pid: Int32, thread t: ThreadActivity, opening o: FifoOpening, lock: LockEntry) -> Finding {
        let writing = o.side == .write
        let (want, other) = writing ? ("writing", "reading") : ("reading", "writing")
        var e: [EvidenceItem] = [EvidenceItem("pid", .pid(pid))]
        e += threadEvidence(t, pid: pid)
        e.append(EvidenceItem("fifo", .string(o.path)))
        if let ino = o.inode { e.append(EvidenceItem("fifo_inode", .int(Int64(bitPattern: ino)))) }
        e.append(EvidenceItem("fifo_open", .bool(true)))
        e.append(EvidenceItem("direction", .string(writing ? "write" : "read")))
        // Normally empty (the open would have returned): one who opened it a moment ago.
        let peers = PipeEnds.peers(o.ends, side: writing ? .read : .write, except: pid)
        e.append(EvidenceItem(writing ? "readers" : "writers", .pids(peers)))
        var others: [Int32] = []
        for end in o.ends where end.pid != pid && !others.contains(end.pid) { others.append(end.pid) }
        e.append(EvidenceItem("open_by", .pids(others)))
        func sides(_ p: Int32) -> String {
            let s = Set(o.ends.filter { $0.pid == p }.compactMap(\.side))
            if s.contains(.both) || (s.contains(.read) && s.contains(.write)) { return "reading and writing" }
            return s.contains(.write) ? "writing" : s.contains(.read) ? "reading" : "an unknown side"
        }
        var summary = "\(ctx.name(pid)) is blocked opening the FIFO \(o.path) for \(want)" + forText(t)
        if peers.isEmpty {
            summary += ": no process has it open for \(other)"
            if !others.isEmpty {
                summary += " (" + others.prefix(3).map { "\(ctx.name($0)) has it open for \(sides($0))" }.joined(separator: ", ")
                    + (others.count > 3 ? ", \(others.count - 3) more" : "") + ")"
            }
        } else {
            summary += "; \(peers.prefix(3).map { ctx.name($0) }.joined(separator: ", ")) opened it for \(other) a moment ago, so the open should return"
        }
        let suggestion = "\(findHint(.fifoOpening(o))): the open returns as soon as one does. Stopping the opener ends the wait; an open with O_RDWR (or a reader's O_NONBLOCK) would not have waited."
        return Finding(rule: .holderPipe, severity: .warning, lock: lock.file, pid: pid, summary: summary, evidence: e,
                       suggestion: suggestion)
    }

    // MARK: - lease-break

    static func leaseBreak(ctx: RuleContext, lock: LockEntry) -> Finding? {
        guard lock.kind == .lease, lock.mode == "BREAKING" || !lock.waiters.isEmpty else { return nil }
        let holder = lock.holders.first?.pid ?? lock.kernelPid
        let breakers = lock.waiters.map(\.pid).filter { $0 > 0 }
        var e: [EvidenceItem] = [EvidenceItem("pid", .pid(holder))]
        e.append(EvidenceItem("lease", .string(lock.access.rawValue)))
        e.append(EvidenceItem("mode", .string(lock.mode)))
        e.append(EvidenceItem("breakers", .pids(breakers)))
        var calls: [String] = []
        var waitedAtLeast = 0.0
        var waitedAtMost: Double?
        for b in breakers {
            let t = ctx.input.activity[b]?.threads.first { $0.syscall != nil } ?? ctx.input.activity[b]?.threads.first
            if let s = t?.syscall ?? breakerCall(ctx.facts[b]) { calls.append("\(ctx.name(b)): \(s)()") }
            waitedAtLeast = max(waitedAtLeast, t?.inCallSeconds ?? 0)
            if let age = ctx.facts[b]?.ageSeconds { waitedAtMost = max(waitedAtMost ?? 0, age) }
        }
        // Lock events that saw the open which set the kernel's deadline give the exact wait.
        let seenBreak = ctx.input.leaseBreaks.first { $0.file == lock.file && ($0.holder == 0 || $0.holder == holder) }
        let breaking = seenBreak?.deadlineSetSecondsAgo
        if let breaking {
            waitedAtLeast = breaking
            waitedAtMost = breaking
        }
        if !calls.isEmpty { e.append(EvidenceItem("breaker_calls", .strings(calls))) }
        e.append(EvidenceItem("waited_at_least_seconds", .double(waitedAtLeast)))
        if let m = waitedAtMost { e.append(EvidenceItem("waited_at_most_seconds", .double(m))) }
        if let breaking { e.append(EvidenceItem("break_started_seconds_ago", .double(breaking))) }
        var eventsRan = false
        if case .observed? = ctx.input.report.lockEvents { eventsRan = true }
        var clockText = ""
        if let bt = ctx.input.leaseBreakTime {
            let clock = breaking.map { LeaseBreakClock(breakTimeSeconds: Double(bt), breakingSeconds: $0) }
                ?? LeaseBreakClock(breakTimeSeconds: Double(bt), waitedAtLeast: waitedAtLeast, waitedAtMost: waitedAtMost)
            e.append(EvidenceItem("lease_break_time", .int(Int64(bt))))
            e.append(EvidenceItem("seconds_left", .double(clock.secondsLeft)))
            e.append(EvidenceItem("seconds_left_at_most", .double(clock.secondsLeftAtMost)))
            e.append(EvidenceItem("seconds_left_source", .string(clock.source.rawValue)))
            let how: String
            switch clock.source {
            case .event: how = "; the break began \(durationText(breaking ?? 0)) ago, seen by lock events"
            case .estimate: how = eventsRan ? "; estimated: the break began before lock events were recording" : ""
            }
            clockText = "; the kernel breaks it itself in \(durationText(clock.secondsLeft))"
                + (clock.secondsLeftAtMost - clock.secondsLeft >= 1 ? "–\(durationText(clock.secondsLeftAtMost))" : "")
                + " (lease-break-time \(bt) s\(how))"
        } else {
            clockText = "; the kernel breaks it itself after /proc/sys/fs/lease-break-time (unreadable here)"
        }
        var signalText = ""
        if let masks = ctx.facts[holder]?.signalMasks {
            let h = LeaseFacts.signalHandling(masks)
            e.append(EvidenceItem("sigio", .string(h.rawValue)))
            switch h {
            case .handled: signalText = ". It catches SIGIO, the default lease-break signal"
            case .ignoredOrBlocked: signalText = ". It ignores or blocks SIGIO, so it may never hear of the break"
            case .defaultAction: signalText = ". It has no SIGIO handler (SIGIO's default action ends it, unless F_SETSIG chose another signal)"
            }
            let rt = masks.caughtRealtime
            if !rt.isEmpty { e.append(EvidenceItem("realtime_signals_caught", .ints(rt.map(Int64.init)))) }
        }
        e.append(EvidenceItem("f_getsig", .string("unknown: F_GETSIG works only on the holder's own descriptor")))
        let who = breakers.isEmpty ? "another process" : breakers.map { ctx.name($0) }.joined(separator: ", ")
        let summary = "\(ctx.name(holder)) holds a \(lock.access == .read ? "read" : "write") lease that is being broken: \(who) \(breakers.count == 1 ? "is" : "are") blocked in \(calls.isEmpty ? "open()" : "open()/truncate()") until it is released\(clockText)\(signalText)"
        let suggestion = "The holder should answer the break signal by releasing or downgrading the lease (fcntl(fd, F_SETLEASE, F_UNLCK or F_RDLCK)); otherwise the opener waits until the kernel's deadline. /proc/sys/fs/lease-break-time sets that deadline for the whole system."
        return Finding(rule: .leaseBreak, severity: .warning, lock: lock.file, pid: holder, summary: summary, evidence: e,
                       suggestion: suggestion)
    }

    /// The call a breaker the window did not sample is in, from its snapshot (lock events found it).
    static func breakerCall(_ facts: ProcessFacts?) -> String? {
        for t in facts?.threads ?? [] {
            if case .inSyscall(let nr, _, _, _) = t.syscall, let name = SyscallTable.host.name(of: nr) { return name }
        }
        return nil
    }

    // MARK: - sqlite-busy and lock-protocol

    /// Asleep between attempts for most of the window, as SQLite's busy handler is
    /// (sqlite3_busy_timeout sleeps 1–100 ms between F_SETLK tries, src/main.c
    /// `sqliteDefaultBusyCallback()`): a thread in nanosleep/clock_nanosleep now or in
    /// at least a third of the samples.
    static func retriesBetweenSleeps(_ act: ProcessActivity?) -> Bool {
        let sleeps: Set<String> = ["nanosleep", "clock_nanosleep"]
        return act?.threads.contains { t in
            if case .sleep? = t.call { return true }
            return t.histogram.contains { sleeps.contains($0.label) && $0.fraction >= 1.0 / 3 }
        } ?? false
    }

    static func protocolFinding(ctx: RuleContext, lock: LockEntry, reading r: ProtocolReading, pollers: [Int32],
                                blocked: [Int32]) -> Finding? {
        guard !pollers.isEmpty || !blocked.isEmpty else { return nil }
        let holders = r.participants.filter { !$0.wanted }
        let top = holders.first
        let pid = top?.pid ?? lock.holders.first?.pid ?? lock.kernelPid
        var e: [EvidenceItem] = [EvidenceItem("pid", .pid(pid))]
        e.append(EvidenceItem("protocol", .string(r.name)))
        if let s = top?.state { e.append(EvidenceItem("state", .string(s))) }
        e.append(EvidenceItem("holder_states", .strings(holders.map { "\($0.pid) \($0.state)" })))
        if !pollers.isEmpty { e.append(EvidenceItem("retrying", .pids(pollers))) }
        if !blocked.isEmpty { e.append(EvidenceItem("blocked", .pids(blocked))) }
        e.append(EvidenceItem("meaning", .string(r.meaning)))
        e.append(EvidenceItem("source", .string(r.source)))
        let isSQLite = r.name == "sqlite" || r.name == "sqlite-wal"
        let resource = r.resource ?? lock.path ?? lock.file?.description ?? "(unknown file)"
        let holderText = top.flatMap { t in t.state == "LOCKED" ? nil
            : "\(ctx.name(t.pid)) holds the \(t.state) lock" + (t.meaning.isEmpty ? "" : " (\(t.meaning))") }
            ?? "\(ctx.name(pid)) holds it"
        var waitText: [String] = []
        if !pollers.isEmpty {
            let n = pollers.count
            waitText.append(isSQLite ? "\(n) connection\(n == 1 ? "" : "s") retr\(n == 1 ? "ies" : "y") in SQLite's busy handler"
                                     : "\(n) process\(n == 1 ? "" : "es") retr\(n == 1 ? "ies" : "y")")
        }
        if !blocked.isEmpty { waitText.append("\(blocked.count) blocked in the kernel") }
        let summary = "\(r.title) \(resource): \(holderText); " + waitText.joined(separator: ", ")
        return Finding(rule: isSQLite ? .sqliteBusy : .lockProtocol, severity: isSQLite ? .warning : .info, lock: lock.file,
                       pid: pid, summary: summary, evidence: e, suggestion: r.advice)
    }
}
