import LockscopeCore

/// The filelock tracepoints (include/trace/events/filelock.h) lockscope decodes.
public enum LockTracepoint: String, Sendable, CaseIterable, Hashable {
    /// `flock_lock_inode()` in fs/locks.c: every flock(2) lock, unlock and close.
    case flockLockInode = "flock_lock_inode"
    /// `posix_lock_inode()`: every fcntl/lockf POSIX and OFD lock request, incl. unlocks.
    case posixLockInode = "posix_lock_inode"
    /// `fcntl_setlk()`: the result of an F_SETLK/F_SETLKW/F_OFD_SETLK(W) call as a whole.
    case fcntlSetlk = "fcntl_setlk"
    /// `locks_remove_posix()`: a close() that drops the closer's POSIX locks.
    case locksRemovePosix = "locks_remove_posix"
    case breakLeaseBlock = "break_lease_block"
    case breakLeaseNoblock = "break_lease_noblock"
    case breakLeaseUnblock = "break_lease_unblock"
    case genericAddLease = "generic_add_lease"
    case genericDeleteLease = "generic_delete_lease"
    case timeOutLeases = "time_out_leases"
    /// `leases_conflict()`: whether a lease conflicts with a breaker's request. It
    /// names both by address and no file: decoded with `lock` = the lease,
    /// `blocker` = the breaker's request, `flags` = the lease's, `type` = the
    /// breaker's, `ret` = 1 for a conflict, and a zero `file` (the aggregator
    /// finds the file from the lease's address).
    case leasesConflict = "leases_conflict"

    public var tracepoint: TracepointName { TracepointName("filelock", rawValue) }
    public var isLease: Bool {
        switch self {
        case .flockLockInode, .posixLockInode, .fcntlSetlk, .locksRemovePosix: return false
        default: return true
        }
    }
}

/// The sched tracepoints that give process ancestry (include/trace/events/sched.h).
public enum SchedTracepoint: String, Sendable, CaseIterable, Hashable {
    case processFork = "sched_process_fork"
    case processExec = "sched_process_exec"
    case processExit = "sched_process_exit"
    public var tracepoint: TracepointName { TracepointName("sched", rawValue) }
}

/// `fl_flags` bits, include/linux/filelock.h (values as the format's print fmt lists them).
public struct LockFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let posix = LockFlags(rawValue: 1)
    public static let flock = LockFlags(rawValue: 2)
    public static let delegation = LockFlags(rawValue: 4)
    public static let access = LockFlags(rawValue: 8)
    public static let exists = LockFlags(rawValue: 16)
    public static let lease = LockFlags(rawValue: 32)
    public static let close = LockFlags(rawValue: 64)
    public static let sleep = LockFlags(rawValue: 128)
    public static let downgradePending = LockFlags(rawValue: 256)
    public static let unlockPending = LockFlags(rawValue: 512)
    public static let ofd = LockFlags(rawValue: 1024)
    public static let reclaim = LockFlags(rawValue: 4096)

    static let names: [(LockFlags, String)] = [
        (.posix, "FL_POSIX"), (.flock, "FL_FLOCK"), (.delegation, "FL_DELEG"), (.access, "FL_ACCESS"),
        (.exists, "FL_EXISTS"), (.lease, "FL_LEASE"), (.close, "FL_CLOSE"), (.sleep, "FL_SLEEP"),
        (.downgradePending, "FL_DOWNGRADE_PENDING"), (.unlockPending, "FL_UNLOCK_PENDING"),
        (.ofd, "FL_OFDLCK"), (.reclaim, "FL_RECLAIM"),
    ]
    /// `FL_FLOCK|FL_SLEEP`, as the tracepoint's print format shows it.
    public var symbolic: String {
        let parts = Self.names.filter { contains($0.0) }.map(\.1)
        return parts.isEmpty ? "0" : parts.joined(separator: "|")
    }
}

/// `fl_type`: F_RDLCK 0, F_WRLCK 1, F_UNLCK 2 (include/uapi/asm-generic/fcntl.h).
public struct LockType: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let read = LockType(rawValue: 0)
    public static let write = LockType(rawValue: 1)
    public static let unlock = LockType(rawValue: 2)
    public var description: String {
        switch rawValue {
        case 0: return "F_RDLCK"
        case 1: return "F_WRLCK"
        case 2: return "F_UNLCK"
        default: return "type\(rawValue)"
        }
    }
}

/// What every perf sample carries besides its raw tracepoint record
/// (PERF_SAMPLE_TID | TIME | CPU).
public struct SampleHeader: Sendable, Hashable {
    /// CLOCK_MONOTONIC nanoseconds.
    public var time: UInt64
    public var cpu: UInt32
    /// Thread group id of the task that hit the tracepoint.
    public var pid: Int32
    public var tid: Int32
    public init(time: UInt64, cpu: UInt32, pid: Int32, tid: Int32) {
        self.time = time; self.cpu = cpu; self.pid = pid; self.tid = tid
    }
}

/// One filelock tracepoint hit, decoded by field name from the raw record.
public struct LockEvent: Sendable, Hashable {
    public var header: SampleHeader
    public var tracepoint: LockTracepoint
    /// `(MAJOR(s_dev), MINOR(s_dev), i_ino)` as /proc/locks prints it. The
    /// tracepoint's `dev_t` is the kernel's internal one: major = dev >> 20,
    /// minor = dev & 0xfffff (include/linux/kdev_t.h, MINORBITS 20).
    public var file: FileIdentity
    /// `fl` / `fl_pid`: the lock's pid (the tgid of the locker; for OFD locks
    /// also the locker, /proc/locks shows -1 for those).
    public var lockPid: UInt32
    /// `fl_owner`: the `files_struct` (POSIX) or `struct file` (flock, OFD) that owns the lock.
    public var owner: UInt64
    public var flags: LockFlags
    public var type: LockType
    public var start: Int64
    public var end: Int64
    /// 0 granted, 1 FILE_LOCK_DEFERRED (queued to wait), negative errno (-EAGAIN
    /// conflict, -EDEADLK, -EINTR when a waiter was interrupted), 0 on lease events.
    public var ret: Int32
    /// `fl_blocker`: the lock a waiter waits behind (null when not blocked).
    public var blocker: UInt64
    /// The kernel address of the request's `struct file_lock` (0 when absent).
    public var lock: UInt64
    /// `generic_add_lease` only: `i_writecount` and `i_readcount` of the inode at
    /// the request (the opens `check_conflicting_open()` in fs/locks.c counts).
    public var writers: Int32 = 0
    public var readers: Int32 = 0

    public init(header: SampleHeader, tracepoint: LockTracepoint, file: FileIdentity, lockPid: UInt32 = 0,
                owner: UInt64 = 0, flags: LockFlags = [], type: LockType = .write, start: Int64 = 0,
                end: Int64 = Int64.max, ret: Int32 = 0, blocker: UInt64 = 0, lock: UInt64 = 0,
                writers: Int32 = 0, readers: Int32 = 0) {
        self.header = header; self.tracepoint = tracepoint; self.file = file; self.lockPid = lockPid
        self.owner = owner; self.flags = flags; self.type = type; self.start = start; self.end = end
        self.ret = ret; self.blocker = blocker; self.lock = lock
        self.writers = writers; self.readers = readers
    }
}

/// A process or thread name of at most 15 bytes, stored inline so decoding a
/// sched event allocates nothing (TASK_COMM_LEN is 16).
public struct InlineName: Sendable, Hashable, CustomStringConvertible {
    public var bytes: (UInt64, UInt64) = (0, 0)
    public var count: UInt8 = 0

    public init() {}
    public init(_ text: String) {
        let utf8 = Array(text.utf8.prefix(15))
        withUnsafeMutableBytes(of: &bytes) { dst in
            for (i, b) in utf8.enumerated() { dst[i] = b }
        }
        count = UInt8(utf8.count)
    }
    /// Copies up to 15 bytes, stopping at a NUL.
    public init(_ raw: UnsafeRawBufferPointer) {
        var n = 0
        withUnsafeMutableBytes(of: &bytes) { dst in
            while n < min(raw.count, 15), raw[n] != 0 { dst[n] = raw[n]; n += 1 }
        }
        count = UInt8(n)
    }
    /// The part after the last `/` (exec filenames become the comm).
    public init(basenameOf raw: UnsafeRawBufferPointer) {
        var end = 0
        while end < raw.count, raw[end] != 0 { end += 1 }
        var start = end
        while start > 0, raw[start - 1] != UInt8(ascii: "/") { start -= 1 }
        self.init(UnsafeRawBufferPointer(rebasing: raw[start..<end]))
    }
    public var description: String {
        withUnsafeBytes(of: bytes) { String(decoding: UnsafeRawBufferPointer(rebasing: $0[0..<Int(count)]), as: UTF8.self) }
    }
    public static func == (a: Self, b: Self) -> Bool { a.count == b.count && a.bytes == b.bytes }
    public func hash(into h: inout Hasher) { h.combine(bytes.0); h.combine(bytes.1); h.combine(count) }
}

public struct ForkEvent: Sendable, Hashable {
    public var header: SampleHeader
    public var parentPid: Int32
    public var parentComm: InlineName
    /// The new task's id (a thread id when the clone made a thread).
    public var childPid: Int32
    public var childComm: InlineName
}

public struct ExecEvent: Sendable, Hashable {
    public var header: SampleHeader
    public var pid: Int32
    public var oldPid: Int32
    /// The basename of the executed file, as the new comm will read.
    public var name: InlineName
}

public struct ExitEvent: Sendable, Hashable {
    public var header: SampleHeader
    /// The exiting task (a thread id).
    public var pid: Int32
    public var comm: InlineName
    /// True when the whole thread group is gone (`group_dead`, Linux 6.8+;
    /// otherwise guessed from tid == tgid).
    public var groupDead: Bool
}

/// One decoded tracepoint record. Value types only: decoding allocates nothing.
public enum KernelEvent: Sendable, Hashable {
    case lock(LockEvent)
    case fork(ForkEvent)
    case exec(ExecEvent)
    case exit(ExitEvent)

    public var header: SampleHeader {
        switch self {
        case .lock(let e): return e.header
        case .fork(let e): return e.header
        case .exec(let e): return e.header
        case .exit(let e): return e.header
        }
    }
}
