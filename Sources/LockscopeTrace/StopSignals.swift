import CLockscope

/// SIGINT, SIGTERM, SIGHUP and SIGPIPE as a flag the sampler and the tracer poll,
/// so Ctrl-C ends a run early and the summary is still printed (and a tracer
/// always detaches). Installing handlers is a process-wide act, so only the
/// executable does it; library callers pass their own stop check instead.
public enum StopSignals {
    /// Installs the handlers (without `SA_RESTART`, so a blocking wait returns
    /// `EINTR`). SIGPIPE then makes writes fail with `EPIPE` instead of killing us.
    public static func install() { cls_trace_install_stop_handlers() }

    /// The first stop signal received since `install()`, or 0.
    public static var requested: Int32 { cls_trace_stop_signal() }

    /// Forgets a received signal (tests).
    public static func reset() { cls_trace_reset_stop_signal() }
}
