// Live-test helpers: driving lockscope-testbed processes.
import Foundation
import Glibc
import LockscopeCore

/// A running `lockscope-testbed` started by a test, in a process group of its own.
///
/// The testbed prints `pid <PID>`, runs its steps (printing `ok <STEP> <PID>` after
/// each), prints `ready <PID>` and holds its locks until its stdin gets a line or
/// EOF (see `lockscope-testbed --help` and docs/testbed.md).
///
///     let dir = try TempDir()
///     let holder = try Testbed.spawn(["open:\(dir.file("f"))", "flock:ex"])
///     try holder.waitForReady()
///     let waiter = try Testbed.spawn(["open:\(dir.file("f"))", "flock:ex"])
///     try waitUntilBlocked(waiter.pid, inSyscall: 73)   // flock
///     holder.release()                                   // waiter gets the lock
///     try waiter.waitForReady()
///
/// Cleanup: ``terminate()`` (also run by deinit) SIGKILLs only the process group
/// it started and the `daemon` pids the testbed reported (after checking they
/// still run lockscope-testbed), then reaps the direct child. Keep a reference
/// for as long as the processes must live.
public final class Testbed {
    /// The pid the testbed printed on its `pid` line (the process posix_spawn made,
    /// or the process a `wrapper` such as `unshare -m` exec'ed into).
    public let pid: pid_t
    /// The process spawned directly (the one reaped); equals ``pid`` without a
    /// forking wrapper. It is also the process group id.
    public let spawnedPid: pid_t
    /// Every complete stdout line received so far, in order.
    public private(set) var lines: [String] = []
    /// Pids from `child <CHILD> <PARENT>` lines (children of `fork`), in order.
    public private(set) var childPids: [pid_t] = []
    /// Pids from `daemon <CHILD>` lines (children of `daemonize`, in their own session).
    public private(set) var daemonPids: [pid_t] = []
    /// Thread ids from `thread <TID> <PID>` lines (threads of `thread:STEP`), in order.
    public private(set) var threadIds: [pid_t] = []
    /// The wait status once the spawned process has been reaped.
    public private(set) var exitStatus: Int32?

    private var stdinWrite: Int32
    private var stdoutRead: Int32
    private var partial: [UInt8] = []
    private var eof = false
    private var terminated = false

    private init(pid: pid_t, spawnedPid: pid_t, stdinWrite: Int32, stdoutRead: Int32, lines: [String], partial: [UInt8]) {
        self.pid = pid
        self.spawnedPid = spawnedPid
        self.stdinWrite = stdinWrite
        self.stdoutRead = stdoutRead
        self.partial = partial
        for line in lines { record(line) }
    }

    /// Starts `lockscope-testbed --max-seconds <maxSeconds> <steps...>` in a new
    /// process group, with pipes on stdin and stdout (stderr is inherited), and
    /// waits (up to 10 s) for its `pid` line.
    ///
    /// - Parameters:
    ///   - steps: testbed steps, e.g. `["open:/tmp/x", "flock:ex", "fork"]`.
    ///   - maxSeconds: the testbed's safety net; it kills itself after this.
    ///   - wrapper: argv run in front of the testbed, e.g. `["/usr/bin/unshare", "-m", "--"]`;
    ///     the first element must be an absolute path.
    ///   - executable: the testbed binary (default ``TestBinaries/testbed``).
    ///   - environment: the child's environment (default: this process's).
    public static func spawn(_ steps: [String], maxSeconds: Int = 120, wrapper: [String] = [],
                             executable: String = TestBinaries.testbed,
                             environment: [String: String]? = nil) throws -> Testbed {
        let argv = wrapper + [executable, "--max-seconds", String(maxSeconds)] + steps
        let (child, stdinWrite, stdoutRead, _) = try spawnPiped(argv, pipeStderr: false, environment: environment)
        _ = fcntl(stdoutRead, F_SETFL, fcntl(stdoutRead, F_GETFL) | O_NONBLOCK)
        // Write end of stdin must not raise SIGPIPE in the test if the testbed died.
        signal(SIGPIPE, SIG_IGN)

        // Read until the `pid` line with a temporary reader.
        let probe = Testbed(pid: child, spawnedPid: child, stdinWrite: stdinWrite, stdoutRead: stdoutRead,
                            lines: [], partial: [])
        do {
            let line = try probe.waitFor(line: "pid ", timeout: 10)
            guard let printed = pid_t(line.dropFirst(4)) else {
                throw TestSupportError.exited(what: "a valid pid line", output: probe.lines)
            }
            let bed = Testbed(pid: printed, spawnedPid: child, stdinWrite: probe.stdinWrite,
                              stdoutRead: probe.stdoutRead, lines: probe.lines, partial: probe.partial)
            probe.disown()
            return bed
        } catch {
            probe.terminate()
            throw error
        }
    }

    /// Hands the fds to another instance without closing or killing anything.
    private func disown() {
        terminated = true
        stdinWrite = -1
        stdoutRead = -1
    }

    private func record(_ line: String) {
        lines.append(line)
        let words = line.split(separator: " ")
        guard words.count >= 2, let n = pid_t(words[1]) else { return }
        switch words[0] {
        case "child": childPids.append(n)
        case "daemon": daemonPids.append(n)
        case "thread": threadIds.append(n)
        default: break
        }
    }

    /// Reads whatever stdout has, waiting at most `timeout` seconds for something.
    /// Returns false once stdout is at EOF.
    @discardableResult
    private func pump(timeout: Double) -> Bool {
        guard !eof, stdoutRead >= 0 else { return false }
        var pfd = pollfd(fd: stdoutRead, events: Int16(POLLIN), revents: 0)
        let ms = Int32(max(0, min(timeout, 3600)) * 1000)
        if poll(&pfd, 1, ms) <= 0 { return true }
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(stdoutRead, &buf, buf.count)
            if n > 0 {
                partial.append(contentsOf: buf[0..<n])
                while let nl = partial.firstIndex(of: UInt8(ascii: "\n")) {
                    record(String(decoding: partial[..<nl], as: UTF8.self))
                    partial.removeSubrange(...nl)
                }
                continue
            }
            if n == 0 { eof = true; return false }
            if errno == EINTR { continue }
            return true  // EAGAIN
        }
    }

    /// Waits until a stdout line starting with `prefix` has been received (at any
    /// time since spawn, so it never misses a line printed early) and returns the
    /// first such line. Throws ``TestSupportError/timeout(what:seconds:detail:)``
    /// or ``TestSupportError/exited(what:output:)``.
    @discardableResult
    public func waitFor(line prefix: String, timeout: Double = 10) throws -> String {
        let deadline = MonotonicClock.seconds + timeout
        while true {
            if let line = lines.first(where: { $0.hasPrefix(prefix) }) { return line }
            let left = deadline - MonotonicClock.seconds
            if left <= 0 {
                throw TestSupportError.timeout(what: "a line starting with '\(prefix)'", seconds: timeout,
                                               detail: "output so far:\n" + lines.joined(separator: "\n"))
            }
            if !pump(timeout: min(left, 0.2)) {
                if let line = lines.first(where: { $0.hasPrefix(prefix) }) { return line }
                throw TestSupportError.exited(what: "a line starting with '\(prefix)'", output: lines)
            }
        }
    }

    /// Waits for `ready <pid>` from the process itself (default ``pid``), e.g.
    /// `waitForReady(childPids[0])` for the child of a `fork`.
    public func waitForReady(_ which: pid_t? = nil, timeout: Double = 10) throws {
        try waitFor(line: "ready \(which ?? pid)", timeout: timeout)
    }

    /// Waits until `count` `child`/`daemon` lines arrived and returns those pids.
    public func waitForChildren(_ count: Int = 1, timeout: Double = 10) throws -> [pid_t] {
        let deadline = MonotonicClock.seconds + timeout
        while childPids.count + daemonPids.count < count {
            let left = deadline - MonotonicClock.seconds
            if left <= 0 { throw TestSupportError.timeout(what: "\(count) child pid(s)", seconds: timeout, detail: lines.joined(separator: "\n")) }
            if !pump(timeout: min(left, 0.2)) && childPids.count + daemonPids.count < count {
                throw TestSupportError.exited(what: "\(count) child pid(s)", output: lines)
            }
        }
        return childPids + daemonPids
    }

    /// Reads stdout without waiting, so ``lines`` is current.
    public func refresh() { pump(timeout: 0) }

    /// Writes one line to the testbed's stdin (one holding process wakes up, exits
    /// 0 and releases its locks; `syscalls:N` also waits for a line to start).
    public func send(_ line: String = "") {
        guard stdinWrite >= 0 else { return }
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(stdinWrite, $0.baseAddress, $0.count) }
    }

    /// Closes the testbed's stdin: every process of this testbed (forked children
    /// share the pipe) that reached `ready` exits 0 and releases what it holds.
    public func release() {
        if stdinWrite >= 0 { close(stdinWrite); stdinWrite = -1 }
    }

    /// Waits up to `timeout` seconds for the spawned process to exit, reaps it and
    /// returns its exit code (128+signal if killed), or nil if it is still running.
    @discardableResult
    public func waitForExit(timeout: Double = 10) -> Int32? {
        if let s = exitStatus { return Spawn.exitCode(fromWaitStatus: s) }
        let deadline = MonotonicClock.seconds + timeout
        repeat {
            if let s = Spawn.reap(spawnedPid, block: false) {
                exitStatus = s
                pump(timeout: 0)
                return Spawn.exitCode(fromWaitStatus: s)
            }
            pump(timeout: 0.01)
            usleep(5_000)
        } while MonotonicClock.seconds < deadline
        return nil
    }

    /// SIGKILLs the process group this testbed was started in, every reported
    /// daemon pid that still runs lockscope-testbed, and fork children that left
    /// the group; then reaps the spawned process and closes the pipes. Idempotent;
    /// called from deinit.
    public func terminate() {
        guard !terminated else { return }
        terminated = true
        pump(timeout: 0)
        for p in daemonPids + childPids where isTestbedProcess(p) {
            kill(p, SIGKILL)
        }
        if exitStatus == nil {
            kill(-spawnedPid, SIGKILL)
            exitStatus = Spawn.reap(spawnedPid, block: true)
        } else {
            // Already reaped: the group may still have members (fork children).
            kill(-spawnedPid, SIGKILL)
        }
        if stdinWrite >= 0 { close(stdinWrite); stdinWrite = -1 }
        if stdoutRead >= 0 { close(stdoutRead); stdoutRead = -1 }
    }

    deinit { terminate() }

    /// True if /proc/PID/exe still points at the testbed (guards against pid reuse).
    private func isTestbedProcess(_ p: pid_t) -> Bool {
        guard p > 0 else { return false }
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/\(p)/exe", &buf, buf.count - 1)
        guard n > 0 else { return false }
        let target = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return target.hasSuffix("/lockscope-testbed") || target.hasSuffix("/lockscope-testbed (deleted)")
    }
}
