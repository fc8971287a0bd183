import LockscopeCore
import LockscopeTrace

/// Text for the tracer's values: a decoded call as strace would show it (with
/// descriptors resolved), the sampler's per-thread view, strace-like event lines
/// and the summary table. Untrusted text (paths, socket names, strings from the
/// tracee) is escaped for the terminal.
public struct TraceText {
    public var style: Style

    public init(style: Style = .plain) { self.style = style }

    // MARK: - Calls

    /// `poll([{fd=4 UDP 127.0.0.1:56750 → 127.0.0.53:53, POLLIN}], 1, 3000 ms)`.
    public static func call(_ c: DecodedSyscall) -> String {
        var out = TraceBytes()
        out.call(c)
        return out.string
    }

    /// `12.345678` with `places` decimals (TraceBytes.fixed, as a String).
    public static func fixed(_ value: Double, places: Int) -> String {
        var out = TraceBytes()
        out.fixed(value, places: places)
        return out.string
    }

    static func argument(_ a: DecodedArgument) -> String {
        var out = TraceBytes()
        out.argument(a)
        return out.string
    }

    public static func value(_ v: ArgumentValue) -> String {
        switch v {
        case .int(let i): return String(i)
        case .uint(let u): return String(u)
        case .hex(let h): return "0x" + String(h, radix: 16)
        case .pointer(let p): return p == 0 ? "NULL" : "0x" + String(p, radix: 16)
        case .fd(let f): return fd(f)
        case .atFdcwd: return "AT_FDCWD"
        case .string(let s, let truncated): return "\"" + terminalSafe(s) + "\"" + (truncated ? "…" : "")
        case .pollFds(let ps):
            return "[" + ps.map { p in
                var s = "{fd=" + fd(p.fd) + ", " + pollEventNames(p.events).joined(separator: "|")
                if let r = p.revents, r != 0 { s += " → " + pollEventNames(r).joined(separator: "|") }
                return s + "}"
            }.joined(separator: ", ") + "]"
        case .fdSet(let fs): return "[" + fs.map(fd).joined(separator: ", ") + "]"
        case .timeout(let t): return timeout(t)
        case .socketAddress(let a): return socketAddress(a)
        case .flockOperation(let op): return op.kind.rawValue + (op.nonBlocking ? "|LOCK_NB" : "")
        case .flock(let f):
            return "{" + f.typeName + ", " + f.whenceName + ", start=" + String(f.start) + ", len=" + String(f.length)
                + (f.pid != 0 ? ", pid=" + String(f.pid) : "") + "}"
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

    /// `4 UDP 127.0.0.1:56750 → 127.0.0.53:53`, `3 /run/xtables.lock`, `0 pipe:[123] ↔ 812:5`.
    public static func fd(_ f: ResolvedFd) -> String {
        guard let what = f.what else { return String(f.fd) }
        return String(f.fd) + " " + describe(what)
    }

    public static func describe(_ d: FdDescription) -> String {
        switch d {
        case .path(let p): return terminalSafe(p)
        case .socket(let s): return socket(s)
        case .otherSocket(let inode): return "socket:[" + String(inode) + "]"
        case .pipe(let inode, let peers):
            var s = "pipe:[" + String(inode) + "]"
            if !peers.isEmpty { s += " ↔ " + peers.prefix(4).map { String($0.pid) + ":" + String($0.fd) }.joined(separator: " ") }
            return s
        case .anon(let a): return "anon_inode:" + terminalSafe(a)
        }
    }

    /// `UDP 127.0.0.1:56750 → 127.0.0.53:53`, `TCP 10.0.0.2:41000 → 10.0.0.1:443 (SYN_SENT)`, `UNIX /run/x.sock`.
    public static func socket(_ s: NetSocket) -> String {
        if s.proto == .unix {
            return "UNIX " + (s.unixType.map { $0 + " " } ?? "") + (s.path.map(terminalSafe) ?? "(unnamed)")
        }
        var out = s.proto.rawValue
        if let l = s.local { out += " " + l.description }
        if let r = s.remote { out += " → " + r.description }
        if s.proto.isTCP, let st = s.state, st != "ESTABLISHED" { out += " (" + st + ")" }
        return out
    }

    public static func socketAddress(_ a: SocketAddress) -> String {
        switch a {
        case .inet(let e): return e.description
        case .inet6(let e, let scope): return e.description + (scope != 0 ? "%" + String(scope) : "")
        case .unix(let p): return p.isEmpty ? "unix:(unnamed)" : "unix:" + terminalSafe(p)
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

    /// Seconds for people: `95 s`, `2.41 s`, `0.004 s`.
    public static func seconds(_ s: Double) -> String {
        if s >= 60 { return formatDecimal(s, places: 0) + " s" }
        if s >= 1 { return formatDecimal(s, places: 2) + " s" }
        return formatDecimal(s, places: 3) + " s"
    }

    /// Short times in the unit that shows them: `12 µs`, `3.5 ms`, `2.41 s`.
    public static func shortTime(_ s: Double) -> String {
        if s >= 1 { return seconds(s) }
        if s >= 0.001 { return formatDecimal(s * 1e3, places: s >= 0.1 ? 0 : 1) + " ms" }
        return formatDecimal(s * 1e6, places: 0) + " µs"
    }

    public static func result(_ r: SyscallResult?) -> String {
        switch r {
        case nil: return "?"
        case .value(let v)?: return v > 0xffff_ffff || v < -0xffff ? "0x" + String(UInt64(bitPattern: v), radix: 16) : String(v)
        case .error(let e, let name)?: return "-1 " + name + " (errno " + String(e) + ")"
        }
    }

    // MARK: - Sampler

    /// The sampler's compact per-thread view.
    public func sampler(_ r: SamplerReport) -> [String] {
        var lines: [String] = []
        lines.append(style.dim("sampled \(r.rounds) rounds over \(TraceText.seconds(r.observedSeconds)) at \(r.hz) Hz"
            + (r.interrupted ? " (interrupted)" : "") + "; nothing was stopped"))
        for p in r.processes {
            lines.append("")
            var head = style.bold("pid \(p.pid)") + " " + terminalSafe(p.comm) + "  " + String(p.state)
            if p.exited { head += "  " + style.yellow("exited during the window") }
            if p.tracerPid != 0 { head += "  " + style.yellow("traced by pid \(p.tracerPid)") }
            head += "  cpu " + TraceText.seconds(p.cpuSeconds)
            lines.append(style.fit(head))
            if !p.cmdline.isEmpty { lines.append(style.fit("  " + style.dim(displayCommandLine(p.cmdline, fallback: p.comm)))) }
            for t in p.threads {
                var line = "  tid \(t.tid)"
                if t.name != p.comm { line += " (" + terminalSafe(t.name) + ")" }
                line += "  " + String(t.state) + "  "
                if let c = t.current {
                    line += TraceText.call(c)
                    if let s = t.inCallSeconds { line += "  " + style.yellow("in call ≥ " + TraceText.seconds(s)) }
                } else if t.exited {
                    line += "exited"
                } else {
                    line += t.dominant?.label ?? "?"
                }
                lines.append(line)
                var detail = "      samples: " + t.histogram.prefix(5).map {
                    $0.bucket.label + " " + formatDecimal($0.fraction * 100, places: 0) + "%"
                }.joined(separator: ", ")
                detail += "  cpu " + TraceText.seconds(t.cpuSeconds)
                if let w = t.wchan { detail += "  wchan " + terminalSafe(w) }
                lines.append(style.fit(style.dim(detail)))
            }
        }
        for e in r.skipped { lines.append(style.red("skipped: ") + terminalSafe(e.description)) }
        return lines
    }

    // MARK: - Ptrace

    /// One strace-like line per event.
    public func event(_ e: TraceEvent, multi: Bool = true) -> String {
        func stamp(_ t: Double, _ tid: Int32) -> String { TraceText.fixed(t, places: 6) + " [" + String(tid) + "] " }
        switch e {
        case .attached(let time, let pid, let tid, let inSyscall):
            return style.dim(stamp(time, tid) + "attached (pid \(pid))" + (inSyscall.map { ", in " + TraceText.call($0) } ?? ""))
        case .syscall(let s):
            var out = TraceBytes()
            out.syscallLine(s, style: style)
            return out.string
        case .signal(let time, let tid, let sig):
            return stamp(time, tid) + "--- " + signalName(sig) + " ---"
        case .groupStop(let time, let tid, let sig):
            return stamp(time, tid) + "--- stopped by " + signalName(sig) + " ---"
        case .newTask(let time, let parent, let tid, let isThread):
            return style.dim(stamp(time, parent) + (isThread ? "new thread " : "new process ") + String(tid))
        case .exec(let time, let tid, let former):
            return stamp(time, tid) + "+++ execve" + (former != tid ? " (was thread \(former))" : "") + " +++"
        case .exited(let time, let tid, let status, let signal):
            if let s = signal { return stamp(time, tid) + "+++ killed by " + signalName(s) + " +++" }
            return stamp(time, tid) + "+++ exited with " + String(status ?? 0) + " +++"
        case .detached(let time, let tid):
            return style.dim(stamp(time, tid) + "detached")
        }
    }

    /// The summary: blocking calls first, then by total time.
    public func summary(_ s: TraceSummary) -> [String] {
        var lines: [String] = []
        let why: String
        switch s.endedBy {
        case .duration: why = "duration reached"
        case .interrupted(let sig): why = sig == 0 ? "stopped" : "interrupted by " + signalName(sig)
        case .allExited: why = "every traced thread exited"
        case .outputFailed: why = "output failed"
        }
        lines.append(style.bold("summary") + style.dim(" — \(TraceText.seconds(s.wallSeconds)), \(s.tids.count) thread(s) in \(s.pids.count) process(es), \(why); all detached"))
        var table = Table(headers: ["SYSCALL", "CALLS", "ERRORS", "TOTAL", "MAX", ""], rightAligned: [1, 2, 3, 4])
        for st in s.stats {
            let blocking = st.classes.contains(.blocking) || st.classes.contains(.lock)
            table.add([st.name, String(st.count), String(st.errors), TraceText.shortTime(st.totalSeconds),
                       TraceText.shortTime(st.maxSeconds), blocking ? "blocking" : ""])
        }
        lines += s.stats.isEmpty ? ["  (no system call completed)"] : table.render(style: style)
        return lines
    }
}

/// A line of trace output built as bytes: the tracer's hot path (one line per
/// call) without intermediate strings for numbers and fixed tokens. `TraceText`
/// renders through it, so there is one implementation of the format.
public struct TraceBytes {
    public var bytes: [UInt8] = []

    public init() { bytes.reserveCapacity(128) }

    public var string: String { String(decoding: bytes, as: UTF8.self) }

    @inline(__always) public mutating func put(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }
    @inline(__always) mutating func put(_ s: String) { bytes.append(contentsOf: s.utf8) }

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

    mutating func sgr(_ code: StaticString, _ on: Bool) {
        guard on else { return }
        put("\u{1b}[")
        put(code)
        put("m")
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
    }

    mutating func value(_ v: ArgumentValue) {
        switch v {
        case .int(let i): int(i)
        case .uint(let u): uint(u)
        case .hex(let h): hex(h)
        case .pointer(let p): if p == 0 { put("NULL") } else { hex(p) }
        case .fd(let f): fd(f)
        case .atFdcwd: put("AT_FDCWD")
        default: put(TraceText.value(v))
        }
    }

    mutating func fd(_ f: ResolvedFd) {
        int(Int64(f.fd))
        guard let what = f.what else { return }
        bytes.append(UInt8(ascii: " "))
        switch what {
        case .path(let p): put(terminalSafe(p))
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
        default: put(TraceText.describe(what))
        }
    }

    /// `0.000123 [1234] poll(…) = 0 <3.001234>`.
    public mutating func syscallLine(_ s: TracedSyscall, style: Style) {
        fixed(s.time, places: 6)
        put(" [")
        int(Int64(s.tid))
        put("] ")
        if s.inProgressAtAttach {
            sgr("2", style.color)
            put("<in progress at attach> ")
            sgr("0", style.color)
        }
        call(s.call)
        if s.result == nil {
            put(" = ? ")
            sgr("33", style.color)
            put("<unfinished, ")
            put(TraceText.seconds(s.durationSeconds ?? 0))
            put(" so far>")
            sgr("0", style.color)
        } else {
            put(" = ")
            switch s.result {
            case .value(let v)?:
                if v > 0xffff_ffff || v < -0xffff { hex(UInt64(bitPattern: v)) } else { int(v) }
            case .error(let e, let name)?:
                put("-1 ")
                put(name)
                put(" (errno ")
                int(Int64(e))
                put(")")
            case nil: break
            }
            if let d = s.durationSeconds {
                put(" <")
                fixed(d, places: 6)
                put(">")
            }
        }
    }
}
