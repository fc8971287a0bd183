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

    // MARK: watch

    /// `watch` resolves its files like the other commands: a path on the dead mount is
    /// answered with exit 75 in time; by identity it watches as usual.
    func testWatchOnTheDeadMount() throws {
        let probe = try fs.run(["watch", "--duration", "0.2", fs.lockIdentity], deadline: 30)
        if probe.exitCode == 69 { try skip("lock events unavailable (root and tracefs needed): \(probe.stderr)") }
        XCTAssertEqual(probe.exitCode, 0, "\(probe)")
        let r = try deadRun(["watch", "--duration", "1", fs.lockPath])
        assertUnresponsive(r)
        let byIdentity = try fs.run(["watch", "--duration", "1", fs.lockIdentity], deadline: probe.seconds + 0.8 + 2)
        print("dead-fs: lockscope watch --duration 1 \(fs.lockIdentity): dead \(String(format: "%.2f", byIdentity.seconds)) s, exit \(byIdentity.exitCode)")
        XCTAssertFalse(byIdentity.hung, "\(byIdentity)")
        XCTAssertEqual(byIdentity.exitCode, 0, "\(byIdentity)")
    }

    // MARK: an exiting holder

    /// A holder whose exit is stuck closing its file (issue 13): the group leader is a
    /// zombie, its other thread is in do_exit → fuse_flush, the flock is still held. It is
    /// "exiting: 1 thread still closing files" with that thread shown, never "pid reused".
    func testExitingHolderStuckInFlush() throws {
        let file = fs.mountpoint + "/other.lock"
        let identity = try fs.identity(of: file)
        let p = try fs.hold([file, "--exit-from-thread"])
        _ = try p.waitForLine(prefix: "held")
        try fs.die()
        p.closeStdin()
        let closer = try waitUntilExiting(p.pid)

        let list = try fs.run(["list", "--json"], deadline: 30)
        XCTAssertEqual(list.exitCode, 0, "\(list)")
        let lock = try XCTUnwrap(jsonLocks(list.stdout).first { "\($0["device"] ?? ""):\($0["inode"] ?? "")" == identity }, "\(list)")
        XCTAssertEqual(lock["owner_status"] as? String, "exiting", "\(lock)")
        let threads = try XCTUnwrap(lock["exiting_threads"] as? [[String: Any]], "\(lock)")
        XCTAssertEqual(threads.map { $0["tid"] as? Int }, [Int(closer)], "\(lock)")
        if let stack = threads.first?["kernel_stack"] as? [String] {
            XCTAssertTrue(stack.contains { $0.hasPrefix("fuse_flush") }, "\(stack)")
        } else if access("/proc/self/stack", R_OK) == 0 {
            XCTFail("root reads /proc/PID/task/TID/stack, but no kernel_stack: \(lock)")
        }

        let text = try fs.run(["list"], deadline: 30)
        XCTAssertTrue(text.stdout.contains("note: pid \(p.pid) holding \(identity) is exiting: 1 thread still closing files"), "\(text)")
        let who = try fs.run(["who", identity], deadline: 30)
        XCTAssertEqual(who.exitCode, 0, "\(who)")
        XCTAssertTrue(who.stdout.contains("exiting: 1 thread still closing files"), "\(who)")
        XCTAssertTrue(who.stdout.contains("tid \(closer)"), "\(who)")
        XCTAssertTrue(who.stdout.split(separator: "\n").contains { $0.contains("owner") && $0.contains(" \(p.pid) ") },
                      "the exiting owner is in the holder table: \(who)")
        let diagnose = try fs.run(["diagnose", "--window", "0.5", identity], deadline: 30)
        XCTAssertEqual(diagnose.exitCode, 0, "nobody waits for it: \(diagnose)")
        XCTAssertTrue(diagnose.stdout.contains("is exiting: 1 thread still closing files"), "\(diagnose)")
        for r in [text, who, diagnose] { XCTAssertFalse(r.stdout.contains("reused"), "\(r)") }
    }

    /// Waits until `pid`'s leader is a zombie and another thread is exiting; that thread's tid.
    func waitUntilExiting(_ pid: pid_t) throws -> pid_t {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let tids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []).compactMap { pid_t($0) }
            if state("/proc/\(pid)/stat") == "Z", let t = tids.first(where: { $0 != pid }), state("/proc/\(pid)/task/\(t)/stat") != "Z" {
                return t
            }
            usleep(20_000)
        }
        throw TestSupportError.timeout(what: "pid \(pid) to be exiting with a thread in fuse_flush", seconds: 10, detail: "")
    }

    func state(_ statPath: String) -> Character? {
        guard let text = try? String(contentsOfFile: statPath, encoding: .utf8), let close = text.lastIndex(of: ")") else { return nil }
        return text[close...].dropFirst(2).first
    }

    func jsonLocks(_ text: String) throws -> [[String: Any]] {
        let doc = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        return doc?["locks"] as? [[String: Any]] ?? []
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
