#if canImport(Glibc)
import Glibc
#endif
import CLockscope
import LockscopeCore
import SystemPackage

/// The few system calls the demo needs that Swift's Glibc module hides, as calls
/// that throw the `errno` they failed with. Nothing here decides anything.
enum DemoSystem {
    static let cloneNewNS: Int32 = 0x0002_0000    // CLONE_NEWNS
    static let cloneNewUser: Int32 = 0x1000_0000  // CLONE_NEWUSER
    static let cloneNewNet: Int32 = 0x4000_0000   // CLONE_NEWNET

    /// unshare(2), through the C shim (hidden behind _GNU_SOURCE in Swift's Glibc).
    static func unshare(_ flags: Int32) throws(Errno) { _ = try retryingOnInterrupt { cls_unshare(flags) } }

    /// Writes a small file in one write(2) (uid_map and gid_map must be written so).
    static func writeFile(_ path: String, _ text: String, create: Bool = false) throws(Errno) {
        let flags = create ? (O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC) : (O_WRONLY | O_CLOEXEC)
        let fd = try retryingOnInterrupt { open(path, flags, 0o644) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 { throw Errno(rawValue: errno) }
        if n != bytes.count { throw .ioError }
    }

    /// Brings `lo` up in the current network namespace (a new one starts with it down).
    static func loopbackUp() throws(Errno) {
        let s = try retryingOnInterrupt { socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        defer { close(s) }
        var ifr = ifreq()
        withUnsafeMutableBytes(of: &ifr.ifr_ifrn.ifrn_name) { raw in
            for (i, b) in "lo".utf8.enumerated() { raw[i] = b }
        }
        if ioctl(s, UInt(SIOCGIFFLAGS), &ifr) != 0 { throw Errno(rawValue: errno) }
        ifr.ifr_ifru.ifru_flags |= Int16(IFF_UP)
        if ioctl(s, UInt(SIOCSIFFLAGS), &ifr) != 0 { throw Errno(rawValue: errno) }
    }

    /// A UDP socket bound to `address`:`port` that nobody will ever read: a
    /// nameserver that never answers. Returns the fd.
    static func bindBlackhole(_ address: String, port: UInt16) throws(Errno) -> Int32 {
        let s = try retryingOnInterrupt { socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        guard inet_pton(AF_INET, address, &sa.sin_addr) == 1 else {
            close(s)
            throw .invalidArgument
        }
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            let e = Errno(rawValue: errno)
            close(s)
            throw e
        }
        return s
    }
}

/// Reads lines from a pipe with a deadline (poll + read; no Foundation).
final class LineReader {
    let fd: Int32
    private var buffer: [UInt8] = []
    private(set) var eof = false

    init(fd: Int32) { self.fd = fd }

    /// The next complete line, or nil at the deadline or EOF (or when `cancelled()` says so).
    func next(timeout: Double, cancelled: () -> Bool = { false }) -> String? {
        let deadline = MonotonicClock.seconds + timeout
        while true {
            if let i = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<i], as: UTF8.self)
                buffer.removeSubrange(...i)
                return line
            }
            if eof || cancelled() { return nil }
            let left = deadline - MonotonicClock.seconds
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
