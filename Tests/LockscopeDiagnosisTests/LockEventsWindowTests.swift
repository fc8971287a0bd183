import Foundation
import LockscopeCore
@testable import LockscopeDiagnosis
@testable import LockscopeEvents
import LockscopeRender
import XCTest

/// `diagnose` with lock events over its window, on the recorded flock-chain tree
/// (flock[5689] holds chain.lock; 5691–5693 blocked; python3 5694 and 5695 have it
/// open, both asleep) and events fed by hand: what the events add, and what they
/// must not add twice.
final class LockEventsWindowTests: XCTestCase {
    let tree = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("LockscopeCoreTests/Fixtures/flock-chain").path
    let chain = FileIdentity(major: 0xfe, minor: 0, inode: 16220625)

    func header(_ t: Double, _ pid: Int32) -> SampleHeader { SampleHeader(time: UInt64(t * 1e9), cpu: 0, pid: pid, tid: pid) }
    func attempt(_ t: Double, _ pid: Int32, ret: Int32, posix: Bool = false) -> KernelEvent {
        .lock(LockEvent(header: header(t, pid), tracepoint: posix ? .posixLockInode : .flockLockInode, file: chain,
                        lockPid: UInt32(pid), owner: UInt64(pid), flags: posix ? [.posix] : [.flock], type: .write, ret: ret))
    }

    func diagnose(_ events: LockEventsProvider?) throws -> Diagnosis {
        let proc = ProcRoot(tree)
        let target = Target(argument: "chain.lock", file: chain, path: nil)
        let d = Diagnoser(proc: proc, window: 1, hz: 1, provider: Diagnoser.liveProvider(proc: proc), lockEvents: events)
        return try d.diagnose(targets: [target])
    }

    /// apt-get (7000, gone from the tree: it closes the file between attempts) is
    /// refused three times a second apart; the open-and-asleep python3 5694 is
    /// refused twice; the blocked waiter 5691 was refused once before it queued.
    func testEventsAddPollersOnceEach() throws {
        let events = RecordedLockEvents(events: [
            attempt(0.0, 7000, ret: -11, posix: true), attempt(0.2, 5694, ret: -11), attempt(0.3, 5691, ret: -11),
            attempt(0.4, 5691, ret: 1), attempt(1.0, 7000, ret: -11, posix: true), attempt(1.2, 5694, ret: -11),
            attempt(2.0, 7000, ret: -11, posix: true),
        ], describeProcess: { $0 == 7000 ? (comm: "apt-get", parent: 1) : nil })
        let d = try diagnose(events)
        let ld = try XCTUnwrap(d.locks.first { $0.lock.file == chain })
        XCTAssertEqual(ld.blockedCount, 3)
        XCTAssertEqual(ld.pollingCount, 2)
        let byPid = Dictionary(grouping: ld.openers, by: \.pid)
        XCTAssertEqual(byPid[7000]?.count, 1)
        XCTAssertNil(byPid[5691], "a blocked waiter is not also a poller")
        let apt = try XCTUnwrap(byPid[7000]?.first)
        XCTAssertNil(apt.fd)
        XCTAssertEqual(apt.activity, .polling)
        XCTAssertEqual(apt.attempts?.attempts, 3)
        XCTAssertEqual(apt.attempts?.failed, 3)
        XCTAssertEqual(apt.attempts?.retryIntervalSeconds ?? 0, 1.0, accuracy: 1e-9)
        let py = try XCTUnwrap(byPid[5694]?.first)
        XCTAssertEqual(py.fd, 3)
        XCTAssertEqual(py.activity, .polling)
        XCTAssertEqual(py.attempts?.attempts, 2)
        XCTAssertEqual(byPid[5695]?.first?.activity, .idle)
        XCTAssertTrue(ld.verdict.contains("5 processes waiting (3 blocked, 2 polling"), ld.verdict)
        XCTAssertTrue(ld.verdict.contains("apt-get[7000] retries every 1 s (3 attempts in the window)"), ld.verdict)
        XCTAssertEqual(d.lockEvents, .observed(seconds: 2, lostEvents: 0))

        let json = DiagnosisJSON(syscallName: { _ in nil }, exitCode: { _ in 3 }).value(d).serialized()
        let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let openers = try XCTUnwrap(doc["openers"] as? [[String: Any]])
        let a = try XCTUnwrap(openers.first { $0["pid"] as? Int == 7000 })
        XCTAssertTrue(a["fd"] is NSNull)
        XCTAssertEqual(a["activity"] as? String, "polling")
        XCTAssertEqual(a["attempts"] as? Int, 3)
        XCTAssertEqual(a["retry_interval_seconds"] as? Double ?? 0, 1.0, accuracy: 1e-9)
        XCTAssertEqual((doc["lock_events"] as? [String: Any])?["available"] as? Bool, true)
        let text = DiagnosisText(style: .plain).render(d).joined(separator: "\n")
        XCTAssertTrue(text.contains("polling: apt-get[7000]  3 attempts, 3 refused, every 1 s (lock events)"), text)
    }

    /// A retry loop reported under the shell: the snapshot's opener that was one
    /// of its attempts is not listed a second time.
    func testRetryLoopReplacesItsAttemptsOpener() throws {
        var events: [KernelEvent] = []
        for (i, pid) in [Int32(5695), 8001, 8002].enumerated() {
            let t = Double(i) * 0.5
            events.append(.fork(ForkEvent(header: header(t, 8000), parentPid: 8000, parentComm: InlineName("sh"),
                                          childPid: pid, childComm: InlineName("sh"))))
            events.append(.exec(ExecEvent(header: header(t + 0.001, pid), pid: pid, oldPid: pid, name: InlineName("flock"))))
            events.append(attempt(t + 0.002, pid, ret: -11))
            events.append(.exit(ExitEvent(header: header(t + 0.003, pid), pid: pid, comm: InlineName("flock"), groupDead: true)))
        }
        let d = try diagnose(RecordedLockEvents(events: events))
        let ld = try XCTUnwrap(d.locks.first { $0.lock.file == chain })
        XCTAssertEqual(ld.openers.map(\.pid).sorted(), [5694, 8000])
        let sh = try XCTUnwrap(ld.openers.first { $0.pid == 8000 })
        XCTAssertEqual(sh.attempts?.attemptCommand, "flock")
        XCTAssertEqual(sh.attempts?.attemptPids, [5695, 8001, 8002])
        XCTAssertEqual(ld.pollingCount, 1)
        XCTAssertTrue(ld.verdict.contains("sh[8000] retries flock every 0.5 s (3 attempts in the window, a new process each)"), ld.verdict)
    }

    struct NoEvents: LockEventsProvider {
        func start(files: [FileIdentity]?) -> Result<any LockEventsRecording, LockEventsUnavailable> {
            .failure(LockEventsUnavailable(reason: "not root"))
        }
    }

    /// Without events: one note, and the snapshot's answer unchanged.
    func testUnavailableEventsSayWhyOnce() throws {
        let plain = try diagnose(nil)
        let d = try diagnose(NoEvents())
        XCTAssertEqual(d.verdict, plain.verdict)
        XCTAssertEqual(d.locks.map(\.openers), plain.locks.map(\.openers))
        let text = DiagnosisText(style: .plain).render(d)
        XCTAssertEqual(text.filter { $0.contains("lock events") },
                       ["note: lock events unavailable (not root): pollers that close the file between attempts are not seen"])
        XCTAssertFalse(DiagnosisText(style: .plain).render(plain).contains { $0.contains("lock events") })
    }
}
