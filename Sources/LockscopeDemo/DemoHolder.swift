#if canImport(Glibc)
import Glibc
#endif
import LockscopeCore

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

    /// Runs the helper; returns the process exit status. Never returns early while the holder lives.
    public static func run(_ o: Options) -> Int32 {
        DemoSignals.install()
        func say(_ s: String) {
            let line = Array((s + "\n").utf8)
            _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        }
        func fail(_ what: String, _ e: Int32) -> Int32 {
            say("fail \(what) \(DemoSystem.errnoText(e).replacingOccurrences(" ", "_"))")
            return 1
        }

        // 1. Namespaces.
        switch o.mode {
        case .root:
            if DemoSystem.unshare(DemoSystem.cloneNewNS) != 0 { return fail("unshare(CLONE_NEWNS)", errno) }
        case .userNamespace:
            let uid = getuid(), gid = getgid()
            if DemoSystem.unshare(DemoSystem.cloneNewUser | DemoSystem.cloneNewNS | DemoSystem.cloneNewNet) != 0 {
                return fail("unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWNET)", errno)
            }
            _ = DemoSystem.writeFile("/proc/self/setgroups", "deny")
            var e = DemoSystem.writeFile("/proc/self/uid_map", "0 \(uid) 1\n")
            if e != 0 { return fail("uid_map", e) }
            e = DemoSystem.writeFile("/proc/self/gid_map", "0 \(gid) 1\n")
            if e != 0 { return fail("gid_map", e) }
            e = DemoSystem.loopbackUp()
            if e != 0 { return fail("loopback-up", e) }
        }
        // Nothing we mount may propagate back to the host.
        if mount(nil, "/", nil, UInt(MS_REC | MS_PRIVATE), nil) != 0 { return fail("mount-make-rprivate", errno) }

        // 2. Blackhole nameservers: bound UDP sockets nobody reads, so queries time out
        //    (an unbound port would answer with ICMP port-unreachable at once).
        var sockets: [Int32] = []
        var addresses: [String] = []
        var candidates: [Int] = o.mode == .root ? Array(100...250) : Array(2...50)
        if o.mode == .root {
            // A random start, so two demos (or a test and a demo) do not collide.
            let start = Int(getpid()) % candidates.count
            candidates = Array(candidates[start...] + candidates[..<start])
        }
        for last in candidates where addresses.count < o.nameservers {
            let a = "127.0.0.\(last)"
            let fd = DemoSystem.bindBlackhole(a, port: 53)
            if fd >= 0 {
                sockets.append(fd)
                addresses.append(a)
            } else if -fd != EADDRINUSE && -fd != EADDRNOTAVAIL {
                return fail("bind-\(a):53", -fd)
            }
        }
        guard addresses.count == o.nameservers else { return fail("no-free-loopback-address", EADDRINUSE) }

        // 3. The demo resolv.conf, bind-mounted over /etc/resolv.conf in this namespace only.
        let conf = o.dir + "/resolv.conf"
        var text = "# lockscope demo: nameservers that never answer (UDP sockets nobody reads)\n"
        for a in addresses { text += "nameserver \(a)\n" }
        text += "options timeout:\(o.timeout) attempts:\(o.attempts)\n"
        let e = DemoSystem.writeFile(conf, text, create: true)
        if e != 0 { return fail("write-resolv.conf", e) }
        if mount(conf, "/etc/resolv.conf", nil, UInt(MS_BIND), nil) != 0 {
            return fail("bind-mount-/etc/resolv.conf", errno)
        }
        say("nameservers " + addresses.joined(separator: " "))

        // 4. The holder, inside the namespaces; its stdout is ours (the orchestrator reads both).
        guard let input = DemoSystem.pipe2() else { return fail("pipe", errno) }
        let holder = DemoSystem.spawn(o.holder, stdin: input.read, stdout: 1, stderr: 2)
        close(input.read)
        if holder < 0 { return fail("spawn-holder", -holder) }
        DemoSignals.register(holder, signal: SIGKILL)
        say("holder \(holder)")

        // 5. Hold until stdin closes (the orchestrator is done, or died) or a signal.
        var holderAlive = true
        while DemoSignals.requested == 0 {
            var p = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, 200)
            if r > 0 {
                var b = [UInt8](repeating: 0, count: 64)
                let n = b.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                if n <= 0 || b.contains(10) { break }
            }
            if holderAlive, let status = DemoSystem.reap(holder, block: false) {
                holderAlive = false
                DemoSignals.unregister(holder)
                say("holder-exited \(status)")
            }
        }

        // 6. Stop the holder (it is our child: reaping it keeps its pid ours until then).
        close(input.write)
        if holderAlive {
            kill(holder, SIGKILL)
            _ = DemoSystem.reap(holder, block: true)
            DemoSignals.unregister(holder)
        }
        for s in sockets { close(s) }
        return 0
    }
}

extension String {
    func replacingOccurrences(_ a: Character, _ b: Character) -> String { String(map { $0 == a ? b : $0 }) }
}
