import LockscopeCore
#if canImport(Glibc)
import Glibc
#endif

/// The default way to see what a process does: reads every thread's
/// /proc/PID/task/TID/{syscall,stat,wchan,sched} at a fixed rate and decodes the
/// current call with `process_vm_readv`. No ptrace, no signal: the threads are
/// never stopped. A recorded tree (a `ProcRoot` that is not /proc) gets one round,
/// and has no memory to read: pointed-to arguments stay unreadable (`ESRCH`).
///
///     let report = try Sampler().sample(pids: [holder], duration: .seconds(1), hz: 100)
///     let poll = report.processes[0].threads[0].current   // DecodedSyscall
public struct Sampler: Sendable {
    public let proc: ProcRoot
    public let arch: SyscallArch
    /// Sample every process /proc shows as far as it can be read (state, CPU time,
    /// wchan; the call where readable) instead of skipping the ones whose calls
    /// cannot be read (another user's, a zombie): what diagnosis wants of a holder.
    public var bestEffort = false

    public init(proc: ProcRoot = ProcRoot(), arch: SyscallArch = .host, bestEffort: Bool = false) {
        self.proc = proc
        self.arch = arch
        self.bestEffort = bestEffort
    }

    /// Samples `pids` (every thread of each) for `duration` at `hz` samples per second.
    ///
    /// Ends early, still returning what it saw, when `shouldStop` returns true
    /// (checked between rounds; the default watches for SIGINT/SIGTERM/SIGHUP/SIGPIPE
    /// once `StopSignals.install()` was called) or when every target has exited.
    /// Targets that cannot be read are listed in `SamplerReport.skipped`.
    ///
    /// - Throws: `TraceError` only when no target can be sampled at all (then the
    ///   first target's reason).
    public func sample(pids: [Int32], duration: Duration, hz: Int = 100,
                       shouldStop: () -> Bool = { StopSignals.requested != 0 }) throws(TraceError) -> SamplerReport {
        try SamplingRun(sampler: self, pids: pids, duration: duration, hz: hz).run(shouldStop: shouldStop)
    }

    /// One round, at once: every thread's current call, decoded (no window, so no
    /// histogram beyond the one sample). For `who`/`waiters`-style snapshots.
    public func snapshot(pid: Int32) throws(TraceError) -> SampledProcess {
        let report = try SamplingRun(sampler: self, pids: [pid], duration: .zero, hz: 1).run(shouldStop: { false })
        guard let p = report.processes.first else { throw report.skipped.first ?? .noSuchProcess(pid) }
        return p
    }
}
