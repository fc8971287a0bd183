import XCTest
import Foundation
import Glibc
import LockscopeCore
import LockscopeRender
import LockscopeTestSupport
@testable import LockscopeTrace

/// `lockscope trace --kernel` against real tracees: every call seen, nothing
/// ever stopped or attached, nothing left enabled.
final class KernelTraceTests: XCTestCase {
    typealias Background = TraceCommandTests.Background

    func requireKernelEngine() throws {
        try requireRoot("the kernel engine opens perf tracepoints")
        if case .failure(let why) = KernelTracer().probe() { try skip("kernel engine unavailable: \(why)") }
    }

    func field(_ pid: Int32, _ name: String) -> String? {
        readProcText("/proc/\(pid)/status")?.split(separator: "\n").first { $0.hasPrefix(name + ":") }
            .map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) }
    }

    /// Polls the tracee (and its threads) until `done`: TracerPid must stay 0 and
    /// the state never T/t. Returns how many polls were made.
    @discardableResult
    func assertNeverStopped(_ pid: Int32, until done: () -> Bool, file: StaticString = #filePath, line: UInt = #line) -> Int {
        var polls = 0
        while !done() {
            for tid in threadIds(of: pid) {
                guard let status = readProcText("/proc/\(pid)/task/\(tid)/status") else { continue }
                let f = StatusFields.parse(status)
                XCTAssertEqual(f.tracerPid, 0, "thread \(tid) traced", file: file, line: line)
                let state = status.split(separator: "\n").first { $0.hasPrefix("State:") } ?? ""
                XCTAssertFalse(state.contains("(stopped)") || state.contains("(tracing stop)"), String(state), file: file, line: line)
            }
            polls += 1
            usleep(2_000)
        }
        return polls
    }

    /// The shell loop of the ptrace test: output identical traced and untraced,
    /// its forked `sleep` children (fork mid-trace, execve) followed, never stopped.
    func testOutputIdenticalChildrenFollowedNeverStopped() throws {
        try requireKernelEngine()
        let script = """
        sleep 0.4; i=0; while [ $i -lt 150 ]; do echo "line $i"; i=$((i+1)); done
        sleep 0.2; printf 'esc \\033[31m red\\n'; sleep 0.2; echo done
        """
        let plain = try Background(["/bin/sh", "-c", script])
        XCTAssertEqual(plain.wait(), 0)

        let traced = try Background(["/bin/sh", "-c", script])
        XCTAssertTrue(waitUntil { self.field(traced.pid, "State")?.hasPrefix("S") == true })
        let tracer = try Background([TestBinaries.lockscope, "trace", "--kernel", "--duration", "0", String(traced.pid)])
        let polls = assertNeverStopped(traced.pid) { !traced.process.isRunning }
        XCTAssertGreaterThan(polls, 50)
        XCTAssertEqual(traced.wait(), 0)
        XCTAssertEqual(tracer.wait(), 0)
        XCTAssertEqual(traced.stdout, plain.stdout, "traced output differs")
        let out = tracer.stdoutText
        XCTAssertTrue(out.contains("every traced thread exited"), out)
        XCTAssertTrue(out.contains("new process"), "fork of sleep not followed: \(out)")
        XCTAssertTrue(out.contains("execve("), out)
        XCTAssertTrue(out.contains("; no event lost"), out)
        XCTAssertTrue(out.contains("write(1"), out)
        // The children's calls are there under their own pids.
        let children = Set(out.split(separator: "\n").compactMap { l -> Int32? in
            guard l.contains("new process ") else { return nil }
            return Int32(l.split(separator: " ").last ?? "")
        })
        XCTAssertFalse(children.isEmpty)
        for c in children { XCTAssertTrue(out.contains("[\(c)] execve("), "child \(c): \(out)") }
    }

    /// The DNS shape: a datagram to a silent loopback nameserver, then poll with the
    /// timeout; decoded while in progress, so nothing is marked read-after-return.
    ///
    /// No step depends on how fast lockscope runs. The tracee waits on stdin
    /// (`await`) until lockscope has printed its `attached` line, and again after
    /// the poll until its line is out: with fixed sleeps instead, a lockscope slow
    /// to start under load attached mid-poll (no sendto, the poll timed from
    /// attach), and one starved of CPU for a second decoded everything after the
    /// tracee had exited (`ESRCH~`, no socket). The poll lasts 3 s: lockscope needs
    /// one slice of CPU in that time to decode it while it waits.
    func testDNSPollDecodedWithFdPeerAndTimeout() throws {
        try requireKernelEngine()
        let hole = try Testbed.spawn(["blackhole:127.0.0.1:0"])
        defer { hole.terminate() }
        let port = try XCTUnwrap(Int(try hole.waitFor(line: "blackhole ").split(separator: " ")[1]))
        let bed = try Testbed.spawn(["await", "udp-poll:127.0.0.1:\(port):3000", "await", "exit"])
        defer { bed.terminate() }
        _ = try bed.waitFor(line: "await ")
        let tracer = try Background([TestBinaries.lockscope, "trace", "--kernel", "--syscalls", "net,poll", "--duration", "0",
                                     String(bed.pid)])
        defer { tracer.stop() }
        XCTAssertTrue(waitUntil(timeout: 20) { tracer.stdoutText.contains("attached (pid \(bed.pid))") || !tracer.process.isRunning },
                      "lockscope never attached: \(tracer.stdoutText)")
        bed.send()
        _ = try bed.waitFor(line: "ok udp-poll", timeout: 20)
        XCTAssertTrue(waitUntil(timeout: 20) { tracer.stdoutText.contains("] poll(") }, tracer.stdoutText)
        bed.send()
        XCTAssertEqual(tracer.wait(), 0)
        let out = tracer.stdoutText
        let poll = try XCTUnwrap(out.split(separator: "\n").first { $0.contains("poll(") }, out)
        XCTAssertTrue(poll.contains("poll([{fd=3 UDP 127.0.0.1:"), out)
        XCTAssertTrue(poll.contains(" → 127.0.0.1:\(port), POLLIN}], 1, 3000 ms) = 0 <3.0"), String(poll))
        // Decoded while the poll was still waiting: nothing read after it returned.
        XCTAssertFalse(poll.contains("~"), out)
        XCTAssertTrue(out.contains("sendto(3 UDP"), out)
        XCTAssertFalse(out.contains("] clock_nanosleep("), "the filter let other calls through: \(out)")
        let summary = out.split(separator: "\n").drop { !$0.hasPrefix("summary") }
        XCTAssertEqual(summary.dropFirst(2).first?.hasPrefix("  poll "), true, "blocking first: \(summary)")
    }

    /// Between the calls, what `--ptrace` prints: a group-stop, a handled
    /// signal, an execve, and the kill that ends the process (signal_deliver,
    /// sched_process_exec). The test sends SIGCONT itself and kills the tracee
    /// by pid: nothing is left stopped.
    func testSignalsGroupStopExecAndKill() throws {
        try requireKernelEngine()
        let dir = try TempDir(prefix: "lockscope-ktrace.")
        defer { dir.remove() }
        let gate = dir.file("go")
        let script = "trap 'echo usr1' USR1; while [ ! -e \"$0\" ]; do sleep 0.05; done; kill -USR1 $$; exec /bin/sleep 30"
        let tracee = try Background(["/bin/sh", "-c", script, gate])
        defer { tracee.stop() }
        let tracer = try Background([TestBinaries.lockscope, "trace", "--kernel", "--duration", "0", String(tracee.pid)])
        defer { tracer.stop() }
        XCTAssertTrue(waitUntil(timeout: 20) { tracer.stdoutText.contains("attached (pid \(tracee.pid))") }, tracer.stdoutText)
        kill(tracee.pid, SIGSTOP)
        let stopped = waitUntil(timeout: 10) { self.field(tracee.pid, "State")?.hasPrefix("T") == true }
        kill(tracee.pid, SIGCONT)
        XCTAssertTrue(stopped, "never stopped")
        XCTAssertTrue(FileManager.default.createFile(atPath: gate, contents: nil))
        XCTAssertTrue(waitUntil(timeout: 10) { readProcText("/proc/\(tracee.pid)/comm") == "sleep\n" }, "never exec'd sleep")
        // (A SIGTERM from here would show as SIGKILL too: the kernel makes it a group kill when sent.)
        kill(tracee.pid, SIGKILL)
        XCTAssertEqual(tracer.wait(), 0)
        let out = tracer.stdoutText
        let p = "[\(tracee.pid)] "
        XCTAssertTrue(out.contains(p + "--- stopped by SIGSTOP ---"), out)
        XCTAssertTrue(out.contains(p + "--- SIGUSR1 ---"), out)
        XCTAssertTrue(out.contains(p + "+++ execve +++"), out)
        XCTAssertTrue(out.contains(p + "+++ killed by SIGKILL +++"), out)
        XCTAssertTrue(out.contains("every traced thread exited"), out)
        // In order: stop, the handled signal, the execve, the kill.
        let order = ["--- stopped by SIGSTOP ---", "--- SIGUSR1 ---", "+++ execve +++", "+++ killed by SIGKILL +++"]
            .compactMap { out.range(of: p + $0)?.lowerBound }
        XCTAssertEqual(order, order.sorted(), out)
        XCTAssertEqual(tracee.wait(), 128 + SIGKILL)
    }

    /// Every thread: one present at attach (in progress), one created mid-trace.
    func testAllThreadsIncludingNewOnes() throws {
        try requireKernelEngine()
        let bed = try Testbed.spawn(["thread:sleep:900", "sleep:400", "thread:sleep:200", "sleep:600", "exit"])
        defer { bed.terminate() }
        let first = try XCTUnwrap(Int32(try bed.waitFor(line: "thread ").split(separator: " ")[1]))
        try waitUntilBlocked(bed.pid, inSyscall: 230)
        let tracer = try Background([TestBinaries.lockscope, "trace", "--kernel", "--json", "--duration", "0", String(bed.pid)])
        assertNeverStopped(bed.pid) { !processIsAlive(bed.pid) || bed.waitForExit(timeout: 0) != nil }
        XCTAssertEqual(tracer.wait(), 0)
        let doc = try XCTUnwrap(try JSONSerialization.jsonObject(with: tracer.stdout) as? [String: Any])
        XCTAssertEqual(doc["engine"] as? String, "kernel")
        let events = try XCTUnwrap(doc["events"] as? [[String: Any]])
        let summary = try XCTUnwrap(doc["summary"] as? [String: Any])
        XCTAssertEqual(summary["lost_events"] as? Int, 0)
        XCTAssertEqual(summary["stops"] as? Int, 0)
        let calls = events.filter { $0["type"] as? String == "syscall" }
        func sleeps(_ tid: Int32) -> [[String: Any]] {
            calls.filter { ($0["tid"] as? Int) == Int(tid) && (($0["call"] as? [String: Any])?["name"] as? String) == "clock_nanosleep" }
        }
        XCTAssertEqual(sleeps(first).first?["in_progress_at_attach"] as? Bool, true, "\(calls)")
        let newTask = try XCTUnwrap(events.first { $0["type"] as? String == "new_task" }, "\(events)")
        XCTAssertEqual(newTask["thread"] as? Bool, true)
        let second = Int32(try XCTUnwrap(newTask["tid"] as? Int))
        XCTAssertNotEqual(second, first)
        let text = try XCTUnwrap((sleeps(second).first?["call"] as? [String: Any])?["text"] as? String, "\(calls)")
        XCTAssertTrue(text.contains("200 ms"), text)
        XCTAssertEqual(Set((summary["tids"] as? [Int]) ?? []).isSuperset(of: [Int(bed.pid), Int(first), Int(second)]), true)
    }

    /// SIGKILL of lockscope mid-trace: its events die with it; the tracee finishes untouched.
    func testKillingLockscopeLeavesNothing() throws {
        try requireKernelEngine()
        let tracee = try Background(["/bin/sh", "-c", "i=0; while [ $i -lt 20 ]; do i=$((i+1)); sleep 0.05; done; echo finished"])
        let tracer = try Background([TestBinaries.lockscope, "trace", "--kernel", "--duration", "0", String(tracee.pid)])
        func perfFds(_ pid: Int32) -> Int {
            ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).filter {
                (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")) == "anon_inode:[perf_event]"
            }.count
        }
        XCTAssertTrue(waitUntil { perfFds(tracer.pid) > 0 }, "lockscope never opened its events")
        usleep(200_000)
        kill(tracer.pid, SIGKILL)
        XCTAssertEqual(tracer.wait(), 128 + SIGKILL)
        assertNeverStopped(tracee.pid) { !tracee.process.isRunning }
        XCTAssertEqual(tracee.wait(timeout: 10), 0, "tracee did not finish")
        XCTAssertEqual(tracee.stdoutText, "finished\n")
        XCTAssertEqual(perfFds(tracer.pid), 0)
    }

    /// The same refusals and exit codes as the other engines; --kernel where it cannot run: 69 and why.
    func testRefusals() throws {
        try requireKernelEngine()
        let none = try runCommand([TestBinaries.lockscope, "trace", "--kernel", "999999999"])
        XCTAssertEqual(none.exitCode, 66)
        XCTAssertEqual(none.stderr, "lockscope: no such process: 999999999\n")
        let kthread = try runCommand([TestBinaries.lockscope, "trace", "--kernel", "2"])
        XCTAssertEqual(kthread.exitCode, 69)
        XCTAssertTrue(kthread.stderr.contains("kernel thread"), kthread.stderr)
        XCTAssertEqual(kthread.stderr.split(separator: "\n").count, 1, kthread.stderr)
        let both = try runCommand([TestBinaries.lockscope, "trace", "--kernel", "--ptrace", "1"])
        XCTAssertEqual(both.exitCode, 64)
        let sampler = try runCommand([TestBinaries.lockscope, "trace", "--sampler", "--summary-only", "1"])
        XCTAssertEqual(sampler.exitCode, 64)
        let zombie = try Testbed.spawn(["fork", "exit", "parent", "sleep:30000"])
        defer { zombie.terminate() }
        let child = try XCTUnwrap(try zombie.waitForChildren(1).first)
        XCTAssertTrue(waitUntil { readProcText("/proc/\(child)/stat")?.contains(") Z ") == true })
        let z = try runCommand([TestBinaries.lockscope, "trace", "--kernel", String(child)])
        XCTAssertEqual(z.exitCode, 69)
        XCTAssertTrue(z.stderr.contains("zombie"), z.stderr)
    }

    /// Not root: --kernel says so in one line and exits 69; the default falls back to the sampler and says why.
    func testUnavailableAsNobody() throws {
        try requireRoot("drops to nobody with setpriv")
        try requireExecutable("setpriv")
        let nobody = [which("setpriv")!, "--reuid=65534", "--regid=65534", "--clear-groups"]
        let bed = try Testbed.spawn(["sleep:30000"], wrapper: nobody)
        defer { bed.terminate() }
        let k = try runCommand(nobody + [TestBinaries.lockscope, "trace", "--kernel", String(bed.pid)])
        if k.exitCode == 126 { try skip("lockscope not executable by nobody here") }
        XCTAssertEqual(k.exitCode, 69, k.stderr)
        XCTAssertEqual(k.stderr, "lockscope: --kernel: the kernel engine needs root (perf tracepoints and tracefs)\n")
        let d = try runCommand(nobody + [TestBinaries.lockscope, "trace", "--duration", "0.2", String(bed.pid)])
        XCTAssertEqual(d.exitCode, 0, d.stderr)
        XCTAssertEqual(d.stderr, "lockscope: engine: sampler (default: kernel engine unavailable: the kernel engine needs root (perf tracepoints and tracefs))\n")
    }

    /// `~`: an argument read from memory after the call returned, in text and JSON.
    func testReadAfterReturnMarker() {
        var arg = DecodedArgument(name: "addr", value: .socketAddress(.inet(NetEndpoint(address: "127.0.0.1", port: 53))))
        arg.readAfterReturn = true
        let call = DecodedSyscall(arch: .x86_64, number: 42, name: "connect", classes: [.net], args: [
            DecodedArgument(name: "sockfd", value: .fd(ResolvedFd(fd: 3, what: nil))), arg,
            DecodedArgument(name: "addrlen", value: .uint(16)),
        ], raw: [3, 0x7ffd0000, 16, 0, 0, 0])
        XCTAssertEqual(CallText.call(call), "connect(3, 127.0.0.1:53~, 16)")
        let json = TraceJSON.call(call).serialized(pretty: false)
        XCTAssertTrue(json.contains("\"read_after_return\":true"), json)
    }
}
