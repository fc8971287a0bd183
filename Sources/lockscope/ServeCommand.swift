import ArgumentParser
import Dispatch
import LockscopeCore
import LockscopeMetrics
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the lock contention on this host to Prometheus over HTTP.",
        discussion: """
        GET /metrics: Prometheus text 0.0.4, or OpenMetrics 1.0 for a client whose Accept
        header asks for application/openmetrics-text. GET /: a short page. GET /healthz: ok.
        Scrapes closer together than --min-interval share one snapshot: /proc/locks is
        read at most once per interval (reading it stalls every lock operation on the
        machine). Listens on loopback unless told otherwise. SIGTERM or SIGINT stops it.

        As root, kernel lock events (the filelock tracepoints, as `watch` opens them) run
        for the server's lifetime and feed lockscope_lock_acquisitions_total,
        lockscope_lock_failed_attempts_total and the lockscope_lock_wait_seconds
        histogram (lockscope_events_available 1). Without them (not root, no
        tracepoints, --no-events, --proc-root) it serves snapshot gauges only, says why
        once on stderr, and lockscope_events_available is 0.

        Exit codes: 0 stopped by SIGTERM/SIGINT; 64 bad usage (e.g. a malformed
        --listen); 69 the address cannot be bound (port in use, address not local).
        """)

    @OptionGroup var exposition: ExpositionOptions

    @Option(name: .long, help: ArgumentHelp("Address to listen on, HOST:PORT ([::1]:PORT for IPv6; port 0: any free port).", valueName: "addr:port"))
    var listen: String = ListenAddress.defaultValue.description

    @Option(name: .customLong("min-interval"), help: ArgumentHelp("Minimum seconds between two reads of /proc/locks.", valueName: "seconds"))
    var minInterval: Double = 1

    @Flag(name: .customLong("no-events"), help: "Do not run kernel lock events: snapshot gauges only.")
    var noEvents = false

    func validate() throws {
        if ListenAddress(parsing: listen) == nil {
            throw ValidationError("--listen \(terminalSafe(listen)): expected HOST:PORT, e.g. 127.0.0.1:9743 or [::1]:9743")
        }
        if !(minInterval >= 0.1 && minInterval <= 3600) { throw ValidationError("--min-interval \(minInterval): expected 0.1…3600 seconds") }
    }

    func run() throws {
        guard let address = ListenAddress(parsing: listen) else { throw Exit.usage.code }
        var options = MetricsServer.Options(host: address.host, port: address.port)
        options.minInterval = minInterval
        let events = EventMetrics(maxPaths: exposition.top)
        var feed: ServeEventFeed? = nil
        let unavailable: String?
        if noEvents { unavailable = "--no-events" }
        else if exposition.procRoot != "/proc" { unavailable = "--proc-root reads a recorded tree, not this kernel" }
        else {
            let f = ServeEventFeed(recorder: events)
            unavailable = f.start()
            if unavailable == nil { feed = f }
        }
        // Stopped after the server: its descriptors closed, nothing left enabled.
        defer { feed?.stop() }
        let server = MetricsServer(options: options, collector: exposition.collector, events: events)
        let outcome = Mutex<String?>(nil)  // the server task's error, for the waiting main thread
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                try await server.run { bound in
                    fputs("lockscope: serving http://\(bound)/metrics\n", stdout)
                    fflush(stdout)
                    // Once listening, so a bind failure stays the one line on stderr.
                    if let unavailable {
                        writeError("lockscope: lock events unavailable: \(unavailable); serving snapshot gauges only (lockscope_events_available 0)")
                    }
                }
            } catch {
                outcome.withLock { $0 = String(describing: error) }
            }
            done.signal()
        }
        done.wait()
        if let message = outcome.withLock({ $0 }) {
            writeError("lockscope: \(terminalSafe(message))")
            throw Exit.unavailable.code
        }
    }
}
