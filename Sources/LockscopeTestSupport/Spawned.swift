// Live-test helper: any program (python3, flock(1), sh) in a process group of its own.
import Foundation
import Glibc
import LockscopeCore

/// A real program started by a test, in a new process group (pgid == pid), with
/// its stdout on a pipe the test reads lines from. ``terminate()`` SIGKILLs that
/// group only — never anything by name — and reaps the program.
public final class Spawned {
    /// The pid of the spawned program (also its process group).
    public let pid: pid_t
    private var stdoutRead: Int32
    private var buffer: [UInt8] = []
    private var done = false
    /// Every line read so far.
    public private(set) var lines: [String] = []

    /// Starts `argv` (argv[0] an absolute path; see ``which(_:)``); its stdin is closed at once.
    public init(_ argv: [String], environment: [String: String]? = nil) throws {
        let p = try spawnPiped(argv, pipeStderr: false, environment: environment)
        close(p.stdin)
        pid = p.pid
        stdoutRead = p.stdout
        _ = fcntl(stdoutRead, F_SETFL, fcntl(stdoutRead, F_GETFL) | O_NONBLOCK)
    }

    /// Waits up to `timeout` s for a line that starts with `prefix`; returns it.
    @discardableResult
    public func waitFor(line prefix: String, timeout: Double = 10) throws -> String {
        let deadline = MonotonicClock.seconds + timeout
        var seen = 0
        while true {
            for l in lines[seen...] where l.hasPrefix(prefix) { return l }
            seen = lines.count
            if MonotonicClock.seconds >= deadline || stdoutRead < 0 {
                throw TestSupportError.exited(what: "a line starting with \"\(prefix)\"", output: lines)
            }
            var p = pollfd(fd: stdoutRead, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, 20)
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = read(stdoutRead, &chunk, chunk.count)
            if n == 0 { close(stdoutRead); stdoutRead = -1; continue }
            if n > 0 {
                buffer += chunk[0..<n]
                while let nl = buffer.firstIndex(of: 10) {
                    lines.append(String(decoding: buffer[..<nl], as: UTF8.self))
                    buffer.removeSubrange(...nl)
                }
            }
        }
    }

    /// SIGKILLs the process group and reaps the program. Idempotent; called from deinit.
    public func terminate() {
        guard !done else { return }
        done = true
        kill(-pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if stdoutRead >= 0 { close(stdoutRead); stdoutRead = -1 }
    }

    deinit { terminate() }
}
