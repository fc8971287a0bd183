import XCTest
@testable import LockscopeCore

/// An owner whose exit is stuck closing its files (issue 13): recorded with the
/// dead-filesystem harness (Tests/DeadFS/deadfs.c `hold --exit-from-thread`): the group
/// leader is a zombie, its other thread is in do_exit → fuse_flush, the flock is still held.
extension FixtureGraphTests {
    func testExitingOwnerIsNotAReusedPid() throws {
        let f = try fixture("exiting-holder")
        let r = try report(f, lockedBy: "exiting_owner")
        let lock = try XCTUnwrap(r.locks.first)
        XCTAssertEqual(lock.ownerStatus, .exiting)
        XCTAssertEqual(lock.holders.map(\.pid), [f.pid("exiting_owner")], "the exiting owner still holds it")
        XCTAssertEqual(lock.holders.first?.process?.state, "Z")
        XCTAssertEqual(lock.exitingThreads.map(\.tid), [f.pid("closing_thread")], "the zombie leader is not closing anything")
        let t = try XCTUnwrap(lock.exitingThreads.first)
        XCTAssertEqual(t.wchan, "request_wait_answer")
        XCTAssertEqual(t.kernelStack?.first?.hasPrefix("request_wait_answer+"), true)
        XCTAssertTrue(t.kernelStack?.contains { $0.hasPrefix("fuse_flush+") } ?? false)
        XCTAssertTrue(t.kernelStack?.contains { $0.hasPrefix("do_exit+") } ?? false)
        XCTAssertEqual(lock.waiters.map(\.pid), [f.pid("waiter")])
        XCTAssertEqual(lock.waiters.first?.blockedBy, f.pid("exiting_owner"))
        XCTAssertEqual(ExitingProcess.summary(closing: 1), "exiting: 1 thread still closing files")
    }

    /// A leader that called pthread_exit() while another thread runs on is not exiting.
    func testZombieLeaderWithALiveThreadIsNotExiting() throws {
        let f = try fixture("exiting-holder")
        let pid = f.pid("exiting_owner")
        let leader = try XCTUnwrap(StatFields.parse(try f.proc.readText("\(pid)/stat")))
        XCTAssertNotNil(ExitingProcess.threads(proc: f.proc, pid: pid, leader: leader))
        var running = leader
        running.flags &= ~ExitingProcess.pfExiting
        XCTAssertNil(ExitingProcess.threads(proc: f.proc, pid: pid, leader: running))
    }

    func testKernelStackFrames() {
        XCTAssertEqual(KernelStack.parse("[<0>] request_wait_answer+0x16a/0x280\n[<0>] fuse_flush+0x192/0x1d0\n"),
                       ["request_wait_answer+0x16a/0x280", "fuse_flush+0x192/0x1d0"])
        XCTAssertNil(KernelStack.parse(""))
    }
}

/// Names that are not UTF-8 keep their bytes through the model (issue 13, exact bytes).
final class PathTextTests: XCTestCase {
    func testRoundTripsAnyBytes() {
        let cases: [[UInt8]] = [
            Array("/run/xtables.lock".utf8),
            Array("/tmp/bad".utf8) + [0xff, 0xfe] + Array(".lock".utf8),
            Array("/tmp/é".utf8) + [0xc3] + Array("x".utf8),  // a valid é, then a truncated one
            Array("/tmp/".utf8) + [0xf4, 0x8f, 0xbf, 0xbf],  // U+10FFFF itself: an escape scalar's own bytes
            [0x80], [0xed, 0xa0, 0x80],  // a lone continuation byte, an encoded surrogate
        ]
        for bytes in cases {
            let name = PathText.decode(bytes)
            XCTAssertEqual(PathText.bytes(of: name), bytes, "\(bytes)")
            XCTAssertEqual(PathText.repaired(name), String(decoding: bytes, as: UTF8.self), "\(bytes)")
        }
    }

    func testValidUTF8IsThePlainString() {
        let name = PathText.decode(Array("/tmp/naïve.lock".utf8))
        XCTAssertEqual(name, "/tmp/naïve.lock")
        XCTAssertTrue(PathText.isExact(name))
    }

    func testInvalidBytesShowAsHex() {
        let name = PathText.decode(Array("bad".utf8) + [0xff, 0xfe] + Array(".lock".utf8))
        XCTAssertFalse(PathText.isExact(name))
        XCTAssertEqual(PathText.hex(name), "626164fffe2e6c6f636b")
        XCTAssertEqual(PathText.repaired(name), "bad\u{FFFD}\u{FFFD}.lock")
        XCTAssertEqual(terminalSafe(name), "bad\\xff\\xfe.lock")
    }
}
