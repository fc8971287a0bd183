import XCTest
import LockscopeCore
import LockscopeTrace

/// `--syscalls` parsing against the table.
final class SyscallFilterTests: XCTestCase {
    func testFilterParsing() throws {
        let f = try SyscallFilter(parsing: "lock,net, openat", table: .x86_64)
        XCTAssertTrue(f.matches(name: "flock", classes: .lock))
        XCTAssertTrue(f.matches(name: "connect", classes: [.net, .desc]))
        XCTAssertTrue(f.matches(name: "openat", classes: .file))
        XCTAssertFalse(f.matches(name: "read", classes: .desc))
        XCTAssertTrue(try SyscallFilter(parsing: "", table: .x86_64).matchesAll)
        XCTAssertThrowsError(try SyscallFilter(parsing: "lock,frobnicate", table: .x86_64)) { error in
            XCTAssertEqual(error as? TraceError, .unknownSyscall("frobnicate"))
        }
    }
}
