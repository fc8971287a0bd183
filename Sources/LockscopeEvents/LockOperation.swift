import LockscopeCore

/// A lock, as the aggregator counts it: the file and the kind of lock taken on it
/// (a flock and a POSIX lock on one file never conflict, so they are two locks).
public struct LockKey: Hashable, Sendable, Comparable {
    public var file: FileIdentity
    public var kind: LockKind
    public init(file: FileIdentity, kind: LockKind) { self.file = file; self.kind = kind }
    public static func < (a: Self, b: Self) -> Bool { (a.file, a.kind.rawValue) < (b.file, b.kind.rawValue) }
}

/// What a lock event meant, interpreted with fs/locks.c's semantics. One per
/// event that matters; `--events` prints these, and the same values feed the
/// aggregator's counters.
public struct LockOperation: Sendable, Hashable {
    public enum Outcome: Sendable, Hashable {
        /// Granted at once (ret 0, no earlier queueing).
        case acquired
        /// Queued behind a conflicting lock (ret 1, FILE_LOCK_DEFERRED).
        case queued
        /// Granted after waiting (ret 0 after a queued event of the same owner).
        case granted
        /// Refused at once: -EAGAIN for LOCK_NB / F_SETLK, -EDEADLK, ...
        case failed(errno: Int32)
        /// A queued request that ended without the lock (signal: -EINTR /
        /// -ERESTARTSYS, or the waiter exited).
        case abandoned
        /// An unlock, or the close that dropped the lock (FL_CLOSE).
        case released
    }
    public var time: UInt64
    public var pid: Int32
    public var comm: InlineName
    public var lock: LockKey
    public var type: LockType
    public var outcome: Outcome
    /// Nanoseconds queued (granted / abandoned).
    public var waited: UInt64?
    /// Nanoseconds held (released).
    public var held: UInt64?
    /// The holder pid at the time of a queue or failure, when known: for byte
    /// ranges, the owner of a range that overlaps the request.
    public var blockedBy: Int32?
    /// The byte range of a POSIX/OFD request that is not the whole file.
    public var range: HeldRange? = nil
    /// Leases: the release of a lease that was being broken, who broke it and
    /// how long the break took (from its start to the release).
    public var brokenBy: Int32? = nil
    public var breakNanoseconds: UInt64? = nil
    /// Leases: how a broken lease went (`LeaseBreak.Resolution`).
    public var resolution: LeaseBreak.Resolution? = nil

    /// A value for the aggregator to write an operation into.
    static let blank = LockOperation(time: 0, pid: 0, comm: InlineName(),
                                     lock: LockKey(file: FileIdentity(major: 0, minor: 0, inode: 0), kind: .unknown),
                                     type: .write, outcome: .acquired, waited: nil, held: nil, blockedBy: nil)
}

extension LockKind {
    /// The kind of lock an event is about (`fl_flags`): FL_OFDLCK before
    /// FL_POSIX, because OFD locks carry both.
    public init(flags: LockFlags, tracepoint: LockTracepoint) {
        if tracepoint.isLease || flags.contains(.lease) || flags.contains(.delegation) { self = .lease }
        else if flags.contains(.ofd) { self = .ofd }
        else if flags.contains(.flock) || tracepoint == .flockLockInode { self = .flock }
        else { self = .posix }
    }
}
