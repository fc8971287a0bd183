import XCTest
@testable import LockscopeCore

/// The lock graph built from /proc trees recorded on a real machine
/// (scripts/fixtures/record-all.py). Each fixture has a `manifest` naming the
/// pids by role, so the assertions are exact.
final class FixtureGraphTests: XCTestCase {
    struct Fixture {
        let proc: ProcRoot
        let roles: [String: [Int32]]
        func pid(_ role: String) -> Int32 { roles[role]![0] }
    }

    func fixture(_ name: String) throws -> Fixture {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name)").path
        let manifest = try String(contentsOfFile: dir + "/manifest", encoding: .utf8)
        var roles: [String: [Int32]] = [:]
        for line in manifest.split(separator: "\n") {
            let words = line.split(separator: " ")
            roles[String(words[0])] = words.dropFirst().compactMap { Int32($0) }
        }
        return Fixture(proc: ProcRoot(dir), roles: roles)
    }

    /// The identity of the lock the fixture's `role` holds, from its fdinfo.
    func report(_ f: Fixture, lockedBy role: String) throws -> LockReport {
        let locks = ProcLocksParser.parse(try f.proc.readText("locks")).locks
        let pid = f.pid(role)
        let file = try XCTUnwrap(locks.first(where: { $0.lock.pid == pid })?.lock.file)
        return try LockScanner(proc: f.proc, excludedPids: []).report(for: [Target(argument: file.description, file: file, path: nil)])
    }

    func testFlockSharedWithChildAndChainedWaiters() throws {
        let f = try fixture("flock-chain")
        let r = try report(f, lockedBy: "owner")
        XCTAssertEqual(r.locks.count, 1)
        let lock = r.locks[0]
        XCTAssertEqual(lock.kind, .flock)
        XCTAssertEqual(lock.ownerStatus, .alive)
        XCTAssertEqual(lock.holders.map(\.pid), [f.pid("owner"), f.pid("coholder")])
        XCTAssertEqual(lock.holders.map(\.isOwner), [true, false])
        XCTAssertEqual(lock.holders.map(\.fd), [3, 3])
        XCTAssertEqual(lock.holders[1].process?.comm, "sleep")
        XCTAssertTrue(lock.path?.hasSuffix("/chain.lock") ?? false)
        // Three waiters chained one behind the other; all are blocked by the owner.
        XCTAssertEqual(lock.waiters.map(\.pid), f.roles["waiters"])
        XCTAssertEqual(lock.waiters.map(\.blockedBy), Array(repeating: f.pid("owner"), count: 3))
        XCTAssertEqual(lock.waiters.map(\.directBlocker), ([f.pid("owner")] + f.roles["waiters"]!.prefix(2)).map { Optional($0) })
        XCTAssertEqual(lock.waiters.map(\.queuePosition), [1, 2, 3])
        // The first two are matched to their blocked thread and fd; the third vanished from /proc.
        XCTAssertEqual(lock.waiters[0].tid, f.roles["waiters"]![0])
        XCTAssertEqual(lock.waiters[0].fd, 3)
        XCTAssertNil(lock.waiters[2].tid)
        XCTAssertNil(lock.waiters[2].process, "a vanished waiter has no process facts and is not an error")
        // The LOCK_NB poller and the idle opener are openers, not waiters.
        XCTAssertEqual(r.openers.map(\.pid).sorted(), [f.pid("poller"), f.pid("idle")].sorted())
        // The recorded poller was asleep between its LOCK_NB attempts: one snapshot sees no
        // attempt, so it is idle (open, asleep), not polling (issue 13); the other opener is not asleep.
        let poller = r.openers.first(where: { $0.pid == f.pid("poller") })
        XCTAssertEqual(poller?.activity, .idle)
        XCTAssertEqual(poller?.asleep, true)
        XCTAssertEqual(r.openers.first(where: { $0.pid == f.pid("idle") })?.activity, .idle)
        XCTAssertEqual(r.openers.first(where: { $0.pid == f.pid("idle") })?.asleep, false)
    }

    func testOFDHolderAndWaiterResolvedFromFdinfoAndSyscall() throws {
        let f = try fixture("ofd")
        let locks = ProcLocksParser.parse(try f.proc.readText("locks")).locks
        let ofd = try XCTUnwrap(locks.first(where: { $0.lock.kind == .ofd }))
        XCTAssertEqual(ofd.lock.pid, -1)
        let file = try XCTUnwrap(ofd.lock.file)
        let r = try LockScanner(proc: f.proc, excludedPids: []).report(for: [Target(argument: "x", file: file, path: nil)])
        let lock = try XCTUnwrap(r.locks.first)
        XCTAssertEqual(lock.ownerStatus, .ofd)
        XCTAssertEqual(lock.holders.map(\.pid), [f.pid("holder")])
        XCTAssertEqual(lock.holders.map(\.isOwner), [false], "the kernel names no OFD owner")
        XCTAssertEqual(lock.waiters.count, 1)
        XCTAssertEqual(lock.waiters[0].pid, f.pid("waiter"), "pid -1 in /proc/locks resolved from the blocked fcntl")
        XCTAssertEqual(lock.waiters[0].tid, f.pid("waiter"))
        XCTAssertEqual(lock.waiters[0].blockedBy, f.pid("holder"))
        XCTAssertTrue(r.openers.isEmpty)
        XCTAssertEqual(r.targets[0].path.map { $0.hasSuffix("/ofd.lock") }, true, "path learnt from a holder's fd")
    }

    func testTwoPosixRangesEachBlockedByTheRightHolder() throws {
        let f = try fixture("posix-ranges")
        let r = try report(f, lockedBy: "holder_a")
        XCTAssertEqual(r.locks.count, 2)
        let a = try XCTUnwrap(r.locks.first(where: { $0.kernelPid == f.pid("holder_a") }))
        let b = try XCTUnwrap(r.locks.first(where: { $0.kernelPid == f.pid("holder_b") }))
        XCTAssertEqual([a.start, a.end], [0, 99])
        XCTAssertEqual([b.start, b.end], [200, 299])
        XCTAssertEqual(a.holders.map(\.pid), [f.pid("holder_a")])
        XCTAssertEqual(b.holders.map(\.pid), [f.pid("holder_b")])
        XCTAssertEqual(a.waiters.map(\.pid), [f.pid("waiter_a")])
        XCTAssertEqual(a.waiters.map(\.blockedBy), [f.pid("holder_a")])
        XCTAssertEqual([a.waiters[0].start, a.waiters[0].end], [50, 59])
        XCTAssertEqual(b.waiters.map(\.pid), [f.pid("waiter_b")])
        XCTAssertEqual(b.waiters.map(\.blockedBy), [f.pid("holder_b")])
        XCTAssertTrue(r.openers.isEmpty, "POSIX waiters are waiters, not openers")
    }

    func testLockKeptAliveByDaemonisedChildAfterOwnerExited() throws {
        let f = try fixture("leaked-fd")
        let r = try report(f, lockedBy: "gone_owner")
        let lock = try XCTUnwrap(r.locks.first)
        XCTAssertEqual(lock.kernelPid, f.pid("gone_owner"))
        XCTAssertEqual(lock.ownerStatus, .gone)
        XCTAssertEqual(lock.holders.map(\.pid), [f.pid("daemon")])
        XCTAssertEqual(lock.holders.map(\.isOwner), [false])
        XCTAssertEqual(lock.waiters.map(\.pid), [f.pid("waiter")])
        XCTAssertEqual(lock.waiters[0].blockedBy, f.pid("daemon"), "blocked by the live holder, not the dead pid")
    }

    func testHostileNameIsKeptExact() throws {
        let f = try fixture("hostile-name")
        let r = try report(f, lockedBy: "owner")
        let path = try XCTUnwrap(r.locks.first?.path)
        XCTAssertTrue(path.hasSuffix("/evil\nname\u{1b}[31m.lock"))
    }

    func testLease() throws {
        let f = try fixture("lease")
        let r = try report(f, lockedBy: "holder")
        let lock = try XCTUnwrap(r.locks.first)
        XCTAssertEqual(lock.kind, .lease)
        XCTAssertEqual(lock.mode, "ACTIVE")
        XCTAssertEqual(lock.access, .read)
        XCTAssertEqual(lock.holders.map(\.pid), [f.pid("holder")])
    }

    func testListEveryLockWithoutFullScan() throws {
        let f = try fixture("posix-ranges")
        let r = try LockScanner(proc: f.proc, excludedPids: []).allLocks()
        XCTAssertEqual(Set(r.locks.map(\.kernelPid)).isSuperset(of: [f.pid("holder_a"), f.pid("holder_b")]), true)
        XCTAssertEqual(r.coverage.descriptorsScanned, 0, "list without --holders scans no descriptors")
        let a = try XCTUnwrap(r.locks.first(where: { $0.kernelPid == f.pid("holder_a") }))
        XCTAssertTrue(a.path?.hasSuffix("/ranges.lock") ?? false)
        XCTAssertEqual(a.waiters.count, 1)
    }
}

extension FixtureGraphTests {
    func testOwnerPidReusedByAnUnrelatedProcess() throws {
        let f = try fixture("pid-reused")
        let r = try report(f, lockedBy: "reused_owner")
        let lock = try XCTUnwrap(r.locks.first)
        XCTAssertEqual(lock.kernelPid, f.pid("reused_owner"))
        XCTAssertEqual(lock.ownerStatus, .reused)
        XCTAssertEqual(lock.holders.map(\.pid), [f.pid("daemon")], "the recycled pid is not a holder")
        XCTAssertEqual(lock.waiters.first?.blockedBy, f.pid("daemon"))
    }
}
