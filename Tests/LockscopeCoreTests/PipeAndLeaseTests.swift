import XCTest
import Foundation
@testable import LockscopeCore
import LockscopeTestSupport

/// Pipe ends found over a ProcRoot tree built here (the shape of /proc: fd links
/// `pipe:[N]`, fdinfo `flags:` in octal), and the lease facts' parsers.
final class PipeAndLeaseTests: XCTestCase {
    func makeTree(_ fds: [(pid: Int32, fd: Int32, link: String, flags: String?)]) throws -> TempDir {
        let dir = try TempDir()
        let fm = FileManager.default
        for e in fds {
            try fm.createDirectory(atPath: dir.file("\(e.pid)/fd"), withIntermediateDirectories: true)
            try fm.createDirectory(atPath: dir.file("\(e.pid)/fdinfo"), withIntermediateDirectories: true)
            try fm.createSymbolicLink(atPath: dir.file("\(e.pid)/fd/\(e.fd)"), withDestinationPath: e.link)
            if let f = e.flags {
                try "pos:\t0\nflags:\t\(f)\nmnt_id:\t15\nino:\t1186\n".write(toFile: dir.file("\(e.pid)/fdinfo/\(e.fd)"),
                                                                         atomically: false, encoding: .utf8)
            }
        }
        return dir
    }

    func testPipeLink() {
        XCTAssertEqual(PipeEnds.inode(ofLink: "pipe:[1186]"), 1186)
        XCTAssertNil(PipeEnds.inode(ofLink: "socket:[1186]"))
        XCTAssertNil(PipeEnds.inode(ofLink: "/tmp/pipe:[1]"))
        XCTAssertNil(PipeEnds.inode(ofLink: "pipe:[x]"))
    }

    func testSidesFromFlags() {
        // 01 = O_WRONLY, 00 = O_RDONLY, 02 = O_RDWR; high bits (O_LARGEFILE 0100000, O_CLOEXEC 02000000) ignored.
        XCTAssertEqual(PipeEnds.side(flags: 0o1), .write)
        XCTAssertEqual(PipeEnds.side(flags: 0o100001), .write)
        XCTAssertEqual(PipeEnds.side(flags: 0o2000000), .read)
        XCTAssertEqual(PipeEnds.side(flags: 0o2), .both)
    }

    /// `flock F yes | sleep 600`: yes (811) has the write end, sleep (812) the read
    /// end; an unrelated process has another pipe, one more end has no fdinfo.
    func testFindsEveryEndWithItsSide() throws {
        let dir = try makeTree([
            (811, 1, "pipe:[1186]", "01"), (811, 3, "/tmp/F", "0100000"),
            (812, 0, "pipe:[1186]", "0100000"),
            (900, 0, "pipe:[2222]", "0100000"),
            (901, 5, "pipe:[1186]", nil),   // fdinfo unreadable
        ])
        defer { dir.remove() }
        let ends = PipeEnds.find(inode: 1186, proc: ProcRoot(dir.path))
        XCTAssertEqual(ends, [PipeEnd(pid: 811, fd: 1, side: .write), PipeEnd(pid: 812, fd: 0, side: .read),
                              PipeEnd(pid: 901, fd: 5, side: nil)])
        XCTAssertEqual(PipeEnds.peers(ends, side: .read, except: 811), [812])
        XCTAssertEqual(PipeEnds.peers(ends, side: .write, except: 812), [811])
        XCTAssertEqual(PipeEnds.find(inode: 1186, proc: ProcRoot(dir.path), pids: [812, 999]),
                       [PipeEnd(pid: 812, fd: 0, side: .read)])
    }

    func testSignalMasks() throws {
        // Recorded from python3 with a SIGIO handler: SigIgn 0x1001000 (SIGPIPE 13, SIGXFSZ 25), SigCgt 0x10000002 (SIGINT, SIGIO).
        let status = "Name:\tpython3\nSigQ:\t1/96363\nSigPnd:\t0000000000000000\nSigBlk:\t0000000000000000\nSigIgn:\t0000000001001000\nSigCgt:\t0000000010000002\n"
        let m = try XCTUnwrap(SignalMasks.parse(status: status))
        XCTAssertTrue(m.catches(29))   // SIGIO
        XCTAssertTrue(m.catches(2))    // SIGINT (Python's KeyboardInterrupt)
        XCTAssertFalse(m.catches(15))
        XCTAssertTrue(m.ignores(13))   // SIGPIPE
        XCTAssertTrue(m.ignores(25))   // SIGXFSZ
        XCTAssertEqual(LeaseFacts.signalHandling(m), .handled)
        XCTAssertEqual(LeaseFacts.signalHandling(SignalMasks()), .defaultAction)
        XCTAssertEqual(LeaseFacts.signalHandling(SignalMasks(ignored: 1 << 28)), .ignoredOrBlocked)
        XCTAssertEqual(SignalMasks(caught: 1 << 33).caughtRealtime, [34])
        XCTAssertNil(SignalMasks.parse(status: "Name:\tx\n"))
    }

    func testBreakTimeAndClock() {
        XCTAssertEqual(LeaseFacts.breakTime("45\n"), 45)
        XCTAssertNil(LeaseFacts.breakTime(""))
        let c = LeaseBreakClock(breakTimeSeconds: 45, waitedAtLeast: 1, waitedAtMost: 3)
        XCTAssertEqual(c.secondsLeft, 42)
        XCTAssertEqual(c.secondsLeftAtMost, 44)
        XCTAssertEqual(LeaseBreakClock(breakTimeSeconds: 45, waitedAtLeast: 50, waitedAtMost: nil).secondsLeft, 0)
        // An upper bound below the lower one is raised to it.
        XCTAssertEqual(LeaseBreakClock(breakTimeSeconds: 45, waitedAtLeast: 5, waitedAtMost: 2).secondsLeft, 40)
    }
}
