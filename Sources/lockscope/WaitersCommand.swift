import ArgumentParser
import LockscopeCore
import LockscopeRender

struct Waiters: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "waiters",
        abstract: "Show everyone waiting for a lock on FILE: blocked, polling, or idle.",
        discussion: """
        Blocked: threads the kernel has queued behind the lock (/proc/locks '->'
        lines, and OFD or POSIX waiters found from their current flock/fcntl call).
        BLOCKED_BY is the holder that really blocks them; BEHIND is the entry directly
        ahead in the kernel's queue, often another waiter on recent kernels.
        Polling: the file is open and the process sleeps between non-blocking
        attempts (flock LOCK_NB, e.g. iptables -w; fcntl F_SETLK for POSIX locks, e.g.
        SQLite's busy handler). Idle: the file is open, nothing more.
        Identical waiters are grouped in text ('iptables ×61'); --each lists them.

        Exit codes: 0 a lock was found; 1 no lock on FILE; 64 bad input; 66 no such file;
        75 FILE is on a filesystem that does not answer (give MAJ:MIN:INODE).
        """)

    @OptionGroup var common: CommonOptions

    @Flag(name: .long, help: "List every waiter on its own line instead of grouping by command.")
    var each = false

    @Argument(help: ArgumentHelp("Paths, or MAJ:MIN:INODE identities.", valueName: "file"), completion: .file())
    var files: [String]

    func validate() throws {
        if each && common.json { throw ValidationError("--each only changes text output; JSON always lists every waiter") }
    }

    func run() throws {
        let report = try scanReport(files: files, common: common, openers: true)
        if common.json {
            emitJSON(report)
        } else {
            emit(ReportText(style: common.style, syscallName: hostSyscallName, each: each).waiters(report))
        }
        if report.locks.isEmpty && report.openers.isEmpty { throw Exit.notFound.code }
    }
}
