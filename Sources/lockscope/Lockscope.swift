import ArgumentParser
import LockscopeCore
import LockscopeTestbed
#if canImport(Glibc)
import Glibc
#endif

/// The hidden first argument that runs the testbed (docs/testbed.md) instead of a
/// command: the demo re-executes this binary with it, so nothing else needs copying.
let testbedCommand = "__testbed"

@main
struct Lockscope: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lockscope",
        abstract: "Who holds a file lock, who waits for it, and what the holder is doing.",
        discussion: """
        Reads /proc (locks, fd links, fdinfo, thread syscalls) without stopping anything.
        A FILE is a path or the identity /proc/locks prints, MAJ:MIN:INODE (e.g. fe:00:16015361).

        Examples:
          lockscope who /run/xtables.lock        holders, co-holders and what they are doing
          lockscope waiters /run/xtables.lock    everyone queued or polling for it
          lockscope list --contended             every lock with waiters (like lslocks)

        Exit codes: 0 answered; 1 the file has no lock; 64 bad usage or input;
        66 no such file; 70 /proc could not be read; 75 FILE is on a filesystem that
        does not answer. See docs/cli.md.
        """,
        version: "0.1.0",
        subcommands: Lockscope.allSubcommands
    )

    /// ArgumentParser's own `main()`, except that every message it prints (usage errors
    /// echo the bad value: `--pid $'\e[2J'`) goes through the same escaping as file names,
    /// line by line, so no argument can move the cursor or ring the bell.
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == testbedCommand { testbedMain(Array(arguments.dropFirst())) }
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if !message.isEmpty {
                let safe = message.split(separator: "\n", omittingEmptySubsequences: false)
                    .map { terminalSafe(String($0)) }.joined(separator: "\n")
                fputs(safe.hasSuffix("\n") ? safe : safe + "\n", code == .success ? stdout : stderr)
            }
            Glibc.exit(code.rawValue)
        }
    }
}
