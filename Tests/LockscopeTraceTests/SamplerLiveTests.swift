import XCTest
import Glibc
import LockscopeCore
import LockscopeTestSupport
@testable import LockscopeTrace

/// The sampler on real tracees from lockscope-testbed. Each test starts its own
/// processes and kills only those (Testbed.terminate, also on deinit).
final class SamplerLiveTests: XCTestCase {
    /// A loopback UDP socket that never answers; returns the testbed and its port.
    func blackhole() throws -> (Testbed, Int) {
        let bed = try Testbed.spawn(["blackhole:127.0.0.1:0"])
        let line = try bed.waitFor(line: "blackhole ")
        let port = try XCTUnwrap(Int(line.split(separator: " ")[1]))
        try bed.waitForReady()
        return (bed, port)
    }

    /// The fd of `pid` whose link is `path`.
    func fd(of pid: Int32, linkingTo path: String) -> Int32? {
        let dir = "/proc/\(pid)/fd"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            if let link = try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/" + name), link == path {
                return Int32(name)
            }
        }
        return nil
    }

    func thread(_ report: SamplerReport, pid: Int32, tid: Int32? = nil) throws -> SampledThread {
        let p = try XCTUnwrap(report.processes.first { $0.pid == pid }, "pid \(pid) not in report")
        return try XCTUnwrap(p.threads.first { $0.tid == (tid ?? pid) }, "tid \(tid ?? pid) not in report")
    }

    /// The incident's DNS-stuck process: poll on a UDP socket to a nameserver that never answers.
    func testPollOnUDPSocketToSilentPeer() throws {
        let (hole, port) = try blackhole()
        defer { hole.terminate() }
        let bed = try Testbed.spawn(["udp-poll:127.0.0.1:\(port):3000:20"])
        defer { bed.terminate() }
        try waitUntilBlocked(bed.pid, inSyscall: 7)
        let report = try Sampler().sample(pids: [bed.pid], duration: .milliseconds(300), hz: 100)
        let t = try thread(report, pid: bed.pid)
        let call = try XCTUnwrap(t.current, "not in a call: \(t)")
        XCTAssertEqual(call.name, "poll")
        XCTAssertEqual(call.timeout, .relative(nanoseconds: 3_000_000_000))
        XCTAssertEqual(call.fds.count, 1)
        let fd = try XCTUnwrap(call.fds.first)
        let link = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(bed.pid)/fd/\(fd.fd)")
        XCTAssertTrue(link.hasPrefix("socket:["), link)
        let sock = try XCTUnwrap(fd.what?.socket, "fd \(fd.fd) not resolved: \(String(describing: fd.what))")
        XCTAssertEqual(sock.proto, .udp)
        XCTAssertEqual(sock.remote, NetEndpoint(address: "127.0.0.1", port: port))
        XCTAssertEqual(sock.local?.address, "127.0.0.1")
        XCTAssertEqual(t.dominant, .syscall("poll"))
        XCTAssertGreaterThan(t.samples, 10)
        XCTAssertGreaterThan(try XCTUnwrap(t.inCallSeconds), 0.1)
    }

    /// A waiter blocked in flock: the path and the operation.
    func testFlockWaiter() throws {
        let dir = try TempDir()
        let path = dir.file("xtables.lock")
        let holder = try Testbed.spawn(["open:\(path)", "flock:ex"])
        defer { holder.terminate() }
        try holder.waitForReady()
        let waiter = try Testbed.spawn(["open:\(path)", "flock:ex"])
        defer { waiter.terminate() }
        try waitUntilBlocked(waiter.pid, inSyscall: 73)
        let expectedFd = try XCTUnwrap(fd(of: waiter.pid, linkingTo: path))
        let report = try Sampler().sample(pids: [waiter.pid, holder.pid], duration: .milliseconds(200), hz: 50)
        let t = try thread(report, pid: waiter.pid)
        let call = try XCTUnwrap(t.current)
        XCTAssertEqual(call.name, "flock")
        XCTAssertEqual(call.flockOperation?.kind, .exclusive)
        XCTAssertEqual(call.flockOperation?.nonBlocking, false)
        XCTAssertEqual(call.fds, [ResolvedFd(fd: expectedFd, what: .path(path))])
        // The holder sits in read(0) on its stdin pipe, waiting to be released.
        let h = try thread(report, pid: holder.pid)
        XCTAssertEqual(h.current?.name, "read")
        guard case .pipe? = h.current?.fds.first?.what else { return XCTFail("holder's fd 0: \(String(describing: h.current))") }
    }

    /// nanosleep (glibc: clock_nanosleep) with its duration.
    func testSleepDuration() throws {
        let bed = try Testbed.spawn(["sleep:5000"])
        defer { bed.terminate() }
        try waitUntilBlocked(bed.pid, inSyscall: 230)
        let report = try Sampler().sample(pids: [bed.pid], duration: .milliseconds(100), hz: 100)
        let call = try XCTUnwrap(try thread(report, pid: bed.pid).current)
        XCTAssertEqual(call.name, "clock_nanosleep")
        XCTAssertEqual(call.timeout, .relative(nanoseconds: 5_000_000_000))
        XCTAssertTrue(call.classes.contains(.sleep))
    }

    /// The time in the current call reaches back before the window: the scheduler's
    /// last-ran time says the thread has slept at least since it entered the call.
    func testInCallTimeReachesBeforeTheWindow() throws {
        let bed = try Testbed.spawn(["sleep:30000"])
        defer { bed.terminate() }
        try waitUntilBlocked(bed.pid, inSyscall: 230)
        usleep(1_200_000)
        let report = try Sampler().sample(pids: [bed.pid], duration: .milliseconds(100), hz: 100)
        let t = try thread(report, pid: bed.pid)
        let since = try XCTUnwrap(t.sinceLastRanSeconds, "no /proc/…/sched on this kernel")
        // At least the 1.2 s slept: the reference is the clock of the CPU the thread last ran
        // on (each CPU's clock_task has its own offset: 1.2 s apart here, so a reading from
        // the other CPU gave 0.07 s or 2.4 s, depending on which).
        XCTAssertGreaterThanOrEqual(since, 1.15)
        XCTAssertLessThan(since, 10)
        XCTAssertLessThan(try XCTUnwrap(t.currentObservedSeconds), 0.5)
        XCTAssertEqual(t.inCallSeconds, since)
    }

    /// One process, different blocking calls per thread.
    func testThreadsInDifferentCalls() throws {
        let (hole, port) = try blackhole()
        defer { hole.terminate() }
        let dir = try TempDir()
        let bed = try Testbed.spawn(["open:\(dir.file("f"))", "flock:ex", "thread:sleep:30000",
                                     "thread:udp-poll:127.0.0.1:\(port):4000:10"])
        defer { bed.terminate() }
        try bed.waitForReady()
        XCTAssertTrue(waitUntil { bed.refresh(); return bed.threadIds.count == 2 })
        let tids = bed.threadIds
        try waitUntilBlocked(bed.pid, tid: tids[0], inSyscall: 230)
        try waitUntilBlocked(bed.pid, tid: tids[1], inSyscall: 7)
        let report = try Sampler().sample(pids: [bed.pid], duration: .milliseconds(200), hz: 100)
        XCTAssertEqual(try thread(report, pid: bed.pid, tid: tids[0]).current?.timeout?.seconds, 30)
        let poll = try XCTUnwrap(try thread(report, pid: bed.pid, tid: tids[1]).current)
        XCTAssertEqual(poll.name, "poll")
        XCTAssertEqual(poll.timeout?.milliseconds, 4000)
        XCTAssertEqual(poll.fds.first?.what?.socket?.remote?.port, port)
        XCTAssertEqual(try thread(report, pid: bed.pid).current?.name, "read")
        XCTAssertEqual(report.processes[0].threads.count, 3)
    }

    /// A holder that forks a child sharing the lock fd and waits for it.
    func testForkedChildSharingTheLockFd() throws {
        let dir = try TempDir()
        let path = dir.file("lock")
        let bed = try Testbed.spawn(["open:\(path)", "flock:ex", "fork", "sleep:30000", "parent", "wait-child"])
        defer { bed.terminate() }
        let child = try XCTUnwrap(try bed.waitForChildren(1).first)
        try waitUntilBlocked(bed.pid, inSyscall: 61)
        try waitUntilBlocked(child, inSyscall: 230)
        let report = try Sampler().sample(pids: [bed.pid, child], duration: .milliseconds(200), hz: 100)
        let parent = try XCTUnwrap(try thread(report, pid: bed.pid).current)
        XCTAssertEqual(parent.name, "wait4")
        XCTAssertEqual(parent.waitTarget, .child(child))
        let kid = try XCTUnwrap(try thread(report, pid: child).current)
        XCTAssertEqual(kid.timeout?.seconds, 30)
        XCTAssertNotNil(fd(of: child, linkingTo: path), "the child inherited the lock fd")
    }

    /// The sampler never attaches and never stops: watched from outside while it runs.
    func testSamplerNeverStopsOrAttaches() throws {
        let bed = try Testbed.spawn(["spin:3000"])
        defer { bed.terminate() }
        XCTAssertTrue(waitUntil { (readProcText("/proc/\(bed.pid)/stat") ?? "").contains(") R") })
        // The spinner's CPU time as the kernel counts it, bracketing the sampler's window:
        // on a loaded machine it gets only part of a core, so the sampler's figure is
        // checked against this truth rather than against a fixed share of the window.
        func cpuSeconds() -> Double {
            let stat = readProcText("/proc/\(bed.pid)/stat") ?? ""
            let fields = stat[(stat.range(of: ") ")?.upperBound ?? stat.startIndex)...].split(separator: " ")
            guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
            return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
        }
        let cpuBefore = cpuSeconds()
        let box = ReportBox()
        let thread = Thread {
            box.finish(with: try? Sampler().sample(pids: [bed.pid], duration: .milliseconds(700), hz: 500))
        }
        thread.start()
        var watched = 0
        while !box.done {
            let status = readProcText("/proc/\(bed.pid)/status") ?? ""
            XCTAssertTrue(status.contains("TracerPid:\t0\n"), status)
            let state = status.split(separator: "\n").first { $0.hasPrefix("State:") } ?? ""
            XCTAssertFalse(state.contains("t") && state.contains("stopped"), String(state))
            XCTAssertFalse(state.contains("T"), String(state))
            watched += 1
            usleep(2000)
        }
        XCTAssertGreaterThan(watched, 50)
        let t = try XCTUnwrap(box.report?.processes.first?.threads.first)
        XCTAssertEqual(t.dominant, .running)
        XCTAssertFalse(t.histogram.contains { $0.bucket == .stopped })
        let cpuUsed = cpuSeconds() - cpuBefore
        XCTAssertGreaterThan(cpuUsed, 0.05, "the spinner never ran")
        // Within the bracket, and most of it: the window is 0.7 s of a slightly longer bracket.
        XCTAssertLessThanOrEqual(t.cpuSeconds, cpuUsed + 0.02)
        XCTAssertGreaterThan(t.cpuSeconds, cpuUsed * 0.5 - 0.02)
    }

    /// Targets that cannot be sampled are refused with a reason; an exiting tracee ends the window early.
    func testRefusalsAndExit() throws {
        XCTAssertThrowsError(try Sampler().sample(pids: [getpid()], duration: .milliseconds(10))) {
            XCTAssertEqual($0 as? TraceError, .ownProcess(getpid()))
        }
        XCTAssertThrowsError(try Sampler().sample(pids: [2], duration: .milliseconds(10))) {
            guard case .kernelThread(2, _)? = $0 as? TraceError else { return XCTFail("\($0)") }
        }
        let bed = try Testbed.spawn(["sleep:300", "exit"])
        defer { bed.terminate() }
        let report = try Sampler().sample(pids: [bed.pid, 999_999_999], duration: .seconds(10), hz: 100)
        XCTAssertEqual(report.skipped, [.noSuchProcess(999_999_999)])
        XCTAssertLessThan(report.observedSeconds, 5)
        XCTAssertTrue(report.processes[0].exited)
    }

    /// A stop check ends the window early and the report is still complete.
    func testStopCheckEndsEarly() throws {
        let bed = try Testbed.spawn(["sleep:10000"])
        defer { bed.terminate() }
        try waitUntilBlocked(bed.pid, inSyscall: 230)
        var rounds = 0
        let report = try Sampler().sample(pids: [bed.pid], duration: .seconds(10), hz: 100, shouldStop: { rounds += 1; return rounds > 20 })
        XCTAssertTrue(report.interrupted)
        XCTAssertLessThan(report.observedSeconds, 2)
        XCTAssertEqual(report.processes.first?.threads.first?.current?.name, "clock_nanosleep")
    }
}

/// The sampler's result, handed from the thread that samples to the test's thread that
/// watches the tracee meanwhile. The lock is the hand-over: ThreadSanitizer (rightly)
/// reported the unguarded fields as a data race, "synchronized" only by usleep.
final class ReportBox: @unchecked Sendable {
    private let lock = NSLock()
    private var storedReport: SamplerReport?
    private var storedDone = false

    var report: SamplerReport? { lock.withLock { storedReport } }
    var done: Bool { lock.withLock { storedDone } }

    func finish(with report: SamplerReport?) {
        lock.withLock { storedReport = report; storedDone = true }
    }
}
