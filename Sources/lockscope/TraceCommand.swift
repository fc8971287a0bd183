import ArgumentParser
import LockscopeCore
import LockscopeEvents
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

    @Flag(name: .long, help: "Use the kernel engine: every system call from the raw_syscalls tracepoints, nothing stopped (needs root; the default when available).")
    var kernel = false

    @Flag(name: .long, help: "Use the sampler: /proc read --hz times a second (the default without root or tracepoints).")
    var sampler = false

    @Flag(name: .long, help: "Use the ptrace tracer: every system call with its result and duration. Slows the target (see below).")
    var ptrace = false

    @Option(name: .long, help: ArgumentHelp("--kernel/--ptrace: only these calls, by name or class (lock, net, poll, sleep, futex, process, file, desc, signal, memory, ipc, blocking), comma-separated.", valueName: "list"))
    var syscalls: String?

    @Flag(name: .customLong("summary-only"), help: "--kernel/--ptrace: print only the summary, not every call.")
    var summaryOnly = false

    @Flag(name: .customLong("no-follow"), help: "--kernel/--ptrace: do not follow new threads and child processes.")
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

        As root, the kernel engine (--kernel) is the default: every system call of
        every thread, from the raw_syscalls tracepoints through perf_event_open,
        strace-like, with durations. It never stops or attaches to the target;
        pointer arguments are read when the event is processed, and those read after
        the call returned are marked with a trailing ~. Without root or tracepoints
        the sampler (--sampler) is the default: it reads
        /proc/PID/task/*/{syscall,stat,wchan} --hz times a second and decodes the
        current call's arguments with process_vm_readv. The first line on stderr says
        which engine ran and why. Ctrl-C ends early and still prints.

        --ptrace attaches with PTRACE_SEIZE (never PTRACE_O_EXITKILL) and shows every
        system call, strace-like. It stops the target twice per call, which slows it.
        Attaching interrupts the call in progress: the kernel restarts it, but a
        socket call with SO_RCVTIMEO returns EINTR to the program instead, and a
        flock() waiter re-queues behind later waiters. That is why the sampler is
        the default. lockscope detaches on --duration, Ctrl-C, SIGTERM, SIGHUP,
        SIGPIPE and errors; if it is killed, the kernel detaches and the target runs on.

        Exit codes: 0 done; 1 FILE has no lock (nothing to trace); 64 bad usage;
        66 no such process or file; 69 target cannot be traced (kernel thread,
        zombie, lockscope itself, already traced by another process), or --kernel
        where the kernel engine is unavailable (the line says why); 70 internal
        error; 74 output failed; 75 FILE is on a filesystem that does not answer;
        77 permission denied (run as root or as the target's user) or ptrace
        forbidden by kernel.yama.ptrace_scope. See docs/trace.md.
        """)

    @OptionGroup var flags: TraceFlags

    @Argument(help: ArgumentHelp("PIDs, or files whose lock holders to trace.", valueName: "target"), completion: .shellCommand(pidsCommand))
    var targets: [String]

    func validate() throws {
        guard flags.duration >= 0, flags.duration.isFinite else { throw ValidationError("--duration must be 0 or more seconds") }
        guard (1...1000).contains(flags.hz) else { throw ValidationError("--hz must be between 1 and 1000") }
        if [flags.kernel, flags.sampler, flags.ptrace].filter({ $0 }).count > 1 {
            throw ValidationError("choose one engine: --kernel, --sampler or --ptrace")
        }
        if flags.sampler, let why = samplerConflict { throw ValidationError(why) }
    }

    /// Flags the sampler cannot honour, if any was given.
    var samplerConflict: String? {
        if flags.syscalls != nil { return "--syscalls needs --kernel or --ptrace (the sampler sees one call per sample)" }
        if flags.summaryOnly { return "--summary-only needs --kernel or --ptrace" }
        if flags.noFollow { return "--no-follow needs --kernel or --ptrace" }
        return nil
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
            return
        }
        if flags.sampler {
            try runSampler(pids: pids, style: style, out: out, why: "sampler (--sampler)")
            return
        }
        let kernel = KernelTracer()
        switch kernel.probe() {
        case .success(let decoder):
            try runKernel(kernel, decoder: decoder, pids: pids, filter: filter, style: style, out: out,
                          why: flags.kernel ? "kernel tracepoints (--kernel)" : "kernel tracepoints (default: root, raw_syscalls tracepoints available)")
        case .failure(let why):
            if flags.kernel {
                writeError("lockscope: --kernel: " + terminalSafe(why.description))
                throw Exit.unavailable.code
            }
            if let conflict = samplerConflict {
                writeError("lockscope: " + conflict + "; the kernel engine is unavailable: " + terminalSafe(why.description))
                throw Exit.usage.code
            }
            try runSampler(pids: pids, style: style, out: out, why: "sampler (default: kernel engine unavailable: \(why))")
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

    func runSampler(pids: [Int32], style: Style, out: TraceOutput, why: String) throws {
        let report: SamplerReport
        do { report = try Sampler().sample(pids: pids, duration: seconds(flags.duration), hz: flags.hz) } catch {
            throw traceFailure(error)
        }
        // After the sampler's own refusals, so a refused target still gets exactly one line.
        writeError("lockscope: engine: " + terminalSafe(why))
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
        writeError("lockscope: engine: ptrace (--ptrace)")
        writeError("lockscope: --ptrace stops the target at every system call and slows it; a call with SO_RCVTIMEO may see EINTR. Use the default sampler in production.")
        let options = traceOptions(filter)
        try stream(pids: pids, style: style, out: out, engine: "ptrace") { shouldStop, onEvent in
            do { return try PtraceTracer().trace(pids: pids, options: options, shouldStop: shouldStop, onEvent: onEvent) } catch let error as TraceError {
                throw traceFailure(error)
            }
        }
    }

    func runKernel(_ kernel: KernelTracer, decoder: RawSyscallDecoder, pids: [Int32], filter: SyscallFilter, style: Style,
                   out: TraceOutput, why: String) throws {
        for pid in pids {
            do { try kernel.check(pid: pid) } catch { throw traceFailure(error) }
        }
        writeError("lockscope: engine: " + why)
        let options = traceOptions(filter)
        try stream(pids: pids, style: style, out: out, engine: "kernel") { shouldStop, onEvent in
            do {
                return try kernel.trace(pids: pids, decoder: decoder, options: options, shouldStop: shouldStop, onEvent: onEvent)
            } catch let error as KernelTraceError {
                switch error {
                case .target(let e): throw traceFailure(e)
                case .unavailable(let why):
                    writeError("lockscope: --kernel: " + terminalSafe(why.description))
                    throw Exit.unavailable.code
                }
            }
        }
    }

    func traceOptions(_ filter: SyscallFilter) -> TraceOptions {
        TraceOptions(duration: flags.duration > 0 ? seconds(flags.duration) : nil, filter: filter,
                     followChildren: !flags.noFollow, decode: !flags.summaryOnly)
    }

    /// Runs an event engine (ptrace or kernel) and writes its lines, or one JSON
    /// document at the end, then the summary.
    func stream(pids: [Int32], style: Style, out: TraceOutput, engine: String,
                trace: (_ shouldStop: () -> Bool, _ onEvent: (TraceEvent) -> Bool) throws -> TraceSummary) throws {
        let text = TraceText(style: style)
        var events: [TraceEvent] = []
        var lineBuffer = TraceBytes()
        let json = flags.json
        let quiet = flags.summaryOnly
        let summary = try trace({
            out.flushIfDue()
            return StopSignals.requested != 0 || out.failed
        }, { e in
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
        if json {
            out.line(TraceJSON.ptrace(events: events, summary: summary, targets: pids, engine: engine).serialized())
        } else {
            if !quiet { out.line("") }
            for l in text.summary(summary) { out.line(l) }
        }
        out.flush()
        // Also on stderr, where it is seen when the lines go to a file.
        if let lost = summary.lostEvents, lost > 0 {
            writeError("lockscope: \(lost) event(s) lost: a ring buffer was full (the output misses those calls)")
        }
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
