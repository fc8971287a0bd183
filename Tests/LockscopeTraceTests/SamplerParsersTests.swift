import XCTest
@testable import LockscopeTrace

/// The sampler's own /proc text parsers (Sources/LockscopeTrace/SamplingRun.swift,
/// FdResolver.swift): syscall lines, sched exec_start, fd link classification.
final class SamplerParsersTests: XCTestCase {
    func testFdClassification() {
        XCTAssertEqual(FdResolver.classify("socket:[123]"), .otherSocket(inode: 123))
        XCTAssertEqual(FdResolver.classify("pipe:[9]"), .pipe(inode: 9, peers: []))
        XCTAssertEqual(FdResolver.classify("anon_inode:[eventfd]"), .anon("[eventfd]"))
        XCTAssertEqual(FdResolver.classify("/run/xtables.lock (deleted)"), .path("/run/xtables.lock (deleted)"))
    }

    /// /proc/…/syscall parsed in place (the stat line is Core's `StatFields`).
    func testSyscallParser() {
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
