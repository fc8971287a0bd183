#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Who has the other end of a pipe: every descriptor on the box whose link reads
/// `pipe:[INODE]` (fs/pipe.c `pipefs_dname()`), with the side from its fdinfo
/// `flags:` (the open file's f_flags, octal; a pipe's read end is O_RDONLY, its
/// write end O_WRONLY, a FIFO opened O_RDWR is both).
///
/// Pure over `ProcRoot`, so recorded trees work. It walks every descriptor of every
/// process (readlink only, never stat), so callers use it only for a pipe a holder
/// is blocked on.

public enum PipeSide: String, Sendable, Hashable {
    case read
    case write
    case both
}

/// One descriptor open on the pipe.
public struct PipeEnd: Sendable, Hashable {
    public var pid: Int32
    public var fd: Int32
    /// nil when the fdinfo could not be read.
    public var side: PipeSide?

    public init(pid: Int32, fd: Int32, side: PipeSide?) {
        self.pid = pid
        self.fd = fd
        self.side = side
    }
}

public enum PipeEnds {
    /// `pipe:[12345]` → 12345.
    public static func inode(ofLink link: String) -> UInt64? {
        guard link.hasPrefix("pipe:["), link.hasSuffix("]") else { return nil }
        return UInt64(link.dropFirst(6).dropLast())
    }

    /// The side from fdinfo `flags:` (O_ACCMODE bits).
    public static func side(flags: UInt32) -> PipeSide {
        switch Int32(flags) & O_ACCMODE {
        case O_WRONLY: return .write
        case O_RDWR: return .both
        default: return .read
        }
    }

    /// Every descriptor open on pipe `inode`, by pid then fd. `pids` limits the
    /// walk (nil: every process). Processes that vanish or deny are skipped.
    public static func find(inode: UInt64, proc: ProcRoot, pids: [Int32]? = nil) -> [PipeEnd] {
        find(link: "pipe:[\(inode)]", proc: proc, pids: pids)
    }

    /// Every descriptor whose link reads exactly `link`: `pipe:[N]`, `socket:[N]`
    /// (net/socket.c `sockfs_dname()`), or a named FIFO's path. `inode`, when given,
    /// must also match the fdinfo `ino:` line (Linux 5.14+; absent lines pass), so a
    /// path that now names another file is not taken for the FIFO.
    public static func find(link want: String, inode: UInt64? = nil, proc: ProcRoot, pids: [Int32]? = nil) -> [PipeEnd] {
        var out: [PipeEnd] = []
        for pid in pids ?? ((try? proc.listPids()) ?? []) {
            guard let fds = try? proc.listDirectory("\(pid)/fd") else { continue }
            for name in fds {
                guard let fd = Int32(name), let link = try? proc.readLink("\(pid)/fd/\(fd)"), link == want else { continue }
                let info = (try? proc.readText("\(pid)/fdinfo/\(fd)")).map(FdInfo.parse)
                if let inode, let seen = info?.inode, seen != inode { continue }
                out.append(PipeEnd(pid: pid, fd: fd, side: info?.flags.map(side(flags:))))
            }
        }
        return out.sorted { ($0.pid, $0.fd) < ($1.pid, $1.fd) }
    }

    /// The pids that could read from (or write to) the pipe, excluding `except`.
    public static func peers(_ ends: [PipeEnd], side: PipeSide, except pid: Int32) -> [Int32] {
        var out: [Int32] = []
        for e in ends where e.pid != pid && (e.side == side || e.side == .both) && !out.contains(e.pid) {
            out.append(e.pid)
        }
        return out
    }
}
