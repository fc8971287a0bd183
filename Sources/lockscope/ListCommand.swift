import ArgumentParser
import LockscopeCore
import LockscopeRender

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List every file lock on the system (the lslocks job), with waiter counts.",
        discussion: """
        The default view is the kernel's: /proc/locks plus the owner's descriptors for
        the path — as fast as lslocks. --holders adds every co-holder, which needs a
        scan of every descriptor on the machine.

        Exit codes: 0 listed (even if empty); 64 bad input; 66 --path not found.
        """)

    @OptionGroup var common: CommonOptions

    @Option(name: .long, help: "Only locks held by, or waited for by, this pid.")
    var pid: Int32?

    @Option(name: .long, help: ArgumentHelp("Only locks on this file (path or MAJ:MIN:INODE).", valueName: "file"))
    var path: String?

    @Option(name: .long, help: ArgumentHelp("Only this kind: flock, posix, ofdlck, lease, deleg.", valueName: "kind"))
    var kind: String?

    @Flag(name: .long, help: "Only locks that someone is waiting for.")
    var contended = false

    @Flag(name: .long, help: "Find every co-holder (full descriptor scan; slower).")
    var holders = false

    func validate() throws {
        if let pid, pid <= 0 { throw ValidationError("--pid must be a positive process id") }
        if let kind, LockKind(rawValue: kind.uppercased()) == nil || kind.uppercased() == "UNKNOWN" {
            throw ValidationError("--kind \(kind): expected one of flock, posix, ofdlck, lease, deleg, access")
        }
    }

    func run() throws {
        var target: Target? = nil
        if let path { target = try resolveTargets([path]).first }
        var report: LockReport
        do {
            report = try LockScanner(proc: common.proc).allLocks(options: .init(coHolders: holders, processFacts: true, waiterDetails: false))
        } catch {
            throw fail(error)
        }
        report.locks = report.locks.filter { l in
            if let target, l.file != target.file { return false }
            if let kind, l.kind.rawValue != kind.uppercased() { return false }
            if contended && l.waiters.isEmpty { return false }
            if let pid, !(l.kernelPid == pid || l.holders.contains { $0.pid == pid } || l.waiters.contains { $0.pid == pid }) { return false }
            return true
        }
        if let target { report.targets = [target] }
        if common.json {
            emitJSON(report)
        } else {
            emit(ReportText(style: common.style, syscallName: hostSyscallName).list(report, showHolders: holders))
        }
    }
}
