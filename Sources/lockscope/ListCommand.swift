import ArgumentParser
import LockscopeCore
import LockscopeRender
#if canImport(Glibc)
import Glibc
#endif

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        _superCommandName: "lockscope",  // parsed on its own at start-up: Lockscope.parseSnapshotCommand
        abstract: "List every file lock on the system (the lslocks job), with waiter counts.",
        discussion: """
        The default view is the kernel's: /proc/locks plus the owner's descriptors for
        the path — as fast as lslocks. --holders adds every co-holder, which needs a
        scan of every descriptor on the machine.

        Columns work as in lslocks(8): -o COLS picks them (-o +COLS adds to the
        default), --output-all shows all, -n drops the heading, -r prints raw cells
        (one space apart, spaces as \\x20), -J prints lslocks' JSON document. The
        default list can be set in LOCKSCOPE_COLUMNS. On a terminal (or with COLUMNS
        set) COMMAND and PATH are cut so no line is wider than the terminal; -u
        never cuts. Each request queued behind a lock is a row of its own, its MODE
        marked * and BLOCKER set. PROTOCOL names the program's lock protocol when
        the file's path or byte ranges are one lockscope knows (SQLite, dpkg, apt,
        iptables, LevelDB, rpm) and the row's state in it, as diagnose reads it.

        Available output columns:
        \(ListColumns.helpText)

        Exit codes: 0 listed (even if empty); 64 bad input; 66 --path not found.
        """)

    @OptionGroup var common: CommonOptions

    @Option(name: [.short, .long], help: "Only locks held by, or waited for by, this pid.", completion: .shellCommand(pidsCommand))
    var pid: Int32?

    @Option(name: .long, help: ArgumentHelp("Only locks on this file (path or MAJ:MIN:INODE).", valueName: "file"), completion: .file())
    var path: String?

    @Option(name: .long, help: ArgumentHelp("Only this kind: flock, posix, ofdlck, lease, deleg, access.", valueName: "kind"),
            completion: .list(LockKind.allCases.filter { $0 != .unknown }.map { $0.rawValue.lowercased() }))
    var kind: String?

    @Flag(name: .long, help: "Only locks that someone is waiting for.")
    var contended = false

    @Flag(name: .long, help: "Find every co-holder (full descriptor scan; slower).")
    var holders = false

    @Option(name: [.customShort("o"), .customLong("output")], help: ArgumentHelp("Columns to print, comma-separated; +COLS adds to the default (see below).", valueName: "list"),
            completion: .list(ListColumns.all.map(\.name)))
    var output: String?

    @Flag(name: .customLong("output-all"), help: "Print every column.")
    var outputAll = false

    @Flag(name: [.customShort("H"), .customLong("list-columns")], help: "List the available columns and exit.")
    var listColumns = false

    @Flag(name: [.customShort("n"), .customLong("noheadings")], help: "Do not print the heading line.")
    var noHeadings = false

    @Flag(name: [.short, .long], help: "Raw output: cells one space apart, no alignment.")
    var raw = false

    @Flag(name: [.customShort("u"), .customLong("notruncate")], help: "Never cut COMMAND or PATH to the terminal width.")
    var noTruncate = false

    @Flag(name: [.short, .long], help: "Print SIZE in bytes instead of 1.4M.")
    var bytes = false

    @Flag(name: [.customShort("J"), .customLong("json-columns")], help: "lslocks' JSON: {\"locks\": [{column: value}]} for the chosen columns.")
    var jsonColumns = false

    /// The chosen columns: -o, else --output-all, else LOCKSCOPE_COLUMNS, else the default.
    func columns() throws -> [ListColumn] {
        if outputAll && output == nil { return ListColumns.all }
        var base = ListColumns.defaultNames
        if let env = environment("LOCKSCOPE_COLUMNS"), !env.isEmpty {
            do { base = try ListColumns.select(env).map(\.name) } catch {
                throw ValidationError("LOCKSCOPE_COLUMNS: \(error.description)")
            }
        }
        if outputAll { base = ListColumns.all.map(\.name) }
        if holders && output == nil && !base.contains("HOLDERS") { base.insert("HOLDERS", at: base.firstIndex(of: "PATH") ?? base.endIndex) }
        do { return try ListColumns.select(output, base: base) } catch {
            throw ValidationError("--output \(output ?? ""): \(error.description)")
        }
    }

    func validate() throws {
        _ = try columns()
        if jsonColumns && common.json { throw ValidationError("-J and --json are two JSON documents; give one") }
        if let pid, pid <= 0 { throw ValidationError("--pid must be a positive process id") }
        if let kind, LockKind(rawValue: kind.uppercased()) == nil || kind.uppercased() == "UNKNOWN" {
            throw ValidationError("--kind \(kind): expected one of flock, posix, ofdlck, lease, deleg, access")
        }
    }

    func run() throws {
        if listColumns {
            emit(ListColumns.listing(raw: raw))
            return
        }
        var target: Target? = nil
        if let path { target = try resolveTargets([path]).first }
        var report: LockReport
        do {
            report = try LockScanner(proc: common.proc).allLocks(options: .init(coHolders: holders, processFacts: true, waiterDetails: false, briefFacts: !common.json, namespacePaths: true))
        } catch {
            throw fail(error)
        }
        // Before the filters: every lock on a file counts towards what its protocol reads.
        let protocols = ProtocolIndex(report.locks)
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
            return
        }
        let columns = try columns()
        // SIZE reads the file (stat), only when it is shown and only on the live /proc.
        let wantSize = columns.contains { $0.name == "SIZE" } && common.procRoot == "/proc"
        var rows = listRows(report.locks, protocols: protocols) { l in
            guard wantSize, let path = l.path, let file = l.file else { return nil }
            return lockedFileSize(path: path, file: file)
        }
        // As lslocks -p: the locks the pid holds, and the requests it has queued.
        if let pid {
            rows = rows.filter { r in
                if let w = r.waiter { return w.pid == pid }
                return r.lock.kernelPid == pid || r.lock.holders.contains { $0.pid == pid }
            }
        }
        let ctx = ColumnContext(bytes: bytes)
        if jsonColumns {
            emit([columnsJSON(rows, columns: columns, context: ctx).serialized()])
            return
        }
        let text = ReportText(style: common.style, syscallName: hostSyscallName)
        let layout = ColumnLayout(headings: !noHeadings, raw: raw, noTruncate: noTruncate)
        emit(text.list(report, rows: rows, columns: columns, context: ctx, layout: layout))
    }
}

func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
