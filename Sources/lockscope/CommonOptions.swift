import ArgumentParser
import LockscopeCore
import LockscopeRender
#if canImport(Glibc)
import Glibc
#endif

/// Flags every inspecting command shares.
struct CommonOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON (schema: docs/json-schema.md) instead of text.")
    var json = false

    @Option(name: .customLong("proc-root"), help: ArgumentHelp("Read this directory instead of /proc (recorded fixtures).", valueName: "dir"))
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

/// Exit codes, documented in docs/cli.md and `lockscope --help`.
enum Exit {
    static let ok: Int32 = 0
    static let noLocks: Int32 = 1
    static let usage: Int32 = 64        // EX_USAGE
    static let noInput: Int32 = 66      // EX_NOINPUT: no such file, a directory, unopenable
    static let software: Int32 = 70     // EX_SOFTWARE: /proc unreadable
}

/// Turns a library error into one line on stderr and its documented exit code.
func fail(_ error: LockscopeError) -> ExitCode {
    writeError("lockscope: \(terminalSafe(error.description))")
    switch error {
    case .noSuchPath, .isDirectory, .cannotOpen: return ExitCode(Exit.noInput)
    case .invalidIdentity, .noSuchProcess: return ExitCode(Exit.usage)
    case .procRead, .malformed, .environment: return ExitCode(Exit.software)
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
            let t = try resolver.resolve(a)
            if !targets.contains(where: { $0.file == t.file }) { targets.append(t) }
        } catch {
            throw fail(error)
        }
    }
    return targets
}
