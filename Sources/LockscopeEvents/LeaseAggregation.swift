import LockscopeCore

/// A lease break in progress: the kernel has flagged the lease
/// (FL_UNLOCK_PENDING or FL_DOWNGRADE_PENDING) and signalled its holder.
public struct PendingBreak: Sendable, Hashable {
    public var started: UInt64
    /// The process whose open() or truncate() broke it (nil when only the flag was seen).
    public var breaker: Int32?
    public var breakerComm: InlineName
    /// The breaker opens for writing: only a release ends the break (a read
    /// breaker is also satisfied by a downgrade to a read lease).
    public var write: Bool
    /// When the kernel set the deadline the breakers wait for: `__break_lease()`
    /// (fs/locks.c) sets `fl_break_time` (`fl_downgrade_time` for a read breaker) to
    /// `jiffies + lease_break_time * HZ` in the loop that flags the lease, right after
    /// `leases_conflict`; a write breaker after a read one sets `fl_break_time` anew.
    /// Nil when that happened before the events began (`time_out_leases` showed the
    /// lease already flagged): `started` is then only when it was first seen.
    public var deadlineSet: UInt64?
}

/// One lease break: who held the lease, who broke it, how long it took and how it ended.
public struct LeaseBreak: Sendable, Hashable {
    public enum Resolution: String, Sendable, Hashable {
        /// The holder gave it up: F_SETLEASE F_UNLCK (`generic_delete_lease`).
        case released
        /// The holder downgraded a write lease to a read lease for a reader (F_SETLEASE F_RDLCK).
        case downgraded
        /// lease-break-time passed and `time_out_leases()` acted: it removed the lease
        /// (`lease_modify(fl, F_UNLCK)`), or, when only readers broke a write lease,
        /// downgraded it to a read lease the holder keeps (`lease_modify(fl, F_RDLCK)`).
        case timedOut = "timed_out"
        /// It went with no F_SETLEASE: the holder closed the file or exited
        /// (`locks_remove_lease()` fires no tracepoint).
        case closed
        /// Still being broken at the end of the observation.
        case pending
    }
    /// Ended breaks kept per lock (the counts cover all of them).
    public static let kept = 64
    public var holder: Int32
    public var holderComm: InlineName
    public var breaker: Int32?
    public var breakerComm: InlineName
    public var started: UInt64
    public var ended: UInt64?
    public var resolution: Resolution
}

/// Leases, following fs/locks.c (include/trace/events/filelock.h for what each
/// tracepoint records):
///
/// - `generic_add_lease` fires at the start of F_SETLEASE F_RDLCK/F_WRLCK, before
///   the kernel decides, with the caller's `fl_owner` (its `files_struct`) and the
///   inode's `i_writecount`/`i_readcount`. The outcome is inferred as the kernel
///   decides it: `check_conflicting_open()` refuses a write lease unless the
///   caller's own open is the only one, and a read lease while the file is open
///   for writing; the lease list refuses a write lease while another owner holds
///   a lease, and any lease while one is being broken. A request from an owner
///   that already holds the lease is `lease_modify()`: a new type, the same hold.
/// - `generic_delete_lease` (F_SETLEASE F_UNLCK) names the removed lease (`fl`,
///   null when there was none): the hold ends, and a break in progress ends as
///   `released`.
/// - `__break_lease()` (an open() or truncate() that conflicts): `time_out_leases`
///   fires for every lease of the inode (its address, owner and pending flags:
///   how a lease taken before the watch is first seen), then `leases_conflict`
///   per lease (`lm_break()` then flags it and signals the holder: the break
///   begins), then `break_lease_noblock` for an O_NONBLOCK open (which fails
///   with -EWOULDBLOCK) or `break_lease_block` (the opener sleeps, `blocker` =
///   the lease) and `break_lease_unblock` when it wakes: the lease was removed
///   or downgraded, or lease-break-time passed (the kernel then removes it in
///   `time_out_leases()`). A lease still held when its breaker wakes went
///   without an F_SETLEASE we saw: closed (`locks_remove_lease()`, no
///   tracepoint) or, after lease-break-time, timed out. (A breaker woken by a
///   signal looks the same; that is rare and not told apart.) A reader breaking
///   a write lease is the exception: FL_DOWNGRADE_PENDING sets only
///   `fl_downgrade_time`, `fl_break_time` stays 0, so the opener wakes every
///   jiffy and is queued again (`goto restart`) until the holder downgrades or
///   releases, or `time_out_leases()` downgrades the lease at its deadline: all
///   one wait and one break (`settleWokenBreakers`).
/// - A holder that exits closes the file: its leases end as `closed`.
///
/// Counted like other locks: `acquisitions` are leases taken, `failedAttempts`
/// refused F_SETLEASE requests and O_NONBLOCK opens refused by a lease,
/// `contended`/`wait` opens that waited for a break, `hold` how long leases were held.
extension LockAggregator {
    mutating func applyLease(_ e: LockEvent) -> LockOperation? {
        let settled = wokenBreakers.isEmpty ? nil : settleWokenBreakers(e)
        return applyLeaseEvent(e) ?? settled
    }

    mutating func applyLeaseEvent(_ e: LockEvent) -> LockOperation? {
        let pid = e.header.pid, t = e.header.time
        learn(pid)
        switch e.tracepoint {
        case .leasesConflict:
            // `lock` is the lease, `type` the breaker's request, `ret` 1 for a conflict.
            guard e.ret == 1, let at = leaseAt[e.lock], let hi = table[at.slot].holdingIndex(at.owner) else { return nil }
            beginBreak(at.slot, hi, by: pid, at: t, write: e.type == .write)
            return nil
        case .timeOutLeases:
            guard let i = slot(LockKey(file: e.file, kind: .lease), create: true) else { return nil }
            let hi: Int
            if let found = table[i].holdingIndex(e.owner) {
                hi = found
            } else {
                // Taken before the watch: its holder's pid is not in the event.
                table[i].held.append(Holding(owner: e.owner, pid: 0, comm: InlineName(), since: t, range: .whole(e.type),
                                             preexisting: true))
                hi = table[i].held.count - 1
            }
            table[i].held[hi].leaseAddress = e.lock
            leaseAt[e.lock] = (i, e.owner)
            if e.flags.contains(.unlockPending) || e.flags.contains(.downgradePending) {
                beginBreak(i, hi, by: table[i].held[hi].pid == pid ? nil : pid, at: t, write: e.flags.contains(.unlockPending),
                           alreadyFlagged: true)
            }
            return nil
        case .genericAddLease:
            guard let i = slot(LockKey(file: e.file, kind: .lease), create: true) else { return nil }
            findPath(i, pid: pid)
            table[i].lastActivity = t
            if let hi = table[i].holdingIndex(e.owner) {
                if table[i].held[hi].pid == 0 { table[i].held[hi].pid = pid; table[i].held[hi].comm = lastComm }
                let old = table[i].held[hi].range.type
                table[i].held[hi].range.type = e.type
                if e.type == .read, old == .write, let b = table[i].held[hi].pendingBreak, !b.write {
                    _ = endBreak(i, hi, at: t, .downgraded)
                }
                return nil
            }
            let s = table[i].slot(pid, lastComm)
            table[i].processList[s].attempted(at: t)
            var op = LockOperation(time: t, pid: pid, comm: lastComm, lock: table[i].key, type: e.type, outcome: .acquired,
                                   waited: nil, held: nil, blockedBy: nil)
            if Self.leaseRefused(e, others: table[i].held) {
                table[i].failedAttempts += 1
                table[i].processList[s].failedAttempts += 1
                op.outcome = .failed(errno: 11)
                op.blockedBy = table[i].held.first { $0.owner != e.owner && $0.pid != 0 }?.pid
                return op
            }
            table[i].held.append(Holding(owner: e.owner, pid: pid, comm: lastComm, since: t, range: .whole(e.type)))
            leaseHolders[pid, default: []].insert(i)
            table[i].acquisitions += 1
            table[i].processList[s].acquisitions += 1
            return op
        case .genericDeleteLease:
            // A null `fl`: the caller held no lease (-EAGAIN), nothing changes.
            guard e.lock != 0, let i = slot(LockKey(file: e.file, kind: .lease), create: false),
                  let hi = table[i].holdingIndex(e.owner) else { return nil }
            return leaseGone(i, hi, at: t, .released)
        case .breakLeaseNoblock:
            guard let i = slot(LockKey(file: e.file, kind: .lease), create: true) else { return nil }
            findPath(i, pid: pid)
            table[i].lastActivity = t
            let holder = breakConflicting(i, by: pid, at: t, write: e.type == .write)
            let s = table[i].slot(pid, lastComm)
            table[i].failedAttempts += 1
            table[i].processList[s].failedAttempts += 1
            table[i].processList[s].attempted(at: t)
            return LockOperation(time: t, pid: pid, comm: lastComm, lock: table[i].key, type: e.type, outcome: .failed(errno: 11),
                                 waited: nil, held: nil, blockedBy: holder)
        case .breakLeaseBlock:
            guard let i = slot(LockKey(file: e.file, kind: .lease), create: true) else { return nil }
            findPath(i, pid: pid)
            table[i].lastActivity = t
            var holder: Int32?
            if let at = leaseAt[e.blocker], at.slot == i, let hi = table[i].holdingIndex(at.owner) {
                beginBreak(i, hi, by: pid, at: t, write: e.type == .write)
                holder = table[i].held[hi].pid
            } else {
                holder = breakConflicting(i, by: pid, at: t, write: e.type == .write)
            }
            // `__break_lease()` re-queues the same request after a wakeup that left a conflict.
            guard table[i].waitingIndex(e.lock) == nil else { return nil }
            table[i].queued.append(Waiting(owner: e.lock, pid: pid, since: t, range: .whole(e.type)))
            waiting.insert(i)
            let s = table[i].slot(pid, lastComm)
            table[i].processList[s].attempted(at: t)
            return LockOperation(time: t, pid: pid, comm: lastComm, lock: table[i].key, type: e.type, outcome: .queued,
                                 waited: nil, held: nil, blockedBy: holder == 0 ? nil : holder)
        case .breakLeaseUnblock:
            guard let i = slot(LockKey(file: e.file, kind: .lease), create: false),
                  let wi = table[i].waitingIndex(e.lock) else { return nil }
            table[i].lastActivity = t
            // A read breaker flags the lease FL_DOWNGRADE_PENDING and sets only
            // `fl_downgrade_time`: `fl_break_time` stays 0, so `__break_lease()` waits one
            // jiffy at a time and queues the opener again while the lease is still a write
            // lease. Whether this wake is the last is told by the events that follow.
            if table[i].queued[wi].range.type == .read,
               table[i].held.contains(where: { $0.range.type == .write && $0.pendingBreak?.write == false }) {
                wokenBreakers[e.lock] = (i, t)
                return nil
            }
            return finishBreakWait(i, wi, at: t)
        default:
            return nil
        }
    }

    /// Settles read breakers woken while their lease was still being downgraded.
    /// After a wake `__break_lease()` (fs/locks.c) fires `break_lease_unblock`, then,
    /// when the wait timed out, `time_out_leases` per lease (traced before it acts:
    /// past `fl_downgrade_time` it downgrades the lease with `lease_modify(fl,
    /// F_RDLCK)`), then `any_leases_conflict` (a `leases_conflict` per lease, `breaker`
    /// = the request, `l_fl_flags` as left by `time_out_leases`) and, on a conflict,
    /// `break_lease_block` again, all under `flc_lock`. So a conflict or a new block
    /// keeps the wait going (one wait, one break); no conflict, or any other event of
    /// the breaker or of the file, ends it at its last wake. Returns the grant.
    mutating func settleWokenBreakers(_ e: LockEvent) -> LockOperation? {
        var granted: LockOperation?
        for (request, woken) in wokenBreakers {
            let i = woken.slot
            guard let wi = table[i].waitingIndex(request) else { wokenBreakers[request] = nil; continue }
            let waiter = table[i].queued[wi].pid
            switch e.tracepoint {
            case .breakLeaseBlock where e.lock == request:
                wokenBreakers[request] = nil
                continue
            case .leasesConflict where e.blocker == request:
                if e.ret == 1 { continue }
                // No conflict and no longer flagged, with no F_SETLEASE from the holder:
                // `time_out_leases()` downgraded it at its deadline. The lease is held on,
                // as a read lease; the break counts as timed out.
                if !e.flags.contains(.downgradePending), let at = leaseAt[e.lock], at.slot == i,
                   let hi = table[i].holdingIndex(at.owner), table[i].held[hi].range.type == .write {
                    table[i].held[hi].range.type = .read
                    _ = endBreak(i, hi, at: woken.at, .timedOut)
                }
            case .timeOutLeases where e.header.pid == waiter && e.file == table[i].key.file:
                continue
            case .genericAddLease, .leasesConflict:
                // F_SETLEASE is traced before `flc_lock` is taken; another opener's
                // `leases_conflict` names its own request.
                guard e.header.pid == waiter else { continue }
            default:
                guard e.header.pid == waiter || e.file == table[i].key.file else { continue }
            }
            wokenBreakers[request] = nil
            granted = finishBreakWait(i, wi, at: woken.at)
        }
        return granted
    }

    /// The exit of a breaker still marked woken: it was not queued again.
    mutating func settleWokenBreakers(exiting pid: Int32) -> LockOperation? {
        var granted: LockOperation?
        for (request, woken) in wokenBreakers {
            guard let wi = table[woken.slot].waitingIndex(request) else { wokenBreakers[request] = nil; continue }
            guard table[woken.slot].queued[wi].pid == pid else { continue }
            wokenBreakers[request] = nil
            granted = finishBreakWait(woken.slot, wi, at: woken.at)
        }
        return granted
    }

    /// A breaker's open() returns: its wait ends (measured from its first
    /// `break_lease_block`), and leases it conflicts with that are still being broken
    /// went without an F_SETLEASE we saw (the kernel would have queued it again).
    mutating func finishBreakWait(_ i: Int, _ wi: Int, at t: UInt64) -> LockOperation {
        let w = table[i].queued.remove(at: wi)
        table[i].lastActivity = t
        var hi = table[i].held.count - 1
        while hi >= 0 {
            let h = table[i].held[hi]
            if let b = h.pendingBreak, h.range.conflicts(with: w.range) {
                let late = Double(t &- b.started) / 1e9 >= leaseBreakSeconds - 0.5
                if late, !b.write, w.range.type == .read, h.range.type == .write {
                    // `time_out_leases()` downgraded it (`lease_modify(fl, F_RDLCK)`): still held.
                    table[i].held[hi].range.type = .read
                    _ = endBreak(i, hi, at: t, .timedOut)
                } else {
                    _ = leaseGone(i, hi, at: t, late ? .timedOut : .closed)
                }
            }
            hi -= 1
        }
        let name = comm(w.pid)
        let s = table[i].slot(w.pid, name)
        var op = LockOperation(time: t, pid: w.pid, comm: name, lock: table[i].key, type: w.range.type, outcome: .granted,
                               waited: nil, held: nil, blockedBy: nil)
        table[i].granted(&op, waited: t &- w.since, slot: s)
        return op
    }

    /// Whether the F_SETLEASE that `generic_add_lease` reports is refused
    /// (`check_conflicting_open()` and the lease-list walk of
    /// `generic_add_lease()` in fs/locks.c). Delegations skip the open check.
    static func leaseRefused(_ e: LockEvent, others: [Holding]) -> Bool {
        let deleg = e.flags.contains(.delegation)
        switch e.type {
        case .write:
            let onlyOwnOpen = (e.writers == 1 && e.readers == 0) || (e.writers == 0 && e.readers == 1)
            if !deleg && !onlyOwnOpen { return true }
            return others.contains { $0.owner != e.owner }
        case .read:
            if !deleg && e.writers > 0 { return true }
            return others.contains { $0.owner != e.owner && $0.pendingBreak?.write == true }
        default:
            return false
        }
    }

    /// `alreadyFlagged`: the lease was seen already being broken (`time_out_leases`),
    /// so the kernel set its deadline at some unknown earlier time.
    mutating func beginBreak(_ i: Int, _ hi: Int, by pid: Int32?, at t: UInt64, write: Bool, alreadyFlagged: Bool = false) {
        if var b = table[i].held[hi].pendingBreak {
            if b.breaker == nil, let pid { b.breaker = pid; b.breakerComm = comm(pid) }
            if write && !b.write { b.deadlineSet = alreadyFlagged ? nil : t }
            if write { b.write = true }
            table[i].held[hi].pendingBreak = b
            return
        }
        table[i].held[hi].pendingBreak = PendingBreak(started: t, breaker: pid, breakerComm: pid.map { comm($0) } ?? InlineName(),
                                                      write: write, deadlineSet: alreadyFlagged ? nil : t)
    }

    /// Starts a break on every lease a `write` (or read) opener conflicts with
    /// (when the lease's address was not seen); returns the first holder's pid.
    mutating func breakConflicting(_ i: Int, by pid: Int32, at t: UInt64, write: Bool) -> Int32? {
        var first: Int32?
        for hi in table[i].held.indices where table[i].held[hi].range.conflicts(with: .whole(write ? .write : .read)) {
            beginBreak(i, hi, by: pid, at: t, write: write)
            if first == nil, table[i].held[hi].pid != 0 { first = table[i].held[hi].pid }
        }
        return first
    }

    /// Ends the break of a holding, if one is in progress; returns its breaker and duration.
    mutating func endBreak(_ i: Int, _ hi: Int, at t: UInt64, _ how: LeaseBreak.Resolution) -> (breaker: Int32?, took: UInt64)? {
        guard let b = table[i].held[hi].pendingBreak else { return nil }
        let h = table[i].held[hi]
        let took = t &- b.started
        table[i].breakCount += 1
        table[i].breakNanoseconds &+= took
        table[i].breakMaxNanoseconds = max(table[i].breakMaxNanoseconds, took)
        table[i].breaks.append(LeaseBreak(holder: h.pid, holderComm: h.comm, breaker: b.breaker, breakerComm: b.breakerComm,
                                          started: b.started, ended: t, resolution: how))
        if table[i].breaks.count > LeaseBreak.kept { table[i].breaks.removeFirst(table[i].breaks.count - LeaseBreak.kept) }
        table[i].held[hi].pendingBreak = nil
        return (b.breaker, took)
    }

    /// A lease is no longer held (released, closed, timed out): ends its break
    /// and its hold.
    mutating func leaseGone(_ i: Int, _ hi: Int, at t: UInt64, _ how: LeaseBreak.Resolution) -> LockOperation? {
        let broken = endBreak(i, hi, at: t, how)
        let address = table[i].held[hi].leaseAddress
        if address != 0 { leaseAt[address] = nil }
        let (h, d) = table[i].release(hi, at: t)
        if h.pid != 0, !table[i].held.contains(where: { $0.pid == h.pid }) {
            leaseHolders[h.pid]?.remove(i)
            if leaseHolders[h.pid]?.isEmpty == true { leaseHolders[h.pid] = nil }
        }
        table[i].lastActivity = t
        var op = LockOperation(time: t, pid: h.pid, comm: h.comm, lock: table[i].key, type: h.range.type, outcome: .released,
                               waited: nil, held: d, blockedBy: nil)
        op.brokenBy = broken?.breaker
        op.breakNanoseconds = broken?.took
        if broken != nil || how != .released { op.resolution = how }
        return op
    }
}
