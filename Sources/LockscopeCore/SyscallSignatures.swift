/// Argument names and kinds by system-call name, written once from the man pages
/// (section 2) and shared by both architectures. Calls not listed are shown with
/// their six raw registers. Format: `"kind name, kind name"`; kinds are `ArgKind`
/// raw values.
enum SyscallSignatures {
    /// Index into `specs` by name, built on the first signature lookup (a few
    /// hundred hashes).
    private static let positions: [String: Int] = {
        var byName = [String: Int](minimumCapacity: specs.count)
        for (i, spec) in specs.enumerated() { byName[spec.0] = i }
        return byName
    }()

    /// The arguments and classes written for `name`, or nil.
    static func signature(of name: String) -> (args: [(name: String, kind: ArgKind)], classes: SyscallClass)? {
        guard let position = positions[name] else { return nil }
        let (_, spec, classes) = specs[position]
        guard let args = parse(spec) else { preconditionFailure("bad syscall signature for \(name): \(spec)") }
        return (args, classes)
    }

    /// `"kind name, kind name"` → arguments; nil when a part is not two words or
    /// names no `ArgKind`. One pass over the bytes, the kind found by hash: `split`
    /// into arrays of slices, and then `ArgKind(rawValue:)` comparing each word with
    /// the 32 raw values in turn, cost more than everything else the table build does
    /// (which `metrics`' quick diagnosis pays to decode one holder's call).
    static func parse(_ spec: String) -> [(name: String, kind: ArgKind)]? {
        var spec = spec
        return spec.withUTF8 { bytes -> [(name: String, kind: ArgKind)]? in
            var args: [(name: String, kind: ArgKind)] = []
            args.reserveCapacity(6)
            var words: (kind: Range<Int>?, name: Range<Int>?, extra: Bool) = (nil, nil, false)
            var start = 0
            func part() -> Bool {
                guard let k = words.kind else { return !words.extra }
                guard let n = words.name, !words.extra,
                      let kind = kinds[String(decoding: UnsafeBufferPointer(rebasing: bytes[k]), as: UTF8.self)] else { return false }
                args.append((String(decoding: UnsafeBufferPointer(rebasing: bytes[n]), as: UTF8.self), kind))
                words = (nil, nil, false)
                return true
            }
            for i in 0...bytes.count {
                let b = i < bytes.count ? bytes[i] : UInt8(ascii: ",")
                guard b == UInt8(ascii: " ") || b == UInt8(ascii: ",") else { continue }
                if i > start {
                    if words.kind == nil { words.kind = start..<i } else if words.name == nil { words.name = start..<i } else { words.extra = true }
                }
                start = i + 1
                if b == UInt8(ascii: ","), !part() { return nil }
            }
            return args
        }
    }

    private static let kinds: [String: ArgKind] = {
        var byName = [String: ArgKind](minimumCapacity: ArgKind.allCases.count)
        for k in ArgKind.allCases { byName[k.rawValue] = k }
        return byName
    }()

    private static let B: SyscallClass = .blocking

    static let specs: [(String, String, SyscallClass)] = [
        // Descriptors and files.
        ("read", "fd fd, ptr buf, uint count", [.desc, B]),
        ("write", "fd fd, ptr buf, uint count", [.desc, B]),
        ("pread64", "fd fd, ptr buf, uint count, int offset", [.desc, B]),
        ("pwrite64", "fd fd, ptr buf, uint count, int offset", [.desc, B]),
        ("readv", "fd fd, ptr iov, int iovcnt", [.desc, B]),
        ("writev", "fd fd, ptr iov, int iovcnt", [.desc, B]),
        ("preadv", "fd fd, ptr iov, int iovcnt, int pos_l, int pos_h", [.desc, B]),
        ("pwritev", "fd fd, ptr iov, int iovcnt, int pos_l, int pos_h", [.desc, B]),
        ("preadv2", "fd fd, ptr iov, int iovcnt, int pos_l, int pos_h, hex flags", [.desc, B]),
        ("pwritev2", "fd fd, ptr iov, int iovcnt, int pos_l, int pos_h, hex flags", [.desc, B]),
        ("open", "path pathname, openFlags flags, mode mode", [.file, .desc]),
        ("openat", "dirfd dirfd, path pathname, openFlags flags, mode mode", [.file, .desc]),
        ("openat2", "dirfd dirfd, path pathname, ptr how, uint size", [.file, .desc]),
        ("creat", "path pathname, mode mode", [.file, .desc]),
        ("close", "fd fd", [.desc]),
        ("close_range", "uint first, uint last, hex flags", [.desc]),
        ("dup", "fd oldfd", [.desc]),
        ("dup2", "fd oldfd, int newfd", [.desc]),
        ("dup3", "fd oldfd, int newfd, openFlags flags", [.desc]),
        ("lseek", "fd fd, int offset, int whence", [.desc]),
        ("ioctl", "fd fd, hex request, ptr argp", [.desc]),
        ("fcntl", "fd fd, fcntlCmd cmd, fcntlArg arg", [.desc, .lock]),
        ("flock", "fd fd, flockOp operation", [.desc, .lock, B]),
        ("fsync", "fd fd", [.desc, B]),
        ("fdatasync", "fd fd", [.desc, B]),
        ("sync", "", [B]),
        ("syncfs", "fd fd", [.desc, B]),
        ("sync_file_range", "fd fd, int offset, int nbytes, hex flags", [.desc, B]),
        ("ftruncate", "fd fd, int length", [.desc]),
        ("fallocate", "fd fd, int mode, int offset, int len", [.desc]),
        ("fadvise64", "fd fd, int offset, int len, int advice", [.desc]),
        ("getdents64", "fd fd, ptr dirp, uint count", [.desc]),
        ("getdents", "fd fd, ptr dirp, uint count", [.desc]),
        ("fstat", "fd fd, ptr statbuf", [.desc]),
        ("fstatfs", "fd fd, ptr buf", [.desc]),
        ("fchdir", "fd fd", [.desc]),
        ("fchmod", "fd fd, mode mode", [.desc]),
        ("fchown", "fd fd, int owner, int group", [.desc]),
        ("pipe", "ptr pipefd", [.desc]),
        ("pipe2", "ptr pipefd, openFlags flags", [.desc]),
        ("sendfile", "fd out_fd, fd in_fd, ptr offset, uint count", [.desc, B]),
        ("splice", "fd fd_in, ptr off_in, fd fd_out, ptr off_out, uint len, hex flags", [.desc, B]),
        ("tee", "fd fd_in, fd fd_out, uint len, hex flags", [.desc, B]),
        ("copy_file_range", "fd fd_in, ptr off_in, fd fd_out, ptr off_out, uint len, hex flags", [.desc, B]),
        ("eventfd", "uint initval", [.desc]),
        ("eventfd2", "uint initval, hex flags", [.desc]),
        ("signalfd4", "fd fd, ptr mask, uint sizemask, hex flags", [.desc, .signal]),
        ("timerfd_create", "clockid clockid, hex flags", [.desc]),
        ("timerfd_settime", "fd fd, hex flags, ptr new_value, ptr old_value", [.desc]),
        ("timerfd_gettime", "fd fd, ptr curr_value", [.desc]),
        ("inotify_init1", "hex flags", [.desc]),
        ("inotify_add_watch", "fd fd, path pathname, hex mask", [.desc, .file]),
        ("inotify_rm_watch", "fd fd, int wd", [.desc]),
        ("memfd_create", "path name, hex flags", [.desc]),
        ("io_uring_setup", "uint entries, ptr params", [.desc]),
        ("io_uring_enter", "fd fd, uint to_submit, uint min_complete, hex flags, ptr sig, uint sz", [.desc, B]),
        ("io_uring_register", "fd fd, uint opcode, ptr arg, uint nr_args", [.desc]),
        ("io_getevents", "hex ctx_id, int min_nr, int nr, ptr events, timespec timeout", [.desc, B]),
        ("io_pgetevents", "hex ctx_id, int min_nr, int nr, ptr events, timespec timeout, ptr usig", [.desc, B]),
        // Paths.
        ("stat", "path pathname, ptr statbuf", [.file]),
        ("lstat", "path pathname, ptr statbuf", [.file]),
        ("newfstatat", "dirfd dirfd, path pathname, ptr statbuf, hex flags", [.file]),
        ("statx", "dirfd dirfd, path pathname, hex flags, hex mask, ptr statxbuf", [.file]),
        ("statfs", "path path, ptr buf", [.file]),
        ("access", "path pathname, int mode", [.file]),
        ("faccessat", "dirfd dirfd, path pathname, int mode", [.file]),
        ("faccessat2", "dirfd dirfd, path pathname, int mode, hex flags", [.file]),
        ("truncate", "path path, int length", [.file]),
        ("chdir", "path path", [.file]),
        ("chroot", "path path", [.file]),
        ("rename", "path oldpath, path newpath", [.file]),
        ("renameat", "dirfd olddirfd, path oldpath, dirfd newdirfd, path newpath", [.file]),
        ("renameat2", "dirfd olddirfd, path oldpath, dirfd newdirfd, path newpath, hex flags", [.file]),
        ("mkdir", "path pathname, mode mode", [.file]),
        ("mkdirat", "dirfd dirfd, path pathname, mode mode", [.file]),
        ("rmdir", "path pathname", [.file]),
        ("link", "path oldpath, path newpath", [.file]),
        ("linkat", "dirfd olddirfd, path oldpath, dirfd newdirfd, path newpath, hex flags", [.file]),
        ("unlink", "path pathname", [.file]),
        ("unlinkat", "dirfd dirfd, path pathname, hex flags", [.file]),
        ("symlink", "path target, path linkpath", [.file]),
        ("symlinkat", "path target, dirfd newdirfd, path linkpath", [.file]),
        ("readlink", "path pathname, ptr buf, uint bufsiz", [.file]),
        ("readlinkat", "dirfd dirfd, path pathname, ptr buf, uint bufsiz", [.file]),
        ("chmod", "path pathname, mode mode", [.file]),
        ("fchmodat", "dirfd dirfd, path pathname, mode mode", [.file]),
        ("fchmodat2", "dirfd dirfd, path pathname, mode mode, hex flags", [.file]),
        ("chown", "path pathname, int owner, int group", [.file]),
        ("lchown", "path pathname, int owner, int group", [.file]),
        ("fchownat", "dirfd dirfd, path pathname, int owner, int group, hex flags", [.file]),
        ("utimensat", "dirfd dirfd, path pathname, ptr times, hex flags", [.file]),
        ("mknod", "path pathname, mode mode, hex dev", [.file]),
        ("mknodat", "dirfd dirfd, path pathname, mode mode, hex dev", [.file]),
        ("mount", "path source, path target, path filesystemtype, hex mountflags, ptr data", [.file]),
        ("umount2", "path target, hex flags", [.file]),
        ("getcwd", "ptr buf, uint size", [.file]),
        ("umask", "mode mask", []),
        // Waiting for descriptors.
        ("poll", "pollfds fds, uint nfds, pollTimeoutMs timeout", [.poll, .desc, B]),
        ("ppoll", "pollfds fds, uint nfds, timespec tmo_p, ptr sigmask, uint sigsetsize", [.poll, .desc, B]),
        ("select", "int nfds, fdSet readfds, fdSet writefds, fdSet exceptfds, timeval timeout", [.poll, .desc, B]),
        ("pselect6", "int nfds, fdSet readfds, fdSet writefds, fdSet exceptfds, timespec timeout, ptr sigmask", [.poll, .desc, B]),
        ("epoll_create", "int size", [.desc]),
        ("epoll_create1", "hex flags", [.desc]),
        ("epoll_ctl", "fd epfd, int op, fd fd, ptr event", [.desc]),
        ("epoll_wait", "fd epfd, ptr events, int maxevents, epollTimeoutMs timeout", [.poll, .desc, B]),
        ("epoll_pwait", "fd epfd, ptr events, int maxevents, epollTimeoutMs timeout, ptr sigmask, uint sigsetsize", [.poll, .desc, B]),
        ("epoll_pwait2", "fd epfd, ptr events, int maxevents, timespec timeout, ptr sigmask, uint sigsetsize", [.poll, .desc, B]),
        // Sockets.
        ("socket", "socketDomain domain, socketType type, int protocol", [.net, .desc]),
        ("socketpair", "socketDomain domain, socketType type, int protocol, ptr sv", [.net, .desc]),
        ("connect", "fd sockfd, sockaddr addr, uint addrlen", [.net, .desc, B]),
        ("bind", "fd sockfd, sockaddr addr, uint addrlen", [.net, .desc]),
        ("listen", "fd sockfd, int backlog", [.net, .desc]),
        ("accept", "fd sockfd, ptr addr, ptr addrlen", [.net, .desc, B]),
        ("accept4", "fd sockfd, ptr addr, ptr addrlen, hex flags", [.net, .desc, B]),
        ("sendto", "fd sockfd, ptr buf, uint len, msgFlags flags, sockaddr dest_addr, uint addrlen", [.net, .desc, B]),
        ("recvfrom", "fd sockfd, ptr buf, uint len, msgFlags flags, ptr src_addr, ptr addrlen", [.net, .desc, B]),
        ("sendmsg", "fd sockfd, ptr msg, msgFlags flags", [.net, .desc, B]),
        ("recvmsg", "fd sockfd, ptr msg, msgFlags flags", [.net, .desc, B]),
        ("sendmmsg", "fd sockfd, ptr msgvec, uint vlen, msgFlags flags", [.net, .desc, B]),
        ("recvmmsg", "fd sockfd, ptr msgvec, uint vlen, msgFlags flags, timespec timeout", [.net, .desc, B]),
        ("shutdown", "fd sockfd, int how", [.net, .desc]),
        ("getsockname", "fd sockfd, ptr addr, ptr addrlen", [.net, .desc]),
        ("getpeername", "fd sockfd, ptr addr, ptr addrlen", [.net, .desc]),
        ("setsockopt", "fd sockfd, int level, int optname, ptr optval, uint optlen", [.net, .desc]),
        ("getsockopt", "fd sockfd, int level, int optname, ptr optval, ptr optlen", [.net, .desc]),
        // Sleeping and time.
        ("nanosleep", "timespec req, ptr rem", [.sleep, B]),
        ("clock_nanosleep", "clockid clockid, hex flags, sleepTimespec request, ptr remain", [.sleep, B]),
        ("pause", "", [.sleep, .signal, B]),
        ("alarm", "uint seconds", [.signal]),
        ("clock_gettime", "clockid clockid, ptr tp", []),
        ("clock_getres", "clockid clockid, ptr res", []),
        ("gettimeofday", "ptr tv, ptr tz", []),
        ("sched_yield", "", []),
        // futex.
        ("futex", "futexAddr uaddr, futexOp futex_op, uint val, futexTimeout timeout, ptr uaddr2, uint val3", [.futex, B]),
        ("futex_waitv", "ptr waiters, uint nr_futexes, hex flags, ptr timeout, clockid clockid", [.futex, B]),
        ("futex_wait", "futexAddr uaddr, uint val, hex mask, hex flags, ptr timeout, clockid clockid", [.futex, B]),
        ("futex_wake", "futexAddr uaddr, hex mask, int nr, hex flags", [.futex]),
        ("futex_requeue", "ptr waiters, hex flags, int nr_wake, int nr_requeue", [.futex]),
        ("set_robust_list", "ptr head, uint len", [.futex]),
        ("get_robust_list", "pid pid, ptr head_ptr, ptr len_ptr", [.futex]),
        ("set_tid_address", "ptr tidptr", [.process]),
        // Processes.
        ("clone", "hex flags, ptr stack, ptr parent_tid, ptr child_tid, hex tls", [.process]),
        ("clone3", "ptr cl_args, uint size", [.process]),
        ("fork", "", [.process]),
        ("vfork", "", [.process, B]),
        ("execve", "path pathname, ptr argv, ptr envp", [.process, .file]),
        ("execveat", "dirfd dirfd, path pathname, ptr argv, ptr envp, hex flags", [.process, .file]),
        ("exit", "int status", [.process]),
        ("exit_group", "int status", [.process]),
        ("wait4", "waitPid pid, ptr wstatus, waitOptions options, ptr rusage", [.process, B]),
        ("waitid", "waitIdType idtype, int id, ptr infop, waitOptions options, ptr rusage", [.process, B]),
        ("kill", "pid pid, signal sig", [.process, .signal]),
        ("tkill", "pid tid, signal sig", [.signal]),
        ("tgkill", "pid tgid, pid tid, signal sig", [.signal]),
        ("pidfd_open", "pid pid, hex flags", [.process, .desc]),
        ("pidfd_send_signal", "fd pidfd, signal sig, ptr info, hex flags", [.process, .signal]),
        ("ptrace", "int request, pid pid, ptr addr, ptr data", [.process]),
        ("prctl", "int option, hex arg2, hex arg3, hex arg4, hex arg5", [.process]),
        ("arch_prctl", "int code, hex addr", [.process]),
        ("getpid", "", []),
        ("getppid", "", []),
        ("gettid", "", []),
        ("getuid", "", []),
        ("geteuid", "", []),
        ("getgid", "", []),
        ("getegid", "", []),
        ("setsid", "", [.process]),
        ("getpgid", "pid pid", [.process]),
        ("setpgid", "pid pid, pid pgid", [.process]),
        ("getrlimit", "int resource, ptr rlim", []),
        ("setrlimit", "int resource, ptr rlim", []),
        ("prlimit64", "pid pid, int resource, ptr new_limit, ptr old_limit", []),
        ("getrusage", "int who, ptr usage", []),
        ("sysinfo", "ptr info", []),
        ("uname", "ptr buf", []),
        ("getrandom", "ptr buf, uint buflen, hex flags", []),
        ("rseq", "ptr rseq, uint rseq_len, hex flags, hex sig", []),
        ("sched_getaffinity", "pid pid, uint cpusetsize, ptr mask", []),
        ("sched_setaffinity", "pid pid, uint cpusetsize, ptr mask", []),
        // Signals.
        ("rt_sigaction", "signal signum, ptr act, ptr oldact, uint sigsetsize", [.signal]),
        ("rt_sigprocmask", "int how, ptr set, ptr oldset, uint sigsetsize", [.signal]),
        ("rt_sigreturn", "", [.signal]),
        ("rt_sigsuspend", "ptr mask, uint sigsetsize", [.signal, B]),
        ("rt_sigtimedwait", "ptr set, ptr info, timespec timeout, uint sigsetsize", [.signal, B]),
        ("rt_sigqueueinfo", "pid tgid, signal sig, ptr info", [.signal]),
        ("sigaltstack", "ptr ss, ptr old_ss", [.signal]),
        // Memory.
        ("mmap", "ptr addr, uint length, hex prot, hex flags, fd fd, int offset", [.memory]),
        ("munmap", "ptr addr, uint length", [.memory]),
        ("mprotect", "ptr addr, uint len, hex prot", [.memory]),
        ("mremap", "ptr old_address, uint old_size, uint new_size, hex flags, ptr new_address", [.memory]),
        ("madvise", "ptr addr, uint length, int advice", [.memory]),
        ("brk", "ptr addr", [.memory]),
        ("msync", "ptr addr, uint length, hex flags", [.memory, B]),
        ("mlock", "ptr addr, uint len", [.memory]),
        ("munlock", "ptr addr, uint len", [.memory]),
        // IPC.
        ("msgget", "hex key, hex msgflg", [.ipc]),
        ("msgsnd", "int msqid, ptr msgp, uint msgsz, hex msgflg", [.ipc, B]),
        ("msgrcv", "int msqid, ptr msgp, uint msgsz, int msgtyp, hex msgflg", [.ipc, B]),
        ("msgctl", "int msqid, int cmd, ptr buf", [.ipc]),
        ("semget", "hex key, int nsems, hex semflg", [.ipc]),
        ("semop", "int semid, ptr sops, uint nsops", [.ipc, B]),
        ("semtimedop", "int semid, ptr sops, uint nsops, timespec timeout", [.ipc, B]),
        ("semctl", "int semid, int semnum, int cmd, hex arg", [.ipc]),
        ("shmget", "hex key, uint size, hex shmflg", [.ipc]),
        ("shmat", "int shmid, ptr shmaddr, hex shmflg", [.ipc]),
        ("shmdt", "ptr shmaddr", [.ipc]),
        ("shmctl", "int shmid, int cmd, ptr buf", [.ipc]),
        ("mq_open", "path name, openFlags oflag, mode mode, ptr attr", [.ipc, .desc]),
        ("mq_timedsend", "fd mqdes, ptr msg_ptr, uint msg_len, uint msg_prio, ptr abs_timeout", [.ipc, B]),
        ("mq_timedreceive", "fd mqdes, ptr msg_ptr, uint msg_len, ptr msg_prio, ptr abs_timeout", [.ipc, B]),
        ("restart_syscall", "", []),
    ]
}
