// Every pure parser lockscope feeds with /proc text or bytes, called the way the fuzzer calls
// it. Shared by the libFuzzer driver (Fuzz/Main.swift, built by scripts/fuzz, which compiles
// this file too) and FuzzRegressionTests, which replays Fuzz/regressions/ and the seeds.
// A parser may reject any input; it must never trap, read out of bounds or hang.
@testable import LockscopeCore
@testable import LockscopeTrace

/// The targets scripts/fuzz runs, each named after the /proc file it parses.
enum FuzzTarget: String, CaseIterable {
    /// `rawstat` and `rawsyscall` are the sampler's in-place byte parsers.
    case locks, fdinfo, mountinfo, stat, status, syscall, net, resolvconf, identity, rawstat, rawsyscall
}

/// Parses one input with `target`'s parser; the result only keeps the work from being optimised away.
func fuzzParse(_ target: FuzzTarget, _ bytes: UnsafeRawBufferPointer) -> Int {
    var sink = 0
    let text = String(decoding: bytes, as: UTF8.self)
    switch target {
    case .locks:
        let (locks, rejected) = ProcLocksParser.parse(text)
        for l in locks {
            for i in l.waiters.indices { sink &+= Int(l.directBlockerPid(ofWaiter: i)) }
        }
        sink &+= rejected.count
    case .fdinfo:
        let info = FdInfo.parse(text)
        sink &+= info.locks.count
    case .mountinfo:
        // The second half of the input, if any, is an fdinfo looked up in the table.
        let parts = text.split(separator: "\u{0}", maxSplits: 1)
        let table = MountTable.parse(String(parts.first ?? ""))
        let info = FdInfo.parse(parts.count > 1 ? String(parts[1]) : "mnt_id:\t1\nino:\t2\n")
        if table.identity(of: info) != nil { sink &+= 1 }
        let mounts = MountInfo.parse(String(parts.first ?? ""))
        if let m = MountInfo.mount(containing: "/tmp/x/lock", in: mounts), m.mayNotAnswer { sink &+= m.id }
    case .stat:
        if let s = StatFields.parse(text) { sink &+= Int(s.pid) &+ s.threads &+ (s.isKernelThread ? 1 : 0) }
    case .status:
        let s = StatusFields.parse(text)
        sink &+= s.nsPids.count &+ Int(s.tracerPid)
    case .syscall:
        if case .inSyscall(let nr, let args, _, _) = SyscallFileParser.parse(text) { sink &+= nr &+ args.count }
    case .net:
        for proto in NetProtocol.allCases {
            sink &+= NetTableParser.parseInet(text, proto: proto).count
            sink &+= NetTableParser.parseInet(text, proto: proto, littleEndian: false).count
        }
        sink &+= NetTableParser.parseUnix(text).count
    case .resolvconf:
        var conf = ResolvConf.parse(text)
        let env = text.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? ""
        conf.apply(environment: ["RES_OPTIONS": env, "LOCALDOMAIN": env])
        sink &+= conf.nameservers.count
        if let first = conf.nameservers.first { sink &+= conf.nameserverIndex(of: first) ?? 0 }
    case .identity:
        if FileIdentity(parsing: text) != nil { sink &+= 1 }
    case .rawstat:
        if let s = StatFields.parse(bytes) { sink &+= s.threads &+ s.comm.utf8.count }
    case .rawsyscall:
        var key = [UInt64](repeating: 0, count: 9)
        if case .inSyscall(let nr) = RawSyscall.parse(bytes, into: &key) { sink &+= nr }
    }
    return sink
}
