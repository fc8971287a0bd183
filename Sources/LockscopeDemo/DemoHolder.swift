#if canImport(Glibc)
import Glibc
#endif
import LockscopeCore
import SystemPackage

/// How the demo gets a private view of /etc/resolv.conf.
public enum DemoMode: String, Sendable {
    /// Root: a new mount namespace; the blackhole listens on a host loopback address.
    case root
    /// Not root: a new user namespace (we are root inside it) with its own mount and
    /// network namespaces; the blackhole listens on that namespace's loopback.
    case userNamespace = "user-namespace"
}

/// The demo's namespace helper: the process that enters the private namespaces,
/// binds the blackhole nameservers, bind-mounts the demo resolv.conf over
/// /etc/resolv.conf (visible to it and its children only), starts the holder,
/// and stops it again when its stdin closes or it is signalled.
///
/// Protocol on stdout (one line each, the holder's own testbed lines interleave):
/// `nameservers A B C`, `holder PID`, or `fail WHAT ERRNO-TEXT` and exit 1.
public enum DemoHolder {
    public struct Options: Sendable {
        public var dir: String
        public var mode: DemoMode
        public var nameservers: Int
        public var timeout: Int
        public var attempts: Int
        /// The holder's argv (the testbed and its steps); started inside the namespaces.
        public var holder: [String]
        public init(dir: String, mode: DemoMode, nameservers: Int, timeout: Int, attempts: Int, holder: [String]) {
            self.dir = dir
            self.mode = mode
            self.nameservers = nameservers
            self.timeout = timeout
            self.attempts = attempts
            self.holder = holder
        }
    }

    /// A step of the helper that failed, and why.
    struct Failure: Error { var step: String, errno: Errno }

    /// Runs the helper. Never returns early while the holder lives. False when a step
    /// failed (it said `fail STEP ERRNO-TEXT` on stdout).
    public static func run(_ o: Options) -> Bool {
        StopSignals.install(catchingSIGPIPE: false)
        do {
            try hold(o)
            return true
        } catch {
            say("fail \(error.step) \(error.errno.description.replacingOccurrences(" ", "_"))")
            return false
        }
    }

    static func say(_ s: String) {
        let line = Array((s + "\n").utf8)
        _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
    }

    /// Runs `body`, naming the step if it fails.
    @discardableResult
    static func step<T>(_ name: String, _ body: @autoclosure () throws(Errno) -> T) throws(Failure) -> T {
        do { return try body() } catch { throw Failure(step: name, errno: error) }
    }

    private static func hold(_ o: Options) throws(Failure) {
        // 1. Namespaces.
        switch o.mode {
        case .root:
            try step("unshare(CLONE_NEWNS)", try DemoSystem.unshare(DemoSystem.cloneNewNS))
        case .userNamespace:
            let uid = getuid(), gid = getgid()
            try step("unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWNET)",
                     try DemoSystem.unshare(DemoSystem.cloneNewUser | DemoSystem.cloneNewNS | DemoSystem.cloneNewNet))
            try? DemoSystem.writeFile("/proc/self/setgroups", "deny")
            try step("uid_map", try DemoSystem.writeFile("/proc/self/uid_map", "0 \(uid) 1\n"))
            try step("gid_map", try DemoSystem.writeFile("/proc/self/gid_map", "0 \(gid) 1\n"))
            try step("loopback-up", try DemoSystem.loopbackUp())
        }
        // Nothing we mount may propagate back to the host.
        try step("mount-make-rprivate", try retryingOnInterrupt { mount(nil, "/", nil, UInt(MS_REC | MS_PRIVATE), nil) })

        // 2. Blackhole nameservers: bound UDP sockets nobody reads, so queries time out
        //    (an unbound port would answer with ICMP port-unreachable at once).
        var sockets: [Int32] = []
        defer { for s in sockets { close(s) } }
        var addresses: [String] = []
        var candidates: [Int] = o.mode == .root ? Array(100...250) : Array(2...50)
        if o.mode == .root {
            // A random start, so two demos (or a test and a demo) do not collide.
            let start = Int(getpid()) % candidates.count
            candidates = Array(candidates[start...] + candidates[..<start])
        }
        for last in candidates where addresses.count < o.nameservers {
            let a = "127.0.0.\(last)"
            do {
                sockets.append(try DemoSystem.bindBlackhole(a, port: 53))
                addresses.append(a)
            } catch where error == .addressInUse || error == .addressNotAvailable {
                continue
            } catch {
                throw Failure(step: "bind-\(a):53", errno: error)
            }
        }
        guard addresses.count == o.nameservers else { throw Failure(step: "no-free-loopback-address", errno: .addressInUse) }

        // 3. The demo resolv.conf, bind-mounted over /etc/resolv.conf in this namespace only.
        let conf = o.dir + "/resolv.conf"
        var text = "# lockscope demo: nameservers that never answer (UDP sockets nobody reads)\n"
        for a in addresses { text += "nameserver \(a)\n" }
        text += "options timeout:\(o.timeout) attempts:\(o.attempts)\n"
        try step("write-resolv.conf", try DemoSystem.writeFile(conf, text, create: true))
        try step("bind-mount-/etc/resolv.conf", try retryingOnInterrupt { mount(conf, "/etc/resolv.conf", nil, UInt(MS_BIND), nil) })
        say("nameservers " + addresses.joined(separator: " "))

        // 4. The holder, inside the namespaces; its stdout is ours (the orchestrator reads both).
        let input = try step("pipe", try Spawn.cloexecPipe())
        defer { close(input.write) }
        let holder: pid_t
        do {
            defer { close(input.read) }
            holder = try step("spawn-holder", try Spawn.process(o.holder, stdin: input.read, stdout: 1, stderr: 2))
        }
        StopSignals.stop(child: holder, with: SIGKILL)
        say("holder \(holder)")

        // 5. Hold until stdin closes (the orchestrator is done, or died) or a signal.
        var holderAlive = true
        while StopSignals.requested == 0 {
            var p = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, 200)
            if r > 0 {
                var b = [UInt8](repeating: 0, count: 64)
                let n = b.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                if n <= 0 || b.contains(10) { break }
            }
            if holderAlive, let status = Spawn.reap(holder, block: false) {
                holderAlive = false
                StopSignals.forget(child: holder)
                say("holder-exited \(status)")
            }
        }

        // 6. Stop the holder (it is our child: reaping it keeps its pid ours until then).
        if holderAlive {
            kill(holder, SIGKILL)
            _ = Spawn.reap(holder, block: true)
            StopSignals.forget(child: holder)
        }
    }
}

extension String {
    func replacingOccurrences(_ a: Character, _ b: Character) -> String { String(map { $0 == a ? b : $0 }) }
}
