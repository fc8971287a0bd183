/// errno and signal names for output (`EINTR`, `SIGSTOP`). The numbers are the
/// asm-generic ones, shared by x86_64 and aarch64.

let errnoNames: [String] = {
    var names = [String](repeating: "", count: 134)
    let table: [(Int, String)] = [
        (1, "EPERM"), (2, "ENOENT"), (3, "ESRCH"), (4, "EINTR"), (5, "EIO"), (6, "ENXIO"),
        (7, "E2BIG"), (8, "ENOEXEC"), (9, "EBADF"), (10, "ECHILD"), (11, "EAGAIN"), (12, "ENOMEM"),
        (13, "EACCES"), (14, "EFAULT"), (15, "ENOTBLK"), (16, "EBUSY"), (17, "EEXIST"), (18, "EXDEV"),
        (19, "ENODEV"), (20, "ENOTDIR"), (21, "EISDIR"), (22, "EINVAL"), (23, "ENFILE"), (24, "EMFILE"),
        (25, "ENOTTY"), (26, "ETXTBSY"), (27, "EFBIG"), (28, "ENOSPC"), (29, "ESPIPE"), (30, "EROFS"),
        (31, "EMLINK"), (32, "EPIPE"), (33, "EDOM"), (34, "ERANGE"), (35, "EDEADLK"), (36, "ENAMETOOLONG"),
        (37, "ENOLCK"), (38, "ENOSYS"), (39, "ENOTEMPTY"), (40, "ELOOP"), (42, "ENOMSG"), (43, "EIDRM"),
        (44, "ECHRNG"), (45, "EL2NSYNC"), (46, "EL3HLT"), (47, "EL3RST"), (48, "ELNRNG"), (49, "EUNATCH"),
        (50, "ENOCSI"), (51, "EL2HLT"), (52, "EBADE"), (53, "EBADR"), (54, "EXFULL"), (55, "ENOANO"),
        (56, "EBADRQC"), (57, "EBADSLT"), (59, "EBFONT"), (60, "ENOSTR"), (61, "ENODATA"), (62, "ETIME"),
        (63, "ENOSR"), (64, "ENONET"), (65, "ENOPKG"), (66, "EREMOTE"), (67, "ENOLINK"), (68, "EADV"),
        (69, "ESRMNT"), (70, "ECOMM"), (71, "EPROTO"), (72, "EMULTIHOP"), (73, "EDOTDOT"), (74, "EBADMSG"),
        (75, "EOVERFLOW"), (76, "ENOTUNIQ"), (77, "EBADFD"), (78, "EREMCHG"), (79, "ELIBACC"), (80, "ELIBBAD"),
        (81, "ELIBSCN"), (82, "ELIBMAX"), (83, "ELIBEXEC"), (84, "EILSEQ"), (85, "ERESTART"), (86, "ESTRPIPE"),
        (87, "EUSERS"), (88, "ENOTSOCK"), (89, "EDESTADDRREQ"), (90, "EMSGSIZE"), (91, "EPROTOTYPE"), (92, "ENOPROTOOPT"),
        (93, "EPROTONOSUPPORT"), (94, "ESOCKTNOSUPPORT"), (95, "EOPNOTSUPP"), (96, "EPFNOSUPPORT"), (97, "EAFNOSUPPORT"), (98, "EADDRINUSE"),
        (99, "EADDRNOTAVAIL"), (100, "ENETDOWN"), (101, "ENETUNREACH"), (102, "ENETRESET"), (103, "ECONNABORTED"), (104, "ECONNRESET"),
        (105, "ENOBUFS"), (106, "EISCONN"), (107, "ENOTCONN"), (108, "ESHUTDOWN"), (109, "ETOOMANYREFS"), (110, "ETIMEDOUT"),
        (111, "ECONNREFUSED"), (112, "EHOSTDOWN"), (113, "EHOSTUNREACH"), (114, "EALREADY"), (115, "EINPROGRESS"), (116, "ESTALE"),
        (117, "EUCLEAN"), (118, "ENOTNAM"), (119, "ENAVAIL"), (120, "EISNAM"), (121, "EREMOTEIO"), (122, "EDQUOT"),
        (123, "ENOMEDIUM"), (124, "EMEDIUMTYPE"), (125, "ECANCELED"), (126, "ENOKEY"), (127, "EKEYEXPIRED"), (128, "EKEYREVOKED"),
        (129, "EKEYREJECTED"), (130, "EOWNERDEAD"), (131, "ENOTRECOVERABLE"), (132, "ERFKILL"), (133, "EHWPOISON"),
    ]
    for (n, name) in table { names[n] = name }
    return names
}()

/// `EINTR` for 4; the kernel-internal restart codes (`ERESTARTSYS` …) a tracer
/// sees at syscall exit; `E123` for numbers without a name.
public func errnoName(_ number: Int32) -> String {
    if number > 0 && Int(number) < errnoNames.count && !errnoNames[Int(number)].isEmpty { return errnoNames[Int(number)] }
    switch number {
    case 512: return "ERESTARTSYS"
    case 513: return "ERESTARTNOINTR"
    case 514: return "ERESTARTNOHAND"
    case 515: return "ENOIOCTLCMD"
    case 516: return "ERESTART_RESTARTBLOCK"
    case 517: return "EPROBE_DEFER"
    case 518: return "EOPENSTALE"
    case 524: return "ENOTSUPP"
    default: return "E" + String(number)
    }
}

private let signalNames: [String] = [
    "0", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL", "SIGUSR1",
    "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP",
    "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR",
    "SIGSYS",
]

/// `SIGSTOP` for 19, `SIGRTMIN+3` for 37.
public func signalName(_ number: Int32) -> String {
    if number >= 0 && Int(number) < signalNames.count { return signalNames[Int(number)] }
    // glibc reserves 32 and 33 for itself; its SIGRTMIN is 34.
    if number >= 34 && number <= 64 { return number == 34 ? "SIGRTMIN" : "SIGRTMIN+\(number - 34)" }
    return "SIG" + String(number)
}

/// fcntl(2) commands (include/uapi/asm-generic/fcntl.h, include/uapi/linux/fcntl.h;
/// numbered alike on x86_64 and aarch64). The OFD ones are hidden behind
/// _GNU_SOURCE in Swift's Glibc.
public enum FcntlCmd {
    public static let getlk: Int32 = 5
    public static let setlk: Int32 = 6
    public static let setlkw: Int32 = 7
    public static let ofdGetlk: Int32 = 36
    public static let ofdSetlk: Int32 = 37
    public static let ofdSetlkw: Int32 = 38
    /// The commands whose third argument is a `struct flock *`.
    public static let takesFlock: Set<Int32> = [getlk, setlk, setlkw, ofdGetlk, ofdSetlk, ofdSetlkw]

    private static let names: [Int32: String] = [
        0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL", 5: "F_GETLK", 6: "F_SETLK",
        7: "F_SETLKW", 8: "F_SETOWN", 9: "F_GETOWN", 10: "F_SETSIG", 11: "F_GETSIG", 15: "F_SETOWN_EX",
        16: "F_GETOWN_EX", 36: "F_OFD_GETLK", 37: "F_OFD_SETLK", 38: "F_OFD_SETLKW", 1024: "F_SETLEASE",
        1025: "F_GETLEASE", 1026: "F_NOTIFY", 1030: "F_DUPFD_CLOEXEC", 1031: "F_SETPIPE_SZ", 1032: "F_GETPIPE_SZ",
        1033: "F_ADD_SEALS", 1034: "F_GET_SEALS",
    ]

    /// `F_SETLKW` for 7; nil for a number without a name.
    public static func name(_ cmd: Int32) -> String? { names[cmd] }
}
