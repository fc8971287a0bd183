import Foundation
import Glibc
import LockscopeCore
import LockscopeTestSupport
import XCTest

/// `waiters --window` and `diagnose` with the kernel's lock events: the pollers no
/// snapshot sees, each reported once, with exact pids and attempt counts.
final class PollersLiveTests: XCTestCase {
    var started: [Started] = []

    override func tearDown() {
        // Only what this test started, by process group.
        for s in started { s.kill(SIGKILL); s.wait() }
        started = []
    }

    func start(_ argv: [String], stdout: String? = nil) throws -> Started {
        let s = try Started(argv, stdout: stdout)
        started.append(s)
        return s
    }

    func json(_ args: [String]) throws -> (Int32, [String: Any]) {
        let r = try runCommand([TestBinaries.lockscope] + args, timeout: 30)
        let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout + r.stderr)
        return (r.exitCode, doc)
    }

    func openers(_ doc: [String: Any]) -> [Int32: [String: Any]] {
        var out: [Int32: [String: Any]] = [:]
        for o in doc["openers"] as? [[String: Any]] ?? [] { if let pid = o["pid"] as? Int { out[Int32(pid)] = o } }
        return out
    }

    func hasOpen(_ pid: pid_t, _ path: String) -> Bool {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        return fds.contains { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")) == path }
    }

    /// A flock(1) holder, a blocked flock(1) waiter, a `flock -n` shell loop (a new
    /// flock per attempt, nothing open between attempts) and a python3 that only
    /// keeps the file open and sleeps.
    func scene() throws -> (dir: TempDir, file: String, holder: Started, waiter: Started, loop: Started, sleeper: Started) {
        try requireLockEvents()
        try requireExecutable("flock")
        try requireExecutable("python3")
        let dir = try TempDir()
        let file = try dir.touch("lock")
        let holder = try start(["/usr/bin/flock", file, "sleep", "30"])
        XCTAssertTrue(waitUntil(timeout: 5) { readProcText("/proc/locks")?.contains(" \(holder.pid) ") == true })
        let waiter = try start(["/usr/bin/flock", file, "true"])
        let loop = try start(["/bin/sh", "-c", "while ! flock -n \"$0\" true; do sleep 0.5; done", file])
        let sleeper = try start(["/usr/bin/python3", "-c", "import sys, time\nf = open(sys.argv[1])\ntime.sleep(30)", file])
        XCTAssertTrue(waitUntil(timeout: 5) { hasOpen(sleeper.pid, file) && hasOpen(waiter.pid, file) })
        usleep(200_000)
        return (dir, file, holder, waiter, loop, sleeper)
    }

    func testWaitersWindowSeesTheFlockLoopOnceAndTheSleeperIdle() throws {
        let s = try scene()
        defer { s.dir.remove() }
        // The snapshot alone: the sleeper is idle (open, asleep), the loop invisible.
        let snap = try runCommand([TestBinaries.lockscope, "waiters", s.file])
        XCTAssertTrue(snap.stdout.contains("idle (open, asleep): 1"), snap.stdout)
        XCTAssertFalse(snap.stdout.contains("polling"), snap.stdout)

        let (status, doc) = try json(["waiters", "--window", "2", "--json", s.file])
        XCTAssertEqual(status, 0)
        let lock = try XCTUnwrap((doc["locks"] as? [[String: Any]])?.first)
        let waiters = (lock["waiters"] as? [[String: Any]] ?? []).compactMap { $0["pid"] as? Int }
        XCTAssertEqual(waiters, [Int(s.waiter.pid)], "the blocked waiter, once")
        let o = openers(doc)
        XCTAssertNil(o[s.waiter.pid], "a blocked waiter is not also a poller")
        let sh = try XCTUnwrap(o[s.loop.pid], "\(doc)")
        XCTAssertTrue(sh["fd"] is NSNull)
        XCTAssertEqual(sh["activity"] as? String, "polling")
        XCTAssertEqual(sh["attempt_command"] as? String, "flock")
        let attempts = try XCTUnwrap(sh["attempts"] as? Int)
        XCTAssertTrue((3...5).contains(attempts), "\(attempts)")
        XCTAssertEqual(sh["failed_attempts"] as? Int, attempts)
        XCTAssertEqual((sh["attempt_pids"] as? [Int])?.count, attempts)
        XCTAssertEqual(num(sh["retry_interval_seconds"]), 0.5, accuracy: 0.15)
        let py = try XCTUnwrap(o[s.sleeper.pid])
        XCTAssertEqual(py["activity"] as? String, "idle")
        XCTAssertEqual(py["asleep"] as? Bool, true)
        XCTAssertTrue(py["attempts"] is NSNull)
        // Only these two: no attempt's flock listed beside its shell.
        XCTAssertEqual(Set(o.keys), [s.loop.pid, s.sleeper.pid])
        XCTAssertEqual((doc["lock_events"] as? [String: Any])?["available"] as? Bool, true)
    }

    func testDiagnoseCountsTheLoopAndTheBlockedWaiter() throws {
        let s = try scene()
        defer { s.dir.remove() }
        let (_, doc) = try json(["diagnose", "--window", "2", "--json", s.file])
        XCTAssertEqual(doc["outcome"] as? String, "contention")
        let lock = try XCTUnwrap((doc["locks"] as? [[String: Any]])?.first)
        XCTAssertEqual(lock["blocked"] as? Int, 1)
        XCTAssertEqual(lock["polling"] as? Int, 1)
        XCTAssertEqual(lock["waiting"] as? Int, 2)
        let verdict = lock["verdict"] as? String ?? ""
        XCTAssertTrue(verdict.contains("2 processes waiting (1 blocked, 1 polling"), verdict)
        XCTAssertTrue(verdict.contains("sh[\(s.loop.pid)] retries flock every 0."), verdict)
        XCTAssertEqual(Set(openers(doc).keys), [s.loop.pid, s.sleeper.pid])
        XCTAssertEqual(openers(doc)[s.sleeper.pid]?["activity"] as? String, "idle")
    }

    /// Not root: the snapshot's answer, exit 0, and the one note saying what is not seen.
    func testWaitersWindowWithoutRootFallsBackWithOneNote() throws {
        try requireRoot("drops to nobody with setpriv")
        try requireExecutable("setpriv")
        try requireExecutable("flock")
        let dir = try TempDir()
        defer { dir.remove() }
        chmod(dir.path, 0o755)
        let file = try dir.touch("lock")
        chmod(file, 0o644)
        let holder = try start(["/usr/bin/flock", file, "sleep", "30"])
        XCTAssertTrue(waitUntil(timeout: 5) { readProcText("/proc/locks")?.contains(" \(holder.pid) ") == true })
        let r = try runCommand(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                TestBinaries.lockscope, "waiters", "--window", "0.3", file])
        XCTAssertEqual(r.exitCode, 0, r.stdout + r.stderr)
        let notes = r.stdout.split(separator: "\n").filter { $0.contains("lock events") }
        XCTAssertEqual(notes, ["note: lock events unavailable (not root): pollers that close the file between attempts are not seen"])
        XCTAssertTrue(r.stdout.contains("FLOCK WRITE (whole file) held by"), r.stdout)
    }

    /// Real apt-get with DPkg::Lock::Timeout on a temporary admin directory (never
    /// the machine's dpkg lock): it opens lock-frontend, F_SETLK fails, it closes it
    /// and sleeps 1 s. `diagnose` names it with its retry interval.
    func testDiagnoseSeesAptGetLockTimeoutPoller() throws {
        try requireLockEvents()
        try requireExecutable("/usr/bin/apt-get")
        let dir = try TempDir()
        defer { dir.remove() }
        let (lock, argv) = try aptGetLockTimeout(dir, seconds: 20)
        let holder = try Testbed.spawn(["open:" + lock, "posix:w:0:0"])
        defer { holder.terminate() }
        try holder.waitForReady()
        let apt = try start(argv, stdout: dir.file("apt.out"))
        // Polling once it has tried the lock the first time (it says so, on stdout or stderr).
        _ = waitUntil(timeout: 3) { ((try? String(contentsOfFile: dir.file("apt.out"), encoding: .utf8)) ?? "").contains("Waiting") }
        let (_, doc) = try json(["diagnose", "--window", "2.5", "--json", lock])
        let l = try XCTUnwrap((doc["locks"] as? [[String: Any]])?.first, "\(doc)")
        XCTAssertEqual(l["blocked"] as? Int, 0)
        XCTAssertEqual(l["polling"] as? Int, 1)
        let a = try XCTUnwrap(openers(doc)[apt.pid], "\(doc)")
        XCTAssertTrue(a["fd"] is NSNull)
        XCTAssertEqual(a["comm"] as? String, "apt-get")
        XCTAssertNil(a["attempt_command"] as? String)
        let attempts = try XCTUnwrap(a["attempts"] as? Int)
        XCTAssertTrue((2...4).contains(attempts), "\(attempts)")
        XCTAssertEqual(num(a["retry_interval_seconds"]), 1.0, accuracy: 0.15)
        let verdict = l["verdict"] as? String ?? ""
        XCTAssertTrue(verdict.contains("apt-get[\(apt.pid)] retries every 1 s"), verdict)
    }
}
