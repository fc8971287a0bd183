/// Pure parsers for per-process /proc files (proc_pid_stat(5), proc_pid_status(5),
/// proc_pid_syscall(5)). They take text and return values so they can be tested
/// on recorded data; `ProcessReader` does the reading.

/// The fields of /proc/PID/stat (or task/TID/stat) lockscope uses.
public struct StatFields: Sendable, Hashable {
    public var pid: Int32
    public var comm: String
    public var state: Character
    public var ppid: Int32
    public var pgrp: Int32
    public var utime: UInt64
    public var stime: UInt64
    /// Field 22: start time in clock ticks after boot.
    public var startTicks: UInt64
    public var threads: Int

    /// `pid (comm) S ppid pgrp ...`. comm may contain spaces and parentheses, so the
    /// fields resume after the *last* `)` (fs/proc/array.c `do_task_stat()`).
    public static func parse(_ text: String) -> StatFields? {
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")") , open < close else { return nil }
        guard let pid = Int32(text[text.startIndex..<open].trimmingSpaces) else { return nil }
        let comm = String(text[text.index(after: open)..<close])
        let rest = text[text.index(after: close)...].split(separator: " ")
        // rest[0] is field 3 (state); field n is rest[n - 3].
        guard rest.count >= 20, let state = rest[0].first,
              let ppid = Int32(rest[1]), let pgrp = Int32(rest[2]),
              let utime = UInt64(rest[11]), let stime = UInt64(rest[12]),
              let threads = Int(rest[17]), let start = UInt64(rest[19])
        else { return nil }
        return StatFields(pid: pid, comm: comm, state: state, ppid: ppid, pgrp: pgrp, utime: utime, stime: stime,
                          startTicks: start, threads: threads)
    }
}

/// The fields of /proc/PID/status lockscope uses.
public struct StatusFields: Sendable, Hashable {
    public var uid: UInt32?
    public var tracerPid: Int32 = 0
    /// `NSpid:` — the pid in each nested pid namespace, outermost first.
    public var nsPids: [Int32] = []

    public static func parse(_ text: String) -> StatusFields {
        var s = StatusFields()
        for line in text.split(separator: "\n") {
            if line.hasPrefix("Uid:") {
                s.uid = line.dropFirst(4).split(whereSeparator: { $0 == "\t" || $0 == " " }).first.flatMap { UInt32($0) }
            } else if line.hasPrefix("TracerPid:") {
                s.tracerPid = Int32(line.dropFirst(10).trimmingSpaces) ?? 0
            } else if line.hasPrefix("NSpid:") {
                s.nsPids = line.dropFirst(6).split(whereSeparator: { $0 == "\t" || $0 == " " }).compactMap { Int32($0) }
            }
        }
        return s
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

/// A container hint from /proc/PID/cgroup: the 64-hex-digit id docker, containerd,
/// podman and kubelet put in their cgroup names, shortened to 12 like `docker ps`.
public func containerHint(fromCgroup text: String) -> String? {
    for line in text.split(separator: "\n") {
        guard let path = line.split(separator: ":", maxSplits: 2).last else { continue }
        for component in path.split(separator: "/") {
            var name = Substring(component)
            for prefix in ["docker-", "cri-containerd-", "crio-", "libpod-"] where name.hasPrefix(prefix) {
                name = name.dropFirst(prefix.count)
            }
            if name.hasSuffix(".scope") { name = name.dropLast(6) }
            if name.count == 64, name.allSatisfy({ $0.isHexDigit }) {
                let runtime = component.hasPrefix("libpod-") ? "podman" : (component.hasPrefix("crio-") ? "cri-o" : "container")
                return runtime + " " + String(name.prefix(12))
            }
        }
    }
    return nil
}

extension StringProtocol {
    var trimmingSpaces: Substring {
        let s = self[...]
        let start = s.firstIndex(where: { !$0.isWhitespace }) ?? s.endIndex
        let end = s.lastIndex(where: { !$0.isWhitespace }).map { s.index(after: $0) } ?? s.endIndex
        return start < end ? Substring(s[start..<end]) : ""
    }
}
