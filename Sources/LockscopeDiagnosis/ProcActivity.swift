#if canImport(Glibc)
import Glibc
#endif
import CLockscope
import LockscopeCore
import LockscopeTrace

/// A small /proc sampler for diagnosis: every thread's state, CPU time and
/// current system call, `hz` times a second for the window; at the end the call
/// each thread is in is decoded as far as diagnosis needs it (the descriptors a
/// `poll`/`select`/`read`/`connect` waits on, resolved to paths and sockets through
/// readlink and the process's own /proc/PID/net tables; sleep and futex
/// arguments read with `process_vm_readv`). Stops nothing, never ptraces.
///
/// The tracer's sampler (`SamplerActivity`) is the full version of this, with
/// every argument of every call decoded; this one is the fallback that needs
/// nothing but /proc, and the only one that works on a recorded fixture tree
/// (there, memory cannot be read and `window` is ignored).
public struct ProcActivity: ActivityProvider {
    public var proc: ProcRoot

    public init(proc: ProcRoot = ProcRoot()) { self.proc = proc }

    struct ThreadTrack {
        var tid: Int32
        var samples = 0
        var buckets: [String: Int] = [:]
        var running = 0
        var firstTicks: UInt64?
        var lastTicks: UInt64 = 0
        var state: Character = "?"
        var wchan: String?
        var call: (nr: Int, args: [UInt64])?
        var streakStart: Double = 0
        var lastSeen: Double = 0
    }

    public func activity(pids: [Int32], window: Double, hz: Int, shouldStop: @escaping () -> Bool) -> ActivityResult {
        var out = ActivityResult()
        guard !pids.isEmpty else { return out }
        let live = proc.isLive
        let ticks = Double(max(1, sysconf(Int32(_SC_CLK_TCK))))
        let start = now()
        let end = live ? start + max(0, window) : start
        let interval = 1.0 / Double(max(1, hz))
        var tracks: [Int32: [Int32: ThreadTrack]] = [:]
        var gone = Set<Int32>()
        var rounds = 0
        repeat {
            let t = now()
            for pid in pids where !gone.contains(pid) {
                guard let tids = try? proc.listDirectory("\(pid)/task") else {
                    if rounds == 0 && proc.exists("\(pid)") { out.uninspectable.insert(pid) }
                    gone.insert(pid)
                    continue
                }
                var threads = tracks[pid] ?? [:]
                for tidText in tids {
                    guard let tid = Int32(tidText) else { continue }
                    sample(pid: pid, tid: tid, at: t, into: &threads[tid, default: ThreadTrack(tid: tid)])
                }
                tracks[pid] = threads
            }
            rounds += 1
            if shouldStop() { out.interrupted = true; break }
            let next = start + Double(rounds) * interval
            if next >= end { break }
            sleepUntil(next)
        } while true
        let observed = live ? max(0, now() - start) : 0   // a recorded tree has no window

        for pid in pids {
            guard let threads = tracks[pid], !threads.isEmpty else { continue }
            var decoder = CallDecoder(proc: proc, pid: pid, live: live)
            var acts: [ThreadActivity] = []
            var cpu = 0.0
            let tids = Set(threads.keys)
            for (_, tr) in threads.sorted(by: { $0.key < $1.key }) where tr.samples > 0 {
                let threadCPU = Double(tr.lastTicks - (tr.firstTicks ?? tr.lastTicks)) / ticks
                cpu += threadCPU
                var a = ThreadActivity(tid: tr.tid, state: tr.state, wchan: tr.wchan)
                if tr.state == "D" { a.kernelStack = kernelStack(pid: pid, tid: tr.tid) }
                if let c = tr.call {
                    let decoded = decoder.decode(number: c.nr, args: c.args, threadIds: tids)
                    a.syscall = decoded.name
                    a.call = decoded.call
                    a.decoded = decoded.text
                    a.inCallSeconds = tr.lastSeen - tr.streakStart > 0 ? tr.lastSeen - tr.streakStart : nil
                }
                if rounds > 1 {
                    a.cpuSeconds = threadCPU
                    a.runningFraction = Double(tr.running) / Double(tr.samples)
                }
                a.histogram = tr.buckets.sorted { ($1.value, $0.key) < ($0.value, $1.key) }
                    .map { HistogramBin(label: $0.key, fraction: Double($0.value) / Double(tr.samples)) }
                acts.append(a)
            }
            acts.sort { ($0.tid == pid ? 0 : 1, $0.tid) < ($1.tid == pid ? 0 : 1, $1.tid) }
            out.activity[pid] = ProcessActivity(pid: pid, threads: acts, cpuSeconds: rounds > 1 ? cpu : nil,
                                                windowSeconds: observed, source: live && rounds > 1 ? .procSampler : .snapshot)
        }
        return out
    }

    func sample(pid: Int32, tid: Int32, at t: Double, into tr: inout ThreadTrack) {
        let base = "\(pid)/task/\(tid)"
        guard let statText = try? proc.readText(base + "/stat"), let close = statText.lastIndex(of: ")") else { return }
        let f = statText[statText.index(after: close)...].split(separator: " ")
        guard f.count > 13, let state = f[0].first else { return }
        let cpu = (UInt64(f[11]) ?? 0) + (UInt64(f[12]) ?? 0)
        if tr.firstTicks == nil { tr.firstTicks = cpu }
        tr.lastTicks = cpu
        tr.state = state
        tr.samples += 1
        let sc = (try? proc.readText(base + "/syscall")).map(SyscallFileParser.parse) ?? .unavailable
        var bucket: String
        switch sc {
        case .inSyscall(let nr, let args, _, _):
            bucket = SyscallTable.host.name(of: nr) ?? "syscall_\(nr)"
            if let prev = tr.call, prev.nr == nr, prev.args == args {
                // same call, same arguments: the streak goes on
            } else {
                tr.call = (nr, args)
                tr.streakStart = t
            }
            tr.lastSeen = t
        case .running:
            bucket = "running"
            tr.call = nil
        case .notInSyscall:
            bucket = state == "D" ? "io-wait" : "kernel"
            tr.call = nil
        case .unavailable:
            bucket = "unknown"
        }
        if state == "R" { tr.running += 1; if case .inSyscall = sc {} else { bucket = "running" } }
        if state == "T" || state == "t" { bucket = "stopped" }
        tr.buckets[bucket, default: 0] += 1
        let w = try? proc.readText(base + "/wchan")
        tr.wchan = w.flatMap { $0.isEmpty || $0 == "0" ? nil : $0 }
    }

    /// /proc/PID/task/TID/stack (root only): `[<0>] percpu_rwsem_wait+0x…` → `percpu_rwsem_wait+0x…`.
    func kernelStack(pid: Int32, tid: Int32) -> [String]? {
        guard let text = try? proc.readText("\(pid)/task/\(tid)/stack") else { return nil }
        let frames = text.split(separator: "\n").map { line -> String in
            if let close = line.firstIndex(of: "]") { return String(line[line.index(after: close)...]).trimmingSpaces }
            return String(line)
        }.filter { !$0.isEmpty }
        return frames.isEmpty ? nil : frames
    }

    func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    func sleepUntil(_ t: Double) {
        let d = t - now()
        guard d > 0 else { return }
        var ts = timespec(tv_sec: Int(d), tv_nsec: Int((d - Double(Int(d))) * 1e9))
        var rest = timespec()
        _ = nanosleep(&ts, &rest)
    }
}

/// Decodes one thread's current call from its raw arguments, reading the
/// process's memory (`process_vm_readv`) and descriptors only as needed.
struct CallDecoder {
    let proc: ProcRoot
    let pid: Int32
    let live: Bool
    var sockets: [UInt64: SocketInfo]? = nil

    init(proc: ProcRoot, pid: Int32, live: Bool) {
        self.proc = proc
        self.pid = pid
        self.live = live
    }

    mutating func decode(number: Int, args: [UInt64], threadIds: Set<Int32>) -> (name: String, call: BlockingCall, text: String) {
        let name = SyscallTable.host.name(of: number) ?? "syscall_\(number)"
        let a = args + Array(repeating: 0, count: max(0, 6 - args.count))
        let fd0 = Int32(truncatingIfNeeded: a[0])
        switch name {
        case "flock":
            let op = Int32(truncatingIfNeeded: a[1])
            let kind = op & LOCK_EX != 0 ? "LOCK_EX" : (op & LOCK_SH != 0 ? "LOCK_SH" : "LOCK_UN")
            let path = target(fd0).flatMap { if case .file(let p) = $0 { return p } else { return nil } }
            let text = "flock(\(fdText(fd0)), \(kind)\(op & LOCK_NB != 0 ? "|LOCK_NB" : ""))"
            if op & LOCK_NB == 0 && kind != "LOCK_UN" { return (name, .lock(fd: fd0, file: nil, path: path, operation: kind), text) }
            return (name, .other, text)
        case "fcntl":
            let cmd = Int32(truncatingIfNeeded: a[1])
            let names: [Int32: String] = [5: "F_GETLK", 6: "F_SETLK", 7: "F_SETLKW", 36: "F_OFD_GETLK", 37: "F_OFD_SETLK", 38: "F_OFD_SETLKW"]
            let cname = names[cmd] ?? String(cmd)
            let text = "fcntl(\(fdText(fd0)), \(cname), …)"
            if cmd == 7 || cmd == 38 { return (name, .lock(fd: fd0, file: nil, path: nil, operation: cname), text) }
            return (name, .other, text)
        case "wait4":
            let p = Int32(truncatingIfNeeded: a[0])
            return (name, .waitChild(pid: p > 0 ? p : nil), "wait4(\(p), …)")
        case "waitid":
            let idtype = a[0], id = Int32(truncatingIfNeeded: a[1])
            return (name, .waitChild(pid: idtype == 1 ? id : nil), "waitid(\(idtype == 1 ? "P_PID, \(id)" : "P_ALL"), …)")
        case "nanosleep":
            let s = timespecSeconds(at: a[0])
            return (name, .sleep(seconds: s), "nanosleep(\(s.map { durationText($0) } ?? "?"))")
        case "clock_nanosleep":
            let abs = a[1] & 1 != 0
            let s = abs ? nil : timespecSeconds(at: a[2])
            return (name, .sleep(seconds: s), "clock_nanosleep(\(abs ? "TIMER_ABSTIME" : (s.map { durationText($0) } ?? "?")))")
        case "pause":
            return (name, .sleep(seconds: nil), "pause()")
        case "futex":
            let op = Int32(truncatingIfNeeded: a[1]) & 0x7f
            let word = readU32(at: a[0])
            var owner: Int32? = nil
            if let w = word {
                let tid = Int32(bitPattern: w & 0x3fff_ffff)
                // PI futexes (LOCK_PI = 6, WAIT_REQUEUE_PI = 11, LOCK_PI2 = 13) hold the owner's tid;
                // pthread_join waits on the joined thread's tid.
                if tid > 0 && ([6, 11, 13].contains(op) || threadIds.contains(tid)) { owner = tid }
            }
            let text = "futex(0x\(String(a[0], radix: 16))\(word.map { " [\($0)]" } ?? ""), op \(op))"
            if [0, 6, 9, 11, 13].contains(op) { return (name, .futex(address: a[0], ownerTid: owner), text) }
            return (name, .other, text)
        case "poll", "ppoll":
            let nfds = Int(min(a[1], 64))
            var timeoutMs: Int? = nil
            if name == "poll" {
                let t = Int32(truncatingIfNeeded: a[2])
                timeoutMs = t >= 0 ? Int(t) : nil
            } else if a[2] != 0 {
                timeoutMs = timespecSeconds(at: a[2]).map { Int(($0 * 1000).rounded()) }
            }
            if nfds == 0 { return (name, .sleep(seconds: timeoutMs.map { Double($0) / 1000 }), "\(name)([], 0, \(timeoutMs.map { "\($0) ms" } ?? "∞"))") }
            var fds: [(Int32, Int16)] = []
            if let bytes = read(at: a[0], count: nfds * 8) {
                for i in 0..<nfds {
                    let fd = bytes.withUnsafeBytes { $0.load(fromByteOffset: i * 8, as: Int32.self) }
                    let ev = bytes.withUnsafeBytes { $0.load(fromByteOffset: i * 8 + 4, as: Int16.self) }
                    fds.append((fd, ev))
                }
            }
            var waited: [WaitedFd] = []
            var items: [String] = []
            for (fd, ev) in fds {
                waited.append(WaitedFd(fd: fd, target: target(fd)))
                items.append("{fd=\(fdText(fd)), \(events(ev))}")
            }
            let list = items.joined(separator: ", ")
            let text = "\(name)([\(list)], \(nfds), \(timeoutMs.map { "\($0) ms" } ?? "∞"))"
            return (name, .io(fds: waited, timeoutMs: timeoutMs), text)
        case "select", "pselect6":
            let nfds = Int(min(a[0], 1024))
            var fds: [Int32] = []
            for set in [a[1], a[2]] where set != 0 {
                if let bytes = read(at: set, count: (nfds + 63) / 64 * 8) {
                    for fd in 0..<nfds where bytes[fd / 8] & UInt8(1 << (fd % 8)) != 0 && !fds.contains(Int32(fd)) {
                        fds.append(Int32(fd))
                    }
                }
            }
            if nfds == 0 || (fds.isEmpty && live) { return (name, .sleep(seconds: nil), "\(name)(0, …)") }
            var waited: [WaitedFd] = []
            var shown: [String] = []
            for fd in fds {
                waited.append(WaitedFd(fd: fd, target: target(fd)))
                shown.append(fdText(fd))
            }
            return (name, .io(fds: waited, timeoutMs: nil), "\(name)(\(nfds), [\(shown.joined(separator: " "))], …)")
        case "read", "pread64", "recvfrom", "recvmsg", "recvmmsg", "connect", "sendto", "sendmsg", "sendmmsg",
             "accept", "accept4", "write", "epoll_wait", "epoll_pwait", "epoll_pwait2":
            return (name, .io(fds: [WaitedFd(fd: fd0, target: target(fd0))], timeoutMs: nil), "\(name)(\(fdText(fd0)), …)")
        default:
            return (name, .other, name + "(…)")
        }
    }

    // MARK: descriptors

    mutating func target(_ fd: Int32) -> FdTarget? {
        guard fd >= 0, let link = try? proc.readLink("\(pid)/fd/\(fd)") else { return nil }
        if link.hasPrefix("socket:["), let inode = UInt64(link.dropFirst(8).dropLast()) {
            if sockets == nil { sockets = NetTableReader.read(pid: pid, proc: proc) }
            if let s = sockets?[inode] { return .socket(s) }
            return .other(link)
        }
        if link.hasPrefix("pipe:") { return .pipe(link) }
        if link.hasPrefix("/") { return .file(link) }
        return .other(link)
    }

    mutating func fdText(_ fd: Int32) -> String {
        guard let t = target(fd) else { return String(fd) }
        return "\(fd) " + t.description
    }

    func events(_ e: Int16) -> String {
        let set = pollEventNames(UInt16(bitPattern: e))
        return set.isEmpty ? "0" : set.joined(separator: "|")
    }

    // MARK: memory

    func read(at address: UInt64, count: Int) -> [UInt8]? {
        guard live, address != 0, count > 0 else { return nil }
        var buf = [UInt8](repeating: 0, count: count)
        let n = buf.withUnsafeMutableBytes { cls_process_vm_read(pid, $0.baseAddress!, count, address) }
        return n == count ? buf : nil
    }

    func readU32(at address: UInt64) -> UInt32? {
        read(at: address, count: 4).map { b in b.withUnsafeBytes { $0.load(as: UInt32.self) } }
    }

    func timespecSeconds(at address: UInt64) -> Double? {
        guard let b = read(at: address, count: 16) else { return nil }
        let sec = b.withUnsafeBytes { $0.load(fromByteOffset: 0, as: Int64.self) }
        let nsec = b.withUnsafeBytes { $0.load(fromByteOffset: 8, as: Int64.self) }
        return Double(sec) + Double(nsec) / 1e9
    }
}

/// /proc/PID/net/{tcp,tcp6,udp,udp6,unix} by socket inode (the tables of the
/// process's own network namespace).
enum NetTableReader {
    static func read(pid: Int32, proc: ProcRoot) -> [UInt64: SocketInfo] {
        var out: [UInt64: SocketInfo] = [:]
        for (file, proto) in [("udp", "UDP"), ("udp6", "UDP6"), ("tcp", "TCP"), ("tcp6", "TCP6")] {
            guard let text = try? proc.readText("\(pid)/net/\(file)") else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let f = line.split(separator: " ")
                guard f.count > 9, let inode = UInt64(f[9]) else { continue }
                let local = endpoint(f[1]), remote = endpoint(f[2])
                let connected = remote.map { $0.port != 0 } ?? false
                out[inode] = SocketInfo(proto: proto, localAddress: local?.address, localPort: local?.port,
                                        remoteAddress: connected ? remote?.address : nil,
                                        remotePort: connected ? remote?.port : nil,
                                        state: proto.hasPrefix("TCP") ? tcpState(f[3]) : nil)
            }
        }
        if let text = try? proc.readText("\(pid)/net/unix") {
            for line in text.split(separator: "\n").dropFirst() {
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                guard f.count >= 7, let inode = UInt64(f[6]) else { continue }
                out[inode] = SocketInfo(proto: "UNIX", path: f.count > 7 ? String(f[7]) : nil)
            }
        }
        return out
    }

    /// `0100007F:0035` → 127.0.0.1, 53 (each 32-bit word in host byte order).
    static func endpoint(_ text: Substring) -> (address: String, port: Int)? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1], radix: 16) else { return nil }
        let hex = Array(parts[0])
        var bytes: [UInt8] = []
        var i = 0
        while i + 1 < hex.count {
            guard let b = UInt8(String(hex[i...i + 1]), radix: 16) else { return nil }
            bytes.append(b)
            i += 2
        }
        // Each 4-byte word is printed as a host-order (little-endian) integer.
        var ordered: [UInt8] = []
        for w in stride(from: 0, to: bytes.count, by: 4) { ordered += bytes[w..<min(w + 4, bytes.count)].reversed() }
        if ordered.count == 4 { return (ordered.map(String.init).joined(separator: "."), port) }
        if ordered.count == 16 {
            if ordered[0..<10].allSatisfy({ $0 == 0 }) && ordered[10] == 0xff && ordered[11] == 0xff {
                return (ordered[12...].map(String.init).joined(separator: "."), port)
            }
            var groups: [String] = []
            for g in stride(from: 0, to: 16, by: 2) { groups.append(String(UInt16(ordered[g]) << 8 | UInt16(ordered[g + 1]), radix: 16)) }
            return (compress(groups), port)
        }
        return nil
    }

    /// RFC 5952: the longest run of zero groups becomes `::`.
    static func compress(_ groups: [String]) -> String {
        var best = (start: -1, len: 0), cur = (start: -1, len: 0)
        for (i, g) in groups.enumerated() {
            if g == "0" { cur = cur.start < 0 ? (i, 1) : (cur.start, cur.len + 1); if cur.len > best.len { best = cur } } else { cur = (-1, 0) }
        }
        guard best.len > 1 else { return groups.joined(separator: ":") }
        let head = groups[..<best.start].joined(separator: ":"), tail = groups[(best.start + best.len)...].joined(separator: ":")
        return head + "::" + tail
    }

    static func tcpState(_ hex: Substring) -> String? {
        let names = ["", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE",
                     "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING"]
        guard let n = Int(hex, radix: 16), n > 0, n < names.count else { return nil }
        return names[n]
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
