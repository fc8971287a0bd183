import XCTest
import LockscopeCore
@testable import LockscopeTrace

/// The sampler's own /proc text parsers (Sources/LockscopeTrace/SamplingRun.swift,
/// FdResolver.swift): stat (Core's parser, on bytes) and syscall lines, sched exec_start, the
/// kernel-thread flag, fd link classification.
final class SamplerParsersTests: XCTestCase {
    func testFdClassification() {
        XCTAssertEqual(FdResolver.classify("socket:[123]"), .otherSocket(inode: 123))
        XCTAssertEqual(FdResolver.classify("pipe:[9]"), .pipe(inode: 9, peers: []))
        XCTAssertEqual(FdResolver.classify("anon_inode:[eventfd]"), .anon("[eventfd]"))
        XCTAssertEqual(FdResolver.classify("/run/xtables.lock (deleted)"), .path("/run/xtables.lock (deleted)"))
    }

    func testSchedExecStartAndKernelThreadFlag() {
        XCTAssertEqual(SamplingRun.execStart("x (1, #threads: 1)\n---\nse.exec_start                                :       3131175.206397\nse.vruntime : 1\n"), 3131175.206397)
        XCTAssertNil(SamplingRun.execStart("nothing"))
        XCTAssertEqual(StatFields.parse("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 4 0 0")?.isKernelThread, true)
        XCTAssertEqual(StatFields.parse("1 (systemd) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 4 0 0")?.isKernelThread, false)
    }

    /// The sampler's in-place parsers: stat from its reused buffer, and syscall.
    func testStatBytesAndSyscallParsers() {
        let stat = "4696 (ipt ables) (x) S 4690 4696 4696 0 -1 4194560 130 0 0 0 7 3 0 0 20 0 3 0 12345 1000 200 18446744073709551615"
        stat.utf8CString.withUnsafeBytes { raw in
            let f = StatFields.parse(UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 1)]))
            XCTAssertEqual(f, StatFields.parse(stat))
            XCTAssertEqual(f?.comm, "ipt ables) (x")
            XCTAssertEqual(f?.state, "S")
            XCTAssertEqual(f?.utime, 7)
            XCTAssertEqual(f?.stime, 3)
            XCTAssertEqual(f?.threads, 3)
            XCTAssertEqual(f?.startTicks, 12345)
        }
        XCTAssertNil(StatFields.parse("4696 (x) S 4690 4696"), "truncated")
        XCTAssertNil(StatFields.parse("4696 (x) S 4690 4696 4696 0 -1 4194560 130 0 0 0 7 x 0 0 20 0 3 0 12345"), "not a number")
        var key = [UInt64](repeating: 0, count: 9)
        func parse(_ s: String) -> RawSyscall {
            s.utf8CString.withUnsafeBytes { RawSyscall.parse(UnsafeRawBufferPointer(rebasing: $0[0..<($0.count - 1)]), into: &key) }
        }
        XCTAssertEqual(parse("7 0x7ffd1c2b3a40 0x1 0xbb8 0x0 0x0 0x0 0x7ffd1c2b3a00 0x7f3a5c4e1b2f\n"), .inSyscall(7))
        XCTAssertEqual(key, [7, 0x7ffd1c2b3a40, 1, 0xbb8, 0, 0, 0, 0x7ffd1c2b3a00, 0x7f3a5c4e1b2f])
        XCTAssertEqual(parse("running\n"), .running)
        XCTAssertEqual(parse("-1 0x7ffd1c2b3a00 0x7f3a5c4e1b2f\n"), .notInSyscall)
        XCTAssertEqual(parse("7 0x1\n"), .unreadable)
    }
}
