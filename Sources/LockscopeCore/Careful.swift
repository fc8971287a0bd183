#if canImport(Glibc)
import Glibc
#endif
import CLockscope
import SystemPackage

/// Calls that walk a path on a filesystem that may never answer (a dead FUSE daemon,
/// an NFS server gone): the kernel waits for it uninterruptibly, so no signal ends the
/// caller. lockscope makes them in a disposable child process (`cls_child_open`) and
/// gives up after a deadline; the child is killed and left to the kernel, and lockscope
/// goes on. A fork costs about a millisecond, so every such call is made this way: a
/// check of the mount alone would miss a symlink that leads onto a dead mount.
public enum Careful {
    /// How long a path walk may take before its filesystem is called unresponsive.
    public static let defaultTimeout = 1.0

    public enum Failure: Error, Equatable, Sendable {
        /// The child's open (or read) failed with this errno.
        case failed(Errno)
        /// No answer within the deadline.
        case timedOut
    }

    /// `open(path, flags)` in a child, the descriptor handed back to this process with
    /// the file's `st_mode` and inode (the child's `fstat`, which may block as well).
    /// The caller owns (and closes) the descriptor.
    public static func open(_ path: [UInt8], flags: Int32, timeout: Double = defaultTimeout)
        -> Result<(fd: Int32, mode: UInt32, inode: UInt64), Failure> {
        var r = cls_child_result()
        let rc = withCString(path) { cls_child_open($0, flags, 0, Int32(timeout * 1000), &r) }
        if rc == -1 { return .failure(.timedOut) }
        if rc != 0 { return .failure(.failed(Errno(rawValue: rc))) }
        return .success((r.fd, r.mode, r.ino))
    }

    /// The first `limit` bytes of the file at `path`, read by a child.
    public static func read(_ path: String, limit: Int = 1 << 20, timeout: Double = defaultTimeout) -> Result<[UInt8], Failure> {
        var r = cls_child_result()
        let rc = withCString(Array(path.utf8)) { cls_child_open($0, O_RDONLY, limit, Int32(timeout * 1000), &r) }
        if rc == -1 { return .failure(.timedOut) }
        if rc != 0 { return .failure(.failed(Errno(rawValue: rc))) }
        defer { free(r.data) }
        guard let data = r.data else { return .success([]) }
        return .success(Array(UnsafeBufferPointer(start: data, count: r.length)))
    }

    /// The path bytes as a C string (a NUL inside cannot be a path: it ends it, as in C).
    static func withCString<T>(_ path: [UInt8], _ body: (UnsafePointer<CChar>) -> T) -> T {
        var bytes = path.prefix { $0 != 0 }.map { CChar(bitPattern: $0) }
        bytes.append(0)
        return bytes.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
