import LockscopeCore

/// Resolves descriptors to what they are: `readlink /proc/PID/fd/N` (never
/// `stat`, which can hang on a dead NFS server), then sockets by inode in the
/// process's own net tables (its network namespace), pipes to the other
/// descriptors on the same pipe among `peerPids`.
///
/// Caches per process for its lifetime: create one per decoding pass.
public final class FdResolver {
    public let proc: ProcRoot
    /// Processes whose descriptors may be the other end of a pipe (the traced set).
    public var peerPids: [Int32]
    private var netTables: [Int32: NetTables] = [:]
    private var pipeIndex: [UInt64: [PipePeer]]?
    private var cache: [Int64: FdDescription?] = [:]

    public init(proc: ProcRoot = ProcRoot(), peerPids: [Int32] = []) {
        self.proc = proc
        self.peerPids = peerPids
    }

    /// What `fd` of `pid` refers to, or nil (closed, not allowed, process gone).
    public func resolve(pid: Int32, fd: Int32) -> FdDescription? {
        guard fd >= 0 else { return nil }
        let key = Int64(pid) << 32 | Int64(fd)
        if let hit = cache[key] { return hit }
        let result = lookUp(pid: pid, fd: fd)
        cache[key] = result
        return result
    }

    /// Forgets what `fd` of `pid` was (it was closed, or reused by a new descriptor).
    public func invalidate(pid: Int32, fd: Int32) {
        cache[Int64(pid) << 32 | Int64(fd)] = nil
    }

    /// Forgets every descriptor of `pid` (exec, pipe, fork …).
    public func invalidate(pid: Int32) {
        cache = cache.filter { $0.key >> 32 != Int64(pid) }
        netTables[pid] = nil
        pipeIndex = nil
    }

    /// Re-reads the net tables of `pid` next time (a socket was connected or bound).
    public func invalidateSockets(pid: Int32) {
        netTables[pid] = nil
    }

    public func resolved(pid: Int32, fd: Int32) -> ResolvedFd { ResolvedFd(fd: fd, what: resolve(pid: pid, fd: fd)) }

    private func lookUp(pid: Int32, fd: Int32) -> FdDescription? {
        guard let link = try? proc.readLink("\(pid)/fd/\(fd)") else { return nil }
        let kind = FdResolver.classify(link)
        switch kind {
        case .otherSocket(let inode):
            if netTables[pid] == nil { netTables[pid] = NetTables.read(pid: pid, proc: proc) }
            if let s = netTables[pid]?[inode] { return .socket(s) }
            return kind
        case .pipe(let inode, _):
            let peers = pipePeers(inode: inode).filter { !($0.pid == pid && $0.fd == fd) }
            return .pipe(inode: inode, peers: peers)
        default:
            return kind
        }
    }

    /// Classifies readlink text: `socket:[N]`, `pipe:[N]`, `anon_inode:X`, or a path.
    /// Sockets come back as `.otherSocket` (the caller looks them up in the tables).
    public static func classify(_ link: String) -> FdDescription {
        if let inode = bracketed(link, prefix: "socket:[") { return .otherSocket(inode: inode) }
        if let inode = bracketed(link, prefix: "pipe:[") { return .pipe(inode: inode, peers: []) }
        if link.hasPrefix("anon_inode:") { return .anon(String(link.dropFirst("anon_inode:".count))) }
        return .path(link)
    }

    private static func bracketed(_ s: String, prefix: String) -> UInt64? {
        guard s.hasPrefix(prefix), s.hasSuffix("]") else { return nil }
        return UInt64(s.dropFirst(prefix.count).dropLast())
    }

    private func pipePeers(inode: UInt64) -> [PipePeer] {
        if pipeIndex == nil {
            var index: [UInt64: [PipePeer]] = [:]
            for pid in peerPids {
                guard let fds = try? proc.listDirectory("\(pid)/fd") else { continue }
                for name in fds {
                    guard let fd = Int32(name), let link = try? proc.readLink("\(pid)/fd/\(name)"),
                          let ino = FdResolver.bracketed(link, prefix: "pipe:[") else { continue }
                    index[ino, default: []].append(PipePeer(pid: pid, fd: fd))
                }
            }
            pipeIndex = index.mapValues { $0.sorted { ($0.pid, $0.fd) < ($1.pid, $1.fd) } }
        }
        return pipeIndex?[inode] ?? []
    }
}
