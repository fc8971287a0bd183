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
        XCTAssertEqual(c.source, .estimate)
        // From lock events: one exact value, and past the deadline nothing is left.
        let exact = LeaseBreakClock(breakTimeSeconds: 45, breakingSeconds: 3.5)
        XCTAssertEqual(exact.source, .event)
        XCTAssertEqual(exact.secondsLeft, 41.5)
        XCTAssertEqual(exact.secondsLeftAtMost, 41.5)
        XCTAssertEqual(LeaseBreakClock(breakTimeSeconds: 45, breakingSeconds: 46).secondsLeft, 0)
    }

    /// open(2) has its flags second, openat(2) third (x86_64 and aarch64 alike);
    /// O_RDWR never waits for a partner, openat2 keeps its flags in memory.
    func testFifoOpenSideFromTheCallsFlags() {
        let wronlyCreat = UInt64(O_WRONLY | O_CREAT | O_TRUNC)
        XCTAssertEqual(FifoOpen.side(call: "open", raw: [0x1000, wronlyCreat, 0o666, 0, 0, 0]), .write)
        XCTAssertEqual(FifoOpen.side(call: "openat", raw: [UInt64(bitPattern: -100), 0x1000, UInt64(O_RDONLY | O_CLOEXEC), 0, 0, 0]), .read)
        XCTAssertEqual(FifoOpen.side(call: "openat", raw: [UInt64(bitPattern: -100), 0x1000, wronlyCreat, 0, 0, 0]), .write)
        XCTAssertNil(FifoOpen.side(call: "openat", raw: [0, 0x1000, UInt64(O_RDWR), 0, 0, 0]))
        XCTAssertEqual(FifoOpen.side(call: "creat", raw: [0x1000, 0o644, 0, 0, 0, 0]), .write)
        XCTAssertNil(FifoOpen.side(call: "openat2", raw: [0, 0x1000, 0x2000, 24, 0, 0]))
        XCTAssertNil(FifoOpen.side(call: "read", raw: [3, 0x1000, 1, 0, 0, 0]))
        XCTAssertNil(FifoOpen.side(call: "openat", raw: [0, 0x1000]), "too few registers")
    }

    func testFifoOpenWaitsForPartnerAndPaths() {
        XCTAssertTrue(FifoOpen.waitsForPartner(wchan: "wait_for_partner", stack: nil))
        XCTAssertTrue(FifoOpen.waitsForPartner(wchan: "fifo_open", stack: nil))
        XCTAssertTrue(FifoOpen.waitsForPartner(wchan: "pipe_wait", stack: nil), "before Linux 5.5")
        XCTAssertTrue(FifoOpen.waitsForPartner(wchan: nil, stack: ["[<0>] wait_for_partner+0x9c/0x100", "[<0>] fifo_open+0x2a0/0x3a0"]))
        XCTAssertFalse(FifoOpen.waitsForPartner(wchan: "do_sys_poll", stack: ["[<0>] do_sys_poll+0x3f/0x60"]))
        XCTAssertFalse(FifoOpen.waitsForPartner(wchan: nil, stack: nil))

        XCTAssertEqual(FifoOpen.absolute("/tmp/x.fifo", base: nil), "/tmp/x.fifo")
        XCTAssertEqual(FifoOpen.absolute("x.fifo", base: "/srv/q"), "/srv/q/x.fifo")
        XCTAssertEqual(FifoOpen.absolute("./a/../b//x.fifo", base: "/srv/q/"), "/srv/q/b/x.fifo")
        XCTAssertEqual(FifoOpen.absolute("../../../x", base: "/srv"), "/x")
        XCTAssertNil(FifoOpen.absolute("x.fifo", base: nil))
        XCTAssertNil(FifoOpen.absolute("x.fifo", base: "pipe:[12]"), "a base that is not a path")
    }

    /// The inode comes from an O_PATH open, which runs no fifo_open(): a writer waiting
    /// for a reader stays waiting. A regular file is not a FIFO.
    func testFifoInodeWithoutWakingAWaitingOpener() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let fifo = dir.file("x.fifo")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        var st = stat()
        XCTAssertEqual(stat(fifo, &st), 0)
        XCTAssertEqual(FifoOpen.inode(ofFifo: fifo), UInt64(st.st_ino))
        try "x".write(toFile: dir.file("plain"), atomically: false, encoding: .utf8)
        XCTAssertNil(FifoOpen.inode(ofFifo: dir.file("plain")))
        XCTAssertNil(FifoOpen.inode(ofFifo: dir.file("absent")))
        // Nobody has it open: an O_NONBLOCK writer is refused (ENXIO) before and after our look.
        XCTAssertEqual(open(fifo, O_WRONLY | O_NONBLOCK), -1)
        XCTAssertEqual(errno, ENXIO)
    }
}

/// sock_diag's unix answers, recorded from the kernel, and the live dump on a
/// socketpair made here.
final class UnixDiagTests: XCTestCase {
    /// Recorded with python3 on Linux 6.18: socketpair(AF_UNIX, SOCK_STREAM) a = 2672400,
    /// b = 2672401, 100 bytes sent from a and not read by b. Each is one recv() of the
    /// answer to SOCK_DIAG_BY_FAMILY for one inode (udiag_show = UDIAG_SHOW_PEER |
    /// UDIAG_SHOW_RQLEN): socket a (peer b), socket b (peer a, 100 bytes queued), and
    /// inode 1, no such unix socket (NLMSG_ERROR -ENOENT).
    static let recorded = [
        "exact-a": "3c0000001400000007000000ef2900000101010010c728004b000000000000000800020011c728000c00040000000000000300000500060000000000",
        "exact-b": "3c0000001400000007000000ef2900000101010011c728004c000000000000000800020010c728000c00040064000000000000000500060000000000",
        "error-enoent": "3c0000000200000007000000ef290000feffffff2800000014000100070000000000000001000000ffffffff0100000014000000ffffffffffffffff",
    ]

    func bytes(_ name: String) throws -> [UInt8] {
        let hex = Array(try XCTUnwrap(Self.recorded[name]).utf8)
        return stride(from: 0, to: hex.count, by: 2).compactMap { UInt8(String(decoding: hex[$0..<$0 + 2], as: UTF8.self), radix: 16) }
    }

    func testSocketLink() {
        XCTAssertEqual(UnixDiag.inode(ofLink: "socket:[2672400]"), 2672400)
        XCTAssertNil(UnixDiag.inode(ofLink: "pipe:[2672400]"))
        XCTAssertNil(UnixDiag.inode(ofLink: "socket:[x]"))
    }

    func testRequestLayout() {
        let r = UnixDiag.request(sequence: 9)
        XCTAssertEqual(r.count, 40)
        XCTAssertEqual(Array(r[0..<4]), [40, 0, 0, 0])          // nlmsg_len
        XCTAssertEqual(Array(r[4..<6]), [20, 0])                // SOCK_DIAG_BY_FAMILY
        XCTAssertEqual(Array(r[6..<8]), [0x01, 0x03])           // NLM_F_REQUEST | NLM_F_DUMP
        XCTAssertEqual(r[16], UInt8(AF_UNIX))
        XCTAssertEqual(Array(r[28..<32]), [0x14, 0, 0, 0])      // UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN
    }

    func testRecordedAnswers() throws {
        XCTAssertEqual(UnixDiag.parse(try bytes("exact-a")),
                       .sockets([UnixDiagSocket(inode: 2672400, peer: 2672401, type: 1, state: 1, receiveQueue: 0, sendQueue: 768)], done: false))
        XCTAssertEqual(UnixDiag.parse(try bytes("exact-b")),
                       .sockets([UnixDiagSocket(inode: 2672401, peer: 2672400, type: 1, state: 1, receiveQueue: 100, sendQueue: 0)], done: false))
        XCTAssertEqual(UnixDiag.parse(try bytes("error-enoent")), .error(ENOENT))
        // A dump ends with NLMSG_DONE; a cut message ends the buffer without a crash.
        let done: [UInt8] = [20, 0, 0, 0, 3, 0, 2, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        XCTAssertEqual(UnixDiag.parse(try bytes("exact-a") + done),
                       .sockets([UnixDiagSocket(inode: 2672400, peer: 2672401, type: 1, state: 1, receiveQueue: 0, sendQueue: 768)], done: true))
        let a = try bytes("exact-a")
        for cut in [0, 10, 20, 40, a.count - 1] {
            guard case .sockets(_, let d) = UnixDiag.parse(Array(a[0..<cut])) else { return XCTFail("cut \(cut)") }
            XCTAssertFalse(d)
        }
    }

    func testLiveDumpNamesThePeerOfASocketpair() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        func inode(_ fd: Int32) throws -> UInt64 {
            try XCTUnwrap(UnixDiag.inode(ofLink: try ProcRoot().readLink("self/fd/\(fd)")))
        }
        let a = try inode(fds[0]), b = try inode(fds[1])
        let table: [UInt64: UnixDiagSocket]
        do { table = try UnixDiag.dump() } catch {
            throw XCTSkip("sock_diag for AF_UNIX unavailable here: \(error)")
        }
        XCTAssertEqual(table[a]?.peer, b)
        XCTAssertEqual(table[b]?.peer, a)
        let ends = PipeEnds.find(link: "socket:[\(b)]", proc: ProcRoot(), pids: [getpid()])
        XCTAssertEqual(ends.map(\.fd), [fds[1]])
    }
}
