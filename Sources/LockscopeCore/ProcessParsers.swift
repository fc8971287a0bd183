/// Pure parsers for per-process /proc files (proc_pid_stat(5), proc_pid_status(5),
/// proc_pid_syscall(5)). They take text and return values so they can be tested
/// on recorded data; `ProcessReader` does the reading.

/// The fields of /proc/PID/stat (or task/TID/stat) lockscope uses. The one parser
/// of that file: the scanner, the sampler (on its reused buffer), the diagnosis and
/// the tests all ask it.
public struct StatFields: Sendable, Hashable {
    public var pid: Int32
    public var comm: String
    public var state: Character
    public var ppid: Int32
    public var pgrp: Int32
    /// Field 9: the kernel's `PF_*` flags.
    public var flags: UInt64
    public var utime: UInt64
    public var stime: UInt64
    /// Field 22: start time in clock ticks after boot.
    public var startTicks: UInt64
    public var threads: Int
    /// Field 39: the CPU it last ran on (`task_cpu()`; of the leader in /proc/PID/stat);
    /// nil when the line ends before it.
    public var processor: Int? = nil

    /// `PF_KTHREAD` (include/linux/sched.h): a kernel thread, with no user space.
    public var isKernelThread: Bool { flags & 0x0020_0000 != 0 }

    /// `pid (comm) S ppid pgrp ...`. comm may contain spaces and parentheses, so the
    /// fields resume after the *last* `)` (fs/proc/array.c `do_task_stat()`).
    public static func parse(_ text: String) -> StatFields? {
        var t = text
        return t.withUTF8 { parse(UnsafeRawBufferPointer($0)) }
    }

    /// The same, from bytes in place (no allocation: comm fits a small string).
    public static func parse(_ b: UnsafeRawBufferPointer) -> StatFields? {
        guard let open = b.firstIndex(of: UInt8(ascii: "(")), let close = b.lastIndex(of: UInt8(ascii: ")")),
              open < close, close + 2 < b.count, let pid = number(b, 0..<open)
        else { return nil }
        // Field 3 is the state; then space-separated numbers, field n ending at the nth space.
        let comm = String(decoding: UnsafeRawBufferPointer(rebasing: b[(open + 1)..<close]), as: UTF8.self)
        var f = StatFields(pid: Int32(truncatingIfNeeded: pid), comm: comm, state: Character(Unicode.Scalar(b[close + 2])),
                           ppid: 0, pgrp: 0, flags: 0, utime: 0, stime: 0, startTicks: 0, threads: 0)
        var field = 4
        var start = close + 4
        var i = start
        while field <= 39 {
            // A line that ends after field 22 still parses (only `processor` is then nil).
            guard i <= b.count else { return field > 22 ? f : nil }
            if i < b.count && b[i] != UInt8(ascii: " ") && b[i] != 10 { i += 1; continue }
            switch field {
            case 39:
                f.processor = number(b, start..<i).flatMap { Int(exactly: $0) }.flatMap { $0 >= 0 ? $0 : nil }
            case 4, 5, 9, 14, 15, 20, 22:
                guard let v = number(b, start..<i) else { return nil }
                switch field {
                case 4: f.ppid = Int32(truncatingIfNeeded: v)
                case 5: f.pgrp = Int32(truncatingIfNeeded: v)
                case 9: f.flags = UInt64(bitPattern: v)
                case 14: f.utime = UInt64(bitPattern: v)
                case 15: f.stime = UInt64(bitPattern: v)
                case 20: f.threads = Int(v)
                default: f.startTicks = UInt64(bitPattern: v)
                }
            default: break
            }
            field += 1
            i += 1
            start = i
        }
        return f
    }

    /// A decimal number, optionally negative, with surrounding spaces; or nil.
    private static func number(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Int64? {
        var lo = r.lowerBound, hi = r.upperBound
        while lo < hi && b[lo] == UInt8(ascii: " ") { lo += 1 }
        while hi > lo && b[hi - 1] == UInt8(ascii: " ") { hi -= 1 }
        let negative = lo < hi && b[lo] == UInt8(ascii: "-")
        if negative { lo += 1 }
        guard lo < hi else { return nil }
        var v: Int64 = 0
        for i in lo..<hi {
            guard b[i] >= UInt8(ascii: "0") && b[i] <= UInt8(ascii: "9") else { return nil }
            v = v &* 10 &+ Int64(b[i] - UInt8(ascii: "0"))
        }
        return negative ? 0 &- v : v  // wrapping: -Int64.min traps, and a fixture may hold any digits
    }
}

/// The fields of /proc/PID/status lockscope uses: the one parser of that file, so
/// the process reader, the tracers and the lease facts share one pass over it.
public struct StatusFields: Sendable, Hashable {
    public var uid: UInt32?
    public var tracerPid: Int32 = 0
    /// `NSpid:` — the pid in each nested pid namespace, outermost first.
    public var nsPids: [Int32] = []
    /// `SigBlk`/`SigIgn`/`SigCgt`; nil without a `SigCgt:` line (not a status file).
    public var signalMasks: SignalMasks?

    /// The ~55 lines are found by their bytes and only the few lines lockscope reads
    /// are looked at as characters: splitting the whole file by `Character` cost
    /// ~0.9 M instructions per call. A line ends at LF, as fs/proc/array.c writes
    /// it — even after a CR, which `Name:` may hold raw (the comm is escaped only
    /// for `\n` and `\\`: `proc_task_name()`).
    public static func parse(_ text: String) -> StatusFields {
        var s = StatusFields()
        var masks = SignalMasks()
        var caughtSeen = false
        text.forEachLine { line in
            switch line.utf8.first {
            case UInt8(ascii: "U"):
                if line.hasPrefix("Uid:") {
                    s.uid = line.dropFirst(4).split(whereSeparator: { $0 == "\t" || $0 == " " }).first.flatMap { UInt32($0) }
                }
            case UInt8(ascii: "T"):
                if line.hasPrefix("TracerPid:") { s.tracerPid = Int32(line.dropFirst(10).trimmingSpaces) ?? 0 }
            case UInt8(ascii: "N"):
                if line.hasPrefix("NSpid:") {
                    s.nsPids = line.dropFirst(6).split(whereSeparator: { $0 == "\t" || $0 == " " }).compactMap { Int32($0) }
                }
            case UInt8(ascii: "S"):
                // SigBlk, SigIgn, SigCgt: 64-bit hex (fs/proc/array.c `task_sig()`).
                guard line.utf8.starts(with: "Sig".utf8), let colon = line.firstIndex(of: ":") else { return }
                let value = UInt64(line[line.index(after: colon)...].trimmingSpaces, radix: 16)
                switch line[line.startIndex..<colon] {
                case "SigBlk": masks.blocked = value ?? 0
                case "SigIgn": masks.ignored = value ?? 0
                case "SigCgt": masks.caught = value ?? 0; caughtSeen = value != nil
                default: return
                }
            default: return
            }
        }
        s.signalMasks = caughtSeen ? masks : nil
        return s
    }
}

extension String {
    /// Calls `body` with each non-empty line, split at LF bytes: one scan of the
    /// UTF-8, where `split(separator: "\n")` would segment every `Character`.
    func forEachLine(_ body: (Substring) -> Void) {
        let bytes = utf8
        var start = bytes.startIndex
        while start < bytes.endIndex {
            let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.endIndex
            if start < end { body(self[start..<end]) }
            start = end < bytes.endIndex ? bytes.index(after: end) : end
        }
    }
}

public enum SyscallFileParser {
    /// /proc/PID/task/TID/syscall: `NR a0 a1 a2 a3 a4 a5 SP PC` in hex args, or
    /// `-1 SP PC` (blocked, not in a syscall), or `running`
    /// (`proc_pid_syscall()` in fs/proc/base.c).
    public static func parse(_ text: String) -> SyscallState {
        let trimmed = text.trimmingSpaces
        if trimmed == "running" { return .running }
        let parts = trimmed.split(separator: " ")
        guard let nr = Int(parts.first ?? "") else { return .unavailable }
        if nr < 0 { return .notInSyscall }
        guard parts.count >= 9 else { return .unavailable }
        var args: [UInt64] = []
        args.reserveCapacity(6)
        for p in parts[1...6] {
            guard let v = parseHex(p) else { return .unavailable }
            args.append(v)
        }
        guard let sp = parseHex(parts[7]), let pc = parseHex(parts[8]) else { return .unavailable }
        return .inSyscall(number: nr, args: args, stackPointer: sp, programCounter: pc)
    }

    static func parseHex(_ s: Substring) -> UInt64? {
        s.hasPrefix("0x") ? UInt64(s.dropFirst(2), radix: 16) : UInt64(s, radix: 16)
    }
}

extension StringProtocol {
    var trimmingSpaces: Substring {
        let s = self[...]
        let start = s.firstIndex(where: { !$0.isWhitespace }) ?? s.endIndex
        let end = s.lastIndex(where: { !$0.isWhitespace }).map { s.index(after: $0) } ?? s.endIndex
        return start < end ? Substring(s[start..<end]) : ""
    }
}
