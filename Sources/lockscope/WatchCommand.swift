import ArgumentParser
import LockscopeCore
import LockscopeEvents
import LockscopeRender
#if canImport(Glibc)
import Glibc
#endif

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Lock activity as it happens, from the kernel's lock events: acquisitions, waits, holds, failed attempts.",
        discussion: """
        Opens the filelock tracepoints (every flock/fcntl lock request, wait, grant and
        release on the machine) and sched fork/exec/exit with perf_event_open, system-wide,
        or filtered in the kernel to the FILEs given. Sees what no /proc snapshot can:
        pollers that open, try and close (apt-get's lock timeout), retry loops that start
        a process per attempt (reported once, under the shell), contention that comes and goes.
        Nothing is written to tracefs; the events vanish with lockscope, even if it is killed.

        On a terminal: a view refreshed every second; q or Ctrl-C ends it and prints the
        summary. Otherwise the summary is printed at the end (--duration, Ctrl-C, SIGTERM).
        --events prints one line per lock operation as it happens; with --json, one JSON
        object per line, flushed at once, then the summary as the last line (the
        recording format). Schema: docs/watch.md.

        Needs root (perf_event_open on tracepoints system-wide).

        Exit codes: 0 done; 64 bad usage (--duration); 66 no such file, or a directory;
        69 lock events unavailable (not root, no filelock tracepoints, perf refused);
        70 internal error; 74 output failed.
        """)

    @Option(name: .long, help: ArgumentHelp("Seconds to watch (decimals allowed, up to 7 days). Default: until q, Ctrl-C or SIGTERM.", valueName: "seconds"))
    var duration: Double?

    @Flag(name: .long, help: "Print one line per lock operation (time, process, operation, file, outcome, waited/held).")
    var events = false

    @Flag(name: .long, help: "JSON: the lockscope.watch/1 summary; with --events, one JSON object per event, then the summary.")
    var json = false

    @Flag(name: .customLong("no-color"), help: "Never colour the output (also: NO_COLOR=1).")
    var noColor = false

    @Argument(help: ArgumentHelp("Files to watch (paths or MAJ:MIN:INODE). Default: every lock on the machine.", valueName: "file"))
    var files: [String] = []

    static let maxDuration = 7.0 * 86400

    func validate() throws {
        if let d = duration {
            guard d.isFinite, d > 0 else { throw ValidationError("--duration must be more than 0 seconds") }
            guard d <= Self.maxDuration else { throw ValidationError("--duration must be at most 604800 seconds (7 days)") }
        }
    }

    func run() throws {
        var style = Style.forStandardOutput()
        if noColor { style.color = false }
        let targets = try resolveTargets(files)
        if geteuid() != 0 {
            writeError("lockscope: lock events unavailable: not root (perf_event_open on the filelock tracepoints needs root or CAP_PERFMON)")
            throw Exit.unavailable.code
        }
        let source: LockEventSource
        do { source = try LockEventSource(files: targets.map(\.file)) } catch {
            writeError("lockscope: lock events unavailable: " + terminalSafe(error.description))
            switch error {
            case .malformedFormat, .missingField: throw Exit.software.code
            default: throw Exit.unavailable.code
            }
        }
        var paths: [FileIdentity: String] = [:]
        for t in targets { paths[t.file] = t.path ?? t.argument }
        var aggregator = LockAggregator(paths: paths)
        aggregator.describeProcess = { pid in
            let proc = ProcRoot("/proc")
            guard let text = try? proc.readText("\(pid)/stat"), let stat = StatFields.parse(text) else { return nil }
            return (stat.comm, stat.ppid)
        }
        // Locks on files nobody named get their path from the first processes that
        // lock them (procfs only: never blocks on the file's filesystem).
        let openFiles = OpenFilePaths()
        aggregator.resolvePath = { file, pid in openFiles.path(of: file, openedBy: pid) }
        if let text = try? ProcRoot("/proc").readText("sys/fs/lease-break-time"), let bt = LeaseFacts.breakTime(text) {
            aggregator.leaseBreakSeconds = Double(bt)
        }
        let sourceName: String
        switch source.tracefs {
        case .mounted(let p): sourceName = "kernel lock events, formats from " + p
        case .privateMount: sourceName = "kernel lock events, formats from a private tracefs mount"
        }
        StopSignals.install()
        let out = TraceOutput()
        let live = !events && !json && isatty(1) == 1
        let keyboard = live ? Keyboard() : nil
        defer { keyboard?.restore() }
        do { try source.enable() } catch {
            writeError("lockscope: lock events unavailable: " + terminalSafe(error.description))
            throw Exit.unavailable.code
        }
        let start = UInt64(MonotonicClock.nanoseconds)
        let render = WatchRender(style: style, start: start)
        let deadline = duration.map { start + UInt64($0 * 1e9) }
        let events = self.events, json = self.json
        var lastDraw: UInt64 = 0
        var st = stat()
        let stdoutIsPipe = fstat(1, &st) == 0 && ((st.st_mode & S_IFMT) == S_IFIFO || (st.st_mode & S_IFMT) == S_IFSOCK)
        var eventCount: UInt64 = 0
        if live { out.line("\u{1b}[?1049h\u{1b}[?25l") }
        func handle(_ e: KernelEvent) {
            eventCount += 1
            guard let op = aggregator.apply(e) else { return }
            let path = aggregator.paths[op.lock.file]
            if json { out.line(render.eventJSON(op, path: path).serialized(pretty: false)); out.flush() }
            else { out.line(render.eventLine(op, path: path)) }
        }
        // Without --events nobody reads the operations: the events go straight into
        // the counters (the same counters, a fraction of the CPU per event).
        func drain(everything: Bool) {
            if events { source.drain(everything: everything, handle); return }
            let missed = source.undecoded
            let n = source.drain(everything: everything, into: &aggregator)
            eventCount += UInt64(n) - (source.undecoded - missed)
        }
        while StopSignals.requested == 0 && !out.failed {
            let now = UInt64(MonotonicClock.nanoseconds)
            if let deadline, now >= deadline { break }
            let wait = deadline.map { Int32(min(100, max(1, ($0 - now) / 1_000_000))) } ?? 100
            _ = source.wait(timeoutMilliseconds: wait)
            drain(everything: false)
            out.flushIfDue()
            if let keyboard, keyboard.quitPressed() { break }
            if stdoutIsPipe && readerGone() { return }
            if live, UInt64(MonotonicClock.nanoseconds) - lastDraw >= 1_000_000_000 {
                lastDraw = UInt64(MonotonicClock.nanoseconds)
                let size = terminalSize()
                var s = style
                s.width = size.columns
                let summary = aggregator.summary(now: lastDraw, durationSeconds: Double(lastDraw - start) / 1e9, lostEvents: source.lostEvents)
                let lines = WatchRender(style: s, start: start).liveView(summary, elapsed: Double(lastDraw - start) / 1e9,
                                                                         events: eventCount, rows: size.rows)
                out.line("\u{1b}[H\u{1b}[2J" + lines.prefix(size.rows).joined(separator: "\r\n"))
                out.flush()
            }
        }
        source.session.disable()
        drain(everything: true)
        let end = UInt64(MonotonicClock.nanoseconds)
        let lost = source.lostEvents
        source.close()
        if live { out.line("\u{1b}[?25h\u{1b}[?1049l"); out.flush() }
        if out.failed { return }  // the reader went away (watch --events | head): nothing more to say
        let summary = aggregator.summary(now: end, durationSeconds: Double(end - start) / 1e9, lostEvents: lost)
        if json {
            out.line(WatchRender.summaryJSON(summary, source: sourceName).serialized(pretty: !events))
        } else {
            if events { out.line("") }
            for l in render.summaryText(summary, source: sourceName) { out.line(l) }
        }
        out.flush()
        if out.failed { throw Exit.ioError.code }
    }

    /// True when nobody reads our stdout any more (`watch --events | head` after
    /// head exited): poll(2) reports POLLERR on a pipe's write end with no
    /// reader, POLLHUP on a socket. Without this, a quiet watch would notice
    /// only at its next write, which may never come.
    func readerGone() -> Bool {
        var p = pollfd(fd: 1, events: 0, revents: 0)
        return poll(&p, 1, 0) > 0 && (p.revents & Int16(POLLERR | POLLHUP)) != 0
    }

    func terminalSize() -> (columns: Int, rows: Int) {
        var ws = winsize()
        if ioctl(1, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_col > 0, ws.ws_row > 0 { return (Int(ws.ws_col), Int(ws.ws_row)) }
        return (80, 24)
    }
}

/// stdin in non-canonical, no-echo mode while the live view runs, so `q` ends it
/// without Enter; restored on every way out.
final class Keyboard {
    var saved = termios()
    var active = false

    init() {
        guard isatty(0) == 1, tcgetattr(0, &saved) == 0 else { return }
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 0
            cc[Int(VTIME)] = 0
        }
        active = tcsetattr(0, TCSANOW, &raw) == 0
    }

    /// True when `q` (or Q) is waiting on stdin; other keys are discarded.
    func quitPressed() -> Bool {
        guard active else { return false }
        var p = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 0) > 0 else { return false }
        var buf = [UInt8](repeating: 0, count: 64)
        let n = read(0, &buf, buf.count)
        return n > 0 && buf[0..<n].contains { $0 == UInt8(ascii: "q") || $0 == UInt8(ascii: "Q") }
    }

    func restore() {
        if active { tcsetattr(0, TCSANOW, &saved); active = false }
    }
}
