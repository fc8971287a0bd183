import ArgumentParser
import LockscopeCore
import LockscopeDemo
import LockscopeDiagnosis
import LockscopeRender
#if canImport(Glibc)
import Glibc
#endif

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Reproduce the xtables incident on this machine, then diagnose it.",
        discussion: """
        In a temporary directory of its own: three nameservers on loopback addresses
        that never answer, a private mount namespace where a resolv.conf pointing at
        them (options timeout:2 attempts:2) replaces /etc/resolv.conf, a holder
        ("iptables", the testbed under that name) that takes flock(LOCK_EX) on
        DIR/xtables.lock and resolves a name, and --waiters more blocked on the same
        lock. Then it runs `lockscope diagnose` on the file and prints the report.

        It stops every process it started (by pid; also on Ctrl-C or SIGTERM) and
        removes its directory; nothing outside it is touched, and the bind mount
        exists only in the private namespace. Needs root, or unprivileged user
        namespaces (then the nameservers live in a private network namespace).
        See docs/demo.md.

        Exit codes: 0 the incident was reproduced and diagnosed (dns-timeout found);
        1 it ran but the diagnosis did not find it; 69 it cannot run here (the line
        on stderr says why); 130 interrupted.
        """)

    @Option(name: .long, help: ArgumentHelp("Processes blocked behind the holder.", valueName: "n"))
    var waiters = 20

    @Option(name: .long, help: ArgumentHelp("Seconds diagnose samples the holder.", valueName: "seconds"))
    var window: Double = 1

    @Option(name: .long, help: ArgumentHelp("resolv.conf `timeout:` for the demo nameservers.", valueName: "seconds"))
    var timeout = 2

    @Option(name: .long, help: ArgumentHelp("resolv.conf `attempts:`.", valueName: "n"))
    var attempts = 2

    @Option(name: .long, help: ArgumentHelp("How many blackhole nameservers (1–3).", valueName: "n"))
    var nameservers = 3

    @Flag(name: .long, help: "Print the diagnosis as JSON (with a \"demo\" object describing the setup).")
    var json = false

    @Flag(name: .long, help: "Print the wait-for graph in Graphviz DOT.")
    var dot = false

    @Flag(name: .customLong("no-color"), help: "Never colour the output (also: NO_COLOR=1).")
    var noColor = false

    // Internal: how the demo runs its namespace helper (itself, with these options and
    // the holder's argv after `--`). Hidden from --help; see DemoHolder.
    @Option(name: .customLong("holder-namespace"), help: .hidden)
    var holderNamespaceDir: String?
    @Option(name: .customLong("mode"), help: .hidden)
    var holderNamespaceMode: String?
    @Argument(parsing: .postTerminator, help: .hidden)
    var holderArgv: [String] = []

    func validate() throws {
        if !(0...500).contains(waiters) { throw ValidationError("--waiters must be between 0 and 500") }
        if !(0...30).contains(window) { throw ValidationError("--window must be between 0 and 30 seconds") }
        if !(1...30).contains(timeout) { throw ValidationError("--timeout must be between 1 and 30 (glibc's limit)") }
        if !(1...5).contains(attempts) { throw ValidationError("--attempts must be between 1 and 5 (glibc's limit)") }
        if !(1...3).contains(nameservers) { throw ValidationError("--nameservers must be between 1 and 3 (glibc uses at most 3)") }
        if json && dot { throw ValidationError("--json and --dot are alternatives; give one") }
    }

    func run() throws {
        if let dir = holderNamespaceDir {
            guard let mode = DemoMode(rawValue: holderNamespaceMode ?? ""), !holderArgv.isEmpty else {
                throw ValidationError("internal: --holder-namespace needs --mode and the holder's argv after --")
            }
            let held = DemoHolder.run(.init(dir: dir, mode: mode, nameservers: nameservers, timeout: timeout,
                                            attempts: attempts, holder: holderArgv))
            throw (held ? Exit.ok : Exit.notFound).code
        }
        let exe = selfExecutable()
        // The testbed is built into this binary (`lockscope __testbed`): one file is enough.
        let testbed = getenv("LOCKSCOPE_TESTBED").map { [String(cString: $0)] } ?? [exe, testbedCommand]
        var options = DemoRunner.Options()
        options.waiters = waiters
        options.timeout = timeout
        options.attempts = attempts
        options.nameservers = nameservers
        options.holdSeconds = Int(window.rounded(.up)) + 60
        let runner = DemoRunner(options: options, helperCommand: [exe, "demo"], testbed: testbed)
        let quiet = json || dot
        var style = Style.forStandardOutput()
        if noColor { style.color = false }

        let setup: DemoRunner.Setup
        do {
            setup = try runner.setUp()
        } catch {
            let interrupted = StopSignals.requested != 0
            _ = runner.tearDown()
            writeError(interrupted ? "lockscope demo: interrupted; everything it started was stopped" : terminalSafe(error.description))
            throw (interrupted ? Exit.interrupted : Exit.unavailable).code
        }
        if !quiet {
            emit(DemoNarration.setup(setup, options: options, style: style) + ["Running: lockscope diagnose \(terminalSafe(setup.lockPath))", ""])
            fflush(stdout)  // a pipe is fully buffered; say what stands before the window starts
        }
        let diagnoser = Diagnoser(window: window, provider: Diagnoser.liveProvider())
        let diagnosis: Diagnosis
        do {
            let target = try TargetResolver().resolve(setup.lockPath)
            diagnosis = try diagnoser.diagnose(targets: [target], shouldStop: { StopSignals.requested != 0 })
        } catch {
            _ = runner.tearDown()
            writeError("lockscope demo: diagnose failed: \(terminalSafe(error.description))")
            throw Exit.software.code
        }
        let cleanup = runner.tearDown()
        if StopSignals.requested != 0 {
            writeError("lockscope demo: interrupted; everything it started was stopped")
            throw Exit.interrupted.code
        }
        if json {
            let value = JSONValue.object([
                ("demo", DemoNarration.json(setup, cleanup: cleanup)),
                ("diagnosis", DiagnosisJSON(syscallName: hostSyscallName, exitCode: { Exit($0).rawValue }).value(diagnosis)),
            ])
            emit([value.serialized()])
        } else if dot {
            fputs(DiagnosisDOT().render(diagnosis), stdout)
        } else {
            emit(DiagnosisText(style: style).render(diagnosis))
            emit([""] + DemoNarration.cleanup(cleanup, setup: setup, style: style))
        }
        let found = diagnosis.findings.contains { $0.rule == .dnsTimeout }
        if !found { throw Exit.notFound.code }
    }

    func selfExecutable() -> String {
        (try? ProcRoot("/proc").readLink("self/exe")) ?? CommandLine.arguments[0]
    }
}
