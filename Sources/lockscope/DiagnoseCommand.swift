import ArgumentParser
import LockscopeCore
import LockscopeDiagnosis
import LockscopeRender
#if canImport(Glibc)
import Glibc
#endif

struct Diagnose: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diagnose",
        abstract: "Explain why a lock is stuck: who holds it, what the holder is doing, and what to change.",
        discussion: """
        Scans the lock graph, watches what the holders (and the processes they wait
        on) are doing for --window seconds without stopping anything (as root, every
        system call from the kernel's tracepoints, with exact durations; otherwise
        the sampler, and the report says why), reads the kernel's lock events
        meanwhile (as root: pollers that close the file between attempts, such as
        apt-get's lock timeout or a 'flock -n' loop), and prints:
        the verdict first, then the wait-for tree, then findings with stable rule ids
        (dns-timeout, wait-chain, deadlock, leaked-fd, lease-break, holder-waits-child,
        holder-stopped, holder-exiting, holder-io, holder-pipe, holder-sleeping,
        holder-busy, holder-futex, holder-network, sqlite-busy, lock-protocol), their
        evidence, and a suggestion. See docs/diagnose.md.

        With no FILE: every contended lock on the system.

        Exit codes: 0 nobody is waiting; 3 contention found (the findings say why);
        4 contention found but a holder could not be inspected (run as root);
        64 bad usage or input; 66 no such file; 70 /proc could not be read;
        75 FILE is on a filesystem that does not answer (give MAJ:MIN:INODE).
        """)

    @OptionGroup var common: CommonOptions

    @Flag(name: .long, help: "Print the wait-for graph in Graphviz DOT instead of text.")
    var dot = false

    @Option(name: .long, help: ArgumentHelp("Seconds to sample the holders (0 = one snapshot).", valueName: "seconds"))
    var window: Double = 1

    @Option(name: .long, help: ArgumentHelp("Samples per second during the window.", valueName: "n"))
    var hz: Int = 100

    @Flag(name: .long, help: "Use the ptrace tracer instead of the kernel engine or sampler (slows the holder; see docs/trace.md).")
    var ptrace = false

    @Flag(name: .long, help: "Use the sampler even where the kernel engine could run (root).")
    var sampler = false

    @Flag(name: .long, help: "Text: only verdict, tree, and each finding's summary and suggestion (no evidence lines).")
    var brief = false

    @Argument(help: ArgumentHelp("Paths, or MAJ:MIN:INODE identities. None: every contended lock.", valueName: "file"), completion: .file())
    var files: [String] = []

    func validate() throws {
        if dot && common.json { throw ValidationError("--json and --dot are alternatives; give one") }
        // As `waiters --each --json`: a text-only flag with another format is refused.
        if brief && (common.json || dot) { throw ValidationError("--brief only changes text output; \(dot ? "--dot" : "JSON") always has every finding's evidence") }
        if !(0...60).contains(window) { throw ValidationError("--window must be between 0 and 60 seconds") }
        if !(1...1000).contains(hz) { throw ValidationError("--hz must be between 1 and 1000") }
        if ptrace && !common.proc.isLive { throw ValidationError("--ptrace needs the live /proc, not --proc-root") }
        if ptrace && sampler { throw ValidationError("choose one engine: --sampler or --ptrace") }
    }

    func run() throws {
        let targets: [Target]? = files.isEmpty ? nil : try resolveTargets(files)
        if ptrace {
            writeError("lockscope: warning: --ptrace stops the holders at every system call for the window; the default engines (kernel, sampler) stop nothing")
        }
        // Ctrl-C ends the sampling window early; the report covers what was seen.
        StopSignals.install(catchingSIGPIPE: false)
        // Kernel lock events over the same window: pollers that close the file between attempts.
        let events: LockEventsProvider? = common.proc.isLive && window > 0 ? KernelLockEvents(proc: common.proc) : nil
        let diagnoser = Diagnoser(proc: common.proc, window: window, hz: hz,
                                  provider: Diagnoser.liveProvider(proc: common.proc, ptrace: ptrace, sampler: sampler),
                                  lockEvents: events)
        let diagnosis: Diagnosis
        do {
            diagnosis = try diagnoser.diagnose(targets: targets, shouldStop: { StopSignals.requested != 0 })
        } catch {
            throw fail(error)
        }
        render(diagnosis, json: common.json, dot: dot, style: common.style, brief: brief)
        throw Exit(diagnosis.outcome).code
    }
}

/// Shared by `diagnose` and `demo`.
func render(_ d: Diagnosis, json: Bool, dot: Bool, style: Style, brief: Bool) {
    if json {
        emit([DiagnosisJSON(syscallName: hostSyscallName, exitCode: { Exit($0).rawValue }).value(d).serialized()])
    } else if dot {
        fputs(DiagnosisDOT().render(d), stdout)
    } else {
        emit(DiagnosisText(style: style, evidence: !brief).render(d))
    }
}
