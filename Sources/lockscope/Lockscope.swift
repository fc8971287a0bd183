import ArgumentParser

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
}
