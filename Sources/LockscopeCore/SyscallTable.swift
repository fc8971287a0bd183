import Synchronization

/// System-call tables: number ↔ name per architecture, and per name the argument
/// kinds the decoder uses. Numbers come from the kernel's uapi headers (x86_64:
/// arch/x86/entry/syscalls/syscall_64.tbl → asm/unistd_64.h; aarch64: the generic
/// table include/uapi/asm-generic/unistd.h); a test checks them against the headers
/// installed on the build machine. Signatures are written once, by name, shared
/// by both architectures (the few calls whose argument order differs per
/// architecture, like `clone`, are decoded as raw values).

/// How to decode one argument register.
public enum ArgKind: String, Sendable, Hashable, CaseIterable {
    /// Signed integer.
    case int
    /// Unsigned integer (sizes, counts).
    case uint
    /// Shown in hex (masks, unknown flags).
    case hex
    /// A pointer not followed (output buffers, structs we do not decode).
    case ptr
    case fd
    /// A directory fd that may be `AT_FDCWD`.
    case dirfd
    /// A NUL-terminated path or name in the tracee's memory.
    case path
    /// `struct pollfd *`, the count is the next argument.
    case pollfds
    /// poll's timeout in milliseconds (negative: infinite).
    case pollTimeoutMs
    /// epoll_wait's timeout in ms.
    case epollTimeoutMs
    /// `fd_set *`; the highest fd + 1 is argument 0.
    case fdSet
    /// `const struct timespec *` relative timeout (NULL: infinite).
    case timespec
    /// `struct timeval *` (select).
    case timeval
    /// clock_nanosleep's request: relative, or absolute with TIMER_ABSTIME in arg 1.
    case sleepTimespec
    /// `struct sockaddr *`, the length is the next argument.
    case sockaddr
    /// flock(2)'s operation.
    case flockOp
    /// fcntl(2)'s command.
    case fcntlCmd
    /// fcntl(2)'s third argument (a `struct flock *` for lock commands).
    case fcntlArg
    /// futex's word address (read to show its value).
    case futexAddr
    case futexOp
    /// futex's `val2`/timeout slot (a timespec for WAIT ops).
    case futexTimeout
    /// wait4's pid (-1 any, 0 own group, < -1 a group).
    case waitPid
    /// waitid's (idtype, id) in args 0 and 1.
    case waitIdType
    case waitOptions
    case openFlags
    case mode
    case signal
    case clockid
    case msgFlags
    case pid
    case socketDomain
    case socketType
}

/// One system call.
public struct SyscallInfo: Sendable, Hashable {
    public var number: Int
    public var name: String
    /// Argument names and kinds, in order; nil when the table has no signature
    /// (then all six registers are shown raw).
    public var args: [(name: String, kind: ArgKind)]?
    public var classes: SyscallClass

    public var argumentCount: Int? { args?.count }

    public static func == (a: SyscallInfo, b: SyscallInfo) -> Bool {
        a.number == b.number && a.name == b.name && a.classes == b.classes
            && a.args?.map(\.name) == b.args?.map(\.name) && a.args?.map(\.kind) == b.args?.map(\.kind)
    }
    public func hash(into h: inout Hasher) {
        h.combine(number)
        h.combine(name)
    }
}

/// Number ↔ name for one architecture, with signatures. Naming a call (`list`,
/// `who`: is this thread in `flock`?) reads the static list in `SyscallNumbers`
/// directly; the first lookup of a call's signature or classes (a decoder, a
/// trace filter) builds that call's entry (`LazyInfos`), and later lookups read
/// the stored fields, as a tracer's hot path must.
public struct SyscallTable: Sendable {
    public let arch: SyscallArch

    private init(arch: SyscallArch) { self.arch = arch }

    /// (number, name) in increasing number order.
    private var calls: [(Int, String)] {
        switch arch {
        case .x86_64: return SyscallNumbers.x86_64
        case .aarch64: return SyscallNumbers.aarch64
        }
    }

    private static let x86_64Infos = LazyInfos(calls: SyscallNumbers.x86_64)
    private static let aarch64Infos = LazyInfos(calls: SyscallNumbers.aarch64)

    /// Indexed by number.
    private var infos: LazyInfos {
        switch arch {
        case .x86_64: return Self.x86_64Infos
        case .aarch64: return Self.aarch64Infos
        }
    }

    /// The call with this number, or nil.
    public subscript(number: Int) -> SyscallInfo? { infos[number] }

    /// The number of the call with this name, or nil. A linear scan: callers look
    /// up a handful of names, once.
    public func number(of name: String) -> Int? { calls.first { $0.1 == name }?.0 }

    /// The name of the call with this number, or nil (binary search of `calls`).
    public func name(of number: Int) -> String? { Self.name(of: number, in: calls) }

    fileprivate static func name(of number: Int, in calls: [(Int, String)]) -> String? {
        var low = 0
        var high = calls.count
        while low < high {
            let mid = (low + high) / 2
            if calls[mid].0 < number { low = mid + 1 } else { high = mid }
        }
        return low < calls.count && calls[low].0 == number ? calls[low].1 : nil
    }

    /// Every call, in number order.
    public var all: [SyscallInfo] { calls.compactMap { infos[$0.0] } }

    public static let x86_64 = SyscallTable(arch: .x86_64)
    public static let aarch64 = SyscallTable(arch: .aarch64)

    public static func forArch(_ arch: SyscallArch) -> SyscallTable {
        switch arch {
        case .x86_64: return .x86_64
        case .aarch64: return .aarch64
        }
    }

    /// The machine's own table.
    public static var host: SyscallTable { forArch(.host) }
}

/// One architecture's table by number, each entry built (its signature parsed) on its
/// first lookup: a snapshot's quick diagnosis decodes one or two calls, and parsing all
/// ~370 signatures first cost ~1 M instructions there. A tracer's per-call lookup is an
/// uncontended lock and an array read.
private final class LazyInfos: Sendable {
    /// (number, name) in increasing number order.
    let calls: [(Int, String)]
    /// nil: not looked up yet; .some(nil): no call has this number.
    private let slots: Mutex<[SyscallInfo??]>

    init(calls: [(Int, String)]) {
        self.calls = calls
        slots = Mutex([SyscallInfo??](repeating: nil, count: (calls.last?.0 ?? -1) + 1))
    }

    subscript(number: Int) -> SyscallInfo? {
        slots.withLock { slots in
            guard number >= 0 && number < slots.count else { return nil }
            if let known = slots[number] { return known }
            let built = build(number)
            slots[number] = .some(built)
            return built
        }
    }

    private func build(_ number: Int) -> SyscallInfo? {
        guard let name = SyscallTable.name(of: number, in: calls) else { return nil }
        let signature = SyscallSignatures.signature(of: name)
        return SyscallInfo(number: number, name: name, args: signature?.args, classes: signature?.classes ?? [])
    }
}
