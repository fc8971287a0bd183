/// Sockets as the kernel lists them in /proc/PID/net/{tcp,tcp6,udp,udp6,unix}.
///
/// The tables are per network namespace, so they are read through the process
/// being inspected (`/proc/PID/net/…`), never through /proc/net of lockscope.
/// Parsers take text and return values; `NetTables.read` is the thin reader.

/// The table a socket was found in.
public enum NetProtocol: String, Sendable, Hashable, CaseIterable {
    case tcp = "TCP"
    case tcp6 = "TCP6"
    case udp = "UDP"
    case udp6 = "UDP6"
    case unix = "UNIX"

    /// The file name under /proc/PID/net/.
    public var tableName: String { rawValue.lowercased() }
    public var isUDP: Bool { self == .udp || self == .udp6 }
    public var isTCP: Bool { self == .tcp || self == .tcp6 }
}

/// An IP address and port as the tables print them, decoded: `127.0.0.53`, `53`.
public struct NetEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// Dotted quad for IPv4, RFC 5952 text for IPv6 (v4-mapped as `::ffff:a.b.c.d`, as `ss` prints it).
    public var address: String
    public var port: Int

    public init(address: String, port: Int) {
        self.address = address
        self.port = port
    }

    /// True for 0.0.0.0 / :: (an unconnected or wildcard side).
    public var isUnspecified: Bool { address == "0.0.0.0" || address == "::" }

    /// `127.0.0.53:53`, `[::1]:53`.
    public var description: String {
        (address.contains(":") ? "[" + address + "]" : address) + ":" + String(port)
    }
}

/// One socket from a net table.
public struct NetSocket: Sendable, Hashable {
    public var proto: NetProtocol
    /// The socket inode, as `readlink /proc/PID/fd/N` shows it (`socket:[INODE]`).
    public var inode: UInt64
    /// TCP/UDP: the local side.
    public var local: NetEndpoint?
    /// TCP/UDP: the peer; nil when not connected (all zeroes in the table).
    public var remote: NetEndpoint?
    /// TCP state name (`ESTABLISHED`, `SYN_SENT` …); UDP: `ESTABLISHED` when connected, else nil.
    /// UNIX: `LISTEN`, `CONNECTED`, `UNCONNECTED`, `CONNECTING`, `DISCONNECTING`.
    public var state: String?
    /// UNIX: the bound path; abstract names start with `@`. Nil when unnamed.
    public var path: String?
    /// UNIX: `STREAM`, `DGRAM`, `SEQPACKET`.
    public var unixType: String?

    public init(proto: NetProtocol, inode: UInt64, local: NetEndpoint? = nil, remote: NetEndpoint? = nil,
                state: String? = nil, path: String? = nil, unixType: String? = nil) {
        self.proto = proto
        self.inode = inode
        self.local = local
        self.remote = remote
        self.state = state
        self.path = path
        self.unixType = unixType
    }
}

public enum NetTableParser {
    /// TCP states in the order of `include/net/tcp_states.h` (index = value).
    static let tcpStates = ["", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
                            "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV",
                            "BOUND_INACTIVE"]

    /// Parses /proc/PID/net/{tcp,tcp6,udp,udp6}: a header line, then
    /// `sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …`
    /// with addresses as `HEX:PORT` (`tcp4_seq_show()`/`udp4_format_sock()` in net/ipv4).
    /// The hex address is the in-memory (network order) address printed as host-order
    /// 32-bit words, so on little-endian machines each word's bytes are reversed.
    /// Lines that do not parse are skipped.
    public static func parseInet(_ text: String, proto: NetProtocol, littleEndian: Bool = true) -> [NetSocket] {
        var out: [NetSocket] = []
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 10,
                  let local = parseHexEndpoint(f[1], littleEndian: littleEndian),
                  let remote = parseHexEndpoint(f[2], littleEndian: littleEndian),
                  // `%02X` of sk_state, an unsigned char (tcp4_seq_show()): parsing it as
                  // unsigned keeps a corrupt "-1" from indexing before the table.
                  let st = UInt8(f[3], radix: 16).map(Int.init),
                  let inode = UInt64(f[9]) else { continue }
            var state: String? = st < tcpStates.count ? tcpStates[st] : String(st)
            if proto.isUDP { state = st == 1 ? "ESTABLISHED" : nil }
            let connected = !(remote.isUnspecified && remote.port == 0)
            out.append(NetSocket(proto: proto, inode: inode, local: local, remote: connected ? remote : nil, state: state))
        }
        return out
    }

    /// Parses /proc/PID/net/unix: `Num RefCount Protocol Flags Type St Inode Path`
    /// (`unix_seq_show()` in net/unix/af_unix.c; abstract names print with a leading `@`).
    public static func parseUnix(_ text: String) -> [NetSocket] {
        var out: [NetSocket] = []
        for line in text.split(separator: "\n").dropFirst() {
            // The path is everything after the seventh field, and may contain spaces.
            var fields: [Substring] = []
            var rest = line[...]
            while fields.count < 7 {
                rest = rest.drop(while: { $0 == " " })
                guard !rest.isEmpty else { break }
                let end = rest.firstIndex(of: " ") ?? rest.endIndex
                fields.append(rest[rest.startIndex..<end])
                rest = rest[end...]
            }
            guard fields.count == 7, let flags = UInt32(fields[3], radix: 16), let type = Int(fields[4], radix: 16),
                  let st = Int(fields[5], radix: 16), let inode = UInt64(fields[6]) else { continue }
            let path = rest.hasPrefix(" ") ? String(rest.dropFirst()) : nil
            let typeName: String? = [1: "STREAM", 2: "DGRAM", 5: "SEQPACKET"][type]
            // SS_FREE=0, SS_UNCONNECTED, SS_CONNECTING, SS_CONNECTED, SS_DISCONNECTING; __SO_ACCEPTCON flag = listening.
            let state: String
            if flags & 0x10000 != 0 { state = "LISTEN" } else {
                state = [0: "FREE", 1: "UNCONNECTED", 2: "CONNECTING", 3: "CONNECTED", 4: "DISCONNECTING"][st] ?? String(st)
            }
            out.append(NetSocket(proto: .unix, inode: inode, state: state, path: (path?.isEmpty ?? true) ? nil : path,
                                 unixType: typeName))
        }
        return out
    }

    /// `0100007F:DD0E` → 127.0.0.1:56590; 32 hex digits → IPv6.
    static func parseHexEndpoint(_ field: Substring, littleEndian: Bool) -> NetEndpoint? {
        guard let colon = field.lastIndex(of: ":"), let port = UInt16(field[field.index(after: colon)...], radix: 16).map(Int.init) else { return nil }
        let hex = field[field.startIndex..<colon]
        var bytes: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            guard let j = hex.index(i, offsetBy: 8, limitedBy: hex.endIndex), let word = UInt32(hex[i..<j], radix: 16) else { return nil }
            let w = littleEndian ? word.byteSwapped : word
            bytes += [UInt8(w >> 24), UInt8((w >> 16) & 0xff), UInt8((w >> 8) & 0xff), UInt8(w & 0xff)]
            i = j
        }
        switch bytes.count {
        case 4: return NetEndpoint(address: formatIPv4(bytes[0..<4]), port: port)
        case 16: return NetEndpoint(address: formatIPv6(bytes), port: port)
        default: return nil
        }
    }
}

/// `a.b.c.d`.
public func formatIPv4<C: Collection>(_ b: C) -> String where C.Element == UInt8 {
    b.map { String($0) }.joined(separator: ".")
}

/// RFC 5952 text: lower-case hex, the longest run (≥ 2) of zero groups as `::`,
/// and v4-mapped addresses as `::ffff:a.b.c.d`.
public func formatIPv6(_ b: [UInt8]) -> String {
    precondition(b.count == 16)
    if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xff && b[11] == 0xff {
        return "::ffff:" + formatIPv4(b[12..<16])
    }
    var groups: [UInt16] = []
    for i in stride(from: 0, to: 16, by: 2) { groups.append(UInt16(b[i]) << 8 | UInt16(b[i + 1])) }
    var bestStart = -1, bestLen = 0, i = 0
    while i < 8 {
        if groups[i] == 0 {
            var j = i
            while j < 8 && groups[j] == 0 { j += 1 }
            if j - i > bestLen { bestStart = i; bestLen = j - i }
            i = j
        } else { i += 1 }
    }
    if bestLen < 2 { bestStart = -1 }
    var s = ""
    i = 0
    while i < 8 {
        if i == bestStart {
            s += "::"
            i += bestLen
            continue
        }
        if !s.isEmpty && !s.hasSuffix(":") { s += ":" }
        s += String(groups[i], radix: 16)
        i += 1
    }
    return s
}

/// The sockets a process can see, by inode.
public struct NetTables: Sendable {
    public var byInode: [UInt64: NetSocket]

    public init(_ sockets: [NetSocket] = []) {
        var map: [UInt64: NetSocket] = [:]
        // A socket can appear in both tcp6 and tcp only in odd cases; first wins (v4 tables are read first).
        for s in sockets where map[s.inode] == nil { map[s.inode] = s }
        byInode = map
    }

    public subscript(inode: UInt64) -> NetSocket? { byInode[inode] }

    /// Reads the tables of the network namespace `pid` lives in. Unreadable tables
    /// (no IPv6, permission, process gone) are skipped: the answer is then partial, never an error.
    public static func read(pid: Int32, proc: ProcRoot, protocols: [NetProtocol] = NetProtocol.allCases) -> NetTables {
        var all: [NetSocket] = []
        for p in protocols {
            guard let text = try? proc.readText("\(pid)/net/\(p.tableName)") else { continue }
            all += p == .unix ? NetTableParser.parseUnix(text) : NetTableParser.parseInet(text, proto: p)
        }
        return NetTables(all)
    }
}
