import CLockscope

/// SIGINT, SIGTERM, SIGHUP (and SIGPIPE) as a flag the sampler, the tracer, the
/// diagnosis window and the demo poll, so Ctrl-C ends a run early and the summary
/// is still printed, a tracer always detaches, and the demo stops what it started.
/// One C handler (CLockscope) serves them all. Installing handlers is a process-wide
/// act, so only the executable and the demo do it; library callers pass their own
/// stop check instead.
public enum StopSignals {
    /// Installs the handlers (without `SA_RESTART`, so a blocking wait returns
    /// `EINTR`). With `catchingSIGPIPE` a write to a closed pipe fails with `EPIPE`
    /// instead of killing us. Idempotent.
    public static func install(catchingSIGPIPE: Bool = true) { cls_install_stop_handlers(catchingSIGPIPE ? 1 : 0) }

    /// The first stop signal received since `install()`, or 0.
    public static var requested: Int32 { cls_stop_signal() }

    /// Forgets a received signal (tests).
    public static func reset() { cls_reset_stop_signal() }

    /// Makes the calling thread the one a stop signal interrupts, wherever it lands.
    public static func wakeThisThread() { cls_set_wake_thread() }

    /// The handler sends `signal` to `pid` (a child we spawned) the moment a stop
    /// signal arrives. Only pids this process started may be registered.
    public static func stop(child pid: Int32, with signal: Int32) { _ = cls_stop_register_child(pid, signal) }

    /// Forgets a child once it has been reaped (its pid may be reused from then on).
    public static func forget(child pid: Int32) { cls_stop_unregister_child(pid) }
}
