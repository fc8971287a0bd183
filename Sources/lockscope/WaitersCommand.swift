import ArgumentParser
import LockscopeCore
import LockscopeDiagnosis
import LockscopeRender
#if canImport(Glibc)
import Glibc
#endif

struct Waiters: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "waiters",
        _superCommandName: "lockscope",  // parsed on its own at start-up: Lockscope.parseSnapshotCommand
        abstract: "Show everyone waiting for a lock on FILE: blocked, polling, or idle.",
        discussion: """
        Blocked: threads the kernel has queued behind the lock (/proc/locks '->'
        lines, and OFD or POSIX waiters found from their current flock/fcntl call).
        BLOCKED_BY is the holder that really blocks them; BEHIND is the entry directly
        ahead in the kernel's queue, often another waiter on recent kernels.
        Polling: attempts were seen: caught in a non-blocking attempt (flock
        LOCK_NB, fcntl F_SETLK), asleep with the file of a lock protocol whose clients
        retry (iptables -w, SQLite's busy handler, apt), or, with --window, refused in
        the kernel's lock events. Idle (open, asleep): the file is open and the process
        sleeps, no attempt seen. Open but not waiting: the file is open, nothing more.
        Identical waiters are grouped in text ('iptables ×61'); --each lists them.

        --window S (as root): also reads the kernel's lock events for S seconds and
        lists the processes refused meanwhile, also those that close the file between
        attempts (apt-get -o DPkg::Lock::Timeout, 'while ! flock -n F true; do sleep
        1; done', reported under the shell), with their attempts and retry interval,
        and the processes that queued behind the lock meanwhile, with their exact wait
        (AGE marked '*'; other ages are the waiting process's, an upper bound).
        Without root or tracepoints a note says so and the answer is the snapshot's.

        Exit codes: 0 a lock was found; 1 no lock on FILE; 64 bad input; 66 no such file;
        75 FILE is on a filesystem that does not answer (give MAJ:MIN:INODE).
        """)

    @OptionGroup var common: CommonOptions

    @Flag(name: .long, help: "List every waiter on its own line instead of grouping by command.")
    var each = false

    @Option(name: .long, help: ArgumentHelp("Seconds to also watch the kernel's lock events for pollers (0 = one snapshot).", valueName: "seconds"))
    var window: Double = 0

    @Argument(help: ArgumentHelp("Paths, or MAJ:MIN:INODE identities.", valueName: "file"), completion: .file())
    var files: [String]

    func validate() throws {
        if each && common.json { throw ValidationError("--each only changes text output; JSON always lists every waiter") }
        if !(0...60).contains(window) { throw ValidationError("--window must be between 0 and 60 seconds") }
        if window > 0 && !common.proc.isLive { throw ValidationError("--window needs the live /proc, not --proc-root") }
    }

    func run() throws {
        var report = try scanReport(files: files, common: common, openers: true)
        if window > 0 {
            // Ctrl-C ends the window early; the answer covers what was seen.
            StopSignals.install(catchingSIGPIPE: false)
            let reader = ProcessReader(proc: common.proc)
            let end = MonotonicClock.nanoseconds + Int64(window * 1e9)
            KernelLockEvents(proc: common.proc).observe(files: report.targets.map(\.file), report: &report,
                                                        facts: { reader.facts(of: $0, withThreads: true) }) {
                while StopSignals.requested == 0 && MonotonicClock.nanoseconds < end { usleep(20_000) }
            }
        }
        if common.json {
            emitJSON(report)
        } else {
            emit(ReportText(style: common.style, syscallName: hostSyscallName, each: each).waiters(report))
        }
        if report.locks.isEmpty && report.openers.isEmpty { throw Exit.notFound.code }
    }
}
