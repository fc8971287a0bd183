/// System-call tables: number ↔ name per architecture, and per name the argument
/// kinds the decoder uses. Numbers come from the kernel's uapi headers (x86_64:
/// arch/x86/entry/syscalls/syscall_64.tbl → asm/unistd_64.h; aarch64: the generic
/// table include/uapi/asm-generic/unistd.h); a test checks them against the headers
/// installed on the build machine. Signatures are written once, by name, shared
/// by both architectures (the few calls whose argument order differs per
/// architecture, like `clone`, are decoded as raw values).

/// How to decode one argument register.
public enum ArgKind: String, Sendable, Hashable {
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

/// Number ↔ name for one architecture, with signatures.
public struct SyscallTable: Sendable {
    public let arch: SyscallArch
    private let byNumber: [SyscallInfo?]
    private let byName: [String: Int]

    init(arch: SyscallArch, names: [(Int, String)]) {
        self.arch = arch
        let maxNumber = names.map(\.0).max() ?? 0
        var list = [SyscallInfo?](repeating: nil, count: maxNumber + 1)
        var index: [String: Int] = [:]
        for (number, name) in names {
            let sig = SyscallSignatures.table[name]
            list[number] = SyscallInfo(number: number, name: name, args: sig?.args, classes: sig?.classes ?? [])
            index[name] = number
        }
        byNumber = list
        byName = index
    }

    /// The call with this number, or nil.
    public subscript(number: Int) -> SyscallInfo? {
        number >= 0 && number < byNumber.count ? byNumber[number] : nil
    }

    /// The number of the call with this name, or nil.
    public func number(of name: String) -> Int? { byName[name] }

    /// The name of the call with this number, or nil.
    public func name(of number: Int) -> String? { self[number]?.name }

    /// Every call, in number order.
    public var all: [SyscallInfo] { byNumber.compactMap { $0 } }

    public static let x86_64 = SyscallTable(arch: .x86_64, names: SyscallNumbers.x86_64)
    public static let aarch64 = SyscallTable(arch: .aarch64, names: SyscallNumbers.aarch64)

    public static func forArch(_ arch: SyscallArch) -> SyscallTable {
        switch arch {
        case .x86_64: return .x86_64
        case .aarch64: return .aarch64
        }
    }

    /// The machine's own table.
    public static var host: SyscallTable { forArch(.host) }
}
