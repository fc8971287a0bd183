import LockscopeCore

/// Turns a system-call number and its six argument registers into a
/// `DecodedSyscall`, reading pointed-to memory and resolving descriptors through
/// the two closures it is given (live: `process_vm_readv` and `FdResolver`;
/// tests: fakes). Never prints; never stops the thread.
public struct SyscallDecoder {
    public let table: SyscallTable
    /// Reads `count` bytes at an address of the tracee.
    public var readMemory: (UInt64, Int) -> Result<[UInt8], RemoteReadError>
    /// What a descriptor of the tracee is (nil: unknown).
    public var describeFd: (Int32) -> FdDescription?
    /// At most this many pollfd entries / fd_set bits are decoded.
    public var maxItems = 64

    public init(table: SyscallTable = .host,
                readMemory: @escaping (UInt64, Int) -> Result<[UInt8], RemoteReadError>,
                describeFd: @escaping (Int32) -> FdDescription?) {
        self.table = table
        self.readMemory = readMemory
        self.describeFd = describeFd
    }

    /// A decoder for a live thread: memory through `process_vm_readv(tid)`,
    /// descriptors through `resolver` (of process `pid`).
    public static func live(pid: Int32, tid: Int32, resolver: FdResolver, table: SyscallTable = .host) -> SyscallDecoder {
        var memory = RemoteMemory(pid: tid)
        return SyscallDecoder(table: table,
                              readMemory: { memory.read($0, count: $1) },
                              describeFd: { resolver.resolve(pid: pid, fd: $0) })
    }

    /// Decodes call `number` with raw `args` (six registers; fewer are padded with 0).
    public func decode(number: Int, args rawArgs: [UInt64]) -> DecodedSyscall {
        var raw = rawArgs
        while raw.count < 6 { raw.append(0) }
        guard let info = table[number] else {
            return DecodedSyscall(arch: table.arch, number: number, name: "syscall_\(number)", classes: [],
                                  args: raw.enumerated().map { DecodedArgument(name: "arg\($0.offset)", value: .hex($0.element)) },
                                  raw: raw)
        }
        guard let sig = info.args else {
            return DecodedSyscall(arch: table.arch, number: number, name: info.name, classes: info.classes,
                                  args: raw.enumerated().map { DecodedArgument(name: "arg\($0.offset)", value: .hex($0.element)) },
                                  raw: raw)
        }
        var out: [DecodedArgument] = []
        out.reserveCapacity(sig.count)
        for (i, a) in sig.enumerated() {
            let v = value(a.kind, name: a.name, index: i, raw: raw, call: info.name)
            // fcntl's third argument is named for what it turned out to be.
            if case .flock = v { out.append(DecodedArgument(name: "lock", value: v)); continue }
            out.append(DecodedArgument(name: a.name, value: v))
        }
        return DecodedSyscall(arch: table.arch, number: number, name: info.name, classes: info.classes, args: out, raw: raw)
    }

    /// Re-reads output arguments after the call returned (poll's `revents`).
    public func updateAtExit(_ call: inout DecodedSyscall, result: Int64) {
        guard result > 0, call.name == "poll" || call.name == "ppoll",
              let index = call.args.firstIndex(where: { $0.name == "fds" }),
              case .pollFds(var fds) = call.args[index].value,
              case .success(let bytes) = readMemory(call.raw[0], fds.count * 8) else { return }
        for i in fds.indices { fds[i].revents = bytes.le(i * 8 + 6, as: UInt16.self) }
        call.args[index].value = .pollFds(fds)
    }

    // MARK: - Per kind

    private static let wideInts: Set<String> = ["offset", "length", "len", "pos_l", "pos_h", "nbytes", "msgtyp"]

    private func fd(_ r: UInt64) -> ResolvedFd {
        let n = Int32(truncatingIfNeeded: r)
        return ResolvedFd(fd: n, what: n >= 0 ? describeFd(n) : nil)
    }

    private func value(_ kind: ArgKind, name: String, index i: Int, raw: [UInt64], call: String) -> ArgumentValue {
        let r = raw[i]
        switch kind {
        case .int:
            return .int(Self.wideInts.contains(name) ? Int64(bitPattern: r) : Int64(Int32(truncatingIfNeeded: r)))
        case .uint: return .uint(r)
        case .hex: return .hex(r)
        case .ptr: return .pointer(r)
        case .fd: return .fd(fd(r))
        case .dirfd:
            return Int32(truncatingIfNeeded: r) == -100 ? .atFdcwd : .fd(fd(r))
        case .pid: return .int(Int64(Int32(truncatingIfNeeded: r)))
        case .path: return string(at: r)
        case .pollfds: return pollFds(at: r, count: i + 1 < raw.count ? raw[i + 1] : 0)
        case .pollTimeoutMs, .epollTimeoutMs:
            let ms = Int32(truncatingIfNeeded: r)
            return .timeout(ms < 0 ? .infinite : .relative(nanoseconds: Int64(ms) * 1_000_000))
        case .fdSet: return fdSet(at: r, nfds: Int(Int32(truncatingIfNeeded: raw[0])))
        case .timespec: return timespec(at: r).map { .timeout($0) } ?? unreadable(r)
        case .timeval:
            if r == 0 { return .timeout(.infinite) }
            guard case .success(let b) = readMemory(r, 16) else { return unreadable(r) }
            return .timeout(.relative(nanoseconds: b.le(0, as: Int64.self) &* 1_000_000_000 &+ b.le(8, as: Int64.self) &* 1000))
        case .sleepTimespec:
            let absolute = raw[1] & 1 != 0  // TIMER_ABSTIME
            guard case .timeout(let t)? = timespec(at: r).map({ ArgumentValue.timeout($0) }) else { return unreadable(r) }
            if absolute, case .relative(let ns) = t {
                return .timeout(.absolute(clock: Int32(truncatingIfNeeded: raw[0]), nanoseconds: ns))
            }
            return .timeout(t)
        case .sockaddr:
            if r == 0 { return .pointer(0) }
            let len = Int(min(i + 1 < raw.count ? raw[i + 1] : 16, 128))
            guard len >= 2, case .success(let b) = readMemory(r, len) else { return unreadable(r) }
            return .socketAddress(Self.sockaddr(b))
        case .flockOp: return .flockOperation(FlockOperation(raw: Int64(Int32(truncatingIfNeeded: r))))
        case .fcntlCmd:
            let c = Int32(truncatingIfNeeded: r)
            return .fcntlCommand(FcntlCommand(raw: c, name: FcntlCmd.name(c) ?? String(c)))
        case .fcntlArg:
            let cmd = FcntlCommand(raw: Int32(truncatingIfNeeded: raw[1]), name: "")
            if cmd.takesFlock {
                guard case .success(let b) = readMemory(r, 32) else { return unreadable(r) }
                return .flock(FlockRecord(type: b.le(0, as: Int16.self), whence: b.le(2, as: Int16.self),
                                          start: b.le(8, as: Int64.self), length: b.le(16, as: Int64.self),
                                          pid: b.le(24, as: Int32.self)))
            }
            switch cmd.raw {
            case 0, 1030: return .int(Int64(Int32(truncatingIfNeeded: r)))       // F_DUPFD, F_DUPFD_CLOEXEC
            case 2: return .flags(Self.flags(r, [(1, "FD_CLOEXEC")]))              // F_SETFD
            case 4: return .flags(Self.openFlags(r, arch: table.arch))             // F_SETFL
            default: return .hex(r)
            }
        case .futexAddr:
            if case .success(let b) = readMemory(r, 4) { return .futexWord(address: r, value: b.le(0, as: UInt32.self)) }
            return .futexWord(address: r, value: nil)
        case .futexOp: return .futexOperation(Self.futexOperation(Int32(truncatingIfNeeded: r)))
        case .futexTimeout:
            let op = Self.futexOperation(Int32(truncatingIfNeeded: raw[1]))
            switch op.command {
            case "FUTEX_WAIT":
                return timespec(at: r).map { .timeout($0) } ?? unreadable(r)
            case "FUTEX_WAIT_BITSET", "FUTEX_LOCK_PI", "FUTEX_LOCK_PI2", "FUTEX_WAIT_REQUEUE_PI":
                guard let t = timespec(at: r) else { return unreadable(r) }
                if case .relative(let ns) = t {
                    let clock: Int32 = op.realtime || op.command == "FUTEX_LOCK_PI" ? 0 : 1
                    return .timeout(.absolute(clock: clock, nanoseconds: ns))
                }
                return .timeout(t)
            default:
                return .uint(r)  // val2
            }
        case .waitPid:
            let p = Int32(truncatingIfNeeded: r)
            switch p {
            case -1: return .waitTarget(.anyChild)
            case 0: return .waitTarget(.ownProcessGroup)
            case ..<0: return .waitTarget(.processGroup(-p))
            default: return .waitTarget(.child(p))
            }
        case .waitIdType:
            let id = Int32(truncatingIfNeeded: i + 1 < raw.count ? raw[i + 1] : 0)
            switch r {
            case 0: return .waitTarget(.anyChild)
            case 1: return .waitTarget(.child(id))
            case 2: return .waitTarget(id == 0 ? .ownProcessGroup : .processGroup(id))
            case 3: return .waitTarget(.pidfd(id))
            default: return .int(Int64(Int32(truncatingIfNeeded: r)))
            }
        case .waitOptions:
            return .flags(Self.flags(r, [(1, "WNOHANG"), (2, "WUNTRACED"), (4, "WEXITED"), (8, "WCONTINUED"),
                                         (0x0100_0000, "WNOWAIT"), (0x2000_0000, "__WNOTHREAD"),
                                         (0x4000_0000, "__WALL"), (0x8000_0000, "__WCLONE")]))
        case .openFlags: return .flags(Self.openFlags(r, arch: table.arch))
        case .mode: return .uint(r & 0o7777)  // renderers show `mode`/`mask` arguments in octal
        case .signal: return .signal(Int32(truncatingIfNeeded: r))
        case .clockid: return .clock(Int32(truncatingIfNeeded: r))
        case .msgFlags:
            return .flags(Self.flags(r, [(1, "MSG_OOB"), (2, "MSG_PEEK"), (4, "MSG_DONTROUTE"), (8, "MSG_CTRUNC"),
                                         (0x20, "MSG_TRUNC"), (0x40, "MSG_DONTWAIT"), (0x80, "MSG_EOR"),
                                         (0x100, "MSG_WAITALL"), (0x4000, "MSG_NOSIGNAL"), (0x8000, "MSG_MORE"),
                                         (0x10000, "MSG_WAITFORONE"), (0x4000_0000, "MSG_CMSG_CLOEXEC")]))
        case .socketDomain:
            let names: [UInt64: String] = [0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET"]
            return .flags(FlagSet(raw: r, names: names[r].map { [$0] } ?? [], unknown: names[r] == nil ? r : 0))
        case .socketType:
            let types: [UInt64: String] = [1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM", 5: "SOCK_SEQPACKET"]
            var set = Self.flags(r & ~0xf, [(0o4000, "SOCK_NONBLOCK"), (0o2000000, "SOCK_CLOEXEC")])
            if let t = types[r & 0xf] { set.names.insert(t, at: 0) } else { set.unknown |= r & 0xf }
            set.raw = r
            return .flags(set)
        }
    }

    private func unreadable(_ address: UInt64) -> ArgumentValue {
        if case .failure(let e) = readMemory(address, 1) { return .unreadable(address: address, errno: e.errno.rawValue) }
        return .pointer(address)
    }

    private func string(at r: UInt64) -> ArgumentValue {
        if r == 0 { return .pointer(0) }
        var out: [UInt8] = []
        var at = r
        let limit = 4096
        while out.count < limit {
            // Small reads that never cross a page: most paths fit in the first one.
            let n = min(Int(4096 - (at & 4095)), limit - out.count, 256)
            switch readMemory(at, n) {
            case .failure(let e):
                if out.isEmpty { return .unreadable(address: r, errno: e.errno.rawValue) }
                return .string(String(decoding: out, as: UTF8.self), truncated: true)
            case .success(let bytes):
                if let nul = bytes.firstIndex(of: 0) {
                    out += bytes[0..<nul]
                    return .string(String(decoding: out, as: UTF8.self), truncated: false)
                }
                out += bytes
                at += UInt64(n)
            }
        }
        return .string(String(decoding: out, as: UTF8.self), truncated: true)
    }

    /// nil when the memory cannot be read; NULL is `.infinite`.
    private func timespec(at r: UInt64) -> SyscallTimeout? {
        if r == 0 { return .infinite }
        guard case .success(let b) = readMemory(r, 16) else { return nil }
        return .relative(nanoseconds: b.le(0, as: Int64.self) &* 1_000_000_000 &+ b.le(8, as: Int64.self))
    }

    private func pollFds(at r: UInt64, count: UInt64) -> ArgumentValue {
        if r == 0 || count == 0 { return .pollFds([]) }
        let n = Int(min(count, UInt64(maxItems)))
        guard case .success(let b) = readMemory(r, n * 8) else { return unreadable(r) }
        var out: [PollFd] = []
        out.reserveCapacity(n)
        for i in 0..<n {
            let f = b.le(i * 8, as: Int32.self)
            out.append(PollFd(fd: ResolvedFd(fd: f, what: f >= 0 ? describeFd(f) : nil), events: b.le(i * 8 + 4, as: UInt16.self)))
        }
        return .pollFds(out)
    }

    private func fdSet(at r: UInt64, nfds: Int) -> ArgumentValue {
        if r == 0 { return .pointer(0) }
        let bits = max(0, min(nfds, 65536))
        let bytes = (bits + 63) / 64 * 8
        if bytes == 0 { return .fdSet([]) }
        guard case .success(let b) = readMemory(r, bytes) else { return unreadable(r) }
        var out: [ResolvedFd] = []
        for f in 0..<bits where b[f / 8] & (1 << (f % 8)) != 0 {
            if out.count >= maxItems { break }
            out.append(fd(UInt64(f)))
        }
        return .fdSet(out)
    }

    // MARK: - Tables (pure, tested)

    /// Decodes a `struct sockaddr` (family in the first two bytes, native order).
    public static func sockaddr(_ b: [UInt8]) -> SocketAddress {
        guard b.count >= 2 else { return .other(family: -1) }
        let family = Int(b.le(0, as: UInt16.self))
        switch family {
        case 2 where b.count >= 8:
            return .inet(NetEndpoint(address: formatIPv4(b[4..<8]), port: Int(b[2]) << 8 | Int(b[3])))
        case 10 where b.count >= 24:
            let scope = b.count >= 28 ? b.le(24, as: UInt32.self) : 0
            return .inet6(NetEndpoint(address: formatIPv6(Array(b[8..<24])), port: Int(b[2]) << 8 | Int(b[3])), scopeID: scope)
        case 1:
            let path = Array(b.dropFirst(2))
            if path.isEmpty { return .unix("") }
            if path[0] == 0 { return .unix("@" + PathText.decode(path.dropFirst())) }
            let end = path.firstIndex(of: 0) ?? path.count
            return .unix(PathText.decode(path[0..<end]))
        case 16 where b.count >= 12:
            return .netlink(pid: b.le(4, as: UInt32.self), groups: b.le(8, as: UInt32.self))
        default:
            return .other(family: family)
        }
    }

    static let futexCommands = ["FUTEX_WAIT", "FUTEX_WAKE", "FUTEX_FD", "FUTEX_REQUEUE", "FUTEX_CMP_REQUEUE",
                                "FUTEX_WAKE_OP", "FUTEX_LOCK_PI", "FUTEX_UNLOCK_PI", "FUTEX_TRYLOCK_PI",
                                "FUTEX_WAIT_BITSET", "FUTEX_WAKE_BITSET", "FUTEX_WAIT_REQUEUE_PI",
                                "FUTEX_CMP_REQUEUE_PI", "FUTEX_LOCK_PI2"]

    public static func futexOperation(_ raw: Int32) -> FutexOperation {
        let cmd = Int(raw & 127)
        return FutexOperation(raw: raw, command: cmd < futexCommands.count ? futexCommands[cmd] : "FUTEX_\(cmd)",
                              isPrivate: raw & 128 != 0, realtime: raw & 256 != 0)
    }

    static func flags(_ r: UInt64, _ table: [(UInt64, String)]) -> FlagSet {
        var names: [String] = []
        var left = r
        for (bit, name) in table where r & bit == bit && bit != 0 {
            names.append(name)
            left &= ~bit
        }
        return FlagSet(raw: r, names: names, unknown: left)
    }

    /// open(2) flags; a few bits differ between x86_64 and the generic (aarch64) ABI.
    public static func openFlags(_ r: UInt64, arch: SyscallArch) -> FlagSet {
        let access = ["O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"][Int(r & 3)]
        var table: [(UInt64, String)] = [
            (0o20200000, "O_TMPFILE"), (0o4010000, "O_SYNC"), (0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"),
            (0o1000, "O_TRUNC"), (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o10000, "O_DSYNC"), (0o20000, "O_ASYNC"),
            (0o1000000, "O_NOATIME"), (0o2000000, "O_CLOEXEC"), (0o10000000, "O_PATH"),
        ]
        switch arch {
        case .x86_64:
            table += [(0o40000, "O_DIRECT"), (0o100000, "O_LARGEFILE"), (0o200000, "O_DIRECTORY"), (0o400000, "O_NOFOLLOW")]
        case .aarch64:
            table += [(0o40000, "O_DIRECTORY"), (0o100000, "O_NOFOLLOW"), (0o200000, "O_DIRECT"), (0o400000, "O_LARGEFILE")]
        }
        var set = flags(r & ~3, table)
        // O_TMPFILE includes O_DIRECTORY and O_SYNC includes O_DSYNC: drop the parts when the whole matched.
        if set.names.contains("O_TMPFILE") { set.names.removeAll { $0 == "O_DIRECTORY" } }
        if set.names.contains("O_SYNC") { set.names.removeAll { $0 == "O_DSYNC" } }
        set.names.insert(access, at: 0)
        set.raw = r
        return set
    }
}

/// `POLLIN|POLLOUT` names for a poll event mask.
public func pollEventNames(_ events: UInt16) -> [String] {
    let table: [(UInt16, String)] = [(0x1, "POLLIN"), (0x2, "POLLPRI"), (0x4, "POLLOUT"), (0x8, "POLLERR"),
                                     (0x10, "POLLHUP"), (0x20, "POLLNVAL"), (0x40, "POLLRDNORM"), (0x80, "POLLRDBAND"),
                                     (0x100, "POLLWRNORM"), (0x200, "POLLWRBAND"), (0x400, "POLLMSG"), (0x2000, "POLLRDHUP")]
    var names: [String] = []
    var left = events
    for (bit, name) in table where events & bit != 0 {
        names.append(name)
        left &= ~bit
    }
    if left != 0 { names.append("0x" + String(left, radix: 16)) }
    return names
}

/// `CLOCK_MONOTONIC` for 1.
public func clockName(_ id: Int32) -> String {
    let names = ["CLOCK_REALTIME", "CLOCK_MONOTONIC", "CLOCK_PROCESS_CPUTIME_ID", "CLOCK_THREAD_CPUTIME_ID",
                 "CLOCK_MONOTONIC_RAW", "CLOCK_REALTIME_COARSE", "CLOCK_MONOTONIC_COARSE", "CLOCK_BOOTTIME",
                 "CLOCK_REALTIME_ALARM", "CLOCK_BOOTTIME_ALARM", "", "CLOCK_TAI"]
    return id >= 0 && Int(id) < names.count && !names[Int(id)].isEmpty ? names[Int(id)] : String(id)
}
