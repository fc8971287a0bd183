import Foundation
import Glibc
import LockscopeTestSupport
import XCTest

/// Every command on a machine with a FUSE filesystem that stopped answering
/// (issue 13, "never hang"): it must finish within its normal time + 2 s, exit with
/// a documented code, and still report the lock held on the dead filesystem by its
/// identity. Normal time is the same command measured on the same mount while it
/// still answers. See DeadFS.swift for the harness and docs/reliability.md.
final class DeadFilesystemTests: XCTestCase {
    var fs: DeadFS!

    override func setUpWithError() throws {
        try DeadFS.requirements()
        fs = try DeadFS()
    }

    override func tearDown() {
        fs?.tearDown()
        fs = nil
    }

    /// Runs `args` once while the filesystem answers (normal time), kills the
    /// filesystem, runs it again and checks it returned in time. Returns the dead run.
    @discardableResult
    func deadRun(_ args: [String], signalAfter: (seconds: Double, signal: Int32)? = nil,
                 file: StaticString = #filePath, line: UInt = #line) throws -> DeadFSRun {
        let normal = try fs.run(args, deadline: 60)
        XCTAssertFalse(normal.hung, "with the filesystem answering: \(normal)", file: file, line: line)
        try fs.die()
        let allowed = normal.seconds + 2
        let dead = try fs.run(args, deadline: allowed + 3, signalAfter: signalAfter)
        print("dead-fs: lockscope \(args.joined(separator: " ")): normal \(String(format: "%.2f", normal.seconds)) s, dead \(String(format: "%.2f", dead.seconds)) s, exit \(dead.exitCode)\(dead.hung ? " (hung)" : "")")
        XCTAssertFalse(dead.hung, "hung on the dead filesystem: \(dead)", file: file, line: line)
        XCTAssertLessThanOrEqual(dead.seconds, allowed, "slower than normal (\(normal.seconds) s) + 2 s: \(dead)", file: file, line: line)
        return dead
    }

    func pid(_ p: HarnessProcess) -> String { String(p.pid) }

    // MARK: list

    func testListReportsTheFuseLock() throws {
        let r = try deadRun(["list", "--json"])
        XCTAssertEqual(r.exitCode, 0, "\(r)")
        XCTAssertTrue(r.stdout.contains("\"device\": \"\(fs.device)\""), "\(r)")
        XCTAssertTrue(r.stdout.contains("\"kernel_pid\": \(fs.holder.pid)"), "\(r)")
    }

    func testListHoldersReportsTheFuseLock() throws {
        let r = try deadRun(["list", "--holders", "--path", fs.lockIdentity])
        XCTAssertEqual(r.exitCode, 0, "\(r)")
        XCTAssertTrue(r.stdout.contains(pid(fs.holder)), "\(r)")
    }

    // MARK: who / waiters

    func testWhoByIdentity() throws {
        let r = try deadRun(["who", fs.lockIdentity])
        XCTAssertEqual(r.exitCode, 0, "\(r)")
        XCTAssertTrue(r.stdout.contains(fs.lockIdentity), "\(r)")
        XCTAssertTrue(r.stdout.contains(pid(fs.holder)), "\(r)")
    }

    func testWhoByPathOnTheDeadMount() throws {
        let r = try deadRun(["who", fs.lockPath])
        assertUnresponsive(r)
    }

    func testWaitersByIdentity() throws {
        let r = try deadRun(["waiters", fs.lockIdentity])
        XCTAssertEqual(r.exitCode, 0, "\(r)")
        XCTAssertTrue(r.stdout.contains(pid(fs.waiter)), "\(r)")
    }

    func testWaitersByPathOnTheDeadMount() throws {
        let r = try deadRun(["waiters", fs.lockPath])
        assertUnresponsive(r)
    }

    /// SIGTERM ends lockscope at once even while the path lookup is stuck.
    func testSigtermEndsWhoOnTheDeadMount() throws {
        try fs.die()
        let r = try fs.run(["who", fs.lockPath], deadline: 3, signalAfter: (0.3, SIGTERM))
        XCTAssertFalse(r.hung, "SIGTERM did not end it: \(r)")
        XCTAssertLessThan(r.seconds, 1.3, "\(r)")
    }

    // MARK: diagnose

    /// No FILE: every contended lock, including the one whose holder's root is the dead
    /// mount (its /proc/PID/root/etc/resolv.conf is on the dead filesystem).
    func testDiagnoseEverything() throws {
        let r = try deadRun(["diagnose", "--window", "0.5"])
        XCTAssertTrue([3, 4].contains(r.exitCode), "contention must be reported: \(r)")
        XCTAssertTrue(r.stdout.contains(fs.lockIdentity), "\(r)")
        XCTAssertTrue(r.stdout.contains(pid(fs.holder)), "\(r)")
        XCTAssertTrue(r.stdout.contains(pid(fs.chrooted)), "\(r)")
    }

    func testDiagnoseFileWhoseHolderIsChrootedIntoTheDeadMount() throws {
        let r = try deadRun(["diagnose", "--window", "0.5", fs.outsidePath])
        XCTAssertTrue([3, 4].contains(r.exitCode), "\(r)")
        XCTAssertTrue(r.stdout.contains(pid(fs.chrooted)), "\(r)")
    }

    func testDiagnoseFuseLockByIdentity() throws {
        let r = try deadRun(["diagnose", "--window", "0.5", fs.lockIdentity])
        XCTAssertTrue([3, 4].contains(r.exitCode), "\(r)")
        XCTAssertTrue(r.stdout.contains(pid(fs.holder)), "\(r)")
        XCTAssertTrue(r.stdout.contains(pid(fs.waiter)), "\(r)")
    }

    func testDiagnoseByPathOnTheDeadMount() throws {
        let r = try deadRun(["diagnose", "--window", "0.5", fs.lockPath])
        assertUnresponsive(r)
    }

    // MARK: trace

    func testTraceHolderPid() throws {
        let r = try deadRun(["trace", "--duration", "1", pid(fs.holder)])
        XCTAssertEqual(r.exitCode, 0, "\(r)")
        XCTAssertTrue(r.stdout.contains("pid \(fs.holder.pid)"), "\(r)")
    }

    func testTraceChrootedHolderPid() throws {
        let r = try deadRun(["trace", "--duration", "1", pid(fs.chrooted)])
        XCTAssertEqual(r.exitCode, 0, "\(r)")
        XCTAssertTrue(r.stdout.contains("pid \(fs.chrooted.pid)"), "\(r)")
    }

    func testTraceFuseLockByIdentity() throws {
        let r = try deadRun(["trace", "--duration", "1", fs.lockIdentity])
        XCTAssertEqual(r.exitCode, 0, "\(r)")
        XCTAssertTrue(r.stdout.contains("pid \(fs.holder.pid)"), "\(r)")
    }

    func testTraceByPathOnTheDeadMount() throws {
        let r = try deadRun(["trace", "--duration", "1", fs.lockPath])
        assertUnresponsive(r)
    }

    // MARK: helpers

    /// A path on the dead mount cannot be resolved: one line that names the
    /// filesystem and the identities to use instead, exit 75 (README, exit codes).
    func assertUnresponsive(_ r: DeadFSRun, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.exitCode, 75, "\(r)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains("unresponsive filesystem (fuse at \(fs.mountpoint))"), "\(r)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(fs.lockIdentity), "the lock on it must still be named by identity: \(r)", file: file, line: line)
    }
}
