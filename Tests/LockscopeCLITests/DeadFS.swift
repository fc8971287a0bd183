// The dead-filesystem harness: a FUSE mount the test can stop (Tests/DeadFS/deadfs.c),
// lock holders on it, and a runner that never waits on a process stuck in D state.
import Foundation
import Glibc
import LockscopeTestSupport
import SystemPackage
import XCTest

/// posix_spawn with `actions`, default SIGPIPE/SIGTERM/SIGINT (as from a shell).
func harnessSpawn(_ argv: [String], _ actions: inout posix_spawn_file_actions_t) throws -> pid_t {
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for sig in [SIGPIPE, SIGTERM, SIGINT] { sigaddset(&defaults, sig) }
    posix_spawnattr_setsigdefault(&attr, &defaults)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF))
    let cArgv = argv.map { strdup($0) } + [nil]
    defer { cArgv.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, argv[0], &actions, &attr, cArgv, environ)
    guard rc == 0 else { throw TestSupportError.system(call: "posix_spawn", errno: Errno(rawValue: rc), context: argv[0]) }
    return pid
}

/// A process started by the harness with a pipe on stdin (EOF ends it) and one on stdout.
final class HarnessProcess {
    let pid: pid_t
    private let stdinWrite: Int32
    private let stdoutRead: Int32
    private var buffer: [UInt8] = []
    private var reaped = false
    private var stdinClosed = false

    init(_ argv: [String]) throws {
        var inPipe: [Int32] = [0, 0], outPipe: [Int32] = [0, 0]
        guard pipe(&inPipe) == 0, pipe(&outPipe) == 0 else {
            throw TestSupportError.system(call: "pipe", errno: Errno(rawValue: errno), context: argv[0])
        }
        for fd in inPipe + outPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        defer { close(inPipe[0]); close(outPipe[1]) }
        do {
            pid = try harnessSpawn(argv, &actions)
        } catch {
            close(inPipe[1]); close(outPipe[0])
            throw error
        }
        stdinWrite = inPipe[1]
        stdoutRead = outPipe[0]
    }

    func send(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(stdinWrite, $0.baseAddress, $0.count) }
    }

    /// The next stdout line starting with `prefix`, waiting at most `timeout` seconds.
    func waitForLine(prefix: String, timeout: Double = 10) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            while let nl = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<nl], as: UTF8.self)
                buffer.removeSubrange(...nl)
                if line.hasPrefix(prefix) { return line }
            }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { throw TestSupportError.timeout(what: "a \"\(prefix)\" line from pid \(pid)", seconds: timeout, detail: String(decoding: buffer, as: UTF8.self)) }
            var p = pollfd(fd: stdoutRead, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, Int32(left * 1000) + 1) > 0 {
                var chunk = [UInt8](repeating: 0, count: 4096)
                let n = read(stdoutRead, &chunk, chunk.count)
                if n <= 0 { throw TestSupportError.exited(what: "a \"\(prefix)\" line", output: [String(decoding: buffer, as: UTF8.self)]) }
                buffer += chunk[0..<n]
            }
        }
    }

    /// EOF on its stdin: `deadfs hold` then exits.
    func closeStdin() {
        guard !stdinClosed else { return }
        stdinClosed = true
        close(stdinWrite)
    }

    /// SIGKILL and reap. Call only once nothing it does can be stuck in the filesystem.
    func kill() {
        guard !reaped else { return }
        reaped = true
        Glibc.kill(pid, SIGKILL)
        closeStdin()
        close(stdoutRead)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }
}

/// One FUSE mount from `deadfs serve`, with:
/// - `holder`: flock on `lock` inside the mount, working directory inside it;
/// - `waiter`: blocked in flock on the same file;
/// - `chrooted`: flock on `outside.lock` (a tmpfs/disk file) with its root inside the mount,
///   and `outsideWaiter` blocked on that file (so both locks are contended).
/// `die()` makes the daemon stop answering. `tearDown()` aborts the connection (so no
/// thread stays in D state), kills what it started and unmounts.
final class DeadFS {
    static let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("DeadFS/deadfs.c").path
    /// Built once per test run into a private directory.
    nonisolated(unsafe) static var builtBinary: Result<String, Error>?

    let dir: TempDir
    let mountpoint: String
    let lockPath: String
    let outsidePath: String
    /// `00:NN` as /proc/locks prints the FUSE superblock.
    let device: String
    let connection: UInt32
    let lockIdentity: String
    let outsideIdentity: String
    private(set) var daemon: HarnessProcess?
    private(set) var holder: HarnessProcess!
    private(set) var waiter: HarnessProcess!
    private(set) var chrooted: HarnessProcess!
    private(set) var outsideWaiter: HarnessProcess!
    /// More `deadfs hold` processes a test started (`hold(_:)`).
    private var extras: [HarnessProcess] = []
    private var mounted = false

    static func requirements() throws {
        try requireRoot("mounts a FUSE filesystem")
        if access("/dev/fuse", R_OK | W_OK) != 0 { try skip("/dev/fuse is missing (no FUSE in this kernel or container)") }
        try requireExecutable("pkg-config")
        try requireExecutable("cc")
        if access("/usr/include/fuse3/fuse.h", R_OK) != 0 { try skip("libfuse3-dev is not installed (scripts/setup installs it)") }
    }

    static func binary() throws -> String {
        if let built = builtBinary { return try built.get() }
        let result = Result<String, Error> {
            let out = try TempDir(prefix: "lockscope-deadfs-bin.")
            let exe = out.file("deadfs")
            let flags = try runCommand(["/bin/sh", "-c", "pkg-config --cflags --libs fuse3"], timeout: 30)
            guard flags.exitCode == 0 else { throw TestSupportError.exited(what: "pkg-config fuse3", output: [flags.stderr]) }
            let cc = try runCommand(["/bin/sh", "-c", "cc -O1 -Wall -o '\(exe)' '\(source)' \(flags.stdout.trimmingCharacters(in: .whitespacesAndNewlines))"], timeout: 120)
            guard cc.exitCode == 0 else { throw TestSupportError.exited(what: "building deadfs", output: [cc.stderr]) }
            DeadFS.keepAlive.append(out)
            return exe
        }
        builtBinary = result
        return try result.get()
    }
    nonisolated(unsafe) static var keepAlive: [TempDir] = []

    init() throws {
        let exe = try Self.binary()
        dir = try TempDir(prefix: "lockscope-deadfs.")
        mountpoint = dir.file("mnt")
        mkdir(mountpoint, 0o755)
        lockPath = mountpoint + "/lock"
        outsidePath = try dir.touch("outside.lock")
        let d = try HarnessProcess([exe, "serve", mountpoint])
        daemon = d
        _ = try d.waitForLine(prefix: "ready")
        mounted = true
        var st = stat()
        guard stat(mountpoint, &st) == 0 else { throw TestSupportError.system(call: "stat", errno: Errno(rawValue: errno), context: mountpoint) }
        connection = UInt32(st.st_dev & 0xff) | UInt32((st.st_dev >> 12) & 0xfff00)
        device = String(format: "%02x:%02x", 0, connection)
        var lst = stat()
        guard stat(lockPath, &lst) == 0 else { throw TestSupportError.system(call: "stat", errno: Errno(rawValue: errno), context: lockPath) }
        lockIdentity = "\(device):\(lst.st_ino)"
        var ost = stat()
        _ = stat(outsidePath, &ost)
        outsideIdentity = String(format: "%02x:%02x:%lu", (ost.st_dev >> 8) & 0xfff, ost.st_dev & 0xff, ost.st_ino)

        holder = try HarnessProcess([exe, "hold", lockPath, "--cwd", mountpoint + "/dir"])
        _ = try holder.waitForLine(prefix: "held")
        waiter = try HarnessProcess([exe, "hold", lockPath, "--wait"])
        _ = try waiter.waitForLine(prefix: "waiting")
        chrooted = try HarnessProcess([exe, "hold", outsidePath, "--chroot", mountpoint + "/dir"])
        _ = try chrooted.waitForLine(prefix: "held")
        outsideWaiter = try HarnessProcess([exe, "hold", outsidePath, "--wait"])
        _ = try outsideWaiter.waitForLine(prefix: "waiting")
        try waitForWaiters([waiter.pid, outsideWaiter.pid])
    }

    /// Both waiters show in /proc/locks as `->` entries.
    private func waitForWaiters(_ pids: [pid_t]) throws {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let text = readProcText("/proc/locks") ?? ""
            let blocked = text.split(separator: "\n").filter { $0.contains("->") }
            if pids.allSatisfy({ pid in blocked.contains { $0.split(separator: " ").contains(Substring(String(pid))) } }) { return }
            usleep(20_000)
        }
        throw TestSupportError.timeout(what: "waiters \(pids) to block in flock", seconds: 10, detail: "")
    }

    /// Another `deadfs hold` process (arguments after `hold`), ended by `tearDown()`
    /// after the connection is aborted.
    func hold(_ args: [String]) throws -> HarnessProcess {
        let p = try HarnessProcess([try Self.binary(), "hold"] + args)
        extras.append(p)
        return p
    }

    /// `00:NN:INODE` of a file in the mount (a path walk: only while the daemon answers).
    func identity(of path: String) throws -> String {
        var st = stat()
        guard stat(path, &st) == 0 else { throw TestSupportError.system(call: "stat", errno: Errno(rawValue: errno), context: path) }
        return "\(device):\(st.st_ino)"
    }

    func die() throws {
        daemon?.send("die")
        _ = try daemon?.waitForLine(prefix: "dead")
    }

    /// Ends the FUSE connection: every request in flight fails with ENOTCONN and every
    /// thread waiting for the daemon wakes (nothing stays in D state).
    func abortConnection() {
        let abort = "/sys/fs/fuse/connections/\(connection)/abort"
        let fd = open(abort, O_WRONLY | O_CLOEXEC)
        if fd >= 0 { _ = write(fd, "1", 1); close(fd) }
        // Without fusectl mounted: closing the daemon's /dev/fuse descriptor aborts too.
        daemon?.kill()
        daemon = nil
    }

    func tearDown() {
        abortConnection()
        for p in [waiter, outsideWaiter, holder, chrooted].compactMap({ $0 }) + extras { p.kill() }
        if mounted {
            mounted = false
            // The daemon may have unmounted on its way out (EINVAL: no longer a mount point).
            if umount2(mountpoint, Int32(MNT_DETACH)) != 0 && errno != EINVAL {
                XCTFail("umount \(mountpoint): \(String(cString: strerror(errno)))")
            }
            let table = readProcText("/proc/self/mountinfo") ?? ""
            XCTAssertFalse(table.contains(" \(mountpoint) "), "\(mountpoint) is still mounted")
        }
        dir.remove()
    }

    /// Runs lockscope with stdout/stderr in files. If it has not exited after
    /// `deadline` seconds it is reported as hung; then the connection is aborted
    /// first (a process in D state cannot be killed) and it is killed and reaped.
    func run(_ args: [String], deadline: Double, signalAfter: (seconds: Double, signal: Int32)? = nil) throws -> DeadFSRun {
        let out = dir.file("out.\(UUID().uuidString)"), err = dir.file("err.\(UUID().uuidString)")
        let argv = [TestBinaries.lockscope] + args
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let start = Date()
        let pid = try harnessSpawn(argv, &actions)
        var status: Int32 = 0
        var hung = false
        var signalled = false
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            let elapsed = Date().timeIntervalSince(start)
            if let s = signalAfter, !signalled, elapsed >= s.seconds {
                signalled = true
                Glibc.kill(pid, s.signal)
            }
            if elapsed > deadline {
                hung = true
                abortConnection()
                Glibc.kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                break
            }
            usleep(10_000)
        }
        let seconds = Date().timeIntervalSince(start)
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return DeadFSRun(args: args, exitCode: code, seconds: seconds, hung: hung,
                         stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }
}

struct DeadFSRun: CustomStringConvertible {
    var args: [String]
    var exitCode: Int32
    var seconds: Double
    var hung: Bool
    var stdout: String
    var stderr: String

    var description: String {
        "lockscope \(args.joined(separator: " ")): \(hung ? "HUNG, killed" : "exit \(exitCode)") after \(String(format: "%.2f", seconds)) s\nstdout:\n\(stdout)\nstderr:\n\(stderr)"
    }
}
