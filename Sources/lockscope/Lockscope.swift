import ArgumentParser
import CLockscopeImage
import SwiftShims
import LockscopeCore
import LockscopeTestbed
#if canImport(Glibc)
import Glibc
#endif

/// The hidden first argument that runs the testbed (docs/testbed.md) instead of a
/// command: the demo re-executes this binary with it, so nothing else needs copying.
let testbedCommand = "__testbed"

/// The release this source tree is.
let lockscopeRelease = "0.1.0"
/// `0.1.0 (git 4136b47c1a2b)`: the release and the commit the binary was built from.
let lockscopeVersion = "\(lockscopeRelease) (git \(gitRevision))"

@main
struct Lockscope: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lockscope",
        abstract: "Who holds a file lock, who waits for it, and what the holder is doing.",
        discussion: """
        Reads /proc (locks, fd links, fdinfo, thread syscalls) without stopping anything.
        A FILE is a path or the identity /proc/locks prints, MAJ:MIN:INODE (e.g. fe:00:16015361).

        Examples:
          lockscope who /run/xtables.lock      holders and what they are doing
          lockscope waiters /run/xtables.lock  everyone queued or polling for it
          lockscope list --contended           locks with waiters (like lslocks)
          lockscope diagnose                   why any lock is stuck

        Exit codes: 0 answered; 1 the file has no lock; 64 bad usage or input;
        66 no such file; 70 /proc could not be read; 75 FILE is on a filesystem that
        does not answer. See docs/cli.md.
        """,
        version: lockscopeVersion,
        subcommands: Lockscope.allSubcommands
    )

    /// No subcommand is a usage error (usage on stderr, exit 64), not a help page.
    func run() throws {
        throw ValidationError("give a command: " + Lockscope.allSubcommands.map { $0._commandName }.joined(separator: ", "))
    }

    /// ArgumentParser's own `main()`, except that every message it prints (usage errors
    /// echo the bad value: `--pid $'\e[2J'`) goes through the same escaping as file names,
    /// line by line, so no argument can move the cursor or ring the bell.
    static func main() {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == testbedCommand {
            registerDeferredConformances()
            testbedMain(Array(arguments.dropFirst()))
        }
        // `--version` answers before ArgumentParser builds its command tree: that costs
        // ~1 ms of first-time protocol-conformance lookups in a static binary
        // (docs/performance.md, "Start-up"). Same text as ArgumentParser prints.
        if arguments == ["-V"] || arguments == ["--version"] {
            print(lockscopeVersion)
            Glibc.exit(0)
        }
        // `help bogus`: ArgumentParser would show the top-level help and exit 0.
        if arguments.count > 1, arguments[0] == "help",
           !Lockscope.allSubcommands.contains(where: { $0._commandName == arguments[1] }) {
            fail(ValidationError("help: no such command '\(arguments[1])'"))
        }
        do {
            arguments = try negativeNumbersAsValues(arguments)
            var command: ParsableCommand
            if let snapshot = parseSnapshotCommand(arguments) {
                command = snapshot
            } else {
                registerDeferredConformances()
                command = try parseAsRoot(arguments)
            }
            try command.run()
        } catch {
            fail(error)
        }
    }

    /// The snapshot commands, which answer in milliseconds and must start as fast as
    /// lslocks (docs/performance.md, "Start-up"); `metrics` is one snapshot too, and
    /// node_exporter's textfile cron runs it on every host.
    static let snapshotCommands: [ParsableCommand.Type] = [List.self, Who.self, Waiters.self, Metrics.self]

    /// `list …`, `who …`, `waiters …` parsed by ArgumentParser as a command of its own
    /// (`parseAsRoot` of that type): it reflects over that one command instead of
    /// building the whole tree and running the two pseudo-parses that look for
    /// `--generate-completion-script` on every parse (each reflection's first dynamic
    /// casts scan every protocol-conformance record of the static binary). Their
    /// configurations name `lockscope` as super-command, which is what skips those
    /// pseudo-parses. Anything but a clean parse of that very command — help, a usage
    /// error, a completion or dump-help request — returns nil and is parsed again
    /// through the whole tree, so every message and exit code is the tree's.
    static func parseSnapshotCommand(_ arguments: [String]) -> ParsableCommand? {
        guard let name = arguments.first,
              let type = snapshotCommands.first(where: { $0.configuration.commandName == name }),
              let command = try? type.parseAsRoot(Array(arguments.dropFirst())),
              ObjectIdentifier(Swift.type(of: command)) == ObjectIdentifier(type) else { return nil }
        return command
    }

    /// The message and exit code ArgumentParser gives `error`, escaped line by line.
    static func fail(_ error: Error) -> Never {
        // ArgumentParser's error descriptions ask Foundation (LocalizedError).
        registerDeferredConformances()
        let code = exitCode(for: error)
        let message = fullMessage(for: error)
        if !message.isEmpty {
            // A clean exit prints the tool's own text (help, --version, a completion script,
            // --experimental-dump-help JSON): byte for byte, or the scripts and the JSON
            // break. Errors may echo what the user typed: escaped.
            let safe = code == .success ? message : message.split(separator: "\n", omittingEmptySubsequences: false)
                .map { terminalSafe(String($0)) }.joined(separator: "\n")
            fputs(safe.hasSuffix("\n") ? safe : safe + "\n", code == .success ? stdout : stderr)
        }
        Glibc.exit(code.rawValue)
    }
}

/// The static release leaves the conformance records of the exporter's packages, of
/// Foundation and of the Regex parser out of the set the Swift runtime scans on every
/// conformance-cache miss (Sources/CLockscopeImage/deferred-conformances.ld): the
/// snapshot commands, which run none of that code, start faster. Everything else
/// registers them first, before it parses or prints anything. A no-op in builds linked
/// without the script.
///
/// The records are handed to the runtime the way swiftrt.o hands every image's
/// sections at start-up: `swift_addNewDSOImage` (stdlib/public/runtime/
/// ImageInspectionCommon.cpp) with a `MetadataSections` (swift/shims/
/// MetadataSections.h) whose only range is theirs. That structure comes from the
/// toolchain's own SwiftShims, so its layout is the one the linked runtime reads. The
/// runtime keeps the pointer for the life of the process; registering also clears its
/// conformance cache, so no earlier negative answer survives.
func registerDeferredConformances() {
    guard !deferredConformancesRegistered else { return }
    deferredConformancesRegistered = true
    guard let start = cls_deferred_conformances_start(), let stop = cls_deferred_conformances_stop(), stop > start else { return }
    let sections = UnsafeMutablePointer<MetadataSections>.allocate(capacity: 1)
    sections.initialize(to: MetadataSections())
    sections.pointee.version = 5  // what swiftrt.o of the Swift 6 toolchains stores
    sections.pointee.baseAddress = cls_image_base()
    sections.pointee.swift5_protocol_conformances = MetadataSectionRange(start: UInt(bitPattern: start), length: stop - start)
    swiftAddNewDSOImage(sections)
}

/// Main thread only: set by the first registration.
nonisolated(unsafe) private var deferredConformancesRegistered = false

@_silgen_name("swift_addNewDSOImage")
private func swiftAddNewDSOImage(_ sections: UnsafeMutablePointer<MetadataSections>)

/// ArgumentParser reads `--duration -1` as a missing value followed by an unknown
/// option `-1`; joined into `--duration=-1` the value reaches `validate()`, which
/// says what is wrong with it ("--duration must be 0 or more seconds"). `-p -1` is
/// `--pid=-1`. A negative number where no option wants it (`trace -5`) is refused
/// with its own message instead of "Missing expected argument".
func negativeNumbersAsValues(_ arguments: [String]) throws -> [String] {
    func isNegativeNumber(_ s: String) -> Bool {
        s.count > 1 && s.hasPrefix("-") && Double(s) != nil
    }
    var out: [String] = []
    var i = 0
    while i < arguments.count {
        let a = arguments[i]
        if a == "--" { out += arguments[i...]; break }
        if i + 1 < arguments.count, isNegativeNumber(arguments[i + 1]), !a.contains("=") {
            if a.hasPrefix("--") { out.append(a + "=" + arguments[i + 1]); i += 2; continue }
            if a == "-p" { out.append("--pid=" + arguments[i + 1]); i += 2; continue }
        }
        if isNegativeNumber(a) {
            throw ValidationError("\(a): a pid or count is a positive number (a file named \(a): ./\(a))")
        }
        out.append(a)
        i += 1
    }
    return out
}
