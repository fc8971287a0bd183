// Tests of lockscope-testbed and LockscopeTestSupport themselves: every other
// live test trusts that a testbed step really produces the kernel state it names.
import Glibc
import LockscopeCore
import LockscopeTestSupport
import XCTest

final class TestbedTests: XCTestCase {
    let sysFlock = Int32(SyscallTable.host.number(of: "flock")!)
    let sysFcntl = Int32(SyscallTable.host.number(of: "fcntl")!)

    func testExclusiveFlockIsHeldAndListedInProcLocks() throws {
        let dir = try TempDir()
        let bed = try Testbed.spawn(["open:\(dir.file("held"))", "flock:ex"])
        try bed.waitForReady()
        let locks = procLocksLines(pid: bed.pid)
        XCTAssertEqual(locks.count, 1, "\(locks)")
        XCTAssertTrue(locks.first?.contains("FLOCK  ADVISORY  WRITE \(bed.pid) ") == true, "\(locks)")
        XCTAssertEqual(fdsHoldingLocks(pid: bed.pid).count, 1)
        XCTAssertTrue(bed.lines.contains("ok flock:ex \(bed.pid)"), "\(bed.lines)")
    }

    func testSecondFlockBlocksInTheKernelUntilReleased() throws {
        let dir = try TempDir()
        let path = dir.file("contended")
        let holder = try Testbed.spawn(["open:\(path)", "flock:ex"])
        try holder.waitForReady()
        let waiter = try Testbed.spawn(["open:\(path)", "flock:ex"])
        try waitUntilBlocked(waiter.pid, inSyscall: sysFlock)
        XCTAssertEqual(syscallNumber(of: waiter.pid), Int(sysFlock))
        XCTAssertTrue(procLocksLines(pid: waiter.pid).contains { $0.contains("-> FLOCK") },
                      "waiter not in /proc/locks: \(procLocksLines(pid: waiter.pid))")
        XCTAssertFalse(waiter.lines.contains { $0.hasPrefix("ready") })

        holder.release()
        XCTAssertEqual(holder.waitForExit(), 0)
        try waiter.waitForReady()
        XCTAssertEqual(procLocksLines(pid: waiter.pid).count, 1)
    }

    func testNonBlockingFlockFailsWithExit3() throws {
        let dir = try TempDir()
        let holder = try Testbed.spawn(["open:\(dir.file("f"))", "flock:ex"])
        try holder.waitForReady()
        let r = try runCommand([TestBinaries.testbed, "open:\(dir.file("f"))", "flock:ex:nb"])
        XCTAssertEqual(r.exitCode, 3)
        XCTAssertTrue(r.stdout.contains("fail flock EWOULDBLOCK"), r.stdout)
    }

    func testForkChildSharesTheFlockThroughItsFd() throws {
        let dir = try TempDir()
        let bed = try Testbed.spawn(["open:\(dir.file("shared"))", "flock:ex", "fork", "sleep:1"])
        let child = try XCTUnwrap(bed.waitForChildren(1).first)
        try bed.waitForReady()
        try bed.waitForReady(child)
        XCTAssertTrue(bed.lines.contains("child \(child) \(bed.pid)"))
        // Both processes hold the lock through their fd; /proc/locks names only the parent.
        XCTAssertEqual(fdsHoldingLocks(pid: bed.pid).count, 1)
        XCTAssertEqual(fdsHoldingLocks(pid: child).count, 1)
        XCTAssertEqual(procLocksLines(pid: bed.pid).count, 1)
        XCTAssertEqual(procLocksLines(pid: child).count, 0)
        // Steps after `fork` ran only in the child.
        XCTAssertTrue(bed.lines.contains("ok sleep:1 \(child)"))
        XCTAssertFalse(bed.lines.contains("ok sleep:1 \(bed.pid)"))
    }

    func testParentStepsAfterForkSeparator() throws {
        let dir = try TempDir()
        let bed = try Testbed.spawn(["open:\(dir.file("f"))", "flock:ex", "fork", "sleep:200", "exit",
                                     "parent", "wait-child"])
        let child = try XCTUnwrap(bed.waitForChildren(1).first)
        try bed.waitForReady()
        XCTAssertTrue(bed.lines.contains("ok wait-child \(bed.pid)"), "\(bed.lines)")
        XCTAssertTrue(bed.lines.contains("ok sleep:200 \(child)"), "\(bed.lines)")
        XCTAssertFalse(processIsAlive(child))
    }

    func testTerminateLeavesNoProcessBehind() throws {
        let dir = try TempDir()
        let bed = try Testbed.spawn(["open:\(dir.file("f"))", "flock:ex", "fork", "daemonize", "sleep:1"])
        let pids = try bed.waitForChildren(2)
        let daemon = try XCTUnwrap(bed.daemonPids.first)
        try bed.waitForReady(daemon)
        XCTAssertTrue(processIsAlive(daemon))
        bed.terminate()
        XCTAssertFalse(processIsAlive(bed.pid))
        for p in pids {
            XCTAssertTrue(waitUntil(timeout: 5) { !processIsAlive(p) }, "pid \(p) survived terminate()")
        }
        XCTAssertTrue(procLocksLines(pid: bed.pid).isEmpty)
    }

    func testDaemonKeepsTheLockAfterItsParentExited() throws {
        let dir = try TempDir()
        let bed = try Testbed.spawn(["open:\(dir.file("f"))", "flock:ex", "daemonize"])
        let daemon = try XCTUnwrap(bed.waitForChildren(1).first)
        try bed.waitForReady(daemon)
        XCTAssertEqual(bed.waitForExit(), 0)
        // The kernel still names the dead parent; the daemon holds the lock via its fd.
        XCTAssertEqual(procLocksLines(pid: bed.pid).count, 1)
        XCTAssertEqual(fdsHoldingLocks(pid: daemon).count, 1)
    }

    func testPosixAndOfdWaitersBlockInFcntl() throws {
        let dir = try TempDir()
        let path = dir.file("ranges")
        let holder = try Testbed.spawn(["open:\(path)", "posix:w:0:10", "open:\(path)", "ofd:w:100:0"])
        try holder.waitForReady()
        let posixWaiter = try Testbed.spawn(["open:\(path)", "posix:r:5:1"])
        let ofdWaiter = try Testbed.spawn(["open:\(path)", "ofd:r:200:1"])
        try waitUntilBlocked(posixWaiter.pid, inSyscall: sysFcntl)
        try waitUntilBlocked(ofdWaiter.pid, inSyscall: sysFcntl)
        let all = readProcText("/proc/locks") ?? ""
        XCTAssertTrue(all.contains("POSIX  ADVISORY  WRITE \(holder.pid) "), all)
        XCTAssertTrue(all.contains("OFDLCK ADVISORY  WRITE -1 "), all)
        XCTAssertTrue(all.contains("-> POSIX  ADVISORY  READ \(posixWaiter.pid) "), all)
    }

    func testThreadStepBlocksInPollWhileMainThreadHolds() throws {
        let dir = try TempDir()
        let bed = try Testbed.spawn(["open:\(dir.file("f"))", "flock:ex", "thread:udp-poll:127.0.0.1:9:5000"])
        try bed.waitForReady()
        let tid = try XCTUnwrap(bed.threadIds.first)
        try waitUntilBlocked(bed.pid, tid: tid, inSyscall: 7)  // poll on x86_64
        let fields = readProcText("/proc/\(bed.pid)/task/\(tid)/syscall")?.split(separator: " ") ?? []
        XCTAssertEqual(fields.count > 3 ? fields[3] : "", "0x1388")  // 5000 ms timeout
    }

    func testPollLockSleepsBetweenAttemptsThenAcquires() throws {
        let dir = try TempDir()
        let holder = try Testbed.spawn(["open:\(dir.file("f"))", "flock:ex"])
        try holder.waitForReady()
        let poller = try Testbed.spawn(["open:\(dir.file("f"))", "poll-lock:50"])
        // glibc's nanosleep() is the clock_nanosleep system call.
        try waitUntilBlocked(poller.pid, inSyscall: Int32(SyscallTable.host.number(of: "clock_nanosleep")!))
        XCTAssertTrue(procLocksLines(pid: poller.pid).isEmpty, "a LOCK_NB poller is no kernel waiter")
        holder.release()
        try poller.waitForReady()
        XCTAssertEqual(procLocksLines(pid: poller.pid).count, 1)
    }

    func testSyscallsWorkloadReportsItsLoopTime() throws {
        let bed = try Testbed.spawn(["syscalls:2000"])
        try bed.waitFor(line: "sync \(bed.pid)")
        bed.send()
        let line = try bed.waitFor(line: "loop-ns ")
        XCTAssertGreaterThan(UInt64(line.dropFirst(8)) ?? 0, 0)
        try bed.waitForReady()
    }

    func testHostileFileNameIsEscapedInOkLine() throws {
        let dir = try TempDir()
        let name = dir.file("a:b\nc\u{1b}[31m")
        let bed = try Testbed.spawn(["open:\(name)", "flock:sh"])
        try bed.waitForReady()
        XCTAssertEqual(access(name, F_OK), 0, "the path must be used verbatim")
        XCTAssertTrue(bed.lines.contains { $0.hasPrefix("ok open:") && $0.contains("\\n") && $0.contains("\\x1b") }, "\(bed.lines)")
    }

    func testInvalidArgumentsExit2WithOneLine() throws {
        for args in [["bogus"], ["flock:maybe"], ["posix:w:x:1"], ["udp-poll:8.8.8.8:53:10"], ["parent"], ["--max-seconds", "0"]] {
            let r = try runCommand([TestBinaries.testbed] + args)
            XCTAssertEqual(r.exitCode, 2, "\(args)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(args): \(r.stderr)")
            XCTAssertEqual(r.stdout, "", "nothing runs before all steps parse")
        }
    }

    func testSafetyNetEndsAForgottenTestbed() throws {
        let bed = try Testbed.spawn(["sleep:60000"], maxSeconds: 1)
        let code = bed.waitForExit(timeout: 5)
        XCTAssertEqual(code, 128 + SIGALRM)
    }
}
