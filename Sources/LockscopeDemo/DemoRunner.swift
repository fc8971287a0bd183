#if canImport(Glibc)
import Glibc
#endif
import LockscopeCore
import LockscopeDiagnosis
import SystemPackage

/// `lockscope demo`: reproduces the xtables incident on this machine, using only
/// its own temporary directory, loopback addresses and child processes.
///
/// 1. `DIR/xtables.lock`, and `DIR/bin/iptables` → the testbed binary (so the
///    processes are named like the incident's).
/// 2. The namespace helper (`lockscope demo --holder-namespace DIR …`, see `DemoHolder`):
///    a private mount namespace where `DIR/resolv.conf` — three blackhole
///    nameservers, `options timeout:2 attempts:2` — is bind-mounted over
///    /etc/resolv.conf; it starts the holder there, which takes `flock(LOCK_EX)` on
///    the lock file and calls getaddrinfo() again and again.
/// 3. `waiters` more testbeds block in flock(LOCK_EX) on the same file.
/// 4. The caller runs diagnose on `DIR/xtables.lock`, then `tearDown()`.
///
/// Everything it starts is registered with `StopSignals` and stopped by pid.
public final class DemoRunner {
    public struct Options: Sendable {
        public var waiters = 20
        public var nameservers = 3
        public var timeout = 2
        public var attempts = 2
        /// The name the holder resolves (`.invalid` can never exist).
        public var name = "registry.lockscope-demo.invalid"
        /// How long the holder keeps looking up (it repeats the lookup); long enough for
        /// the diagnosis window. The testbeds kill themselves after `maxSeconds` regardless.
        public var holdSeconds = 60
        public var maxSeconds = 180
        public init() {}
    }

    public struct Setup: Sendable {
        public var mode: DemoMode
        public var dir: String
        public var lockPath: String
        public var resolvConfPath: String
        public var nameservers: [String]
        public var helperPid: Int32
        public var holderPid: Int32
        public var waiterPids: [Int32]
        /// (per-server seconds, per-lookup seconds) for the demo resolv.conf.
        public var lookupSeconds: Int
    }

    public struct Cleanup: Sendable {
        public var processesStopped: Int
        public var directoryRemoved: Bool
        public var leftovers: [String]
    }

    public let options: Options
    /// argv prefix that runs the namespace helper, e.g. `[/proc/self/exe, "demo"]` (the
    /// runner adds `--holder-namespace DIR --mode M --nameservers N --timeout T --attempts A -- HOLDER…`).
    public let helperCommand: [String]
    /// The testbed's command: `[lockscope, "__testbed"]` (the one binary) or
    /// `[lockscope-testbed]`. Run through a symlink named iptables, its first word's target.
    public let testbed: [String]

    private var dir: String?
    private var helper: (pid: pid_t, stdin: Int32, out: LineReader)?
    private var waiters: [(pid: pid_t, stdin: Int32, out: LineReader)] = []
    private var stopped = 0
    public private(set) var setup: Setup?

    public init(options: Options, helperCommand: [String], testbed: [String]) {
        self.options = options
        self.helperCommand = helperCommand
        self.testbed = testbed
    }

    deinit { _ = tearDown() }

    /// Root, or unprivileged user namespaces; otherwise the one-line reason it cannot run.
    public static func mode() -> Result<DemoMode, LockscopeError> {
        if geteuid() == 0 { return .success(.root) }
        func sysctl(_ path: String) -> Int? {
            (try? ProcRoot("/proc/sys").readText(path)).flatMap { Int($0.split(separator: "\n").first ?? "") }
        }
        if let n = sysctl("user/max_user_namespaces"), n == 0 {
            return .failure(.environment("lockscope demo needs root, or unprivileged user namespaces (user.max_user_namespaces is 0)"))
        }
        if let v = sysctl("kernel/unprivileged_userns_clone"), v == 0 {
            return .failure(.environment("lockscope demo needs root, or unprivileged user namespaces (kernel.unprivileged_userns_clone is 0)"))
        }
        if let v = sysctl("kernel/apparmor_restrict_unprivileged_userns"), v == 1 {
            return .failure(.environment("lockscope demo needs root: AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1)"))
        }
        return .success(.userNamespace)
    }

    /// Builds the scene. On failure everything started so far is torn down again.
    public func setUp() throws(LockscopeError) -> Setup {
        let mode: DemoMode
        switch Self.mode() {
        case .success(let m): mode = m
        case .failure(let e): throw e
        }
        guard let exe = testbed.first, access(exe, X_OK) == 0 else {
            throw .environment("lockscope demo: the testbed \(testbed.first ?? "(none)") is not executable")
        }
        StopSignals.install(catchingSIGPIPE: false)
        do {
            return try build(mode: mode)
        } catch {
            _ = tearDown()
            throw error
        }
    }

    func cancelled() -> Bool { StopSignals.requested != 0 }

    private func build(mode: DemoMode) throws(LockscopeError) -> Setup {
        // The directory: everything the demo writes lives here.
        let base = (getenv("TMPDIR").map { String(cString: $0) }).flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array((base + "/lockscope-demo.XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw .environment("lockscope demo: cannot create a directory in \(base): \(Errno(rawValue: errno).description)")
        }
        let dir = String(cString: made)
        self.dir = dir
        let lock = dir + "/xtables.lock"
        do { try DemoSystem.writeFile(lock, "", create: true) } catch {
            throw .environment("lockscope demo: cannot create \(lock): \(error)")
        }
        // Name the processes like the incident's: comm comes from the exec'd file name.
        mkdir(dir + "/bin", 0o755)
        let iptables = dir + "/bin/iptables"
        if symlink(testbed[0], iptables) != 0 {
            throw .environment("lockscope demo: cannot create \(iptables): \(Errno(rawValue: errno).description)")
        }
        if mode == .userNamespace { chmod(dir, 0o755) }

        // The holder: lock, then look the name up again and again.
        let perLookup = DNSCost(conf: {
            var c = ResolvConf()
            c.nameservers = (0..<options.nameservers).map { "127.0.0.\($0 + 2)" }
            c.timeout = options.timeout
            c.attempts = options.attempts
            return c
        }()).perQuerySeconds
        let repeats = max(1, (options.holdSeconds + max(1, perLookup) - 1) / max(1, perLookup))
        let holderSteps = Array(testbed.dropFirst()) + ["--max-seconds", String(options.maxSeconds), "open:" + lock, "flock:ex"]
            + Array(repeating: "resolve:" + options.name, count: repeats)
        let helperArgv = helperCommand + ["--holder-namespace", dir, "--mode", mode.rawValue,
                                          "--nameservers", String(options.nameservers),
                                          "--timeout", String(options.timeout), "--attempts", String(options.attempts),
                                          "--", iptables] + holderSteps
        let h = try start(helperArgv, stopSignal: SIGTERM)
        helper = h

        var nameservers: [String] = []
        var holderPid: Int32 = 0
        var holderLocked = false
        let deadline = MonotonicClock.seconds + 15
        while !(holderLocked && holderPid > 0 && !nameservers.isEmpty) {
            let left = deadline - MonotonicClock.seconds
            guard left > 0, let line = h.out.next(timeout: left, cancelled: cancelled) else {
                if cancelled() { throw .environment("lockscope demo: interrupted") }
                throw .environment("lockscope demo: the holder did not take the lock in time" + (h.out.eof ? " (helper exited)" : ""))
            }
            let words = line.split(separator: " ").map(String.init)
            switch words.first {
            case "nameservers": nameservers = Array(words.dropFirst())
            case "holder": holderPid = Int32(words.count > 1 ? words[1] : "") ?? 0
            case "ok" where words.count >= 2 && words[1] == "flock:ex": holderLocked = true
            case "fail":
                let what = words.dropFirst().joined(separator: " ").replacingOccurrences("_", " ")
                throw .environment(Self.explain(failure: what, mode: mode))
            default: break
            }
        }

        // The crowd.
        for _ in 0..<options.waiters {
            let w = try start([iptables] + testbed.dropFirst() + ["--max-seconds", String(options.maxSeconds), "open:" + lock, "flock:ex"], stopSignal: SIGKILL)
            waiters.append(w)
        }
        for w in waiters {
            guard let line = w.out.next(timeout: 10, cancelled: cancelled), line.hasPrefix("pid ") else {
                throw .environment(cancelled() ? "lockscope demo: interrupted" : "lockscope demo: a waiter did not start")
            }
        }
        // Until the kernel lists every waiter behind the holder.
        let target: Target
        do { target = try TargetResolver().resolve(lock) } catch { throw error }
        let end = MonotonicClock.seconds + 10
        while true {
            if cancelled() { throw .environment("lockscope demo: interrupted") }
            let text = (try? ProcRoot().readText("locks")) ?? ""
            let entry = ProcLocksParser.parse(text).locks.first { $0.lock.file == target.file }
            if let entry, entry.waiters.count >= options.waiters { break }
            if MonotonicClock.seconds > end {
                throw .environment("lockscope demo: only \(entry?.waiters.count ?? 0) of \(options.waiters) waiters queued in time")
            }
            MonotonicClock.sleep(seconds: 0.02)
        }

        var conf = ResolvConf()
        conf.nameservers = nameservers
        conf.timeout = options.timeout
        conf.attempts = options.attempts
        let s = Setup(mode: mode, dir: dir, lockPath: lock, resolvConfPath: dir + "/resolv.conf", nameservers: nameservers,
                      helperPid: h.pid, holderPid: holderPid, waiterPids: waiters.map(\.pid),
                      lookupSeconds: DNSCost(conf: conf).perQuerySeconds)
        setup = s
        return s
    }

    static func explain(failure: String, mode: DemoMode) -> String {
        if mode == .userNamespace && failure.hasPrefix("unshare") {
            return "lockscope demo needs root, or unprivileged user namespaces (\(failure))"
        }
        return "lockscope demo: could not set up the namespace: \(failure)"
    }

    private func start(_ argv: [String], stopSignal: Int32) throws(LockscopeError) -> (pid: pid_t, stdin: Int32, out: LineReader) {
        let input: (read: Int32, write: Int32), output: (read: Int32, write: Int32)
        do { (input, output) = (try Spawn.cloexecPipe(), try Spawn.cloexecPipe()) } catch {
            throw .environment("lockscope demo: pipe: \(error)")
        }
        defer { close(input.read); close(output.write) }
        let pid: pid_t
        do { pid = try Spawn.process(argv, stdin: input.read, stdout: output.write, stderr: 2) } catch {
            close(input.write)
            close(output.read)
            throw .environment("lockscope demo: cannot start \(argv[0]): \(error)")
        }
        StopSignals.stop(child: pid, with: stopSignal)
        return (pid, input.write, LineReader(fd: output.read))
    }

    /// Stops every process the demo started (by pid, waiting for each), and removes
    /// its directory. Idempotent; also called on any setup failure and from deinit.
    public func tearDown() -> Cleanup {
        var leftovers: [String] = []
        // Waiters first: SIGKILL ends a flock() wait at once; then reap.
        for w in waiters {
            kill(w.pid, SIGKILL)
            close(w.stdin)
            close(w.out.fd)
        }
        for w in waiters {
            if Spawn.reap(w.pid, block: true) != nil { stopped += 1 }
            StopSignals.forget(child: w.pid)
        }
        waiters = []
        // The helper stops the holder (its child) when its stdin closes or on SIGTERM.
        if let h = helper {
            close(h.stdin)
            let end = MonotonicClock.seconds + 5
            var status = Spawn.reap(h.pid, block: false)
            while status == nil && MonotonicClock.seconds < end {
                MonotonicClock.sleep(seconds: 0.02)
                status = Spawn.reap(h.pid, block: false)
            }
            if status == nil {
                kill(h.pid, SIGTERM)
                MonotonicClock.sleep(seconds: 0.5)
                status = Spawn.reap(h.pid, block: false)
                if status == nil {
                    kill(h.pid, SIGKILL)
                    status = Spawn.reap(h.pid, block: true)
                    leftovers.append("helper \(h.pid) needed SIGKILL")
                }
            }
            close(h.out.fd)
            StopSignals.forget(child: h.pid)
            stopped += 2  // the helper and the holder it stopped
            helper = nil
        }
        var removed = false
        if let dir {
            for f in ["bin/iptables", "xtables.lock", "resolv.conf"] { unlink(dir + "/" + f) }
            rmdir(dir + "/bin")
            removed = rmdir(dir) == 0 || errno == ENOENT
            if !removed { leftovers.append("\(dir): \(Errno(rawValue: errno).description)") }
            self.dir = nil
        }
        let c = Cleanup(processesStopped: stopped, directoryRemoved: removed, leftovers: leftovers)
        stopped = 0
        return c
    }
}
