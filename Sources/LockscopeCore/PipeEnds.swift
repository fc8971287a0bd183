#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLockscope

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

/// A thread blocked in open() of a named FIFO until the other side is opened:
/// `fifo_open()` (fs/pipe.c) makes a reader wait in `wait_for_partner()` until a
/// writer opens it, and a writer until a reader does (O_RDWR and O_NONBLOCK never
/// wait; a non-blocking writer fails with ENXIO instead).
public struct FifoOpening: Sendable, Hashable {
    /// The FIFO's path as this process sees descriptor links (the opener's cwd or root joined).
    public var path: String
    /// The FIFO's inode (from an O_PATH open, which runs no `fifo_open()`), nil when unknown.
    public var inode: UInt64?
    /// The side the opener asks for: `.write` waits for a reader, `.read` for a writer.
    public var side: PipeSide
    /// Every descriptor open on the FIFO now (on any side), found by link and inode.
    public var ends: [PipeEnd]

    public init(path: String, inode: UInt64?, side: PipeSide, ends: [PipeEnd]) {
        self.path = path
        self.inode = inode
        self.side = side
        self.ends = ends
    }
}

public enum FifoOpen {
    /// Whether a thread in an open call waits for a FIFO partner, from its wchan
    /// (or kernel stack): `wait_for_partner` (or `fifo_open`, where it is inlined);
    /// before Linux 5.5 `wait_for_partner()` slept in `pipe_wait()`, which in an open
    /// call can only be that.
    public static func waitsForPartner(wchan: String?, stack: [String]?) -> Bool {
        if let w = wchan, w.hasPrefix("wait_for_partner") || w.hasPrefix("fifo_open") || w.hasPrefix("pipe_wait") { return true }
        return stack?.contains { $0.contains("wait_for_partner") || $0.contains("fifo_open") } ?? false
    }

    /// The side an open asks for, from the call and its raw arguments (open(2):
    /// flags second, openat(2) third; creat(2) is O_WRONLY|O_CREAT|O_TRUNC). Nil for
    /// other calls (openat2 keeps its flags in memory) and for O_RDWR, which never waits.
    public static func side(call: String, raw: [UInt64]) -> PipeSide? {
        let flags: UInt64
        switch call {
        case "open" where raw.count > 1: flags = raw[1]
        case "openat" where raw.count > 2: flags = raw[2]
        case "creat": return .write
        default: return nil
        }
        let side = PipeEnds.side(flags: UInt32(truncatingIfNeeded: flags))
        return side == .both ? nil : side
    }

    /// The inode of the FIFO at `path` (nil when it is not a FIFO or cannot be reached):
    /// an O_PATH open in a disposable child (`Careful`), which runs no `fifo_open()`, so
    /// nobody waiting for a partner is woken, and never hangs on a dead filesystem.
    public static func inode(ofFifo path: String) -> UInt64? {
        guard case .success(let opened) = Careful.open(PathText.bytes(of: path), flags: CLS_O_PATH) else { return nil }
        close(opened.fd)
        return (opened.mode & 0o170000) == 0o010000 ? opened.inode : nil   // S_IFMT, S_IFIFO
    }

    /// `path` made absolute against `base` (the opener's cwd, or its dirfd's path) with
    /// `.` and `..` taken out, as descriptor links show paths; nil when relative with no base.
    /// Symbolic links are not followed (that would walk the filesystem).
    public static func absolute(_ path: String, base: String?) -> String? {
        let joined: String
        if path.hasPrefix("/") {
            joined = path
        } else if let base, base.hasPrefix("/") {
            joined = base + "/" + path
        } else {
            return nil
        }
        var parts: [Substring] = []
        for c in joined.split(separator: "/") {
            if c == "." { continue }
            if c == ".." { _ = parts.popLast(); continue }
            parts.append(c)
        }
        return "/" + parts.joined(separator: "/")
    }
}
