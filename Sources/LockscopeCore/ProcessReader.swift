#if canImport(Glibc)
import Glibc
#endif

/// Reads `ProcessFacts` for the handful of processes a report is about.
/// Not on the hot path: the fd scan never calls it.
public struct ProcessReader: Sendable {
    public let proc: ProcRoot
    /// Seconds since boot, read once per reader so every age in one report agrees.
    public let uptime: Double?
    public let ticksPerSecond: Double
    let users: [UInt32: String]

    public init(proc: ProcRoot, passwd: String? = nil) {
        self.proc = proc
        self.uptime = (try? proc.readText("uptime")).flatMap { Double($0.split(separator: " ").first ?? "") }
        let tck = sysconf(Int32(_SC_CLK_TCK))
        self.ticksPerSecond = tck > 0 ? Double(tck) : 100
        self.users = ProcessReader.parsePasswd(passwd ?? ProcessReader.readPasswd())
    }

    /// Facts about `pid`, or nil if it has gone. Unreadable parts stay nil.
    public func facts(of pid: Int32, withThreads: Bool = true) -> ProcessFacts? {
        guard let statText = try? proc.readText("\(pid)/stat"), let stat = StatFields.parse(statText) else { return nil }
        let statusText = try? proc.readText("\(pid)/status")
        let status = statusText.map(StatusFields.parse) ?? StatusFields()
        let cmdline = (try? proc.readBytes("\(pid)/cmdline")).map(ProcessReader.splitCmdline) ?? []
        let cgroup = try? proc.readText("\(pid)/cgroup")
        var facts = ProcessFacts(pid: pid, ppid: stat.ppid, comm: stat.comm, cmdline: cmdline)
        facts.uid = status.uid
        facts.user = status.uid.flatMap { users[$0] }
        facts.state = stat.state
        facts.cpuTicks = stat.utime + stat.stime
        facts.tracerPid = status.tracerPid
        facts.ageSeconds = age(of: stat)
        facts.pidNamespace = try? proc.readLink("\(pid)/ns/pid")
        facts.mountNamespace = try? proc.readLink("\(pid)/ns/mnt")
        facts.cgroup = cgroup.flatMap { $0.split(separator: "\n").first.map { String($0.split(separator: ":", maxSplits: 2).last ?? "") } }
        facts.container = cgroup.flatMap(CgroupParser.container(fromCgroup:))
        facts.nsPid = CgroupParser.innermostPid(status.nsPids).flatMap { $0 == pid ? nil : $0 }
        facts.signalMasks = status.signalMasks
        if withThreads { facts.threads = threads(of: pid) }
        return facts
    }

    /// What `/proc/PID/stat` alone says (comm, ppid, state, CPU, age): one read, for
    /// `list`, whose columns need no more. Nil if the process has gone.
    public func briefFacts(of pid: Int32) -> ProcessFacts? {
        guard let statText = try? proc.readText("\(pid)/stat"), let stat = StatFields.parse(statText) else { return nil }
        var facts = ProcessFacts(pid: pid, ppid: stat.ppid, comm: stat.comm)
        facts.state = stat.state
        facts.cpuTicks = stat.utime + stat.stime
        facts.ageSeconds = age(of: stat)
        return facts
    }

    /// Seconds since the process started (`starttime`, clock ticks after boot, against
    /// this reader's uptime), to the 10 ms of a clock tick; nil without /proc/uptime.
    public func age(of stat: StatFields) -> Double? {
        uptime.map { max(0, $0 - Double(stat.startTicks) / ticksPerSecond) }
    }

    /// Every thread's state and current syscall (no ptrace: /proc/PID/task/TID/syscall).
    public func threads(of pid: Int32) -> [ThreadFacts] { ProcessReader.threadsOnly(proc: proc, pid: pid) }

    static func threadsOnly(proc: ProcRoot, pid: Int32) -> [ThreadFacts] {
        guard let tids = try? proc.listDirectory("\(pid)/task").compactMap({ Int32($0) }).sorted() else { return [] }
        return tids.compactMap { tid in
            let base = "\(pid)/task/\(tid)"
            guard let statText = try? proc.readText(base + "/stat"), let stat = StatFields.parse(statText) else { return nil }
            let syscall = (try? proc.readText(base + "/syscall")).map(SyscallFileParser.parse) ?? .unavailable
            let wchan = (try? proc.readText(base + "/wchan")).flatMap { $0.isEmpty || $0 == "0" ? nil : $0 }
            return ThreadFacts(tid: tid, state: stat.state, syscall: syscall, wchan: wchan)
        }
    }

    static func splitCmdline(_ bytes: [UInt8]) -> [String] {
        var words = bytes.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if words.last == "" { words.removeLast() }
        return words
    }

    /// /etc/passwd parsed by hand: `getpwuid` may call out to LDAP/sssd, which can
    /// hang on exactly the kind of sick box lockscope is run on.
    static func readPasswd() -> String {
        (try? ProcRoot("/etc").readText("passwd")) ?? ""
    }

    /// `name:password:UID:...` (passwd(5)); the first line for a uid wins. Lines and
    /// fields are found by their bytes: splitting by `Character` cost ~58 k
    /// instructions a line, paid by every report that names owners.
    static func parsePasswd(_ text: String) -> [UInt32: String] {
        var users: [UInt32: String] = [:]
        text.forEachLine { line in
            let bytes = line.utf8
            guard let nameEnd = bytes.firstIndex(of: UInt8(ascii: ":")),
                  let passwordEnd = bytes[bytes.index(after: nameEnd)...].firstIndex(of: UInt8(ascii: ":"))
            else { return }
            let uidStart = bytes.index(after: passwordEnd)
            let uidEnd = bytes[uidStart...].firstIndex(of: UInt8(ascii: ":")) ?? bytes.endIndex
            if let uid = UInt32(line[uidStart..<uidEnd]), users[uid] == nil { users[uid] = String(line[..<nameEnd]) }
        }
        return users
    }
}
