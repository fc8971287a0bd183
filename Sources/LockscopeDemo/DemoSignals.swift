#if canImport(Glibc)
import Glibc
#endif

/// Ctrl-C, SIGTERM and SIGHUP during the demo: the handler sends each registered
/// child its stop signal at once (kill(2) is async-signal-safe) and records the
/// signal; the main flow sees `requested`, reaps, removes its directory and exits.
/// Only pids the demo itself spawned are ever registered.
public enum DemoSignals {
    static let capacity = 1024
    /// pid, signal pairs; written only outside the handler, before `count` is bumped.
    nonisolated(unsafe) static let table: UnsafeMutablePointer<Int32> = {
        let p = UnsafeMutablePointer<Int32>.allocate(capacity: 2 * 1024)
        p.initialize(repeating: 0, count: 2 * 1024)
        return p
    }()
    nonisolated(unsafe) static var count = 0
    nonisolated(unsafe) static var caught: Int32 = 0

    /// The signal that asked us to stop, or 0.
    public static var requested: Int32 { caught }

    /// Installs the handlers (idempotent). Not SA_RESTART: a blocking read returns EINTR.
    public static func install() {
        _ = table
        _ = count
        for s in [SIGINT, SIGTERM, SIGHUP] {
            var act = sigaction()
            act.__sigaction_handler.sa_handler = { sig in
                DemoSignals.caught = sig
                var i = 0
                while i < DemoSignals.count {
                    let pid = DemoSignals.table[2 * i]
                    if pid > 0 { kill(pid, DemoSignals.table[2 * i + 1]) }
                    i += 1
                }
            }
            sigemptyset(&act.sa_mask)
            act.sa_flags = 0
            sigaction(s, &act, nil)
        }
    }

    /// Registers a child to be sent `signal` if we are interrupted.
    static func register(_ pid: pid_t, signal: Int32) {
        guard count < capacity, pid > 0 else { return }
        table[2 * count] = pid
        table[2 * count + 1] = signal
        count += 1
    }

    /// Forgets a child once it has been reaped (its pid may be reused from then on).
    static func unregister(_ pid: pid_t) {
        for i in 0..<count where table[2 * i] == pid { table[2 * i] = 0 }
    }
}
