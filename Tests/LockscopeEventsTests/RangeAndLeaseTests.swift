import LockscopeCore
@testable import LockscopeEvents
import Testing

/// `ByteRanges` against posix_lock_inode()'s rules, and the aggregator on
/// event sequences with byte ranges and leases.
@Suite struct ByteRangeTests {
    func r(_ s: Int64, _ e: Int64, _ t: LockType = .write) -> HeldRange { HeldRange(start: s, end: e, type: t) }

    @Test func unlockInsideSplitsAndUnlockOverEdgesTrims() {
        #expect(ByteRanges.apply([r(0, 99)], r(10, 19, .unlock)) == [r(0, 9), r(20, 99)])
        #expect(ByteRanges.apply([r(0, 9), r(20, 29)], r(5, 24, .unlock)) == [r(0, 4), r(25, 29)])
        #expect(ByteRanges.apply([r(0, 9)], r(0, .max, .unlock)) == [])
        #expect(ByteRanges.apply([r(0, 9)], r(50, 60, .unlock)) == [r(0, 9)])
    }

    @Test func sameTypeMergesWhenAdjacentOrOverlapping() {
        #expect(ByteRanges.apply([r(0, 9)], r(10, 19)) == [r(0, 19)])
        #expect(ByteRanges.apply([r(0, 9), r(20, 29)], r(10, 19)) == [r(0, 29)])
        #expect(ByteRanges.apply([r(0, 9)], r(11, 19)) == [r(0, 9), r(11, 19)])
        #expect(ByteRanges.apply([r(5, 9)], r(0, .max)) == [r(0, .max)])
    }

    @Test func otherTypeReplacesTheOverlapOnly() {
        #expect(ByteRanges.apply([r(0, 99, .read)], r(10, 19)) == [r(0, 9, .read), r(10, 19), r(20, 99, .read)])
        #expect(ByteRanges.apply([r(0, 9, .read), r(10, 19)], r(5, 14, .read)) == [r(0, 14, .read), r(15, 19)])
    }
}

@Suite struct RangeAggregationTests {
    let file = FileIdentity(major: 8, minor: 1, inode: 77)
    func posix(_ t: Double, _ pid: Int32, _ type: LockType, _ s: Int64, _ e: Int64, ret: Int32 = 0, ofd: Bool = false) -> KernelEvent {
        .lock(LockEvent(header: SampleHeader(time: UInt64(t * 1e9), cpu: 0, pid: pid, tid: pid), tracepoint: .posixLockInode,
                        file: file, lockPid: UInt32(pid), owner: UInt64(pid) << 8, flags: ofd ? [.posix, .ofd] : [.posix],
                        type: type, start: s, end: e, ret: ret))
    }

    @Test func disjointRangesAreTwoHoldersAndTheWaiterNamesTheOverlappingOwner() throws {
        var agg = LockAggregator()
        #expect(agg.apply(posix(0, 10, .write, 0, 99))?.outcome == .acquired)
        #expect(agg.apply(posix(0.1, 20, .write, 100, 199))?.outcome == .acquired)
        let failed = agg.apply(posix(0.2, 30, .write, 150, 160, ret: -11))
        #expect(failed?.outcome == .failed(errno: 11) && failed?.blockedBy == 20)
        let queued = agg.apply(posix(0.3, 30, .write, 50, 60, ret: 1))
        #expect(queued?.outcome == .queued && queued?.blockedBy == 10)
        #expect(queued?.range == HeldRange(start: 50, end: 60, type: .write))
        var s = agg.summary(now: UInt64(1e9), durationSeconds: 1, lostEvents: 0).locks[0]
        #expect(s.acquisitions == 2 && s.contended == 0 && s.holders.map(\.pid) == [10, 20] && s.waitersNow == 1)
        #expect(s.holders[1].ranges == [HeldRange(start: 100, end: 199, type: .write)])
        // 10 unlocks a sub-range only: still holding the rest, the waiter still waits.
        #expect(agg.apply(posix(1, 10, .unlock, 40, 69))?.held == nil)
        #expect(agg.apply(posix(1.5, 30, .write, 50, 60))?.outcome == .granted)
        s = agg.summary(now: UInt64(2e9), durationSeconds: 2, lostEvents: 0).locks[0]
        #expect(s.holders.first { $0.pid == 10 }?.ranges == [HeldRange(start: 0, end: 39, type: .write),
                                                           HeldRange(start: 70, end: 99, type: .write)])
        #expect(s.contended == 1 && abs(s.wait.max - 1.2) < 1e-9)
        // The close drops everything 10 holds (locks_remove_posix → F_UNLCK 0-EOF): one hold of 2 s.
        let released = agg.apply(posix(2, 10, .unlock, 0, .max))
        #expect(released?.outcome == .released && released?.held == 2_000_000_000)
    }

    @Test func anOfdLockBlocksAPosixWaiter() {
        var agg = LockAggregator()
        agg.apply(posix(0, 10, .write, 0, .max, ofd: true))
        #expect(agg.apply(posix(0.5, 20, .read, 0, 0, ret: -11))?.blockedBy == 10)
    }
}

@Suite struct LeaseAggregationTests {
    let file = FileIdentity(major: 8, minor: 1, inode: 99)
    let holderFiles: UInt64 = 0xaaaa, breakerFiles: UInt64 = 0xbbbb, leaseAddress: UInt64 = 0x1111, request: UInt64 = 0x2222
    func ev(_ t: Double, _ pid: Int32, _ tp: LockTracepoint, owner: UInt64 = 0, type: LockType = .write, flags: LockFlags = [.lease],
            lock: UInt64 = 0, blocker: UInt64 = 0, ret: Int32 = 0, writers: Int32 = 0, readers: Int32 = 1) -> KernelEvent {
        .lock(LockEvent(header: SampleHeader(time: UInt64(t * 1e9), cpu: 0, pid: pid, tid: pid), tracepoint: tp,
                        file: tp == .leasesConflict ? FileIdentity(major: 0, minor: 0, inode: 0) : file, owner: owner,
                        flags: flags, type: type, ret: ret, blocker: blocker, lock: lock, writers: writers, readers: readers))
    }

    /// A write lease broken by a writer's blocking open(); the holder answers
    /// the signal with F_SETLEASE F_UNLCK after 0.3 s.
    @Test func breakByAnOpenerReleasedByTheHolder() throws {
        var agg = LockAggregator()
        #expect(agg.apply(ev(0, 100, .genericAddLease, owner: holderFiles))?.outcome == .acquired)
        agg.apply(ev(1, 200, .timeOutLeases, owner: holderFiles, lock: leaseAddress))
        agg.apply(ev(1, 200, .leasesConflict, type: .write, lock: leaseAddress, blocker: request, ret: 1))
        let queued = agg.apply(ev(1.001, 200, .breakLeaseBlock, owner: breakerFiles, lock: request, blocker: leaseAddress))
        #expect(queued?.outcome == .queued && queued?.blockedBy == 100)
        let released = agg.apply(ev(1.3, 100, .genericDeleteLease, owner: holderFiles, type: .write, lock: leaseAddress))
        #expect(released?.outcome == .released && released?.brokenBy == 200 && released?.resolution == .released)
        #expect(released?.held == 1_300_000_000 && released?.breakNanoseconds == 300_000_000)
        let granted = agg.apply(ev(1.302, 200, .breakLeaseUnblock, owner: breakerFiles, lock: request))
        #expect(granted?.outcome == .granted && abs(Int64(granted?.waited ?? 0) - 301_000_000) < 1000)
        let l = try #require(agg.summary(now: UInt64(2e9), durationSeconds: 2, lostEvents: 0).locks.first)
        #expect(l.lock.kind == .lease && l.acquisitions == 1 && l.contended == 1 && l.holders.isEmpty)
        #expect(l.breakCount == 1 && abs(l.breakSeconds - 0.3) < 1e-9)
        #expect(l.breaks.map { "\($0.holder) \($0.breaker ?? -1) \($0.resolution)" } == ["100 200 released"])
        #expect(l.processes.first { $0.pid == 200 }?.waits == 1)
    }

    @Test func nonblockingOpenFailsAndAHolderThatNeverAnswersTimesOut() throws {
        var agg = LockAggregator()
        agg.leaseBreakSeconds = 5
        agg.apply(ev(0, 100, .genericAddLease, owner: holderFiles, type: .read, writers: 0, readers: 1))
        agg.apply(ev(1, 200, .timeOutLeases, owner: holderFiles, type: .read, lock: leaseAddress))
        let refused = agg.apply(ev(1, 200, .breakLeaseNoblock, owner: breakerFiles, lock: request))
        #expect(refused?.outcome == .failed(errno: 11) && refused?.blockedBy == 100)
        agg.apply(ev(2, 300, .timeOutLeases, owner: holderFiles, type: .read, flags: [.lease, .unlockPending], lock: leaseAddress))
        agg.apply(ev(2, 300, .breakLeaseBlock, owner: breakerFiles, lock: request + 1, blocker: leaseAddress))
        // Nobody releases: after lease-break-time the kernel removes the lease and wakes the opener.
        let woken = agg.apply(ev(6.01, 300, .breakLeaseUnblock, lock: request + 1))
        #expect(woken?.outcome == .granted)
        let l = try #require(agg.summary(now: UInt64(7e9), durationSeconds: 7, lostEvents: 0).locks.first)
        #expect(l.holders.isEmpty && l.failedAttempts == 1 && l.breaks.first?.resolution == .timedOut)
        #expect(l.breaks.first?.breaker == 200 && abs((l.breaks.first?.seconds ?? 0) - 5.01) < 1e-9)
    }

    @Test func refusedRequestsAndADowngrade() throws {
        var agg = LockAggregator()
        // A write lease while another process has the file open: check_conflicting_open() refuses it.
        #expect(agg.apply(ev(0, 100, .genericAddLease, owner: holderFiles, writers: 0, readers: 2))?.outcome == .failed(errno: 11))
        #expect(agg.apply(ev(0.1, 100, .genericAddLease, owner: holderFiles, writers: 1, readers: 0))?.outcome == .acquired)
        agg.apply(ev(1, 200, .timeOutLeases, owner: holderFiles, lock: leaseAddress))
        agg.apply(ev(1, 200, .leasesConflict, type: .read, lock: leaseAddress, blocker: request, ret: 1))
        agg.apply(ev(1, 200, .breakLeaseBlock, owner: breakerFiles, type: .read, lock: request, blocker: leaseAddress))
        // A reader's break is answered by a downgrade: the lease stays, as a read lease.
        #expect(agg.apply(ev(1.5, 100, .genericAddLease, owner: holderFiles, type: .read, writers: 1)) == nil)
        agg.apply(ev(1.501, 200, .breakLeaseUnblock, lock: request))
        let l = try #require(agg.summary(now: UInt64(2e9), durationSeconds: 2, lostEvents: 0).locks.first)
        #expect(l.failedAttempts == 1 && l.acquisitions == 1)
        #expect(l.holders.map(\.pid) == [100] && l.holders[0].ranges[0].type == .read)
        #expect(l.breaks.map(\.resolution) == [.downgraded])
    }

    /// A reader's open() against a write lease: FL_DOWNGRADE_PENDING leaves
    /// `fl_break_time` 0, so `__break_lease()` wakes every jiffy and queues the
    /// opener again (unblock, time_out_leases, leases_conflict, block) until the
    /// lease is downgraded. Events as a 4 ms jiffy records them, `wakes` times.
    func readerBreaksAWriteLease(_ agg: inout LockAggregator, wakes: Int) {
        agg.apply(ev(0, 100, .genericAddLease, owner: holderFiles, writers: 0, readers: 1))
        agg.apply(ev(1, 200, .timeOutLeases, owner: holderFiles, lock: leaseAddress))
        agg.apply(ev(1, 200, .leasesConflict, type: .read, lock: leaseAddress, blocker: request, ret: 1))
        agg.apply(ev(1, 200, .breakLeaseBlock, owner: breakerFiles, type: .read, lock: request, blocker: leaseAddress))
        for k in 1...wakes {
            let t = 1 + Double(k) * 0.004
            #expect(agg.apply(ev(t, 200, .breakLeaseUnblock, type: .read, lock: request)) == nil)
            agg.apply(ev(t, 200, .timeOutLeases, owner: holderFiles, flags: [.lease, .downgradePending], lock: leaseAddress))
            agg.apply(ev(t, 200, .leasesConflict, type: .read, flags: [.lease, .downgradePending], lock: leaseAddress,
                         blocker: request, ret: 1))
            #expect(agg.apply(ev(t, 200, .breakLeaseBlock, owner: breakerFiles, type: .read, lock: request,
                                 blocker: leaseAddress)) == nil)
        }
    }

    @Test func aReaderWokenEveryJiffyIsOneWaitAndOneBreak() throws {
        var agg = LockAggregator()
        readerBreaksAWriteLease(&agg, wakes: 100)
        let l = try #require(agg.summary(now: UInt64(1.5e9), durationSeconds: 1.5, lostEvents: 0).locks.first)
        #expect(l.contended == 0 && l.breakCount == 0 && l.waitersNow == 1)
        #expect(abs((l.oldestWaitSeconds ?? 0) - 0.5) < 1e-9)
        #expect(l.breaks.map(\.resolution) == [.pending] && l.holders.map(\.pid) == [100])
        #expect(l.holders.first?.ranges.first?.type == .write)
    }

    @Test func aReaderWokenEveryJiffyEndsWithTheHoldersDowngrade() throws {
        var agg = LockAggregator()
        readerBreaksAWriteLease(&agg, wakes: 100)
        #expect(agg.apply(ev(1.5, 100, .genericAddLease, owner: holderFiles, type: .read, writers: 0, readers: 2)) == nil)
        #expect(agg.apply(ev(1.501, 200, .breakLeaseUnblock, type: .read, lock: request))?.outcome == .granted)
        let l = try #require(agg.summary(now: UInt64(2e9), durationSeconds: 2, lostEvents: 0).locks.first)
        #expect(l.contended == 1 && l.waitersNow == 0 && abs(l.wait.max - 0.501) < 1e-9)
        #expect(l.breaks.map(\.resolution) == [.downgraded] && abs(l.breakSeconds - 0.5) < 1e-9)
        #expect(l.holders.map(\.pid) == [100] && l.holders[0].ranges[0].type == .read)
        #expect(l.processes.first { $0.pid == 200 }?.waits == 1)
    }

    @Test func aReaderWokenEveryJiffyEndsWithTheKernelsDowngrade() throws {
        var agg = LockAggregator()
        agg.leaseBreakSeconds = 1
        readerBreaksAWriteLease(&agg, wakes: 250)
        // Past `fl_downgrade_time`: time_out_leases (traced before it acts) downgrades
        // the lease, then leases_conflict finds no conflict and the open() returns.
        let t = 2.004
        #expect(agg.apply(ev(t, 200, .breakLeaseUnblock, type: .read, lock: request)) == nil)
        agg.apply(ev(t, 200, .timeOutLeases, owner: holderFiles, flags: [.lease, .downgradePending], lock: leaseAddress))
        let granted = agg.apply(ev(t, 200, .leasesConflict, type: .read, flags: [.lease], lock: leaseAddress, blocker: request))
        #expect(granted?.outcome == .granted && granted?.pid == 200 && granted?.time == UInt64(t * 1e9))
        #expect(abs(Int64(granted?.waited ?? 0) - 1_004_000_000) < 1000)
        let l = try #require(agg.summary(now: UInt64(3e9), durationSeconds: 3, lostEvents: 0).locks.first)
        #expect(l.contended == 1 && l.waitersNow == 0 && l.breakCount == 1)
        #expect(l.breaks.map(\.resolution) == [.timedOut])
        #expect(l.holders.map(\.pid) == [100] && l.holders[0].ranges[0].type == .read)
    }

    @Test func aReaderWokenEveryJiffyWhoseHolderClosesTheFile() throws {
        var agg = LockAggregator()
        readerBreaksAWriteLease(&agg, wakes: 10)
        // The holder closes the file (no tracepoint): the opener wakes and is not queued
        // again; its next event settles it.
        #expect(agg.apply(ev(1.05, 200, .breakLeaseUnblock, type: .read, lock: request)) == nil)
        agg.apply(ev(1.2, 200, .genericAddLease, owner: breakerFiles, type: .read, writers: 0, readers: 1))
        let l = try #require(agg.summary(now: UInt64(2e9), durationSeconds: 2, lostEvents: 0).locks.first)
        #expect(l.contended == 1 && l.waitersNow == 0 && abs(l.wait.max - 0.05) < 1e-9)
        #expect(l.breaks.map(\.resolution) == [.closed] && l.holders.map(\.pid) == [200])
    }

    @Test func aReaderWokenEveryJiffyThatExitsHadItsOpenReturn() throws {
        var agg = LockAggregator()
        readerBreaksAWriteLease(&agg, wakes: 10)
        #expect(agg.apply(ev(1.05, 200, .breakLeaseUnblock, type: .read, lock: request)) == nil)
        let exit = ExitEvent(header: SampleHeader(time: UInt64(1.1e9), cpu: 0, pid: 200, tid: 200), pid: 200,
                             comm: InlineName("python3"), groupDead: true)
        #expect(agg.apply(.exit(exit))?.outcome == .granted)
        let l = try #require(agg.summary(now: UInt64(2e9), durationSeconds: 2, lostEvents: 0).locks.first)
        #expect(l.contended == 1 && l.abandonedWaits == 0 && l.waitersNow == 0)
        #expect(l.breaks.map(\.resolution) == [.closed])
    }

    @Test func aHolderThatExitsEndsItsLeaseAsClosed() throws {
        var agg = LockAggregator()
        agg.apply(ev(0, 100, .genericAddLease, owner: holderFiles))
        let gone = agg.apply(.exit(ExitEvent(header: SampleHeader(time: UInt64(2e9), cpu: 0, pid: 100, tid: 100), pid: 100,
                                             comm: InlineName("python3"), groupDead: true)))
        #expect(gone?.outcome == .released && gone?.held == 2_000_000_000 && gone?.resolution == .closed)
    }
}

@Suite struct LeaseConflictDecoderTests {
    /// A `leases_conflict` record laid out as the 6.18 format file says (the
    /// machine's own, Fixtures/linux-6.18/filelock-leases_conflict.format).
    @Test func decodesLeaseBreakerAndConflict() throws {
        let decoder = try EventDecoder(formats: try fixtureFormats("linux-6.18"))
        var raw = [UInt8](repeating: 0, count: 40)
        func put<T: FixedWidthInteger>(_ v: T, at o: Int) { withUnsafeBytes(of: v.littleEndian) { for (k, b) in $0.enumerated() { raw[o + k] = b } } }
        put(UInt16(1118), at: 0)
        put(UInt64(0xffff_8881_0000_1000), at: 8)   // lease
        put(UInt64(0xffff_8881_0000_2000), at: 16)  // breaker
        put(UInt32(32 | 512), at: 24)               // l_fl_flags: FL_LEASE|FL_UNLOCK_PENDING
        put(UInt32(32), at: 28)
        raw[32] = 0                                 // l_fl_type F_RDLCK
        raw[33] = 1                                 // b_fl_type F_WRLCK
        raw[34] = 1                                 // conflict
        let e = raw.withUnsafeBytes { decoder.decode(SampleHeader(time: 5, cpu: 0, pid: 42, tid: 42), raw: $0) }
        guard case .lock(let l)? = e else { Issue.record("not decoded: \(String(describing: e))"); return }
        #expect(l.tracepoint == .leasesConflict && l.lock == 0xffff_8881_0000_1000 && l.blocker == 0xffff_8881_0000_2000)
        #expect(l.ret == 1 && l.type == .write && l.flags == [.lease, .unlockPending])
    }
}
