import LockscopeCore

/// The one text form of a decoded call and its parts, for every output that
/// shows one: trace lines and the sampler view, the diagnosis tree, findings and
/// verdicts, and the `text` fields of JSON. strace-like, with descriptors
/// resolved. Untrusted text (paths, socket names, strings from the tracee) is
/// escaped for the terminal, unless `escaped` is false: the exact text, for
/// callers that escape whole lines themselves (diagnosis prose) or none (JSON).
///
///     CallText.call(c)   // poll([{fd=4 UDP 127.0.0.1:56750 → 127.0.0.53:53, POLLIN}], 1, 3000 ms)
public enum CallText {
    /// `poll([{fd=4 UDP 127.0.0.1:56750 → 127.0.0.53:53, POLLIN}], 1, 3000 ms)`.
    public static func call(_ c: DecodedSyscall, escaped: Bool = true) -> String {
        var out = TraceBytes()
        out.escapes = escaped
        out.call(c)
        return out.string
    }

    static func safe(_ s: String, _ escaped: Bool) -> String { escaped ? terminalSafe(s) : s }

    public static func value(_ v: ArgumentValue, escaped: Bool = true) -> String {
        switch v {
        case .int(let i): return String(i)
        case .uint(let u): return String(u)
        case .hex(let h): return "0x" + String(h, radix: 16)
        case .pointer(let p): return p == 0 ? "NULL" : "0x" + String(p, radix: 16)
        case .fd(let f): return fd(f, escaped: escaped)
        case .atFdcwd: return "AT_FDCWD"
        case .string(let s, let truncated): return "\"" + safe(s, escaped) + "\"" + (truncated ? "…" : "")
        case .pollFds(let ps):
            return "[" + ps.map { p in
                var s = "{fd=" + fd(p.fd, escaped: escaped) + ", " + pollEvents(p.events)
                if let r = p.revents, r != 0 { s += " → " + pollEvents(r) }
                return s + "}"
            }.joined(separator: ", ") + "]"
        case .fdSet(let fs): return "[" + fs.map { fd($0, escaped: escaped) }.joined(separator: ", ") + "]"
        case .timeout(let t): return timeout(t)
        case .socketAddress(let a): return socketAddress(a, escaped: escaped)
        case .flockOperation(let op): return op.kind.rawValue + (op.nonBlocking ? "|LOCK_NB" : "")
        case .flock(let f):
            // No l_pid: the record is read on entry, and l_pid is only an output (of F_GETLK, on return);
            // on entry it holds whatever the caller's memory held.
            return "{" + f.typeName + ", " + f.whenceName + ", start=" + String(f.start) + ", len=" + String(f.length) + "}"
        case .fcntlCommand(let c): return c.name
        case .futexOperation(let op):
            return op.command + (op.isPrivate ? "_PRIVATE" : "") + (op.realtime ? "|FUTEX_CLOCK_REALTIME" : "")
        case .futexWord(let addr, let value):
            return "0x" + String(addr, radix: 16) + (value.map { " [" + String($0) + "]" } ?? "")
        case .waitTarget(let w):
            switch w {
            case .anyChild: return "-1 (any child)"
            case .child(let p): return String(p)
            case .ownProcessGroup: return "0 (own group)"
            case .processGroup(let g): return "-" + String(g) + " (group)"
            case .pidfd(let f): return "pidfd " + String(f)
            }
        case .flags(let f):
            var names = f.names
            if f.unknown != 0 { names.append("0x" + String(f.unknown, radix: 16)) }
            return names.isEmpty ? "0" : names.joined(separator: "|")
        case .signal(let s): return signalName(s)
        case .clock(let c): return clockName(c)
        case .unreadable(let address, let e): return "0x" + String(address, radix: 16) + " (" + errnoName(e) + ")"
        }
    }

    /// `POLLIN|POLLOUT`, `0` for no events.
    static func pollEvents(_ e: UInt16) -> String {
        let names = pollEventNames(e)
        return names.isEmpty ? "0" : names.joined(separator: "|")
    }

    /// `4 UDP 127.0.0.1:56750 → 127.0.0.53:53`, `3 /run/xtables.lock`, `0 pipe:[123] ↔ 812:5`.
    public static func fd(_ f: ResolvedFd, escaped: Bool = true) -> String {
        guard let what = f.what else { return String(f.fd) }
        return String(f.fd) + " " + describe(what, escaped: escaped)
    }

    public static func describe(_ d: FdDescription, escaped: Bool = true) -> String {
        switch d {
        case .path(let p): return safe(p, escaped)
        case .socket(let s): return socket(s, escaped: escaped)
        case .otherSocket(let inode): return "socket:[" + String(inode) + "]"
        case .pipe(let inode, let peers):
            var s = "pipe:[" + String(inode) + "]"
            if !peers.isEmpty { s += " ↔ " + peers.prefix(4).map { String($0.pid) + ":" + String($0.fd) }.joined(separator: " ") }
            return s
        case .anon(let a): return "anon_inode:" + safe(a, escaped)
        }
    }

    /// `UDP 127.0.0.1:56750 → 127.0.0.53:53`, `TCP 10.0.0.2:41000 → 10.0.0.1:443 (SYN_SENT)`, `UNIX /run/x.sock`.
    public static func socket(_ s: NetSocket, escaped: Bool = true) -> String {
        if s.proto == .unix {
            return "UNIX " + (s.unixType.map { $0 + " " } ?? "") + (s.path.map { safe($0, escaped) } ?? "(unnamed)")
        }
        var out = s.proto.rawValue
        if let l = s.local { out += " " + l.description }
        if let r = s.remote { out += " → " + r.description }
        if s.proto.isTCP, let st = s.state, st != "ESTABLISHED" { out += " (" + st + ")" }
        return out
    }

    public static func socketAddress(_ a: SocketAddress, escaped: Bool = true) -> String {
        switch a {
        case .inet(let e): return e.description
        case .inet6(let e, let scope): return e.description + (scope != 0 ? "%" + String(scope) : "")
        case .unix(let p): return p.isEmpty ? "unix:(unnamed)" : "unix:" + safe(p, escaped)
        case .netlink(let pid, let groups): return "netlink:" + String(pid) + "/" + String(groups)
        case .other(let f): return "{family=" + String(f) + "}"
        }
    }

    /// `3000 ms`, `5 s`, `∞`, `until CLOCK_MONOTONIC 12345.000 s`.
    public static func timeout(_ t: SyscallTimeout) -> String {
        switch t {
        case .infinite: return "∞"
        case .relative(let ns): return duration(ns)
        case .absolute(let clock, let ns): return "until " + clockName(clock) + " " + formatDecimal(Double(ns) / 1e9, places: 3) + " s"
        }
    }

    /// `0 ms`, `3000 ms`, `1.5 ms`, `5 s`, `90 s`.
    public static func duration(_ ns: Int64) -> String {
        if ns >= 1_000_000_000 && ns % 1_000_000_000 == 0 { return String(ns / 1_000_000_000) + " s" }
        if ns % 1_000_000 == 0 { return String(ns / 1_000_000) + " ms" }
        if ns >= 1_000_000 { return formatDecimal(Double(ns) / 1e6, places: 3) + " ms" }
        return formatDecimal(Double(ns) / 1e3, places: 3) + " µs"
    }
}

/// A line of text built as bytes: the tracer's hot path (one line per call)
/// without intermediate strings for numbers and fixed tokens. `CallText` renders
/// through it, so there is one implementation of the call format.
public struct TraceBytes {
    public var bytes: [UInt8] = []
    /// Escape untrusted text for the terminal (`CallText`'s `escaped`).
    public var escapes = true

    public init() { bytes.reserveCapacity(128) }

    public var string: String { String(decoding: bytes, as: UTF8.self) }

    @inline(__always) public mutating func put(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }
    @inline(__always) public mutating func put(_ s: String) { bytes.append(contentsOf: s.utf8) }

    public mutating func int(_ v: Int64) {
        if v < 0 { bytes.append(UInt8(ascii: "-")) }
        uint(v.magnitude)
    }

    public mutating func uint(_ v: UInt64) {
        if v < 10 { bytes.append(48 + UInt8(v)); return }
        var tmp: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch on the stack
        var n = 0
        var x = v
        withUnsafeMutableBytes(of: &tmp) { buf in
            while x > 0 { buf[n] = 48 + UInt8(x % 10); x /= 10; n += 1 }
            for i in stride(from: n - 1, through: 0, by: -1) { bytes.append(buf[i]) }
        }
    }

    public mutating func hex(_ v: UInt64) {
        put("0x")
        if v == 0 { bytes.append(48); return }
        var shift = 60
        while shift > 0 && (v >> UInt64(shift)) & 0xf == 0 { shift -= 4 }
        while shift >= 0 {
            let d = UInt8((v >> UInt64(shift)) & 0xf)
            bytes.append(d < 10 ? 48 + d : 87 + d)
            shift -= 4
        }
    }

    /// `12.345678`, integer arithmetic, no allocation (two per line on the tracer's hot path).
    public mutating func fixed(_ value: Double, places: Int) {
        var scale: UInt64 = 1
        for _ in 0..<places { scale *= 10 }
        let v = UInt64((abs(value) * Double(scale)).rounded())
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        uint(v / scale)
        bytes.append(UInt8(ascii: "."))
        var frac = v % scale
        let start = bytes.count
        for _ in 0..<places { bytes.append(48) }
        var i = start + places - 1
        while i >= start { bytes[i] = 48 + UInt8(frac % 10); frac /= 10; i -= 1 }
    }

    public mutating func call(_ c: DecodedSyscall) {
        put(c.name)
        bytes.append(UInt8(ascii: "("))
        for (i, a) in c.args.enumerated() {
            if i > 0 { put(", ") }
            argument(a)
        }
        bytes.append(UInt8(ascii: ")"))
    }

    public mutating func argument(_ a: DecodedArgument) {
        switch a.value {
        case .uint(let m) where a.name == "mode" || a.name == "mask":
            put("0")
            put(String(m, radix: 8))
        case .timeout(.relative(let ns)) where (a.name == "timeout" || a.name == "tmo_p") && ns < 100_000_000_000:
            // Timeouts of waits read best in milliseconds (poll's unit); sleeps in seconds.
            if ns % 1_000_000 == 0 { int(ns / 1_000_000) } else { fixed(Double(ns) / 1e6, places: 3) }
            put(" ms")
        default:
            value(a.value)
        }
        // Read from memory after the call returned (kernel engine): the call may have seen other bytes.
        if a.readAfterReturn { bytes.append(UInt8(ascii: "~")) }
    }

    mutating func value(_ v: ArgumentValue) {
        switch v {
        case .int(let i): int(i)
        case .uint(let u): uint(u)
        case .hex(let h): hex(h)
        case .pointer(let p): if p == 0 { put("NULL") } else { hex(p) }
        case .fd(let f): fd(f)
        case .atFdcwd: put("AT_FDCWD")
        default: put(CallText.value(v, escaped: escapes))
        }
    }

    mutating func fd(_ f: ResolvedFd) {
        int(Int64(f.fd))
        guard let what = f.what else { return }
        bytes.append(UInt8(ascii: " "))
        switch what {
        case .path(let p): put(escapes ? terminalSafe(p) : p)
        case .pipe(let inode, let peers):
            put("pipe:[")
            uint(inode)
            put("]")
            if !peers.isEmpty {
                put(" ↔")
                for p in peers.prefix(4) {
                    bytes.append(UInt8(ascii: " "))
                    int(Int64(p.pid))
                    bytes.append(UInt8(ascii: ":"))
                    int(Int64(p.fd))
                }
            }
        default: put(CallText.describe(what, escaped: escapes))
        }
    }
}
