import XCTest
@testable import LockscopeCore
@testable import LockscopeDiagnosis
import LockscopeTrace

/// Hand-built model values for rule and renderer tests: the shapes the scanner
/// and the sampler produce, with pids and timings fixed so output is stable.
enum B {
    static func proc(_ pid: Int32, _ comm: String, ppid: Int32 = 1, state: Character = "S", age: Double? = nil,
                     tracer: Int32 = 0, cmdline: [String]? = nil) -> ProcessFacts {
        ProcessFacts(pid: pid, ppid: ppid, comm: comm, cmdline: cmdline ?? [comm], uid: 0, user: "root", state: state,
                     ageSeconds: age, tracerPid: tracer)
    }

    static func file(_ inode: UInt64) -> FileIdentity { FileIdentity(major: 0xfe, minor: 0, inode: inode) }

    static func lock(_ path: String, inode: UInt64, holders: [(ProcessFacts, Int32?, Bool)], waiters: [ProcessFacts] = [],
                     kernelPid: Int32? = nil, status: OwnerStatus = .alive, kind: LockKind = .flock) -> LockEntry {
        let owner = kernelPid ?? holders.first(where: { $0.2 })?.0.pid ?? -1
        let hs = holders.map { Holder(pid: $0.0.pid, fd: $0.1, isOwner: $0.2, process: $0.0) }
        let blocker = hs.first(where: { $0.isOwner })?.pid ?? hs.first?.pid
        let ws = waiters.enumerated().map { i, p in
            Waiter(pid: p.pid, tid: p.pid, fd: 3, kind: kind, access: .write, start: 0, end: nil, blockedBy: blocker,
                   directBlocker: i == 0 ? blocker : waiters[i - 1].pid, queuePosition: i + 1, source: .kernel, process: p)
        }
        return LockEntry(file: file(inode), path: path, kind: kind, access: .write, mode: "ADVISORY", start: 0, end: nil,
                         kernelPid: owner, ownerStatus: status, holders: hs, waiters: ws)
    }

    static func udp(_ local: String, _ lport: Int, _ remote: String, _ rport: Int) -> NetSocket {
        NetSocket(proto: .udp, inode: 1, local: NetEndpoint(address: local, port: lport),
                  remote: NetEndpoint(address: remote, port: rport), state: "ESTABLISHED")
    }

    static func socketFd(_ fd: Int32, _ s: NetSocket) -> ResolvedFd { ResolvedFd(fd: fd, what: .socket(s)) }

    /// A call as the decoder returns it: `syscall` with `args` (none: only the name is known).
    static func call(_ syscall: String, _ args: [DecodedArgument] = [], classes: SyscallClass = []) -> DecodedSyscall {
        DecodedSyscall(arch: .host, number: 0, name: syscall, classes: classes, args: args, raw: [0, 0, 0, 0, 0, 0])
    }

    static func thread(_ tid: Int32, _ state: Character = "S", _ syscall: String?, _ call: BlockingCall?,
                       args: [DecodedArgument] = [], inCall: Double? = nil, wchan: String? = nil, running: Double? = nil,
                       cpu: Double? = nil, histogram: [HistogramBin] = []) -> ThreadActivity {
        ThreadActivity(tid: tid, state: state, current: syscall.map { self.call($0, args) }, call: call, inCallSeconds: inCall,
                       wchan: wchan, cpuSeconds: cpu, runningFraction: running, histogram: histogram)
    }

    /// `poll([{fd=FD SOCKET, POLLIN}], 1, MS ms)`.
    static func pollArgs(_ fd: ResolvedFd, ms: Int64) -> [DecodedArgument] {
        [DecodedArgument(name: "fds", value: .pollFds([PollFd(fd: fd, events: 1)])),
         DecodedArgument(name: "nfds", value: .uint(1)),
         DecodedArgument(name: "timeout", value: .timeout(.relative(nanoseconds: ms * 1_000_000)))]
    }

    static func activity(_ pid: Int32, _ threads: [ThreadActivity], cpu: Double? = nil) -> ProcessActivity {
        ProcessActivity(pid: pid, threads: threads, cpuSeconds: cpu, windowSeconds: 1, source: .sampler)
    }

    static let incidentResolvConf = ResolvConf.parse("""
    nameserver 10.0.0.1
    nameserver 10.0.0.2
    nameserver 10.0.0.3
    options timeout:2 attempts:2
    """)

    /// The incident: iptables[36057] holds /run/xtables.lock and sits in poll() on a
    /// UDP socket to the first of three unreachable nameservers; 61 iptables wait.
    static func incident() -> DiagnosisInput {
        let holder = proc(36057, "iptables", ppid: 1200, age: 42, cmdline: ["iptables", "--wait", "-t", "nat", "-A", "DOCKER", "-d", "registry.corp.example", "-j", "ACCEPT"])
        let waiters = (0..<61).map { i in proc(36060 + Int32(i), "iptables", ppid: 1200, age: 41 - Double(i) * 0.5) }
        let pollers = [proc(36200, "iptables", ppid: 1200, age: 12), proc(36201, "iptables", ppid: 1200, age: 3)]
        let l = lock("/run/xtables.lock", inode: 16015361, holders: [(holder, 3, true)], waiters: waiters)
        let openers = pollers.map { Opener(pid: $0.pid, fd: 3, file: file(16015361), activity: .polling, process: $0) }
        let target = Target(argument: "/run/xtables.lock", file: file(16015361), path: "/run/xtables.lock")
        let sock = udp("172.17.0.1", 40112, "10.0.0.1", 53)
        let t = thread(36057, "S", "poll", .io(fds: [socketFd(4, sock)], timeoutMs: 2000),
                       args: pollArgs(socketFd(4, sock), ms: 2000), inCall: 1.4,
                       histogram: [HistogramBin(label: "poll", fraction: 1)])
        return DiagnosisInput(report: LockReport(targets: [target], locks: [l], openers: openers),
                              activity: [36057: activity(36057, [t], cpu: 0)],
                              resolvConf: [36057: incidentResolvConf])
    }
}
