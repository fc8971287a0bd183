import ArgumentParser
import LockscopeCore
import LockscopeMetrics
#if canImport(Glibc)
import Glibc
#endif

/// Flags `metrics` and `serve` share.
struct ExpositionOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Locks that keep their own path label (most waiters first); the rest are path=\"other\".", valueName: "n"))
    var top: Int = 20

    @Flag(name: .customLong("no-diagnosis"), help: "Skip the quick diagnosis (reason labels, lockscope_diagnosis_findings).")
    var noDiagnosis = false

    @Option(name: .customLong("proc-root"), help: ArgumentHelp("Read this directory instead of /proc (recorded fixtures).", valueName: "dir"))
    var procRoot: String = "/proc"

    func validate() throws {
        if top < 0 || top > 10_000 { throw ValidationError("--top \(top): expected 0…10000") }
        guard ProcRoot(procRoot).exists("locks") else {
            throw ValidationError("--proc-root \(procRoot): no 'locks' file there; give a /proc mount or a recorded fixture tree")
        }
    }

    var collector: Collector { Collector(proc: ProcRoot(procRoot), top: top, diagnose: !noDiagnosis) }
}

struct Metrics: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        _superCommandName: "lockscope",  // parsed on its own at start-up: Lockscope.parseSnapshotCommand
        abstract: "Print the lock contention on this host as Prometheus metrics (one snapshot).",
        discussion: """
        One read of /proc/locks, no descriptor scan. Prometheus text format 0.0.4 (what
        node_exporter's textfile collector reads); --openmetrics for OpenMetrics 1.0.
        --output writes a temporary file beside FILE and renames it into place, so a
        collector never reads half a file. Names, units and labels: docs/metrics.md.
        Without a lock-events source (only `serve` can run one), the exposition holds
        snapshot gauges only and says so: lockscope_events_available 0.

        Exit codes: 0 written; 64 bad usage; 70 /proc could not be read (nothing is
        written); 73 --output could not be written.
        """)

    @OptionGroup var exposition: ExpositionOptions

    @Option(name: .long, help: ArgumentHelp("Write to FILE atomically (temp file + rename) instead of stdout.", valueName: "file"))
    var output: String?

    @Flag(name: .long, help: "OpenMetrics 1.0 text instead of the Prometheus 0.0.4 text format.")
    var openmetrics = false

    func run() throws {
        let clock = ContinuousClock()
        let start = clock.now
        let result: Collector.Result
        do {
            result = try exposition.collector.collect()
        } catch {
            throw fail(error)
        }
        let d = (clock.now - start).components
        let status = ExporterStatus(scrapeDurationSeconds: Double(d.seconds) + Double(d.attoseconds) / 1e18,
                                    scrapeErrors: 0, eventsAvailable: false)
        let bytes = Exposition(metrics: result.metrics, findings: result.findings, status: status)
            .render(openmetrics ? .openMetrics : .text)
        if let output {
            do {
                try AtomicFile.write(bytes, to: output)
            } catch {
                writeError("lockscope: \(terminalSafe(error.description))")
                throw Exit.cantCreate.code
            }
        } else {
            bytes.withUnsafeBufferPointer { _ = fwrite($0.baseAddress, 1, $0.count, stdout) }
            fflush(stdout)
        }
    }
}
