import Foundation
import Glibc
import LockscopeTestSupport
import XCTest

/// Answers that were wrong (issue 13): waiters counted twice by `list --holders`, and
/// what a user without root was told.
final class WrongAnswersTests: XCTestCase {
    // arch/x86/entry/syscalls/syscall_64.tbl; include/uapi/asm-generic/unistd.h (aarch64).
    #if arch(x86_64)
    static let fcntl: Int32 = 72, flock: Int32 = 73
    #else
    static let fcntl: Int32 = 25, flock: Int32 = 32
    #endif

    func locks(_ json: String) throws -> [[String: Any]] {
        let doc = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        return doc?["locks"] as? [[String: Any]] ?? []
    }

    /// An OFD lock anywhere makes the co-holder scan look at every path (its owner is
    /// -1): a kernel-listed waiter seen there again, blocked in its lock call, was added a
    /// second time as a `syscall` waiter with a whole-file range. Each waiter once, with
    /// the kernel's range, for OFD and POSIX locks alike.
    func testListHoldersCountsEachWaiterOnce() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let ofd = try dir.touch("ofd.lock"), posix = try dir.touch("posix.lock")
        let ofdHolder = try Testbed.spawn(["open:\(ofd)", "ofd:w:0:0"])
        defer { ofdHolder.terminate() }
        try ofdHolder.waitForReady()
        let ofdWaiter = try Testbed.spawn(["open:\(ofd)", "ofd:w:10:5"])
        defer { ofdWaiter.terminate() }
        let posixHolder = try Testbed.spawn(["open:\(posix)", "posix:w:100:100"])
        defer { posixHolder.terminate() }
        try posixHolder.waitForReady()
        let posixWaiter = try Testbed.spawn(["open:\(posix)", "posix:w:150:10"])
        defer { posixWaiter.terminate() }
        let fcntl = Self.fcntl
        try waitUntilBlocked(ofdWaiter.pid, inSyscall: fcntl)
        try waitUntilBlocked(posixWaiter.pid, inSyscall: fcntl)
        XCTAssertTrue(waitUntil { procLocksLines(pid: posixWaiter.pid).contains { $0.contains("->") } })

        let r = try CLI.run(["list", "--holders", "--json"])
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        let mine = try locks(r.stdout).filter { ($0["path"] as? String).map { $0.hasPrefix(dir.path) } ?? false }
        func waiters(_ path: String) -> [[String: Any]] {
            mine.filter { $0["path"] as? String == path }.flatMap { $0["waiters"] as? [[String: Any]] ?? [] }
        }
        let w1 = waiters(ofd), w2 = waiters(posix)
        XCTAssertEqual(w1.count, 1, "\(w1)")
        XCTAssertEqual(w1.first?["pid"] as? Int, Int(ofdWaiter.pid), "\(w1)")
        XCTAssertEqual(w1.first?["start"] as? Int, 10)
        XCTAssertEqual(w1.first?["end"] as? Int, 14)
        XCTAssertEqual(w2.count, 1, "\(w2)")
        XCTAssertEqual(w2.first?["pid"] as? Int, Int(posixWaiter.pid), "\(w2)")
        XCTAssertEqual(w2.first?["source"] as? String, "kernel")
        XCTAssertEqual(w2.first?["start"] as? Int, 150)
        XCTAssertEqual(w2.first?["end"] as? Int, 159)
    }

    /// As nobody, against a lock root holds and root waits for: every process counted
    /// once in "could not be inspected", and `diagnose FILE` names FILE and exits 4
    /// (contention found, holder not inspectable).
    func testWithoutRoot() throws {
        try requireRoot("drops to nobody with setpriv")
        try requireExecutable("setpriv")
        let dir = try TempDir()
        defer { dir.remove() }
        chmod(dir.path, 0o755)
        let file = try dir.touch("root.lock")
        chmod(file, 0o644)
        let holder = try Testbed.spawn(["open:\(file)", "flock:ex"])
        defer { holder.terminate() }
        try holder.waitForReady()
        let waiter = try Testbed.spawn(["open:\(file)", "flock:ex"])
        defer { waiter.terminate() }
        try waitUntilBlocked(waiter.pid, inSyscall: Self.flock)
        let asNobody = [which("setpriv")!, "--reuid=65534", "--regid=65534", "--clear-groups", TestBinaries.lockscope]

        let who = try runCommand(asNobody + ["who", "--json", file])
        if who.exitCode == 126 { try skip("lockscope not executable by nobody here") }
        XCTAssertEqual(who.exitCode, 0, who.stderr)
        let processes = (try FileManager.default.contentsOfDirectory(atPath: "/proc")).filter { Int($0) != nil }.count
        let doc = try JSONSerialization.jsonObject(with: Data(who.stdout.utf8)) as? [String: Any]
        let denied = try XCTUnwrap((doc?["coverage"] as? [String: Any])?["processes_denied"] as? Int, who.stdout)
        // Processes come and go on a shared machine: a margin, but never each one twice.
        XCTAssertGreaterThan(denied, 0)
        XCTAssertLessThanOrEqual(denied, processes + processes / 4, "\(denied) denied of \(processes) processes")

        let d = try runCommand(asNobody + ["diagnose", "--window", "0.3", file])
        XCTAssertEqual(d.exitCode, 4, d.stdout + d.stderr)
        XCTAssertTrue(d.stdout.contains(file), d.stdout)
        XCTAssertFalse(d.stdout.contains("(unknown path)"), d.stdout)
    }
}
