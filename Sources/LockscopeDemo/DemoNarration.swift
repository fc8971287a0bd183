import LockscopeCore
import LockscopeDiagnosis
import LockscopeRender

/// What `lockscope demo` says before and after the diagnosis.
public enum DemoNarration {
    public static func setup(_ s: DemoRunner.Setup, options: DemoRunner.Options, style: Style) -> [String] {
        let where_ = s.mode == .root ? "private mount namespace" : "private user, mount and network namespaces"
        return [
            style.bold("lockscope demo: the xtables incident, reproduced in \(terminalSafe(s.dir))"),
            "  mode:        \(s.mode.rawValue) (\(where_))",
            "  nameservers: \(s.nameservers.joined(separator: ", ")) — UDP port 53, bound and never answered",
            "  resolv.conf: options timeout:\(options.timeout) attempts:\(options.attempts), bind-mounted over /etc/resolv.conf for the holder only; one failed lookup takes \(s.lookupSeconds) s",
            "  holder:      iptables[\(s.holderPid)] took flock(LOCK_EX) on xtables.lock, then resolves \(options.name) again and again",
            "  waiters:     \(s.waiterPids.count) × iptables blocked in flock(LOCK_EX) on the same file",
            "  (\"iptables\" is lockscope-testbed run under that name)",
            "",
        ]
    }

    public static func cleanup(_ c: DemoRunner.Cleanup, setup: DemoRunner.Setup, style: Style) -> [String] {
        var lines = ["Cleaned up: stopped \(c.processesStopped) processes it started"
            + (c.directoryRemoved ? ", removed \(terminalSafe(setup.dir))" : "")
            + "; the private namespace ended with them."]
        for l in c.leftovers { lines.append(style.yellow("warning: " + terminalSafe(l))) }
        return lines
    }

    public static func json(_ s: DemoRunner.Setup, cleanup c: DemoRunner.Cleanup) -> JSONValue {
        .object([
            ("mode", .string(s.mode.rawValue)),
            ("dir", .string(s.dir)),
            ("lock", .string(s.lockPath)),
            ("resolv_conf", .string(s.resolvConfPath)),
            ("nameservers", .array(s.nameservers.map { .string($0) })),
            ("lookup_seconds", .int(Int64(s.lookupSeconds))),
            ("helper_pid", .int(Int64(s.helperPid))),
            ("holder_pid", .int(Int64(s.holderPid))),
            ("waiter_pids", .array(s.waiterPids.map { .int(Int64($0)) })),
            ("cleanup", .object([
                ("processes_stopped", .int(Int64(c.processesStopped))),
                ("directory_removed", .bool(c.directoryRemoved)),
                ("leftovers", .array(c.leftovers.map { .string($0) })),
            ])),
        ])
    }
}
