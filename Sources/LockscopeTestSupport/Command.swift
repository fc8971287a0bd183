// Live-test helpers: running a command to completion and capturing its output.
import Foundation
import Glibc
import LockscopeCore

/// The result of ``runCommand(_:stdin:timeout:environment:)``.
public struct CommandResult: Sendable {
    /// Exit code, or 128 + signal number if it was killed (137 after a timeout).
    public var exitCode: Int32
    public var stdout: String
    public var stderr: String
    /// True if the timeout expired and the command's process group was killed.
    public var timedOut: Bool
    /// Raw stdout bytes (for output that is not UTF-8).
    public var stdoutBytes: [UInt8]
}

/// Runs `argv` (argv[0] an absolute path, e.g. ``TestBinaries/lockscope``) in a
/// process group of its own, feeds it `stdin`, captures stdout and stderr, and
/// kills the group if it runs longer than `timeout` seconds.
///
///     let r = try runCommand([TestBinaries.lockscope, "who", "--json", path])
///     XCTAssertEqual(r.exitCode, 0, r.stderr)
public func runCommand(_ argv: [String], stdin: String = "", timeout: Double = 30,
                       environment: [String: String]? = nil) throws -> CommandResult {
    let (pid, stdinFd, stdoutFd, stderrFd) = try spawnPiped(argv, pipeStderr: true, environment: environment)
    signal(SIGPIPE, SIG_IGN)
    let inBytes = Array(stdin.utf8)
    if !inBytes.isEmpty {
        // Small inputs only: fits in the pipe buffer, so no deadlock.
        _ = inBytes.withUnsafeBytes { write(stdinFd, $0.baseAddress, $0.count) }
    }
    close(stdinFd)

    var outBytes = [UInt8](), errBytes = [UInt8]()
    var open = [stdoutFd, stderrFd]
    var timedOut = false
    let deadline = MonotonicClock.seconds + timeout
    var buf = [UInt8](repeating: 0, count: 65536)
    while !open.isEmpty {
        let left = deadline - MonotonicClock.seconds
        if left <= 0 {
            timedOut = true
            kill(-pid, SIGKILL)
            break
        }
        var pfds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let r = poll(&pfds, nfds_t(pfds.count), Int32(min(left, 1) * 1000))
        if r < 0 && errno != EINTR { break }
        for p in pfds where p.revents != 0 {
            let n = read(p.fd, &buf, buf.count)
            if n > 0 {
                if p.fd == stdoutFd { outBytes += buf[0..<n] } else { errBytes += buf[0..<n] }
            } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                open.removeAll { $0 == p.fd }
            }
        }
    }
    close(stdoutFd); close(stderrFd)
    let status = Spawn.reap(pid, block: true) ?? -1
    return CommandResult(exitCode: Spawn.exitCode(fromWaitStatus: status),
                         stdout: String(decoding: outBytes, as: UTF8.self),
                         stderr: String(decoding: errBytes, as: UTF8.self),
                         timedOut: timedOut, stdoutBytes: outBytes)
}
