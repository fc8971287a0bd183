import XCTest
import Foundation
import Glibc
import LockscopeTestSupport

/// `lockscope trace` as a user runs it: the built binary against real tracees.
/// The ptrace safety promises are checked from outside the tracer's process.
final class TraceCommandTests: XCTestCase {
    /// A process started in the background (lockscope, or a shell tracee), with its
    /// stdout collected and its stderr passed through to the test log (no pipe left
    /// unread to fill up). Killed (only this pid) if still running at the end.
    final class Background {
        let process = Process()
        let out = Pipe()
        private var collected = Data()
        private let lock = NSLock()

        init(_ argv: [String]) throws {
            process.executableURL = URL(fileURLWithPath: argv[0])
            process.arguments = Array(argv.dropFirst())
            process.standardOutput = out
            process.standardError = FileHandle.standardError
            process.standardInput = FileHandle.nullDevice
            out.fileHandleForReading.readabilityHandler = { [weak self] h in
                let d = h.availableData
                guard let self else { return }
                self.lock.lock(); self.collected.append(d); self.lock.unlock()
            }
            try process.run()
        }

        var pid: Int32 { process.processIdentifier }
        var stdout: Data { lock.lock(); defer { lock.unlock() }; return collected }
        var stdoutText: String { String(decoding: stdout, as: UTF8.self) }

        /// Waits for exit; returns the exit code (or 128+signal), nil on timeout.
        @discardableResult
        func wait(timeout: Double = 20) -> Int32? {
            guard waitUntil(timeout: timeout, { !self.process.isRunning }) else { return nil }
            process.waitUntilExit()
            out.fileHandleForReading.readabilityHandler = nil
            let rest = out.fileHandleForReading.readDataToEndOfFile()
            lock.lock(); collected.append(rest); lock.unlock()
            return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        }

        func stop() {
            if process.isRunning { kill(pid, SIGKILL); process.waitUntilExit() }
        }
        deinit { stop() }
    }

    func field(_ pid: Int32, _ name: String) -> String? {
        readProcText("/proc/\(pid)/status")?.split(separator: "\n").first { $0.hasPrefix(name + ":") }
            .map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) }
    }

    /// A shell loop whose output is the same every run; forks `sleep` children.
    let script = """
    sleep 0.4; i=0; while [ $i -lt 150 ]; do echo "line $i"; i=$((i+1)); done
    sleep 0.2; printf 'esc \\033[31m red\\n'; sleep 0.2; echo done
    """

    // MARK: - Safety

    /// The tracee's own output is byte-identical traced and untraced, it exits 0,
    /// and it was never left stopped or traced.
    func testTracedOutputIsByteIdenticalAndTraceeIsReleased() throws {
        try requirePtrace()
        let plain = try Background(["/bin/sh", "-c", script])
        XCTAssertEqual(plain.wait(), 0)

        let traced = try Background(["/bin/sh", "-c", script])
        XCTAssertTrue(waitUntil { self.field(traced.pid, "State")?.hasPrefix("S") == true })
        let r = try runCommand([TestBinaries.lockscope, "trace", "--ptrace", "--duration", "0", String(traced.pid)], timeout: 30)
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        XCTAssertEqual(traced.wait(), 0)
        XCTAssertEqual(traced.stdout, plain.stdout, "traced output differs")
        XCTAssertTrue(r.stdout.contains("every traced thread exited"), r.stdout)
        XCTAssertTrue(r.stdout.contains("new process"), "fork of sleep not followed")
        XCTAssertTrue(r.stdout.contains("execve("), r.stdout)
        XCTAssertTrue(r.stderr.contains("slows"), "no warning: \(r.stderr)")
    }

    /// After --duration the tracee is running free: not stopped, TracerPid 0, and it finishes normally.
    func testDetachAtDurationLeavesTraceeRunning() throws {
        try requirePtrace()
        let bed = try Testbed.spawn(["thread:sleep:100", "sleep:150", "sleep:150", "sleep:150", "sleep:150", "sleep:150"])
        defer { bed.terminate() }
        let r = try runCommand([TestBinaries.lockscope, "trace", "--ptrace", "--duration", "0.3", String(bed.pid)])
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("duration reached"), r.stdout)
        XCTAssertTrue(r.stdout.contains("detached"))
        XCTAssertEqual(field(bed.pid, "TracerPid"), "0")
        let state = field(bed.pid, "State") ?? ""
        XCTAssertFalse(state.hasPrefix("t") || state.hasPrefix("T"), state)
        try bed.waitForReady(timeout: 5)
        bed.release()
        XCTAssertEqual(bed.waitForExit(), 0)
    }

    /// SIGKILL lockscope mid-trace: the kernel detaches and the tracee runs to completion.
    func testKillingTheTracerLeavesTheTraceeRunning() throws {
        try requirePtrace()
        let tracee = try Background(["/bin/sh", "-c", "i=0; while [ $i -lt 20 ]; do i=$((i+1)); sleep 0.05; done; echo finished"])
        let tracer = try Background([TestBinaries.lockscope, "trace", "--ptrace", "--duration", "0", String(tracee.pid)])
        XCTAssertTrue(waitUntil { self.field(tracee.pid, "TracerPid") == String(tracer.pid) }, "never attached")
        usleep(150_000)  // mid-trace, with syscall stops in flight
        kill(tracer.pid, SIGKILL)
        XCTAssertEqual(tracer.wait(), 128 + SIGKILL)
        XCTAssertEqual(tracee.wait(timeout: 10), 0, "tracee did not finish after its tracer died")
        XCTAssertEqual(tracee.stdoutText, "finished\n")
    }

    /// SIGTERM to lockscope: it detaches, prints the summary and exits 0.
    func testSigtermDetachesAndSummarises() throws {
        try requirePtrace()
        let bed = try Testbed.spawn(["sleep:30000"])
        defer { bed.terminate() }
        try waitUntilBlocked(bed.pid, inSyscall: 230)
        let tracer = try Background([TestBinaries.lockscope, "trace", "--ptrace", "--duration", "0", String(bed.pid)])
        XCTAssertTrue(waitUntil { self.field(bed.pid, "TracerPid") == String(tracer.pid) })
        usleep(100_000)
        kill(tracer.pid, SIGTERM)
        XCTAssertEqual(tracer.wait(), 0)
        XCTAssertTrue(tracer.stdoutText.contains("interrupted by SIGTERM"), tracer.stdoutText)
        XCTAssertTrue(tracer.stdoutText.contains("<in progress at attach> clock_nanosleep"), tracer.stdoutText)
        XCTAssertEqual(field(bed.pid, "TracerPid"), "0")
        // The sleep goes on after detach (as restart_syscall when the interrupt cut it).
        XCTAssertTrue([230, 219].contains(syscallNumber(of: bed.pid)), String(describing: syscallNumber(of: bed.pid)))
    }

    /// The tracee exits mid-trace: lockscope notices and ends early.
    func testTraceeExitsMidTrace() throws {
        try requirePtrace()
        let bed = try Testbed.spawn(["sleep:300", "exit"])
        defer { bed.terminate() }
        let start = Date()
        let r = try runCommand([TestBinaries.lockscope, "trace", "--ptrace", "--duration", "10", String(bed.pid)])
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        XCTAssertTrue(r.stdout.contains("+++ exited with 0 +++"), r.stdout)
        XCTAssertTrue(r.stdout.contains("every traced thread exited"), r.stdout)
    }

    /// SIGSTOP and SIGCONT sent to the tracee during the trace are delivered: it stops, resumes, finishes.
    func testStopAndContinueAreDelivered() throws {
        try requirePtrace()
        let tracee = try Background(["/bin/sh", "-c", "i=0; while [ $i -lt 40 ]; do i=$((i+1)); echo $i; sleep 0.05; done"])
        let tracer = try Background([TestBinaries.lockscope, "trace", "--ptrace", "--no-follow", "--duration", "0", String(tracee.pid)])
        XCTAssertTrue(waitUntil { self.field(tracee.pid, "TracerPid") == String(tracer.pid) })
        usleep(200_000)
        kill(tracee.pid, SIGSTOP)
        XCTAssertTrue(waitUntil(timeout: 5) { self.field(tracee.pid, "State")?.lowercased().hasPrefix("t") == true })
        let frozen = tracee.stdout.count
        usleep(400_000)
        XCTAssertEqual(tracee.stdout.count, frozen, "the tracee kept running while stopped")
        kill(tracee.pid, SIGCONT)
        XCTAssertEqual(tracee.wait(timeout: 15), 0)
        XCTAssertEqual(tracee.stdoutText.split(separator: "\n").last, "40")
        XCTAssertEqual(tracer.wait(), 0)
        let out = tracer.stdoutText
        XCTAssertTrue(out.contains("--- SIGSTOP ---"), out)
        XCTAssertTrue(out.contains("stopped by SIGSTOP"), out)
        XCTAssertTrue(out.contains("--- SIGCONT ---"), out)
    }

    // MARK: - Refusals and exit codes

    func testRefusals() throws {
        let none = try runCommand([TestBinaries.lockscope, "trace", "999999999"])
        XCTAssertEqual(none.exitCode, 66)
        XCTAssertEqual(none.stderr, "lockscope: no such process: 999999999\n")
        let kthread = try runCommand([TestBinaries.lockscope, "trace", "--ptrace", "2"])
        XCTAssertEqual(kthread.exitCode, 69)
        XCTAssertTrue(kthread.stderr.contains("kernel thread"), kthread.stderr)
        let bad = try runCommand([TestBinaries.lockscope, "trace", "--sampler", "--syscalls", "lock", "1"])
        XCTAssertEqual(bad.exitCode, 64)
        let unknown = try runCommand([TestBinaries.lockscope, "trace", "--ptrace", "--syscalls", "lock,nosuchcall", "1"])
        XCTAssertEqual(unknown.exitCode, 64)
        XCTAssertTrue(unknown.stderr.contains("nosuchcall"), unknown.stderr)
        let dir = try TempDir()
        let unlocked = try dir.touch("free")
        let free = try runCommand([TestBinaries.lockscope, "trace", unlocked])
        XCTAssertEqual(free.exitCode, 1, free.stderr)
    }

    /// Another user's process: one line and exit 77, for the sampler and for --ptrace.
    func testPermissionDenied() throws {
        try requireRoot("drops to nobody with setpriv to be refused")
        try requireExecutable("setpriv")
        let bed = try Testbed.spawn(["sleep:30000"])
        defer { bed.terminate() }
        for extra in [[], ["--ptrace"]] {
            let r = try runCommand([which("setpriv")!, "--reuid=65534", "--regid=65534", "--clear-groups",
                                    TestBinaries.lockscope, "trace"] + extra + [String(bed.pid)])
            if r.stderr.contains("Permission denied") && r.exitCode == 126 { try skip("lockscope not executable by nobody here") }
            XCTAssertEqual(r.exitCode, 77, r.stderr)
            XCTAssertEqual(r.stderr, "lockscope: \(bed.pid): permission denied (EACCES): run as the process's user or as root\n")
        }
        XCTAssertEqual(field(bed.pid, "TracerPid"), "0")
    }

    /// A second tracer is refused with the first one's pid; the first one then detaches on SIGINT.
    func testAlreadyTracedNamesTheTracer() throws {
        try requirePtrace()
        let bed = try Testbed.spawn(["sleep:30000"])
        defer { bed.terminate() }
        let first = try Background([TestBinaries.lockscope, "trace", "--ptrace", "--duration", "20", String(bed.pid)])
        XCTAssertTrue(waitUntil { self.field(bed.pid, "TracerPid") == String(first.pid) })
        let second = try runCommand([TestBinaries.lockscope, "trace", "--ptrace", String(bed.pid)])
        XCTAssertEqual(second.exitCode, 69)
        XCTAssertEqual(second.stderr, "lockscope: \(bed.pid): already traced by pid \(first.pid)\n")
        kill(first.pid, SIGINT)
        XCTAssertEqual(first.wait(), 0)
        XCTAssertEqual(field(bed.pid, "TracerPid"), "0")
    }

    // MARK: - Output

    /// PATH target: the holder and the child sharing its lock fd; sampler JSON.
    func testPathTargetSamplerJSON() throws {
        let dir = try TempDir()
        let path = dir.file("xtables.lock")
        let bed = try Testbed.spawn(["open:\(path)", "flock:ex", "fork", "sleep:30000", "parent", "wait-child"])
        defer { bed.terminate() }
        let child = try XCTUnwrap(try bed.waitForChildren(1).first)
        try waitUntilBlocked(bed.pid, inSyscall: 61)
        try waitUntilBlocked(child, inSyscall: 230)
        let r = try runCommand([TestBinaries.lockscope, "trace", "--sampler", "--json", "--duration", "0.2", path])
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        let doc = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(doc["mode"] as? String, "sampler")
        XCTAssertEqual(Set((doc["targets"] as? [Int]) ?? []), [Int(bed.pid), Int(child)])
        let procs = try XCTUnwrap(doc["processes"] as? [[String: Any]])
        func call(_ pid: Int32) -> [String: Any]? {
            let p = procs.first { ($0["pid"] as? Int) == Int(pid) }
            return ((p?["threads"] as? [[String: Any]])?.first?["call"]) as? [String: Any]
        }
        XCTAssertEqual(call(bed.pid)?["name"] as? String, "wait4")
        let pidArg = (call(bed.pid)?["args"] as? [[String: Any]])?.first
        XCTAssertEqual(pidArg?["target"] as? String, "child")
        XCTAssertEqual(pidArg?["pid"] as? Int, Int(child))
        let sleep = try XCTUnwrap(call(child))
        let timeout = (sleep["args"] as? [[String: Any]])?.first { ($0["type"] as? String) == "timeout" }
        XCTAssertEqual(timeout?["ms"] as? Double, 30000)
    }

    /// --ptrace --json with a class filter: only those calls, and the summary.
    func testPtraceJSONWithFilter() throws {
        try requirePtrace()
        let bed = try Testbed.spawn(["sleep:100", "syscalls:20:50", "sleep:100", "sleep:5000"])
        defer { bed.terminate() }
        try waitUntilBlocked(bed.pid, inSyscall: 230)
        let r = try runCommand([TestBinaries.lockscope, "trace", "--ptrace", "--json", "--syscalls", "sleep", "--duration", "0.8", String(bed.pid)])
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        let doc = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(doc["mode"] as? String, "ptrace")
        let calls = ((doc["events"] as? [[String: Any]]) ?? []).filter { ($0["type"] as? String) == "syscall" }
        let names = Set(calls.compactMap { ($0["call"] as? [String: Any])?["name"] as? String })
        XCTAssertEqual(names, ["clock_nanosleep"])
        XCTAssertGreaterThanOrEqual(calls.count, 3)
        let summary = try XCTUnwrap(doc["summary"] as? [String: Any])
        XCTAssertEqual(summary["ended_by"] as? String, "duration")
        let stats = try XCTUnwrap(summary["syscalls"] as? [[String: Any]])
        XCTAssertEqual(stats.compactMap { $0["name"] as? String }, ["clock_nanosleep"])
        XCTAssertEqual(field(bed.pid, "TracerPid"), "0")
    }
}
