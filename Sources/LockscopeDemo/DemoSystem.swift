#if canImport(Glibc)
import Glibc
#endif
import CLockscope
import LockscopeCore

/// The few system calls the demo needs that Swift's Glibc module hides, and a
/// small `posix_spawn` wrapper. Nothing here decides anything.
enum DemoSystem {
    static let cloneNewNS: Int32 = 0x0002_0000    // CLONE_NEWNS
    static let cloneNewUser: Int32 = 0x1000_0000  // CLONE_NEWUSER
    static let cloneNewNet: Int32 = 0x4000_0000   // CLONE_NEWNET

    /// unshare(2), through the C shim (hidden behind _GNU_SOURCE in Swift's Glibc).
    static func unshare(_ flags: Int32) -> Int32 { cls_unshare(flags) }

    /// Writes a small file in one write(2) (uid_map and gid_map must be written so).
    static func writeFile(_ path: String, _ text: String, create: Bool = false) -> Int32 {
        let flags = create ? (O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC) : (O_WRONLY | O_CLOEXEC)
        let fd = open(path, flags, 0o644)
        if fd < 0 { return errno }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        return n == bytes.count ? 0 : (n < 0 ? errno : EIO)
    }

    /// Brings `lo` up in the current network namespace (a new one starts with it down).
    static func loopbackUp() -> Int32 {
        let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if s < 0 { return errno }
        defer { close(s) }
        var ifr = ifreq()
        withUnsafeMutableBytes(of: &ifr.ifr_ifrn.ifrn_name) { raw in
            for (i, b) in "lo".utf8.enumerated() { raw[i] = b }
        }
        if ioctl(s, UInt(SIOCGIFFLAGS), &ifr) != 0 { return errno }
        ifr.ifr_ifru.ifru_flags |= Int16(IFF_UP)
        if ioctl(s, UInt(SIOCSIFFLAGS), &ifr) != 0 { return errno }
        return 0
    }

    /// A UDP socket bound to `address`:`port` that nobody will ever read: a
    /// nameserver that never answers. Returns the fd, or -errno.
    static func bindBlackhole(_ address: String, port: UInt16) -> Int32 {
        let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if s < 0 { return -errno }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        guard inet_pton(AF_INET, address, &sa.sin_addr) == 1 else {
            close(s)
            return -EINVAL
        }
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            let e = errno
            close(s)
            return -e
        }
        return s
    }

    /// A pipe whose ends are close-on-exec (the child gets its end through dup2 only).
    static func pipe2() -> (read: Int32, write: Int32)? {
        // pipe2(2) is hidden behind _GNU_SOURCE too; the demo is single-threaded while
        // it spawns, so pipe + FD_CLOEXEC leaves no window for another exec to inherit.
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return nil }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return (fds[0], fds[1])
    }

    /// posix_spawn `argv` with the given descriptors as its stdin/stdout/stderr, in
    /// its own process group (a terminal's Ctrl-C reaches only us; we stop it by
    /// pid), with default signal dispositions. Returns the pid, or -errno.
    static func spawn(_ argv: [String], stdin: Int32, stdout: Int32, stderr: Int32) -> pid_t {
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
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cargs.append(nil)
        defer { for p in cargs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attr, cargs, environ)
        return rc == 0 ? pid : -rc
    }

    /// waitpid, retrying EINTR; returns the raw status or nil if it is not our child.
    static func reap(_ pid: pid_t, block: Bool) -> Int32? {
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, block ? 0 : WNOHANG)
            if r == pid { return status }
            if r == 0 { return nil }
            if errno == EINTR { continue }
            return nil
        }
    }

    static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func sleep(seconds: Double) {
        var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var rest = timespec()
        while nanosleep(&ts, &rest) != 0 && errno == EINTR { ts = rest }
    }

    static func errnoText(_ e: Int32) -> String { String(cString: strerror(e)) }
}

/// Reads lines from a pipe with a deadline (poll + read; no Foundation).
final class LineReader {
    let fd: Int32
    private var buffer: [UInt8] = []
    private(set) var eof = false

    init(fd: Int32) { self.fd = fd }

    /// The next complete line, or nil at the deadline or EOF (or when `cancelled()` says so).
    func next(timeout: Double, cancelled: () -> Bool = { false }) -> String? {
        let deadline = DemoSystem.monotonic() + timeout
        while true {
            if let i = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<i], as: UTF8.self)
                buffer.removeSubrange(...i)
                return line
            }
            if eof || cancelled() { return nil }
            let left = deadline - DemoSystem.monotonic()
            if left <= 0 { return nil }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, Int32(min(left, 0.2) * 1000) + 1)
            if r < 0 && errno != EINTR { eof = true; return nil }
            if r <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                buffer += chunk[0..<n]
            } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                eof = true
            }
        }
    }
}
