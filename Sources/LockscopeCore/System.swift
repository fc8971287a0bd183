#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

// Thin wrappers over the few system calls every part of lockscope makes the same
// way (the library, the demo, the test support): one EINTR rule, one clock, one
// posix_spawn. Nothing here decides anything.

/// Calls `body` (a C call that returns -1 and sets `errno` on failure) again while
/// it fails with `EINTR`; returns its result, or throws the `errno` it failed with.
/// Like swift-system's `valueOrErrno(retryOnInterrupt:)`.
@inline(__always)
public func retryingOnInterrupt<I: FixedWidthInteger>(_ body: () -> I) throws(Errno) -> I {
    while true {
        let r = body()
        if r != -1 { return r }
        if errno != EINTR { throw Errno(rawValue: errno) }
    }
}

/// `CLOCK_MONOTONIC`, the one clock lockscope measures intervals with.
/// The corresponding C function is `clock_gettime`.
public enum MonotonicClock {
    public static var nanoseconds: Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    public static var seconds: Double { Double(nanoseconds) / 1e9 }

    /// Sleeps `seconds`, resuming after a signal (use `poll` to be woken instead).
    /// The corresponding C function is `nanosleep`.
    public static func sleep(seconds: Double) {
        var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var rest = timespec()
        while nanosleep(&ts, &rest) != 0 && errno == EINTR { ts = rest }
    }
}

/// Starting and reaping child processes: the demo's holders and waiters, the
/// tests' testbeds and commands.
public enum Spawn {
    /// A pipe whose both ends are close-on-exec in this process (a child gets its end
    /// through dup2 only). pipe2(2) is hidden behind _GNU_SOURCE, so this is pipe +
    /// FD_CLOEXEC: callers that spawn from several threads serialise pipe and spawn.
    public static func cloexecPipe() throws(Errno) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw Errno(rawValue: errno) }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return (fds[0], fds[1])
    }

    /// Starts `argv` (`argv[0]` an absolute path) with the given descriptors as its
    /// stdin/stdout/stderr, with an empty signal mask and default dispositions for the
    /// signals a shell would reset, in its own process group when `newProcessGroup`
    /// (a terminal's Ctrl-C then reaches only us; we stop it by pid or group).
    /// `environment` is `NAME=value` strings; nil passes ours.
    /// The corresponding C function is `posix_spawn`.
    public static func process(_ argv: [String], stdin: Int32, stdout: Int32, stderr: Int32,
                               newProcessGroup: Bool = true, environment: [String]? = nil) throws(Errno) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT, SIGCHLD] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var flags = Int32(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)
        if newProcessGroup {
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attr, 0)
        }
        posix_spawnattr_setflags(&attr, Int16(flags))
        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { $0.map { strdup($0) } + [nil] }
        defer {
            cArgv.forEach { free($0) }
            cEnv?.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = cEnv.map { posix_spawn(&pid, argv[0], &actions, &attr, cArgv, $0) }
            ?? posix_spawn(&pid, argv[0], &actions, &attr, cArgv, environ)
        guard rc == 0 else { throw Errno(rawValue: rc) }
        return pid
    }

    /// waitpid(2) for our child `pid`: its raw wait status, or nil while it runs
    /// (`block: false`) or when it is not our child.
    public static func reap(_ pid: pid_t, block: Bool) -> Int32? {
        var status: Int32 = 0
        let r = try? retryingOnInterrupt { waitpid(pid, &status, block ? 0 : WNOHANG) }
        return r == pid ? status : nil
    }

    /// A wait status as a shell shows it: the exit code, or 128 + the signal number.
    public static func exitCode(fromWaitStatus status: Int32) -> Int32 {
        let sig = status & 0x7f
        return sig == 0 ? (status >> 8) & 0xff : 128 + sig
    }
}
