#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

/// The other end of a unix socket, as `ss -x` finds it: /proc/net/unix has no peer
/// column, so the peer's inode comes from sock_diag netlink (NETLINK_SOCK_DIAG,
/// family AF_UNIX), the attribute UNIX_DIAG_PEER (net/unix/diag.c `sk_diag_dump_peer()`,
/// include/uapi/linux/unix_diag.h; iproute2 misc/ss.c `unix_show_netlink()` asks the
/// same question). Any user may dump unix sockets; the answer covers the network
/// namespace of the asking socket (ours).
///
/// The request and the answer are plain bytes: `request(sequence:)` builds the one,
/// `parse(_:)` reads the other (pure, tested on recorded bytes); `dump()` only moves them.

/// One unix socket in the dump.
public struct UnixDiagSocket: Sendable, Hashable {
    public var inode: UInt64
    /// The connected peer's socket inode (UNIX_DIAG_PEER); nil when not connected.
    public var peer: UInt64?
    /// SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_SEQPACKET 5.
    public var type: UInt8
    /// TCP_ESTABLISHED 1, TCP_LISTEN 10 … (unix sockets reuse the TCP state numbers).
    public var state: UInt8
    /// UNIX_DIAG_RQLEN (net/unix/diag.c `sk_diag_show_rqlen()`): bytes waiting in this
    /// socket's receive queue (`unix_inq_len()`: payload for a stream socket), and the
    /// memory its sent, not yet read buffers take (`unix_outq_len()`: sk_wmem_alloc, not payload).
    public var receiveQueue: UInt32?
    public var sendQueue: UInt32?

    public init(inode: UInt64, peer: UInt64?, type: UInt8, state: UInt8, receiveQueue: UInt32? = nil, sendQueue: UInt32? = nil) {
        self.inode = inode
        self.peer = peer
        self.type = type
        self.state = state
        self.receiveQueue = receiveQueue
        self.sendQueue = sendQueue
    }
}

public enum UnixDiag {
    // include/uapi/linux/netlink.h, sock_diag.h, unix_diag.h
    static let netlinkSockDiag: Int32 = 4          // NETLINK_SOCK_DIAG
    static let sockDiagByFamily: UInt16 = 20       // SOCK_DIAG_BY_FAMILY
    static let nlmFRequest: UInt16 = 0x1           // NLM_F_REQUEST
    static let nlmFDump: UInt16 = 0x300            // NLM_F_ROOT | NLM_F_MATCH
    static let nlmsgError: UInt16 = 2              // NLMSG_ERROR
    static let nlmsgDone: UInt16 = 3               // NLMSG_DONE
    static let showPeer: UInt32 = 0x4              // UDIAG_SHOW_PEER
    static let showRqlen: UInt32 = 0x10            // UDIAG_SHOW_RQLEN
    static let attrPeer: UInt16 = 2                // UNIX_DIAG_PEER
    static let attrRqlen: UInt16 = 4               // UNIX_DIAG_RQLEN

    /// `socket:[12345]` → 12345 (net/socket.c `sockfs_dname()`).
    public static func inode(ofLink link: String) -> UInt64? {
        guard link.hasPrefix("socket:["), link.hasSuffix("]") else { return nil }
        return UInt64(link.dropFirst(8).dropLast())
    }

    /// nlmsghdr (16 bytes) + unix_diag_req (24 bytes): every state, every socket,
    /// with its peer and queue lengths.
    public static func request(sequence: UInt32) -> [UInt8] {
        var b: [UInt8] = []
        func u16(_ v: UInt16) { b += [UInt8(v & 0xff), UInt8(v >> 8)] }
        func u32(_ v: UInt32) { for i in 0..<4 { b.append(UInt8((v >> (8 * UInt32(i))) & 0xff)) } }
        u32(40); u16(sockDiagByFamily); u16(nlmFRequest | nlmFDump); u32(sequence); u32(0)
        b += [UInt8(AF_UNIX), 0]; u16(0)              // sdiag_family, sdiag_protocol, pad
        u32(0xffff_ffff)                              // udiag_states: all
        u32(0)                                        // udiag_ino: any
        u32(showPeer | showRqlen)                     // udiag_show
        u32(0xffff_ffff); u32(0xffff_ffff)            // udiag_cookie: INET_DIAG_NOCOOKIE
        return b
    }

    public enum ParseResult: Sendable, Equatable {
        /// Sockets in this buffer; `done` when NLMSG_DONE ended the dump.
        case sockets([UnixDiagSocket], done: Bool)
        /// NLMSG_ERROR with this (positive) errno.
        case error(Int32)
    }

    /// Reads one buffer of netlink messages (host byte order, NLMSG_ALIGNTO 4;
    /// attributes are rtattr, RTA_ALIGNTO 4). Truncated messages end the buffer.
    public static func parse(_ bytes: [UInt8]) -> ParseResult {
        func u16(_ o: Int) -> UInt16 { UInt16(bytes[o]) | UInt16(bytes[o + 1]) << 8 }
        func u32(_ o: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[o + $1]) << (8 * UInt32($1)) } }
        var sockets: [UnixDiagSocket] = []
        var o = 0
        while o + 16 <= bytes.count {
            let len = Int(u32(o)), type = u16(o + 4)
            guard len >= 16, o + len <= bytes.count else { break }
            if type == nlmsgDone { return .sockets(sockets, done: true) }
            if type == nlmsgError {
                guard len >= 20 else { return .error(EPROTO) }
                let e = Int32(bitPattern: u32(o + 16))
                if e == 0 { o += (len + 3) & ~3; continue }   // an ack, not an error
                return .error(-e)
            }
            // unix_diag_msg: family u8, type u8, state u8, pad u8, ino u32, cookie[2] u32 (16 bytes).
            let m = o + 16
            if type == sockDiagByFamily, len >= 32 {
                var s = UnixDiagSocket(inode: UInt64(u32(m + 4)), peer: nil, type: bytes[m + 1], state: bytes[m + 2])
                var a = m + 16
                while a + 4 <= o + len {
                    let alen = Int(u16(a)), atype = u16(a + 2) & 0x3fff   // NLA_TYPE_MASK
                    guard alen >= 4, a + alen <= o + len else { break }
                    if atype == attrPeer, alen >= 8 { s.peer = UInt64(u32(a + 4)) }
                    if atype == attrRqlen, alen >= 12 { s.receiveQueue = u32(a + 4); s.sendQueue = u32(a + 8) }
                    a += (alen + 3) & ~3
                }
                if s.peer == 0 { s.peer = nil }
                sockets.append(s)
            }
            o += (len + 3) & ~3
        }
        return .sockets(sockets, done: false)
    }

    /// Every unix socket of our network namespace, by inode. Throws the errno of
    /// socket(2)/send(2)/recv(2), or of the kernel's NLMSG_ERROR (ENOENT: no unix_diag
    /// in this kernel). Bounded: gives up after 4096 reads.
    public static func dump() throws(Errno) -> [UInt64: UnixDiagSocket] {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), netlinkSockDiag)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        defer { close(fd) }
        // Without a bound address the message goes to the kernel (port id 0).
        let req = request(sequence: 1)
        let sent = try retryingOnInterrupt { req.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) } }
        guard sent == req.count else { throw Errno.ioError }
        var table: [UInt64: UnixDiagSocket] = [:]
        var buffer = [UInt8](repeating: 0, count: 32768)
        for _ in 0..<4096 {
            let n = try retryingOnInterrupt { buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } }
            guard n > 0 else { break }
            switch parse(Array(buffer[0..<n])) {
            case .error(let e): throw Errno(rawValue: e)
            case .sockets(let list, let done):
                for s in list { table[s.inode] = s }
                if done { return table }
            }
        }
        return table
    }
}

/// What was found about the other end of one unix socket.
public struct UnixSocketPeer: Sendable, Hashable {
    /// The socket the process is blocked on, as the dump has it (nil: not in the dump).
    public var socket: UnixDiagSocket?
    /// Its peer, as the dump has it.
    public var peerSocket: UnixDiagSocket?
    /// Every descriptor on the peer socket (`socket:[PEER]`), by pid then fd.
    public var ends: [PipeEnd]
    /// Why the peer could not be looked up (`unix_diag: ENOENT`), when it could not.
    public var unavailable: String?

    public init(socket: UnixDiagSocket?, peerSocket: UnixDiagSocket? = nil, ends: [PipeEnd], unavailable: String? = nil) {
        self.socket = socket
        self.peerSocket = peerSocket
        self.ends = ends
        self.unavailable = unavailable
    }
}
