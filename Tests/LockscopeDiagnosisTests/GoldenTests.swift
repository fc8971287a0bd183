import XCTest
@testable import LockscopeCore
@testable import LockscopeDiagnosis
@testable import LockscopeRender
import LockscopeTestSupport
import LockscopeTrace

/// The text report and the DOT graph on fixture data, compared byte for byte
/// with Fixtures/golden/*. To accept a deliberate change:
/// `LOCKSCOPE_UPDATE_GOLDEN=1 swift test --filter GoldenTests`, then review the diff.
final class GoldenTests: XCTestCase {
    let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/golden").path

    func check(_ name: String, _ actual: String, file: StaticString = #filePath, line: UInt = #line) throws {
        try assertGolden(actual, path: dir + "/" + name, file: file, line: line)
    }

    func text(_ d: Diagnosis) -> String { DiagnosisText(style: .plain).render(d).joined(separator: "\n") + "\n" }

    func testIncidentText() throws {
        try check("incident.txt", text(RuleEngine().diagnose(B.incident())))
    }

    func testIncidentDOT() throws {
        try check("incident.dot", DiagnosisDOT().render(RuleEngine().diagnose(B.incident())))
    }

    /// A holder waiting for a second lock whose holder waits for the first (a deadlock),
    /// plus a flock(1) holder whose child is stuck in DNS, and a hostile file name.
    func chainInput() -> DiagnosisInput {
        let a = B.proc(1001, "worker-a", age: 120), b = B.proc(1002, "worker-b", age: 118)
        let w = B.proc(1003, "cron-job", age: 60)
        let l1 = B.lock("/var/lock/a.lock", inode: 11, holders: [(a, 3, true)], waiters: [b, w])
        let l2 = B.lock("/var/lock/b\n\u{1b}[31mevil.lock", inode: 12, holders: [(b, 4, true)], waiters: [a])
        let flock = B.proc(2001, "flock", ppid: 1, age: 30, cmdline: ["flock", "/run/app.lock", "getent", "hosts", "db.internal"])
        let child = B.proc(2002, "getent", ppid: 2001, age: 30)
        let q = (0..<3).map { B.proc(2010 + Int32($0), "flock", age: 20 - Double($0)) }
        let l3 = B.lock("/run/app.lock", inode: 13, holders: [(flock, 3, true), (child, 3, false)], waiters: q)
        let sock = B.udp("127.0.0.1", 41000, "127.0.0.53", 53)
        func flockArgs(_ fd: Int32) -> [DecodedArgument] {
            [DecodedArgument(name: "fd", value: .fd(ResolvedFd(fd: fd, what: nil))),
             DecodedArgument(name: "operation", value: .flockOperation(FlockOperation(raw: 2)))]
        }
        let wait4: [DecodedArgument] = [DecodedArgument(name: "pid", value: .waitTarget(.child(2002))),
                                        DecodedArgument(name: "wstatus", value: .pointer(0x7ffc0000)),
                                        DecodedArgument(name: "options", value: .flags(FlagSet(raw: 0, names: [], unknown: 0))),
                                        DecodedArgument(name: "rusage", value: .pointer(0))]
        let act: [Int32: ProcessActivity] = [
            1001: B.activity(1001, [B.thread(1001, "S", "flock", .lock(fd: 4, file: B.file(12), path: nil, operation: "LOCK_EX"), args: flockArgs(4), inCall: 3)]),
            1002: B.activity(1002, [B.thread(1002, "S", "flock", .lock(fd: 3, file: B.file(11), path: nil, operation: "LOCK_EX"), args: flockArgs(3), inCall: 3)]),
            2001: B.activity(2001, [B.thread(2001, "S", "wait4", .waitChild(pid: 2002), args: wait4, inCall: 2.5)]),
            2002: B.activity(2002, [B.thread(2002, "S", "poll", .io(fds: [B.socketFd(3, sock)], timeoutMs: 5000),
                                             args: B.pollArgs(B.socketFd(3, sock), ms: 5000), inCall: 2.5)]),
        ]
        let conf = ResolvConf.parse("nameserver 127.0.0.53\nsearch corp.example\noptions edns0 trust-ad\n")
        return DiagnosisInput(report: LockReport(locks: [l1, l3]), allLocks: [l1, l2, l3], activity: act,
                              resolvConf: [2002: conf])
    }

    func testChainText() throws {
        let d = RuleEngine().diagnose(chainInput())
        XCTAssertEqual(d.findings.map(\.rule), [.deadlock, .dnsTimeout, .holderWaitsChild])
        try check("chain.txt", text(d))
    }

    func testChainDOT() throws {
        try check("chain.dot", DiagnosisDOT().render(RuleEngine().diagnose(chainInput())))
    }

    func testJSONCarriesFindingsAndTheReportLocks() throws {
        let d = RuleEngine().diagnose(B.incident())
        let json = DiagnosisJSON(syscallName: { _ in nil }, exitCode: { $0 == .contention ? 3 : -1 }).value(d).serialized()
        try check("incident.json", json + "\n")
        XCTAssertTrue(json.contains("\"schema\": \"lockscope.diagnosis/1\""))
        XCTAssertTrue(json.contains("\"rule\": \"dns-timeout\""))
        XCTAssertTrue(json.contains("\"worst_case_seconds\": 10"))
    }
}
