import XCTest
@testable import LockscopeCore

/// `LockGraph` on hand-built locks: which lock is which, who waits for what,
/// chains and cycles. The shapes are the ones the scanner produces.
final class LockGraphTests: XCTestCase {
    func file(_ inode: UInt64) -> FileIdentity { FileIdentity(major: 0xfe, minor: 0, inode: inode) }

    /// A granted lock on `inode`: `holders` (the first is the owner /proc/locks names
    /// unless `owner` says otherwise), and `waiters` queued behind it.
    func lock(_ inode: UInt64, holders: [Int32], waiters: [Int32] = [], kind: LockKind = .flock,
              access: LockAccess = .write, owner: Int32? = nil, start: Int64 = 0) -> LockEntry {
        let kernelPid = owner ?? holders.first ?? 0
        let hs = holders.map { Holder(pid: $0, fd: 3, isOwner: $0 == kernelPid) }
        let ws = waiters.enumerated().map { i, p in
            Waiter(pid: p, tid: p, fd: 4, kind: kind, access: .write, start: start, end: nil, blockedBy: holders.first,
                   directBlocker: holders.first, queuePosition: i + 1, source: .kernel)
        }
        return LockEntry(file: file(inode), path: "/l\(inode)", kind: kind, access: access, mode: "ADVISORY", start: start,
                         end: nil, kernelPid: kernelPid, ownerStatus: kernelPid > 0 ? .alive : .invisible, holders: hs, waiters: ws)
    }

    func testCycleOfTwo() throws {
        let l1 = lock(1, holders: [1], waiters: [2, 9]), l2 = lock(2, holders: [2], waiters: [1])
        let g = LockGraph([l1], others: [l2])
        XCTAssertEqual(g.cycles.map { $0.map(\.pid) }, [[1, 2]])
        let fromB = try XCTUnwrap(g.cycle(through: 2))
        XCTAssertEqual(fromB.map(\.pid), [2, 1])
        XCTAssertEqual(fromB.map(\.holds.id), [l2.id, l1.id])
        XCTAssertEqual(fromB.map(\.waitsFor.id), [l1.id, l2.id])
        XCTAssertNil(g.cycle(through: 9), "a plain waiter is not part of the cycle")
    }

    func testCycleOfThreeAndATailLeadingIntoIt() throws {
        // 5 waits for the cycle 1 → 2 → 3 → 1 but is not part of it.
        let l1 = lock(1, holders: [1], waiters: [3]), l2 = lock(2, holders: [2], waiters: [1])
        let l3 = lock(3, holders: [3], waiters: [2]), l5 = lock(5, holders: [5], waiters: [8])
        let l1b = lock(11, holders: [4], waiters: [5])
        let g = LockGraph([l5, l1b], others: [l1, l2, l3, lock(4, holders: [3], waiters: [4])])
        XCTAssertEqual(g.cycles.map { $0.map(\.pid) }, [[1, 2, 3]], "one cycle, each member waiting for the next one's lock")
        let c = try XCTUnwrap(g.cycle(through: 3))
        XCTAssertEqual(c.map(\.pid), [3, 1, 2])
        XCTAssertEqual(c.map(\.waitsFor.file), [file(1), file(2), file(3)])
        XCTAssertNil(g.cycle(through: 5))
        XCTAssertNil(g.cycle(through: 4), "4 waits for 3, which is in a cycle that does not come back to 4")
    }

    func testChainFollowsTheLockAHolderIsQueuedBehind() {
        let l1 = lock(1, holders: [1], waiters: [9]), l2 = lock(2, holders: [2], waiters: [1]), l3 = lock(3, holders: [3], waiters: [2])
        let g = LockGraph([l1], others: [l1, l2, l3])
        XCTAssertEqual(g.locks.map(\.id), [l1.id, l2.id, l3.id], "the report's lock once, then the others")
        XCTAssertEqual(g.next(after: 1, holding: l1.id)?.id, l2.id)
        XCTAssertEqual(g.next(after: 2, holding: l2.id)?.id, l3.id)
        XCTAssertNil(g.next(after: 3, holding: l3.id))
        XCTAssertNil(g.next(after: 9, holding: l1.id), "a waiter that holds nothing leads nowhere")
        XCTAssertTrue(g.cycles.isEmpty)
    }

    /// flock(1) holds the lock and its child shares it through the same descriptor;
    /// the child waits for a lock whose holder waits for the first: a cycle through the co-holder.
    func testCoHolderCanCloseACycle() throws {
        let shared = lock(1, holders: [100, 101], waiters: [200])
        let other = lock(2, holders: [200], waiters: [101])
        let g = LockGraph([shared, other])
        XCTAssertTrue(g.isHolder(101))
        XCTAssertEqual(g.locksHeld(by: 101).map(\.id), [shared.id])
        XCTAssertEqual(g.cycles.map { $0.map(\.pid) }, [[101, 200]])
        XCTAssertNil(g.cycle(through: 100), "the owner waits for nothing")
    }

    /// /proc/locks prints OFD locks and their waiters as pid -1; the scanner fills in the
    /// waiters it matched to a blocked thread and leaves the rest at -1.
    func testOFDLockIsOwnedByNoPid() {
        var ofd = lock(7, holders: [40], waiters: [-1, 41], kind: .ofd, owner: -1)
        ofd.ownerStatus = .ofd
        let g = LockGraph([ofd])
        XCTAssertEqual(ofd.id.owner, -1)
        XCTAssertEqual(g[ofd.id]?.holders.map(\.pid), [40])
        XCTAssertEqual(g.locksWaited(by: 41).map(\.id), [ofd.id])
        XCTAssertTrue(g.locksWaited(by: -1).isEmpty, "an unmatched OFD waiter is nobody to follow")
        XCTAssertTrue(g.isHolder(40))
    }

    func testLockWithNoVisibleHolder() {
        let hidden = lock(8, holders: [], waiters: [50], owner: 0)
        let g = LockGraph([hidden])
        XCTAssertEqual(g[hidden.id]?.holders.count, 0)
        XCTAssertEqual(g.locksWaited(by: 50).map(\.id), [hidden.id])
        XCTAssertNil(g.cycle(through: 50))
        XCTAssertFalse(g.isHolder(0))
    }

    /// Two processes each hold a READ lock on the same range: two locks, not one.
    /// The waiter for WRITE is queued behind one of them.
    func testTwoReadLocksOnOneRangeAreTwoLocks() {
        for kind in [LockKind.flock, .posix] {
            let a = lock(9, holders: [1], waiters: [3], kind: kind, access: .read)
            let b = lock(9, holders: [2], kind: kind, access: .read)
            XCTAssertNotEqual(a.id, b.id, "\(kind)")
            let g = LockGraph([a, b], others: [b, a])
            XCTAssertEqual(g.locks.count, 2, "\(kind)")
            XCTAssertEqual(g[b.id]?.holders.map(\.pid), [2], "\(kind)")
            XCTAssertEqual(g.locksWaited(by: 3).map(\.id), [a.id], "\(kind)")
            XCTAssertEqual(g.locksHeld(by: 1).map(\.id), [a.id], "\(kind)")
        }
    }

    /// A POSIX holder asking to upgrade READ to WRITE is queued behind the other
    /// READ lock on the same range: that is the next link of its chain.
    func testUpgradeOfAReadLockWaitsForTheOtherReadLock() {
        let a = lock(9, holders: [1], waiters: [3], kind: .posix, access: .read)
        let b = lock(9, holders: [2], waiters: [1], kind: .posix, access: .read)
        let g = LockGraph([a, b])
        XCTAssertEqual(g.next(after: 1, holding: a.id)?.id, b.id)
        XCTAssertNil(g.next(after: 2, holding: b.id))
    }

    /// Two descriptors of one process on one file, the second blocked in flock: no other
    /// process is involved, so it is not a cycle of the wait-for graph.
    func testWaitingForALockItHoldsItselfIsNoCycle() {
        let g = LockGraph([lock(1, holders: [1], waiters: [1])])
        XCTAssertTrue(g.cycles.isEmpty)
        XCTAssertNil(g.next(after: 1, holding: lock(1, holders: [1]).id))
    }

    /// The scanner matches fdinfo `lock:` lines to /proc/locks entries by the same identity.
    func testLockLineAndEntryShareTheIdentity() throws {
        let line = try XCTUnwrap(ProcLocksParser.parseLine("3: POSIX  ADVISORY  READ 4242 fe:00:9 100 199"))
        let entry = LockEntry(file: file(9), path: nil, kind: .posix, access: .read, mode: "ADVISORY", start: 100, end: 199,
                              kernelPid: 4242, ownerStatus: .alive)
        XCTAssertEqual(line.lockID, entry.id)
        var other = line
        other.pid = 4243
        XCTAssertNotEqual(other.lockID, entry.id)
    }
}
