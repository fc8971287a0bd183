import XCTest
@testable import LockscopeCore
@testable import LockscopeDiagnosis
@testable import LockscopeRender

/// Two processes hold READ locks on the same file and range — two lines in
/// /proc/locks — and a process waits for WRITE behind the first. The rules and
/// the renderers must keep them apart as two locks with one holder each.
final class SharedReadLockTests: XCTestCase {
    /// pid 1 and pid 2 hold `kind` READ on /f; pid 3 waits for WRITE behind pid 1.
    /// With `upgrade`, pid 1 also asks for WRITE and is queued behind pid 2's READ lock.
    func input(_ kind: LockKind, upgrade: Bool = false) -> DiagnosisInput {
        let a = B.proc(1, "reader-a"), b = B.proc(2, "reader-b"), w = B.proc(3, "writer", age: 7)
        var la = B.lock("/f", inode: 9, holders: [(a, 3, true)], waiters: [w], kind: kind)
        var lb = B.lock("/f", inode: 9, holders: [(b, 3, true)], waiters: upgrade ? [a] : [], kind: kind)
        la.access = .read
        lb.access = .read
        var act: [Int32: ProcessActivity] = [2: B.activity(2, [B.thread(2, "S", "nanosleep", .sleep(seconds: 60), inCall: 5)])]
        if upgrade {
            act[1] = B.activity(1, [B.thread(1, "S", "fcntl", .lock(fd: 3, file: B.file(9), path: "/f", operation: "F_SETLKW"))])
        }
        return DiagnosisInput(report: LockReport(locks: [la, lb]), activity: act)
    }

    func testDOTDrawsOneNodePerLock() {
        for kind in [LockKind.flock, .posix] {
            let dot = DiagnosisDOT().render(RuleEngine().diagnose(input(kind)))
            let a = "lock:fe:00:9:\(kind.rawValue):0:READ:1", b = "lock:fe:00:9:\(kind.rawValue):0:READ:2"
            XCTAssertTrue(dot.contains("\"\(a)\" [shape=box, style=filled, fillcolor=\"#fff2cc\", label=\"/f\\n\(kind.rawValue) READ\\n1 waiting\"];"), dot)
            XCTAssertTrue(dot.contains("\"\(b)\" [shape=box, style=filled, fillcolor=\"#fff2cc\", label=\"/f\\n\(kind.rawValue) READ\"];"), dot)
            XCTAssertTrue(dot.contains("\"\(a)\" -> \"pid:1\" [label=\"held by\\nfd 3\"];"), dot)
            XCTAssertTrue(dot.contains("\"\(b)\" -> \"pid:2\" [label=\"held by\\nfd 3\"];"), dot)
            XCTAssertFalse(dot.contains("\"\(a)\" -> \"pid:2\""), dot)
            XCTAssertTrue(dot.contains("\"waiters:\(a):writer\" -> \"\(a)\" [label=\"waits\"];"), dot)
        }
    }

    /// pid 1 asks to upgrade its READ lock and waits for pid 2's: the chain leads to
    /// pid 2, not back to pid 1 itself.
    func testUpgradeWaitsForTheOtherReader() throws {
        let d = RuleEngine().diagnose(input(.posix, upgrade: true))
        let chain = try XCTUnwrap(d.findings.first { $0.rule == .waitChain && $0.pid == 1 })
        XCTAssertEqual(chain["waits_for_holders"], .pids([2]))
        XCTAssertEqual(chain["root_pid"], .pid(2))
        XCTAssertEqual(d.locks[0].cause?.rule, .holderSleeping)
        XCTAssertEqual(d.locks[0].cause?.pid, 2)
        let text = DiagnosisText(style: .plain).render(d)
        XCTAssertTrue(text.contains("│  └─ waits for: /f  fe:00:9  POSIX READ"), text.joined(separator: "\n"))
        XCTAssertTrue(text.contains("│     └─ holder: reader-b[2] fd 3  S  nanosleep() for 5 s"), text.joined(separator: "\n"))
    }
}
