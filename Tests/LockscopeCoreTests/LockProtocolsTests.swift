import XCTest
@testable import LockscopeCore

/// The recogniser on the ranges real programs take (recorded with python3's
/// sqlite3 module on this machine: /proc/locks lines quoted per test).
final class LockProtocolsTests: XCTestCase {
    let p = LockProtocols.pendingByte

    func posix(_ pid: Int32, _ a: LockAccess, _ s: Int64, _ e: Int64?, waiting: Bool = false) -> ProtocolLock {
        ProtocolLock(pid: pid, kind: .posix, access: a, start: s, end: e, waiting: waiting)
    }

    func testConstantsAreSQLitesOwn() {
        XCTAssertEqual(LockProtocols.pendingByte, 1_073_741_824)
        XCTAssertEqual(LockProtocols.reservedByte, 1_073_741_825)
        XCTAssertEqual(LockProtocols.sharedFirst, 1_073_741_826)
        XCTAssertEqual(LockProtocols.sharedFirst + LockProtocols.sharedSize - 1, 1_073_742_335)
    }

    /// `POSIX ADVISORY WRITE 19282 fe:00:16237253 1073741824 1073742335` (BEGIN EXCLUSIVE).
    func testExclusiveIsOneMergedWriteRange() throws {
        let r = try XCTUnwrap(LockProtocols.recognise(path: "/srv/app.db", kind: .posix,
                                                      locks: [posix(19282, .write, 1_073_741_824, 1_073_742_335)]))
        XCTAssertEqual(r.name, "sqlite")
        XCTAssertEqual(r.state, "EXCLUSIVE")
        XCTAssertEqual(r.participants, [ProtocolParticipant(pid: 19282, state: "EXCLUSIVE", wanted: false, meaning: "writing")])
        XCTAssertTrue(r.meaning.contains("SQLITE_BUSY"))
        XCTAssertFalse(r.advice.lowercased().contains("delete the lock"))
    }

    /// BEGIN IMMEDIATE: `WRITE 1073741825 1073741825` + `READ 1073741826 1073742335`,
    /// with a second connection reading (SHARED).
    func testReservedHolderAndSharedReader() throws {
        let r = try XCTUnwrap(LockProtocols.recognise(path: "app.db", kind: .posix, locks: [
            posix(10, .write, 1_073_741_825, 1_073_741_825), posix(10, .read, 1_073_741_826, 1_073_742_335),
            posix(11, .read, 1_073_741_826, 1_073_742_335),
        ]))
        XCTAssertEqual(r.state, "RESERVED")
        XCTAssertEqual(r.participant(10)?.state, "RESERVED")
        XCTAssertEqual(r.participant(11)?.state, "SHARED")
        XCTAssertEqual(r.participants.map(\.pid), [10, 11])
    }

    func testPendingAndAWaiterThatWantsExclusive() throws {
        let r = try XCTUnwrap(LockProtocols.recognise(path: "x.sqlite", kind: .posix, locks: [
            posix(10, .write, p, p + 1), posix(10, .read, p + 2, p + 511),
            posix(11, .read, p + 2, p + 511),
            posix(10, .write, p + 2, p + 511, waiting: true),
        ]))
        XCTAssertEqual(r.state, "PENDING")
        XCTAssertEqual(r.participant(10, wanted: true)?.state, "EXCLUSIVE")
        XCTAssertEqual(r.participant(11)?.state, "SHARED")
    }

    /// WAL mode, recorded: the -shm file has `WRITE 120 120`, `READ 123 123`, `READ 128 128`
    /// for a writer, `READ 124 124` + `READ 128 128` for a reader.
    func testWALWriterAndReader() throws {
        let r = try XCTUnwrap(LockProtocols.recognise(path: "/srv/app.db-shm", kind: .posix, locks: [
            posix(20, .write, 120, 120), posix(20, .read, 123, 123), posix(20, .read, 128, 128),
            posix(21, .read, 124, 124), posix(21, .read, 128, 128),
        ]))
        XCTAssertEqual(r.name, "sqlite-wal")
        XCTAssertEqual(r.resource, "/srv/app.db")
        XCTAssertEqual(r.state, "WAL_WRITE_LOCK")
        XCTAssertEqual(r.participant(20)?.state, "WAL_WRITE_LOCK")
        XCTAssertEqual(r.participant(21)?.state, "WAL_READ_LOCK(1)")
    }

    func testLowRangesOnAPlainFileAreNotSQLite() {
        XCTAssertNil(LockProtocols.recognise(path: "/tmp/data", kind: .posix, locks: [posix(1, .write, 0, nil)]))
        XCTAssertNil(LockProtocols.recognise(path: "/tmp/x-shm", kind: .posix, locks: [posix(1, .write, 0, 10)]))
        // Shm bytes on a file not named -shm are not WAL locks.
        XCTAssertNil(LockProtocols.recognise(path: "/tmp/data", kind: .posix, locks: [posix(1, .write, 120, 120)]))
        // An flock on a SQLite-looking name is not SQLite's protocol.
        XCTAssertNil(LockProtocols.recognise(path: "/tmp/a.db", kind: .flock,
                                             locks: [ProtocolLock(pid: 1, kind: .flock, access: .write, start: 0, end: nil)]))
        XCTAssertNil(LockProtocols.recognise(path: nil, kind: .flock, locks: []))
    }

    func testPathNamedProtocols() throws {
        let held = [ProtocolLock(pid: 5, kind: .posix, access: .write, start: 0, end: nil),
                    ProtocolLock(pid: 6, kind: .posix, access: .write, start: 0, end: nil, waiting: true)]
        let cases: [(String, String)] = [
            ("/var/lib/dpkg/lock", "dpkg"), ("/var/lib/dpkg/lock-frontend", "dpkg"),
            ("/srv/chroot/var/lib/dpkg/lock", "dpkg"),
            ("/var/lib/apt/lists/lock", "apt"), ("/var/cache/apt/archives/lock", "apt"),
            ("/run/xtables.lock", "xtables"), ("/tmp/rd/xtables.lock", "xtables"),
            ("/var/lib/app/db/LOCK", "leveldb"), ("/var/lib/rpm/.rpm.lock", "rpm"),
        ]
        for (path, name) in cases {
            let r = try XCTUnwrap(LockProtocols.recognise(path: path, kind: .posix, locks: held), path)
            XCTAssertEqual(r.name, name, path)
            XCTAssertEqual(r.state, "LOCKED", path)
            XCTAssertEqual(r.participant(5)?.state, "LOCKED")
            XCTAssertEqual(r.participant(6, wanted: true)?.state, "LOCKED")
            XCTAssertFalse(r.source.isEmpty)
        }
        let dpkg = try XCTUnwrap(LockProtocols.recognise(path: "/var/lib/dpkg/lock", kind: .posix, locks: held))
        XCTAssertTrue(dpkg.advice.contains("dpkg --configure -a"))
        XCTAssertTrue(dpkg.advice.contains("Do not kill dpkg"))
        let xt = try XCTUnwrap(LockProtocols.recognise(path: "/run/xtables.lock", kind: .flock, locks: held))
        XCTAssertTrue(xt.advice.contains("iptables -w"))
        XCTAssertTrue(xt.advice.contains("-n"))
        XCTAssertEqual(LockProtocols.recognise(path: "/var/lib/app/db/LOCK", kind: .posix, locks: held)?.resource, "/var/lib/app/db")
        // Near misses stay unrecognised.
        for path in ["/var/lib/dpkg/lockfile", "/run/xtables.lock.bak", "/tmp/LOCKS", "/var/lib/rpm/rpm.lock", "/var/lib/apt/lock"] {
            XCTAssertNil(LockProtocols.recognise(path: path, kind: .posix, locks: held), path)
        }
    }

    /// A hostile path is carried as is (renderers escape it); the recogniser never trips on it.
    func testHostileNamesAreData() throws {
        let r = try XCTUnwrap(LockProtocols.recognise(path: "/tmp/\u{1b}[2J\n/LOCK", kind: .posix,
                                                      locks: [posix(1, .write, 0, nil)]))
        XCTAssertEqual(r.resource, "/tmp/\u{1b}[2J\n")
    }
}
