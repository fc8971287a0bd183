import XCTest
@testable import LockscopeCore
@testable import LockscopeDiagnosis

/// Every rule on hand-built inputs: the rule id, the pids in its evidence, the
/// key numbers, and the verdict line. (The live tests build the same situations
/// with real processes.)
final class RuleEngineTests: XCTestCase {
    let engine = RuleEngine()

    func testIncidentVerdictAndDNSFinding() throws {
        let d = engine.diagnose(B.incident())
        XCTAssertEqual(d.outcome, .contention)
        XCTAssertEqual(d.verdict, [
            "/run/xtables.lock: 63 processes waiting (61 blocked, 2 polling; oldest 41 s). Holder iptables[36057] is stuck in a DNS lookup: poll() on UDP → 10.0.0.1:53 (nameserver 1 of 3), 2 s timeout for at least 1.4 s; resolv.conf \"timeout:2 attempts:2\" with 3 nameservers makes one failed lookup cost up to 10 s.",
        ])
        let f = try XCTUnwrap(d.findings.first)
        XCTAssertEqual(f.rule, .dnsTimeout)
        XCTAssertEqual(f.pid, 36057)
        XCTAssertEqual(f["nameserver_index"], .int(1))
        XCTAssertEqual(f["timeout_ms"], .int(2000))
        XCTAssertEqual(f["per_server_seconds"], .ints([2, 1, 2]))
        XCTAssertEqual(f["worst_case_seconds"], .int(10))
        XCTAssertEqual(f["naive_seconds"], .int(12))
        XCTAssertEqual(f["peer"], .string("10.0.0.1:53"))
        XCTAssertTrue(f.suggestion.contains("`one nameserver (a local caching resolver)` would cut the worst case from 10 s to 4 s"), f.suggestion)
        XCTAssertEqual(d.locks[0].blockedCount, 61)
        XCTAssertEqual(d.locks[0].pollingCount, 2)
        XCTAssertEqual(d.locks[0].cause?.rule, .dnsTimeout)
    }

    func testDNSByPortWhenResolvConfIsUnreadable() throws {
        var input = B.incident()
        input.resolvConf = [:]
        let f = try XCTUnwrap(engine.diagnose(input).findings.first)
        XCTAssertEqual(f.rule, .dnsTimeout)
        XCTAssertEqual(f["resolv_conf"], .string("unreadable"))
        XCTAssertNil(f["worst_case_seconds"])
    }

    /// `flock LOCK sh -c 'getent hosts x'`: /proc/locks names flock(1), which waits in
    /// wait4; its child shares the lock fd and is the one stuck in DNS.
    func testHolderWaitsForChildThatIsStuckInDNS() throws {
        let flock = B.proc(100, "flock", ppid: 1)
        let sh = B.proc(101, "getent", ppid: 100)
        let w = B.proc(102, "flock", ppid: 1, age: 5)
        let l = B.lock("/tmp/x.lock", inode: 7, holders: [(flock, 3, true), (sh, 3, false)], waiters: [w])
        let sock = B.udp("127.0.0.1", 5000, "127.0.0.53", 53)
        let input = DiagnosisInput(
            report: LockReport(locks: [l]),
            activity: [
                100: B.activity(100, [B.thread(100, "S", "wait4", .waitChild(pid: nil))]),
                101: B.activity(101, [B.thread(101, "S", "poll", .io(fds: [B.socketFd(5, sock)], timeoutMs: 5000))]),
            ],
            resolvConf: [101: ResolvConf.parse("nameserver 127.0.0.53\n")])
        let d = engine.diagnose(input)
        let rules = d.findings.map { "\($0.rule.rawValue):\($0.pid)" }
        XCTAssertEqual(rules, ["dns-timeout:101", "holder-waits-child:100"])
        let wc = try XCTUnwrap(d.findings.first { $0.rule == .holderWaitsChild })
        XCTAssertEqual(wc["children"], .pids([101]))
        XCTAssertEqual(wc["children_sharing_lock"], .pids([101]))
        XCTAssertEqual(wc["child_rule"], .string("dns-timeout"))
        XCTAssertEqual(d.locks[0].cause?.rule, .dnsTimeout)
        XCTAssertTrue(d.verdict[0].hasPrefix("/tmp/x.lock: 1 process waiting (oldest 5 s). Holder flock[100] waits for its child getent[101], which shares the lock. getent[101] is stuck in a DNS lookup: poll() on UDP → 127.0.0.53:53 (nameserver 1 of 1), 5 s timeout; resolv.conf (defaults timeout:5 attempts:2) with 1 nameserver makes one failed lookup cost up to 10 s"), d.verdict[0])
    }

    func testWaitChainFollowsToTheRootHolder() throws {
        let a = B.proc(1, "a"), b = B.proc(2, "b"), c = B.proc(3, "c"), w = B.proc(9, "w", age: 30)
        let l1 = B.lock("/l1", inode: 1, holders: [(a, 3, true)], waiters: [w])
        let l2 = B.lock("/l2", inode: 2, holders: [(b, 3, true)], waiters: [a])
        let l3 = B.lock("/l3", inode: 3, holders: [(c, 3, true)], waiters: [b])
        let input = DiagnosisInput(
            report: LockReport(locks: [l1]), allLocks: [l1, l2, l3],
            activity: [
                1: B.activity(1, [B.thread(1, "S", "flock", .lock(fd: 4, file: B.file(2), path: "/l2", operation: "LOCK_EX"))]),
                2: B.activity(2, [B.thread(2, "S", "flock", .lock(fd: 4, file: B.file(3), path: "/l3", operation: "LOCK_EX"))]),
                3: B.activity(3, [B.thread(3, "S", "nanosleep", .sleep(seconds: 30), inCall: 2)]),
            ])
        let d = engine.diagnose(input)
        let chain = try XCTUnwrap(d.findings.first { $0.rule == .waitChain && $0.pid == 1 })
        XCTAssertEqual(chain["chain"], .pids([1, 2, 3]))
        XCTAssertEqual(chain["chain_locks"], .strings(["/l1", "/l2", "/l3"]))
        XCTAssertEqual(chain["root_pid"], .pid(3))
        XCTAssertEqual(chain["root_rule"], .string("holder-sleeping"))
        XCTAssertEqual(d.locks[0].cause?.rule, .holderSleeping)
        XCTAssertEqual(d.locks[0].cause?.pid, 3)
        XCTAssertEqual(d.verdict[0], "/l1: 1 process waiting (oldest 30 s). Holder a[1] waits for /l2 (held by b[2]), which waits for /l3 (held by c[3]). c[3] is sleeping (30 s at a time) while holding the lock for at least 2 s.")
    }

    func testDeadlockNamesEveryMemberAndWhatEachHoldsAndWants() throws {
        let a = B.proc(1, "a"), b = B.proc(2, "b"), w = B.proc(9, "w")
        let l1 = B.lock("/l1", inode: 1, holders: [(a, 3, true)], waiters: [b, w])
        let l2 = B.lock("/l2", inode: 2, holders: [(b, 3, true)], waiters: [a])
        let input = DiagnosisInput(report: LockReport(locks: [l1]), allLocks: [l1, l2])
        let d = engine.diagnose(input)
        let f = try XCTUnwrap(d.findings.first)
        XCTAssertEqual(f.rule, .deadlock)
        XCTAssertEqual(f.severity, .critical)
        XCTAssertEqual(f["members"], .pids([1, 2]))
        XCTAssertEqual(f["holds"], .strings(["/l1", "/l2"]))
        XCTAssertEqual(f["wants"], .strings(["/l2", "/l1"]))
        XCTAssertEqual(d.verdict[0], "/l1: 2 processes waiting. Deadlock: a[1] holds /l1 and waits for /l2; b[2] holds /l2 and waits for /l1.")
        XCTAssertEqual(d.outcome, .contention)
    }

    func testLeakedDescriptorKeepsTheLockAfterTheTakerExited() throws {
        let daemon = B.proc(501, "sleep", ppid: 1)
        let w = B.proc(502, "flock")
        let l = B.lock("/tmp/leak.lock", inode: 5, holders: [(daemon, 3, false)], waiters: [w], kernelPid: 500, status: .gone)
        let input = DiagnosisInput(report: LockReport(locks: [l]),
                                   activity: [501: B.activity(501, [B.thread(501, "S", "nanosleep", .sleep(seconds: 60))])])
        let d = engine.diagnose(input)
        let f = try XCTUnwrap(d.findings.first { $0.rule == .leakedFd })
        XCTAssertEqual(f["kernel_pid"], .pid(500))
        XCTAssertEqual(f["keepers"], .pids([501]))
        XCTAssertEqual(f["daemonized"], .pids([501]))
        XCTAssertEqual(f["owner_status"], .string("gone"))
        XCTAssertTrue(f.suggestion.contains("O_CLOEXEC"))
        XCTAssertEqual(Set(f.pids), [501, 500])
        XCTAssertEqual(d.locks[0].cause?.rule, .leakedFd)
        XCTAssertEqual(d.verdict[0], "/tmp/leak.lock: 1 process waiting. The lock outlived its taker: /tmp/leak.lock is held through an inherited descriptor: pid 500, which took it, has exited; sleep[501] (fd 3) keeps it locked (daemonised). sleep[501] is sleeping (60 s at a time) while holding the lock.")
    }

    func testStoppedHolderAndItsTracer() throws {
        let h = B.proc(10, "iptables", state: "t", tracer: 77)
        let gdb = B.proc(77, "gdb")
        let l = B.lock("/x", inode: 9, holders: [(h, 3, true)], waiters: [B.proc(11, "iptables")])
        let d = engine.diagnose(DiagnosisInput(report: LockReport(locks: [l]), processes: [77: gdb]))
        let f = try XCTUnwrap(d.findings.first)
        XCTAssertEqual(f.rule, .holderStopped)
        XCTAssertEqual(f["tracer_pid"], .pid(77))
        XCTAssertEqual(f["tracer_comm"], .string("gdb"))
        XCTAssertEqual(f.pids, [10, 77])

        let plain = B.lock("/x", inode: 9, holders: [(B.proc(10, "iptables", state: "T"), 3, true)], waiters: [B.proc(11, "iptables")])
        let g = try XCTUnwrap(engine.diagnose(DiagnosisInput(report: LockReport(locks: [plain]))).findings.first)
        XCTAssertEqual(g.rule, .holderStopped)
        XCTAssertTrue(g.suggestion.contains("kill -CONT 10"))
    }

    func testEachSingleProcessRule() throws {
        let sock = NetSocket(proto: .tcp, inode: 1, local: NetEndpoint(address: "10.1.1.1", port: 5555),
                             remote: NetEndpoint(address: "10.1.2.3", port: 443), state: "ESTABLISHED")
        let cases: [(ThreadActivity, [ThreadActivity], RuleID, String, EvidenceValue)] = [
            (B.thread(10, "D", "openat", nil, wchan: "percpu_rwsem_wait"), [], .holderIO, "wchan", .string("percpu_rwsem_wait")),
            (B.thread(10, "S", "clock_nanosleep", .sleep(seconds: 0.5)), [], .holderSleeping, "sleep_seconds", .double(0.5)),
            (B.thread(10, "R", nil, nil, running: 0.97), [], .holderBusy, "running_fraction", .double(0.97)),
            (B.thread(10, "S", "futex", .futex(address: 0x7f00, ownerTid: 12)), [B.thread(12, "R", nil, nil, running: 1)],
             .holderFutex, "owner_tid", .int(12)),
            (B.thread(10, "S", "poll", .io(fds: [B.socketFd(7, sock)], timeoutMs: 30000)), [],
             .holderNetwork, "peer", .string("10.1.2.3:443")),
        ]
        for (main, others, rule, key, value) in cases {
            let l = B.lock("/x", inode: 9, holders: [(B.proc(10, "holder"), 3, true)], waiters: [B.proc(11, "w")])
            let act = ProcessActivity(pid: 10, threads: [main] + others, cpuSeconds: rule == .holderBusy ? 0.97 : 0, windowSeconds: 1)
            let d = engine.diagnose(DiagnosisInput(report: LockReport(locks: [l]), activity: [10: act]))
            let f = try XCTUnwrap(d.findings.first, "\(rule)")
            XCTAssertEqual(f.rule, rule)
            XCTAssertEqual(f.pid, 10)
            XCTAssertEqual(f[key], value, "\(rule).\(key)")
            XCTAssertEqual(d.locks[0].cause?.rule, rule)
            XCTAssertTrue(d.verdict[0].contains("Holder holder[10] "), d.verdict[0])
        }
    }

    func testRetryLoopIsSaidToBeALoop() throws {
        let t = B.thread(10, "S", "nanosleep", .sleep(seconds: 0.1),
                         histogram: [HistogramBin(label: "nanosleep", fraction: 0.8), HistogramBin(label: "connect", fraction: 0.2)])
        let l = B.lock("/x", inode: 9, holders: [(B.proc(10, "holder"), 3, true)], waiters: [B.proc(11, "w")])
        let f = try XCTUnwrap(engine.diagnose(DiagnosisInput(report: LockReport(locks: [l]), activity: [10: B.activity(10, [t])])).findings.first)
        XCTAssertEqual(f.rule, .holderSleeping)
        XCTAssertEqual(f["retry_loop"], .bool(true))
    }

    func testMultiThreadedHolderLeadsWithTheDNSThread() throws {
        var input = B.incident()
        var act = input.activity[36057]!
        act.threads.insert(B.thread(36057, "S", "futex", .futex(address: 0x10, ownerTid: 36058)), at: 0)
        act.threads[1].tid = 36058
        input.activity[36057] = act
        let d = engine.diagnose(input)
        XCTAssertEqual(d.locks[0].cause?.rule, .dnsTimeout)
        XCTAssertEqual(d.locks[0].cause?["tid"], .int(36058))
    }

    func testOutcomes() {
        let quiet = B.lock("/q", inode: 1, holders: [(B.proc(1, "a"), 3, true)])
        let d = engine.diagnose(DiagnosisInput(report: LockReport(locks: [quiet]),
                                               activity: [1: B.activity(1, [B.thread(1, "S", "nanosleep", .sleep(seconds: 1))])]))
        XCTAssertEqual(d.outcome, .noContention)
        XCTAssertEqual(d.verdict, ["/q: locked by a[1], nobody waiting."])

        // Someone waits, and the holder could not be looked at.
        let blind = B.lock("/b", inode: 2, holders: [(B.proc(1, "a"), 3, true)], waiters: [B.proc(2, "w")])
        let e = engine.diagnose(DiagnosisInput(report: LockReport(locks: [blind]), uninspectable: [1]))
        XCTAssertEqual(e.outcome, .couldNotInspect)
        XCTAssertTrue(e.verdict[0].contains("could not be inspected"), e.verdict[0])

        let target = Target(argument: "/free", file: B.file(3), path: "/free")
        let f = engine.diagnose(DiagnosisInput(report: LockReport(targets: [target])))
        XCTAssertEqual(f.outcome, .noContention)
        XCTAssertEqual(f.verdict, ["/free: not locked, nobody waiting."])
    }
}
