import XCTest
import LockscopeTestSupport

/// The runner every CLI test goes through.
final class RunCommandTests: XCTestCase {
    /// A child that fills the stderr pipe (64 KiB) before it writes stdout: a runner
    /// that reads stdout to the end first would wait forever (here: until the timeout).
    func testFullStderrBeforeStdoutDoesNotDeadlock() throws {
        let r = try runCommand(["/bin/sh", "-c", "yes e | head -c 200000 >&2; echo out"], timeout: 10)
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.exitCode, 0)
        XCTAssertEqual(r.stdout, "out\n")
        XCTAssertEqual(r.stderr.utf8.count, 200_000)
        XCTAssertTrue(r.stderr.hasPrefix("e\ne\n"), String(r.stderr.prefix(20)))
    }
}
