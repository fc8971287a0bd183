// Live-test helpers: posix_spawn with pipes, shared by Testbed and Command.
import Foundation
import Glibc

/// Serialises pipe creation + spawn so no fd of one spawn leaks into another
/// (there is no pipe2(O_CLOEXEC) in Swift's Glibc; we set FD_CLOEXEC after pipe()).
let spawnLock = NSLock()

/// A pipe whose both ends are close-on-exec in this process.
func cloexecPipe() throws -> (read: Int32, write: Int32) {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { throw TestSupportError.system(call: "pipe", errno: errno, context: "spawn") }
    _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
    _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
    return (fds[0], fds[1])
}

/// Spawns `argv` with stdin/stdout/stderr connected to the given fds (dup2'ed
/// in the child). `newProcessGroup` puts the child in a process group of its own
/// (pgid == pid). Returns the pid.
func spawnProcess(_ argv: [String], stdin: Int32, stdout: Int32, stderr: Int32,
                  newProcessGroup: Bool, environment: [String: String]? = nil) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, stdin, 0)
    posix_spawn_file_actions_adddup2(&actions, stdout, 1)
    posix_spawn_file_actions_adddup2(&actions, stderr, 2)

    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    // Reset signal mask and default SIGPIPE etc. so the child behaves as from a shell.
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attr, &empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    sigaddset(&defaults, SIGPIPE)
    sigaddset(&defaults, SIGINT)
    sigaddset(&defaults, SIGTERM)
    posix_spawnattr_setsigdefault(&attr, &defaults)
    var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
    if newProcessGroup {
        flags |= Int32(POSIX_SPAWN_SETPGROUP)
        posix_spawnattr_setpgroup(&attr, 0)
    }
    posix_spawnattr_setflags(&attr, Int16(flags))

    var env: [String]
    if let environment {
        env = environment.map { "\($0.key)=\($0.value)" }
    } else {
        env = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
    }
    let cArgv = argv.map { strdup($0) } + [nil]
    let cEnv = env.map { strdup($0) } + [nil]
    defer {
        cArgv.forEach { free($0) }
        cEnv.forEach { free($0) }
    }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, argv[0], &actions, &attr, cArgv, cEnv)
    guard rc == 0 else { throw TestSupportError.system(call: "posix_spawn", errno: rc, context: argv[0]) }
    return pid
}

/// Seconds on CLOCK_MONOTONIC.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Reaps `pid` without blocking; returns its wait status if it has exited.
func reapNoHang(_ pid: pid_t) -> Int32? {
    var status: Int32 = 0
    let r = waitpid(pid, &status, WNOHANG)
    return r == pid ? status : nil
}

/// Decodes a wait status: exit code, or 128 + signal number.
func exitCode(fromWaitStatus status: Int32) -> Int32 {
    let sig = status & 0x7f
    if sig == 0 { return (status >> 8) & 0xff }
    return 128 + sig
}
