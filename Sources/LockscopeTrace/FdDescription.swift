import LockscopeCore

// What descriptors are: plain values, resolved by FdResolver; renderers format them.

/// What a file descriptor refers to, resolved without ever `stat()`ing through
/// /proc/PID/fd (readlink, then the net tables by socket inode).
public enum FdDescription: Sendable, Hashable {
    /// A file, directory or device: the readlink text (may end in ` (deleted)`).
    case path(String)
    /// A TCP/UDP/UNIX socket found in the process's own net tables by inode.
    case socket(NetSocket)
    /// `socket:[INODE]` not in the tcp/udp/unix tables (netlink, raw, packet…).
    case otherSocket(inode: UInt64)
    /// `pipe:[INODE]`; `peers` lists the other descriptors on the same pipe found
    /// among the processes looked at (cheap: no system-wide scan). Empty when none were seen.
    case pipe(inode: UInt64, peers: [PipePeer])
    /// `anon_inode:[eventfd]`, `anon_inode:[eventpoll]` …: the text inside `anon_inode:`.
    case anon(String)

    /// The socket, when this is one of the tabled kinds.
    public var socket: NetSocket? { if case .socket(let s) = self { return s } else { return nil } }
}

/// Another descriptor open on the same pipe.
public struct PipePeer: Sendable, Hashable {
    public var pid: Int32
    public var fd: Int32
    public init(pid: Int32, fd: Int32) {
        self.pid = pid
        self.fd = fd
    }
}

/// A descriptor number with what it refers to (nil: closed, or not readable).
public struct ResolvedFd: Sendable, Hashable {
    public var fd: Int32
    public var what: FdDescription?
    public init(fd: Int32, what: FdDescription?) {
        self.fd = fd
        self.what = what
    }
}
