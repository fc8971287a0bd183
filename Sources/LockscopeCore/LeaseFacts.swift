/// Facts about a lease being broken (fcntl(2) F_SETLEASE, "Leases"; fs/locks.c).
///
/// When a process opens a leased file in a conflicting way (or truncates it),
/// `__break_lease()` marks the lease BREAKING, sends the holder its lease-break
/// signal (SIGIO unless the holder chose another with F_SETSIG) and blocks the
/// opener until the holder releases or downgrades the lease — or until
/// `/proc/sys/fs/lease-break-time` seconds have passed, when the kernel removes the
/// lease itself (`time_out_leases()`). /proc/locks shows the lease as
/// `LEASE  BREAKING` and the opener as `-> LEASE  BREAKER … <none>:0` (its request
/// has no inode of its own).

/// The signal masks of /proc/PID/status (`SigBlk`, `SigIgn`, `SigCgt`: 64-bit hex,
/// bit n-1 for signal n; fs/proc/array.c `task_sig()`).
public struct SignalMasks: Sendable, Hashable {
    public var blocked: UInt64 = 0
    public var ignored: UInt64 = 0
    public var caught: UInt64 = 0

    public init(blocked: UInt64 = 0, ignored: UInt64 = 0, caught: UInt64 = 0) {
        self.blocked = blocked
        self.ignored = ignored
        self.caught = caught
    }

    /// Nil when the text has no `SigCgt:` line (not a status file). `StatusFields`
    /// parses the file; this is its signal part.
    public static func parse(status text: String) -> SignalMasks? { StatusFields.parse(text).signalMasks }

    static func bit(_ signal: Int32) -> UInt64 { signal >= 1 && signal <= 64 ? UInt64(1) << UInt64(signal - 1) : 0 }
    public func catches(_ signal: Int32) -> Bool { caught & SignalMasks.bit(signal) != 0 }
    public func ignores(_ signal: Int32) -> Bool { ignored & SignalMasks.bit(signal) != 0 }
    public func blocks(_ signal: Int32) -> Bool { blocked & SignalMasks.bit(signal) != 0 }
    /// Real-time signals (32–64) with a handler: a lease holder that used F_SETSIG usually picks one.
    public var caughtRealtime: [Int32] { (32...64).filter { catches(Int32($0)) }.map { Int32($0) } }
}

/// What the holder does when the break signal arrives.
public enum LeaseSignalHandling: String, Sendable, Hashable {
    /// A SIGIO handler is installed: the holder is told (if it did not pick another signal).
    case handled
    /// SIGIO is ignored or blocked: the holder is never told; the kernel breaks the lease at the deadline.
    case ignoredOrBlocked = "ignored-or-blocked"
    /// SIGIO has its default action, which terminates the holder — unless F_SETSIG chose another
    /// signal, which cannot be read from outside the process.
    case defaultAction = "default"
}

public enum LeaseFacts {
    /// SIGIO (= SIGPOLL) is 29 on x86_64 and aarch64 (asm-generic/signal.h).
    public static let sigio: Int32 = 29

    /// /proc/sys/fs/lease-break-time: whole seconds (proc_sys_fs(5); default 45).
    public static func breakTime(_ text: String) -> Int? { Int(text.trimmingSpaces) }

    public static func signalHandling(_ masks: SignalMasks) -> LeaseSignalHandling {
        if masks.catches(sigio) { return .handled }
        if masks.ignores(sigio) || masks.blocks(sigio) { return .ignoredOrBlocked }
        return .defaultAction
    }
}

/// How long until the kernel breaks a lease itself, from how long its breaker has waited.
///
/// Nothing in /proc says when a call began. Without kernel lock events the wait is
/// bounded: at least the time the sampler saw the breaker in the call, at most the
/// breaker thread's age. So the time left is at least `breakTime − age` and at most
/// `breakTime − observed`; with an exact start (lock events) both are the same.
///
/// The kernel's deadline: `__break_lease()` (fs/locks.c) sets `fl_break_time` (or
/// `fl_downgrade_time` for a read breaker) to `jiffies + lease_break_time * HZ` when
/// the first conflicting open flags the lease, and the opener sleeps until then;
/// `time_out_leases()` then removes (or downgrades) the lease. Later openers do not
/// move it.
public struct LeaseBreakClock: Sendable, Hashable {
    /// Where the wait comes from. `event`: kernel lock events saw the open that set the
    /// deadline, exact to a jiffy. `estimate`: bounded by the sampler and the breaker's age.
    public typealias Source = TimingSource
    public var breakTimeSeconds: Double
    /// Lower bound on the breaker's wait (sampler: in the call for at least this long).
    public var waitedAtLeast: Double
    /// Upper bound on the breaker's wait (its thread's age), nil when unknown.
    public var waitedAtMost: Double?
    public var source: Source

    public init(breakTimeSeconds: Double, waitedAtLeast: Double, waitedAtMost: Double?) {
        self.breakTimeSeconds = breakTimeSeconds
        self.waitedAtLeast = waitedAtLeast
        self.waitedAtMost = waitedAtMost.map { max($0, waitedAtLeast) }
        self.source = .estimate
    }

    /// The clock of a break whose deadline was set `breakingSeconds` ago (lock events).
    public init(breakTimeSeconds: Double, breakingSeconds: Double) {
        self.breakTimeSeconds = breakTimeSeconds
        self.waitedAtLeast = breakingSeconds
        self.waitedAtMost = breakingSeconds
        self.source = .event
    }

    /// The earliest the kernel can break the lease, in seconds from now (≥ 0).
    public var secondsLeft: Double { max(0, breakTimeSeconds - (waitedAtMost ?? waitedAtLeast)) }
    /// The latest, in seconds from now (≥ 0).
    public var secondsLeftAtMost: Double { max(0, breakTimeSeconds - waitedAtLeast) }
}
