import XCTest
@testable import LockscopeCore

final class ProcLocksParserTests: XCTestCase {
    func testEveryFormTheKernelPrints() throws {
        // One line per branch of lock_get_status() in fs/locks.c.
        let text = """
        1: POSIX  ADVISORY  WRITE 3568 fd:00:2531452 0 EOF
        2: FLOCK  ADVISORY  WRITE 3517 fd:00:2531448 0 EOF
        3: OFDLCK ADVISORY  READ -1 fe:00:16015361 100 199
        4: POSIX  *NOINODE* WRITE 12 <none>:0 0 EOF
        5: LEASE  ACTIVE    READ 3000 103:02:77 0 EOF
        6: LEASE  BREAKING  READ 3001 103:02:78 0 EOF
        7: LEASE  BREAKER   WRITE 3002 103:02:79 0 EOF
        8: DELEG  ACTIVE    READ 0 00:2d:90 0 EOF
        9: ACCESS ADVISORY  UNLCK 44 fd:00:1 5 5
        10: POSIX  MANDATORY WRITE 45 fd:00:2 0 EOF
        11: UNKNOWN UNKNOWN  WRITE 46 fd:00:3 0 EOF
        """
        let (locks, rejected) = ProcLocksParser.parse(text)
        XCTAssertEqual(rejected, [])
        XCTAssertEqual(locks.map(\.lock.kind), [.posix, .flock, .ofd, .posix, .lease, .lease, .lease, .deleg, .access, .posix, .unknown])
        XCTAssertEqual(locks.map(\.lock.mode), ["ADVISORY", "ADVISORY", "ADVISORY", "*NOINODE*", "ACTIVE", "BREAKING", "BREAKER", "ACTIVE", "ADVISORY", "MANDATORY", "UNKNOWN"])
        XCTAssertEqual(locks[2].lock.pid, -1)
        XCTAssertEqual(locks[2].lock.start, 100)
        XCTAssertEqual(locks[2].lock.end, 199)
        XCTAssertNil(locks[0].lock.end)
        XCTAssertNil(locks[3].lock.file, "<none>:0 has no file")
        XCTAssertEqual(locks[4].lock.file, FileIdentity(major: 0x103, minor: 2, inode: 77))
        XCTAssertEqual(locks[8].lock.access, .unlock)
        XCTAssertEqual(locks[1].lock.file?.description, "fd:00:2531448")
    }

    func testWaiterTreeFollowsIndentation() throws {
        // Recorded on Linux 6.18: each new flock waiter chains behind the previous one.
        let text = """
        1: FLOCK  ADVISORY  WRITE 3855 fe:00:16220393 0 EOF
        1: -> FLOCK  ADVISORY  WRITE 3859 fe:00:16220393 0 EOF
        1:  -> FLOCK  ADVISORY  WRITE 3861 fe:00:16220393 0 EOF
        1:   -> FLOCK  ADVISORY  READ 3863 fe:00:16220393 0 EOF
        1: -> FLOCK  ADVISORY  WRITE 3870 fe:00:16220393 0 EOF
        2: POSIX  ADVISORY  WRITE 10 fe:00:5 0 EOF
        2: -> POSIX  ADVISORY  WRITE 11 fe:00:5 0 EOF
        """
        let (locks, rejected) = ProcLocksParser.parse(text)
        XCTAssertEqual(rejected, [])
        XCTAssertEqual(locks.count, 2)
        let tree = locks[0]
        XCTAssertEqual(tree.waiters.map(\.pid), [3859, 3861, 3863, 3870])
        XCTAssertEqual(tree.waiters.map(\.depth), [1, 2, 3, 1])
        XCTAssertEqual((0..<4).map { tree.directBlockerPid(ofWaiter: $0) }, [3855, 3859, 3861, 3855])
        XCTAssertEqual(tree.waiters[2].access, .read)
        XCTAssertEqual(locks[1].waiters.map(\.pid), [11])
    }

    func testMalformedLinesAreRejectedNotFatal() {
        let text = """
        1: FLOCK  ADVISORY  WRITE 1 fe:00:1 0 EOF
        garbage
        2: FLOCK  ADVISORY  WRITE x fe:00:2 0 EOF
        3: FLOCK  ADVISORY  WRITE 3 zz:00:2 0 EOF
        4: NEWKIND ADVISORY WRITE 3 fe:00:2 0 EOF
        5: FLOCK  ADVISORY  WRITE 5 fe:00:5 0
        -> FLOCK  ADVISORY  WRITE 6 fe:00:5 0 EOF
        6: FLOCK  ADVISORY  WRITE 6 fe:00:6 0 EOF
        """
        let (locks, rejected) = ProcLocksParser.parse(text)
        XCTAssertEqual(locks.map(\.lock.pid), [1, 6])
        XCTAssertEqual(rejected.count, 6)
    }

    func testOrphanWaiterWithoutGrantedLockIsRejected() {
        let (locks, rejected) = ProcLocksParser.parse("1: -> FLOCK  ADVISORY  WRITE 9 fe:00:1 0 EOF\n")
        XCTAssertTrue(locks.isEmpty)
        XCTAssertEqual(rejected.count, 1)
    }

    func testFileIdentityParsing() {
        XCTAssertEqual(FileIdentity(parsing: "fe:00:16015361"), FileIdentity(major: 0xfe, minor: 0, inode: 16015361))
        XCTAssertEqual(FileIdentity(parsing: "103:2:7")?.description, "103:02:7")
        for bad in ["", "fe:00", "fe:00:", ":00:1", "fe:00:1:2", "g1:00:5", "fe:00:-1", "fe:00:0x10"] {
            XCTAssertNil(FileIdentity(parsing: bad), bad)
        }
    }

    func testFdInfoWithLockLines() {
        let text = "pos:\t0\nflags:\t0100002\nmnt_id:\t27\nino:\t16220393\nlock:\t1: FLOCK  ADVISORY  WRITE 3855 fe:00:16220393 0 EOF\nlock:\t2: POSIX  ADVISORY  READ 3855 fe:00:16220393 0 99\n"
        let info = FdInfo.parse(text)
        XCTAssertEqual(info.mountId, 27)
        XCTAssertEqual(info.inode, 16220393)
        XCTAssertEqual(info.flags, 0o100002)
        XCTAssertEqual(info.locks.map(\.kind), [.flock, .posix])
        XCTAssertEqual(info.locks[1].end, 99)
        let mounts = MountTable.parse("27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n31 27 0:52 / /btr rw - btrfs /dev/vdb rw\n")
        XCTAssertEqual(mounts.identity(of: info), FileIdentity(major: 254, minor: 0, inode: 16220393))
        XCTAssertEqual(mounts.identity(of: FdInfo(mountId: 31, inode: 5))?.description, "00:34:5")
        XCTAssertNil(mounts.identity(of: FdInfo(mountId: 99, inode: 5)))
    }

    /// Only the id and the device are read; a line without both is skipped, not fatal.
    func testMountTableReadsIdAndDeviceOfWellFormedLines() {
        let text = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\ngarbage\nx 1 8:1 / /x rw - ext4 a rw\n40 1 8:y / /y rw - ext4 a rw\n41  1  8:17 / /z rw - ext4 a rw\n42 1 4294967296:0 / /big rw - x a rw\n43 1 7:3"
        let table = MountTable.parse(text)
        XCTAssertEqual(table.devices.keys.sorted(), [27, 41, 43])
        XCTAssertEqual(table.devices[41]?.minor, 17, "runs of spaces separate fields")
        XCTAssertEqual(table.devices[43]?.major, 7, "the last line needs no newline")
    }

    func testStatWithHostileComm() {
        let stat = "1234 (a) b) (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 5000 1000 10 0 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0"
        let s = StatFields.parse(stat)
        XCTAssertEqual(s?.comm, "a) b) (c")
        XCTAssertEqual(s?.state, "S")
        XCTAssertEqual(s?.ppid, 1)
        XCTAssertEqual(s?.utime, 7)
        XCTAssertEqual(s?.stime, 3)
        XCTAssertEqual(s?.startTicks, 5000)
        XCTAssertEqual(s?.threads, 1)
        XCTAssertEqual(s?.isKernelThread, false)
        XCTAssertEqual(StatFields.parse("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 4 0 0")?.isKernelThread, true)
        // The same parser on bytes in place (the sampler's reused buffer).
        stat.utf8CString.withUnsafeBytes { XCTAssertEqual(StatFields.parse(UnsafeRawBufferPointer(rebasing: $0.dropLast())), s) }
        XCTAssertNil(StatFields.parse("1234 (a) S 1 1234"), "truncated")
        XCTAssertNil(StatFields.parse(stat.replacingOccurrences(of: " 7 3 ", with: " 7 x ")), "not a number")
    }

    func testSyscallFile() {
        XCTAssertEqual(SyscallFileParser.parse("running\n"), .running)
        XCTAssertEqual(SyscallFileParser.parse("-1 0x7ffc 0x7f00\n"), .notInSyscall)
        guard case .inSyscall(let nr, let args, let sp, _) = SyscallFileParser.parse("73 0x3 0x2 0x0 0x1b6 0x7fffa9ea4cb0 0x0 0x7fffa9ea4c78 0x7fecb11c5897\n") else {
            return XCTFail("not parsed")
        }
        XCTAssertEqual(nr, 73)
        XCTAssertEqual(args, [3, 2, 0, 0x1b6, 0x7fffa9ea4cb0, 0])
        XCTAssertEqual(sp, 0x7fffa9ea4c78)
        XCTAssertEqual(SyscallFileParser.parse(""), .unavailable)
    }
}
