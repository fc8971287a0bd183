import ArgumentParser
import LockscopeCore
import LockscopeRender

struct Who: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "who",
        _superCommandName: "lockscope",  // parsed on its own at start-up: Lockscope.parseSnapshotCommand
        abstract: "Show every process holding a lock on FILE, co-holders included.",
        discussion: """
        A co-holder shares the lock's open file description through fork, dup or a
        passed descriptor (flock(1) and the command it runs both hold the lock).
        /proc/locks names only one of them: lockscope marks it 'owner' and the rest
        'shared'. IN is the system call the process is in right now (no ptrace).

        Exit codes: 0 a lock was found; 1 no lock on FILE; 64 bad input; 66 no such file;
        75 FILE is on a filesystem that does not answer (give MAJ:MIN:INODE).
        """)

    @OptionGroup var common: CommonOptions

    @Argument(help: ArgumentHelp("Paths, or MAJ:MIN:INODE identities as /proc/locks prints them.", valueName: "file"), completion: .file())
    var files: [String]

    func validate() throws {
    }

    func run() throws {
        let report = try scanReport(files: files, common: common, openers: false)
        if common.json {
            emitJSON(report)
        } else {
            emit(ReportText(style: common.style, syscallName: hostSyscallName).who(report))
        }
        if report.locks.isEmpty { throw Exit.notFound.code }
    }
}

/// Shared by `who` and `waiters`: the same report, rendered differently.
func scanReport(files: [String], common: CommonOptions, openers: Bool) throws -> LockReport {
    let targets = try resolveTargets(files)
    do {
        return try LockScanner(proc: common.proc).report(for: targets, options: .init(openers: openers))
    } catch {
        throw fail(error)
    }
}
