import XCTest
import Foundation
import Glibc
import LockscopeTestSupport

/// `lockscope diagnose` as a script sees it: exit codes and one-line errors.
final class DiagnoseCLITests: XCTestCase {
    var beds: [Testbed] = []
    override func tearDown() {
        beds.forEach { $0.terminate() }
        beds = []
        super.tearDown()
    }

    func run(_ args: [String], timeout: Double = 30) throws -> CommandResult {
        try runCommand([TestBinaries.lockscope, "diagnose"] + args, timeout: timeout)
    }

    func testNoContentionIsZero() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let free = try dir.touch("free.lock")
        let r = try run([free])
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix(free + ": not locked, nobody waiting."), r.stdout)

        let held = try dir.touch("held.lock")
        beds.append(try Testbed.spawn(["open:" + held, "flock:ex"]))
        try beds[0].waitForReady()
        let h = try run(["--json", held])
        XCTAssertEqual(h.exitCode, 0, h.stderr)
        XCTAssertTrue(h.stdout.contains("\"outcome\": \"no-contention\""), h.stdout)
    }

    func testContentionIsThree() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let lock = try dir.touch("busy.lock")
        let holder = try Testbed.spawn(["open:" + lock, "flock:ex", "sleep:60000"])
        beds.append(holder)
        try holder.waitFor(line: "ok flock:ex")
        beds.append(try Testbed.spawn(["open:" + lock, "flock:ex"]))
        XCTAssertTrue(waitUntil { (readProcText("/proc/locks") ?? "").contains("->") })
        let r = try run(["--window", "0.3", lock])
        XCTAssertEqual(r.exitCode, 3, r.stderr)
        XCTAssertTrue(r.stdout.contains("1 process waiting"), r.stdout)
        XCTAssertTrue(r.stdout.contains("[holder-sleeping]"), r.stdout)
        let dot = try run(["--dot", "--window", "0.2", lock])
        XCTAssertEqual(dot.exitCode, 3)
        XCTAssertTrue(dot.stdout.hasPrefix("digraph lockscope {"), dot.stdout)
    }

    func testBadInput() throws {
        let missing = try run(["/nonexistent/lockscope-test"])
        XCTAssertEqual(missing.exitCode, 66)
        XCTAssertEqual(missing.stderr.split(separator: "\n").count, 1, missing.stderr)
        let bad = try run(["zz:00:12"])
        XCTAssertEqual(bad.exitCode, 64, bad.stderr)
        let both = try run(["--json", "--dot", "/tmp"])
        XCTAssertEqual(both.exitCode, 64, both.stderr)
        let window = try run(["--window", "99", "/tmp"])
        XCTAssertEqual(window.exitCode, 64, window.stderr)
    }
}
