import ArgumentParser
import LockscopeCore
import LockscopeRender
import LockscopeTrace
#if canImport(Glibc)
import Glibc
#endif

/// Flags of `trace` (its own group: tracing needs the live /proc, so no --proc-root).
struct TraceFlags: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Seconds to sample or trace (decimals allowed). With --ptrace, 0 = until every tracee exits or Ctrl-C.", valueName: "seconds"))
    var duration: Double = 3

    @Option(name: .long, help: ArgumentHelp("Sampling rate of the sampler, samples per second (1…1000).", valueName: "n"))
    var hz: Int = 100

    @Flag(name: .long, help: "Use the ptrace tracer instead of the sampler: every system call with its result and duration. Slows the target (see below).")
    var ptrace = false

    @Option(name: .long, help: ArgumentHelp("--ptrace: only these calls, by name or class (lock, net, poll, sleep, futex, process, file, desc, signal, memory, ipc, blocking), comma-separated.", valueName: "list"))
    var syscalls: String?

    @Flag(name: .customLong("summary-only"), help: "--ptrace: print only the summary, not every call.")
    var summaryOnly = false

    @Flag(name: .customLong("no-follow"), help: "--ptrace: do not follow new threads and child processes.")
    var noFollow = false

    @Flag(name: .long, help: "Print one JSON document (schema: docs/trace.md) instead of text.")
    var json = false

    @Flag(name: .customLong("no-color"), help: "Never colour the output (also: NO_COLOR=1).")
    var noColor = false
}

struct Trace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Show what a process (or the holders of a lock) is blocked in, and for how long.",
        discussion: """
        TARGET is a PID, or a FILE (a path or MAJ:MIN:INODE): then every holder of its
        locks, co-holders included (children that share the lock's descriptor).

        By default a sampler reads /proc/PID/task/*/{syscall,stat,wchan} --hz times a
        second and decodes the current call's arguments with process_vm_readv: it
        never stops or attaches to anything. Ctrl-C ends early and still prints.

        --ptrace attaches with PTRACE_SEIZE (never PTRACE_O_EXITKILL) and shows every
        system call, strace-like. It stops the target twice per call, which slows it.
        Attaching interrupts the call in progress: the kernel restarts it, but a
        socket call with SO_RCVTIMEO returns EINTR to the program instead, and a
        flock() waiter re-queues behind later waiters. That is why the sampler is
        the default. lockscope detaches on --duration, Ctrl-C, SIGTERM, SIGHUP,
        SIGPIPE and errors; if it is killed, the kernel detaches and the target runs on.

        Exit codes: 0 done; 1 FILE has no lock (nothing to trace); 64 bad usage;
        66 no such process or file; 69 target cannot be traced (kernel thread,
        zombie, lockscope itself, already traced by another process); 70 internal
        error; 74 output failed; 77 permission denied (run as root or as the
        target's user) or ptrace forbidden by kernel.yama.ptrace_scope. See docs/trace.md.
        """)

    @OptionGroup var flags: TraceFlags

    @Argument(help: ArgumentHelp("PIDs, or files whose lock holders to trace.", valueName: "target"))
    var targets: [String]

    func validate() throws {
        guard flags.duration >= 0, flags.duration.isFinite else { throw ValidationError("--duration must be 0 or more seconds") }
        guard (1...1000).contains(flags.hz) else { throw ValidationError("--hz must be between 1 and 1000") }
        if !flags.ptrace {
            if flags.syscalls != nil { throw ValidationError("--syscalls needs --ptrace (the sampler sees every call)") }
            if flags.summaryOnly { throw ValidationError("--summary-only needs --ptrace") }
            if flags.noFollow { throw ValidationError("--no-follow needs --ptrace") }
        }
    }

    func run() throws {
        var style = Style.forStandardOutput()
        if flags.noColor { style.color = false }
        let filter: SyscallFilter
        do { filter = try SyscallFilter(parsing: flags.syscalls ?? "", table: .host) } catch {
            throw traceFailure(error)
        }
        let pids = try resolvePids()
        StopSignals.install()
        let out = TraceOutput()
        if flags.ptrace {
            try runPtrace(pids: pids, filter: filter, style: style, out: out)
        } else {
            try runSampler(pids: pids, style: style, out: out)
        }
    }

    /// PIDs as given, or the holders of each FILE's locks.
    func resolvePids() throws -> [Int32] {
        var pids: [Int32] = []
        var files: [String] = []
        for t in targets {
            if let pid = Int32(t), pid > 0 { pids.append(pid) } else { files.append(t) }
        }
        if !files.isEmpty {
            let resolved = try resolveTargets(files)
            let report: LockReport
            do { report = try LockScanner().report(for: resolved, options: .init(openers: false)) } catch { throw fail(error) }
            let holders = report.locks.flatMap(\.holders).map(\.pid)
            if holders.isEmpty {
                writeError("lockscope: " + files.map(terminalSafe).joined(separator: ", ") + ": no process holds a lock on it; nothing to trace")
                throw Exit.notFound.code
            }
            pids += holders
        }
        var seen = Set<Int32>()
        return pids.filter { seen.insert($0).inserted }
    }

    func seconds(_ d: Double) -> Duration { .nanoseconds(Int64(d * 1e9)) }

    func runSampler(pids: [Int32], style: Style, out: TraceOutput) throws {
        let report: SamplerReport
        do { report = try Sampler().sample(pids: pids, duration: seconds(flags.duration), hz: flags.hz) } catch {
            throw traceFailure(error)
        }
        if flags.json {
            out.line(TraceJSON.sampler(report, targets: pids).serialized())
        } else {
            for l in TraceText(style: style).sampler(report) { out.line(l) }
        }
        out.flush()
        if out.failed { throw Exit.ioError.code }
    }

    func runPtrace(pids: [Int32], filter: SyscallFilter, style: Style, out: TraceOutput) throws {
        // Refuse before warning: a target that cannot be traced gets one line, nothing else.
        for pid in pids {
            do { try PtraceTracer().check(pid: pid) } catch { throw traceFailure(error) }
        }
        writeError("lockscope: --ptrace stops the target at every system call and slows it; a call with SO_RCVTIMEO may see EINTR. Use the default sampler in production.")
        let options = TraceOptions(duration: flags.duration > 0 ? seconds(flags.duration) : nil, filter: filter,
                                   followChildren: !flags.noFollow, decode: !flags.summaryOnly)
        let text = TraceText(style: style)
        var events: [TraceEvent] = []
        var lineBuffer = TraceBytes()
        let json = flags.json
        let quiet = flags.summaryOnly
        let summary: TraceSummary
        do {
            summary = try PtraceTracer().trace(pids: pids, options: options, shouldStop: {
                out.flushIfDue()
                return StopSignals.requested != 0 || out.failed
            }, onEvent: { e in
                if json {
                    if !quiet { events.append(e) }
                } else if !quiet {
                    if case .syscall(let s) = e {
                        // The common line, straight to bytes (no intermediate String).
                        lineBuffer.bytes.removeAll(keepingCapacity: true)
                        lineBuffer.syscallLine(s, style: style)
                        out.line(bytes: lineBuffer.bytes)
                    } else {
                        out.line(text.event(e))
                    }
                }
                return !out.failed
            })
        } catch {
            throw traceFailure(error)
        }
        if json {
            out.line(TraceJSON.ptrace(events: events, summary: summary, targets: pids).serialized())
        } else {
            if !quiet { out.line("") }
            for l in text.summary(summary) { out.line(l) }
        }
        out.flush()
        if out.failed || summary.endedBy == .outputFailed { throw Exit.ioError.code }
    }

    /// One line on stderr and the documented exit code.
    func traceFailure(_ error: TraceError) -> ExitCode {
        writeError("lockscope: " + terminalSafe(error.description))
        switch error {
        case .noSuchProcess: return Exit.noInput.code
        case .permissionDenied, .ptraceRestricted: return Exit.noPermission.code
        case .alreadyTraced, .kernelThread, .ownProcess, .zombie: return Exit.unavailable.code
        case .notLive, .unknownSyscall: return Exit.usage.code
        case .system: return Exit.software.code
        }
    }
}

/// Buffered stdout through write(2), so a closed pipe is noticed (EPIPE: SIGPIPE is
/// caught by the stop handlers) and the tracer can detach at once. Flushes when
/// 16 KiB are pending, at least every 100 ms while tracing, and at the end.
final class TraceOutput {
    private var buffer: [UInt8] = []
    private var lastFlush = MonotonicClock.nanoseconds
    private(set) var failed = false
    private let interactive = isatty(1) == 1

    init() { buffer.reserveCapacity(1 << 15) }

    func line(_ s: String) {
        buffer.append(contentsOf: s.utf8)
        buffer.append(10)
        if interactive || buffer.count >= 1 << 14 { flush() }
    }

    func line(bytes: [UInt8]) {
        buffer.append(contentsOf: bytes)
        buffer.append(10)
        if interactive || buffer.count >= 1 << 14 { flush() }
    }

    func flushIfDue() {
        if !buffer.isEmpty && MonotonicClock.nanoseconds - lastFlush > 100_000_000 { flush() }
    }

    func flush() {
        lastFlush = MonotonicClock.nanoseconds
        guard !failed, !buffer.isEmpty else { buffer.removeAll(keepingCapacity: true); return }
        var off = 0
        while off < buffer.count {
            guard let n = buffer.withUnsafeBytes({ b in try? retryingOnInterrupt { write(1, b.baseAddress! + off, b.count - off) } })
            else { failed = true; break }
            off += n
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
