import ArgumentParser
import LockscopeCore
import LockscopeDiagnosis
import LockscopeRender
#if canImport(Glibc)
import Glibc
#endif

/// Flags every inspecting command shares.
struct CommonOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON (schema: docs/json-schema.md) instead of text.")
    var json = false

    @Option(name: .customLong("proc-root"), help: ArgumentHelp("Read this directory instead of /proc (recorded fixtures).", valueName: "dir"), completion: .directory)
    var procRoot: String = "/proc"

    @Flag(name: .customLong("no-color"), help: "Never colour the output (also: NO_COLOR=1).")
    var noColor = false

    var proc: ProcRoot { ProcRoot(procRoot) }

    var style: Style {
        var s = Style.forStandardOutput()
        if noColor { s.color = false }
        return s
    }

    func validate() throws {
        guard ProcRoot(procRoot).exists("locks") else {
            throw ValidationError("--proc-root \(procRoot): no 'locks' file there; give a /proc mount or a recorded fixture tree")
        }
    }
}

/// Every exit code lockscope uses, in one table (docs/cli.md, "Exit codes"). The
/// library returns values and typed errors; only this table turns them into codes.
enum Exit: Int32 {
    case ok = 0
    /// Answered, and the answer is no: FILE has no lock (who, waiters, trace), or the
    /// demo's diagnosis did not find the incident (or its namespace helper failed).
    case notFound = 1
    /// diagnose: someone waits; the findings say why.
    case contention = 3
    /// diagnose: someone waits, but a holder could not be inspected.
    case couldNotInspect = 4
    case usage = 64        // EX_USAGE
    case noInput = 66      // EX_NOINPUT: no such file or process, a directory, unopenable
    case unavailable = 69  // EX_UNAVAILABLE: cannot be traced; the demo cannot run here; serve cannot bind
    case software = 70     // EX_SOFTWARE: /proc unreadable, an unexpected failure
    case cantCreate = 73   // EX_CANTCREAT: metrics --output cannot be written
    case ioError = 74      // EX_IOERR: the output could not be written
    case unresponsive = 75 // EX_TEMPFAIL: FILE's filesystem does not answer (a dead FUSE/NFS mount)
    case noPermission = 77 // EX_NOPERM
    case interrupted = 130 // 128 + SIGINT, as a shell reports it

    var code: ExitCode { ExitCode(rawValue) }

    init(_ outcome: Diagnosis.Outcome) {
        switch outcome {
        case .noContention: self = .ok
        case .contention: self = .contention
        case .couldNotInspect: self = .couldNotInspect
        }
    }
}

/// Turns a library error into one line on stderr and its documented exit code.
func fail(_ error: LockscopeError) -> ExitCode {
    writeError("lockscope: \(terminalSafe(error.description))")
    switch error {
    case .noSuchPath, .isDirectory, .cannotOpen: return Exit.noInput.code
    case .invalidIdentity, .noSuchProcess: return Exit.usage.code
    case .procRead, .malformed, .environment: return Exit.software.code
    case .unresponsiveFilesystem: return Exit.unresponsive.code
    }
}

func writeError(_ line: String) {
    var s = line
    if !s.hasSuffix("\n") { s += "\n" }
    fputs(s, stderr)
}

/// Standard output through a 64 KiB buffer, for documents too large to build as one String.
struct StandardOutput: TextOutputStream {
    var buffer = ""

    mutating func write(_ string: String) {
        buffer += string
        if buffer.utf8.count >= 1 << 16 { flush() }
    }

    mutating func flush() {
        fputs(buffer, stdout)
        buffer.removeAll(keepingCapacity: true)
    }
}

/// A lock report as JSON on stdout (streamed).
func emitJSON(_ report: LockReport) {
    var out = StandardOutput()
    ReportJSON(syscallName: hostSyscallName).write(report, to: &out)
    out.write("\n")
    out.flush()
}

func emit(_ lines: [String]) {
    var text = lines.joined(separator: "\n")
    text += "\n"
    fputs(text, stdout)
}

/// Resolves every FILE argument, failing on the first bad one with its own message.
func resolveTargets(_ arguments: [String]) throws -> [Target] {
    let resolver = TargetResolver()
    var targets: [Target] = []
    for a in arguments {
        do {
            let t = try resolver.resolve(a, bytes: rawArgumentBytes(for: a))
            if !targets.contains(where: { $0.file == t.file }) { targets.append(t) }
        } catch {
            throw fail(error)
        }
    }
    return targets
}

/// The exact bytes of the command-line argument that `argument` was decoded from.
/// `CommandLine.arguments` replaces invalid UTF-8 with U+FFFD, so a file named
/// `bad\xff.lock` would be looked up as `bad\u{FFFD}.lock`; the raw argv has the name.
func rawArgumentBytes(for argument: String) -> [UInt8]? {
    for i in 1..<Int(CommandLine.argc) {
        guard let raw = CommandLine.unsafeArgv[i] else { continue }
        let bytes = Array(UnsafeBufferPointer(start: UnsafeRawPointer(raw).assumingMemoryBound(to: UInt8.self), count: strlen(raw)))
        if String(decoding: bytes, as: UTF8.self) == argument { return bytes }
        // `--path=FILE` arrives as one word.
        if let eq = bytes.firstIndex(of: UInt8(ascii: "=")), bytes.first == UInt8(ascii: "-"),
           String(decoding: bytes[(eq + 1)...], as: UTF8.self) == argument {
            return Array(bytes[(eq + 1)...])
        }
    }
    return nil
}

/// Shell completion for pid arguments: the live processes, from /proc (no ps needed).
let pidsCommand = "ls /proc | grep -E '^[0-9]+$'"
