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

    func unlock(_ t: Double, _ pid: Int32) -> KernelEvent {
        .lock(LockEvent(header: header(t, pid), tracepoint: .flockLockInode, file: chain, lockPid: UInt32(pid),
                        owner: UInt64(pid), flags: [.flock], type: .unlock, ret: 0))
    }

    func waiter(_ d: Diagnosis, _ pid: Int32) throws -> Waiter {
        try XCTUnwrap(d.locks.first { $0.lock.file == chain }?.lock.waiters.first { $0.pid == pid }, "no waiter \(pid)")
    }

    /// python3 5695 (open, in pause() when scanned) queues at 0 s, before anything on
    /// the file could wake a waiter: it is a waiter now, with its exact wait to the end
    /// of the window (1.5 s), and the oldest wait is that one (the others' ages are 0.6 s).
    func testAWaiterThatQueuedInTheWindowHasItsExactWait() throws {
        let d = try diagnose(RecordedLockEvents(events: [attempt(0.0, 5695, ret: 1), attempt(1.5, 5694, ret: -11)]))
        let ld = try XCTUnwrap(d.locks.first { $0.lock.file == chain })
        let py = try waiter(d, 5695)
        XCTAssertEqual(py.source, .event)
        XCTAssertEqual(py.fd, 3, "its descriptor from the snapshot")
        XCTAssertEqual(py.blockedBy, 5689)
        XCTAssertEqual(py.queuePosition, 4)
        XCTAssertEqual(py.waitedSeconds ?? 0, 1.5, accuracy: 1e-9)
        XCTAssertEqual(py.wait, WaitDuration(seconds: 1.5, source: .event))
        XCTAssertFalse(ld.openers.contains { $0.pid == 5695 }, "no longer an opener")
        // The snapshot's waiters queued before the window: their age.
        let first = try waiter(d, 5691)
        XCTAssertNil(first.waitedSeconds)
        XCTAssertEqual(first.wait?.source, .estimate)
        XCTAssertEqual(ld.blockedCount, 4)
        XCTAssertEqual(ld.oldestWait, WaitDuration(seconds: 1.5, source: .event))
        XCTAssertTrue(ld.verdict.contains("5 processes waiting (4 blocked, 1 polling; oldest exactly 1.50 s)"), ld.verdict)

        let json = DiagnosisJSON(syscallName: { _ in nil }, exitCode: { _ in 3 }).value(d).serialized()
        let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let lock = try XCTUnwrap((doc["locks"] as? [[String: Any]])?.first { $0["inode"] as? Int == 16220625 })
        XCTAssertEqual(lock["oldest_wait_source"] as? String, "event")
        let waiters = try XCTUnwrap(lock["waiters"] as? [[String: Any]])
        let w = try XCTUnwrap(waiters.first { $0["pid"] as? Int == 5695 })
        XCTAssertEqual(w["source"] as? String, "event")
        XCTAssertEqual(w["wait_source"] as? String, "event")
        XCTAssertEqual(w["wait_seconds"] as? Double ?? 0, 1.5, accuracy: 1e-9)
        XCTAssertEqual(waiters.first { $0["pid"] as? Int == 5691 }?["wait_source"] as? String, "estimate")
        let text = DiagnosisText(style: .plain).render(d).joined(separator: "\n")
        XCTAssertTrue(text.contains("waiting: python3 ×1  oldest exactly 1.50 s  pid 5695"), text)
    }

    /// A first `ret=1` that may be a woken waiter queued again keeps the estimate: 5692
    /// (a waiter in the snapshot) after the holder's unlock, and 9000 (not in the
    /// snapshot: it may have queued between the scan and the window) too. 5691 was
    /// granted, unlocked and queued again in the window: that wait is new, and exact.
    func testAWaitThatMayHaveBegunBeforeTheWindowKeepsTheEstimate() throws {
        let d = try diagnose(RecordedLockEvents(events: [
            unlock(0.1, 5689), attempt(0.2, 5692, ret: 1), attempt(0.3, 9000, ret: 1),
            attempt(0.4, 5691, ret: 0), unlock(0.45, 5691), attempt(0.5, 5691, ret: 1),
            attempt(1.5, 5694, ret: -11),
        ]))
        XCTAssertNil(try waiter(d, 5692).waitedSeconds)
        XCTAssertEqual(try waiter(d, 5692).wait?.source, .estimate)
        let late = try waiter(d, 9000)
        XCTAssertEqual(late.source, .event)
        XCTAssertNil(late.waitedSeconds)
        XCTAssertEqual(try waiter(d, 5691).waitedSeconds ?? 0, 1.0, accuracy: 1e-9)
        XCTAssertNil(try waiter(d, 5693).waitedSeconds)
        let ld = try XCTUnwrap(d.locks.first { $0.lock.file == chain })
        XCTAssertEqual(ld.blockedCount, 4)
        XCTAssertNil(ld.lock.holders.first?.heldSeconds, "its hold began before the window")
    }

    /// The holder unlocked and took the lock again in the window: its hold is exact
    /// (1.0 s to the window's end). A grant with no unlock before it may be a conversion
    /// of a hold from before the window: no hold time.
    func testAHoldTakenInTheWindowIsExact() throws {
        let d = try diagnose(RecordedLockEvents(events: [unlock(0.1, 5689), attempt(0.2, 5689, ret: 0), attempt(1.2, 5694, ret: -11)]))
        let ld = try XCTUnwrap(d.locks.first { $0.lock.file == chain })
        let holder = try XCTUnwrap(ld.lock.holders.first { $0.pid == 5689 })
        XCTAssertEqual(holder.heldSeconds ?? 0, 1.0, accuracy: 1e-9)
        XCTAssertTrue(ld.lock.holders.allSatisfy { $0.heldSeconds == holder.heldSeconds }, "co-holders share the lock")
        let text = DiagnosisText(style: .plain).render(d).joined(separator: "\n")
        XCTAssertTrue(text.contains("holder: flock[5689] fd 3  held exactly 1.00 s"), text)
        let json = DiagnosisJSON(syscallName: { _ in nil }, exitCode: { _ in 3 }).value(d).serialized()
        let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let lock = try XCTUnwrap((doc["locks"] as? [[String: Any]])?.first { $0["inode"] as? Int == 16220625 })
        let h = try XCTUnwrap((lock["holders"] as? [[String: Any]])?.first { $0["pid"] as? Int == 5689 })
        XCTAssertEqual(h["held_seconds"] as? Double ?? 0, 1.0, accuracy: 1e-9)

        let converted = try diagnose(RecordedLockEvents(events: [attempt(0.2, 5689, ret: 0), attempt(1.2, 5694, ret: -11)]))
        XCTAssertNil(converted.locks.first { $0.lock.file == chain }?.lock.holders.first?.heldSeconds)
    }

    /// Waiters text: an exact wait is marked, with one footnote.
    func testWaitersTextMarksTheExactWait() throws {
        let proc = ProcRoot(tree)
        var report = try LockScanner(proc: proc).report(for: [Target(argument: "chain.lock", file: chain, path: nil)])
        let reader = ProcessReader(proc: proc)
        RecordedLockEvents(events: [attempt(0.0, 5695, ret: 1), attempt(1.5, 5694, ret: -11)])
            .observe(files: [chain], report: &report, facts: { reader.facts(of: $0, withThreads: false) }) {}
        let text = ReportText(style: .plain, syscallName: { _ in nil }, each: true).waiters(report)
        XCTAssertTrue(text.contains { $0.contains(" 5695 ") && $0.contains("1.5s*") }, text.joined(separator: "\n"))
        XCTAssertEqual(text.filter { $0.contains("* exact wait") }.count, 1, text.joined(separator: "\n"))
        let grouped = ReportText(style: .plain, syscallName: { _ in nil }, each: false).waiters(report)
        XCTAssertTrue(grouped.contains { $0.contains("python3 ×1  pid 5695  oldest 1.5s*") }, grouped.joined(separator: "\n"))
    }

    /// Openers from what the window saw: one called polling only because it slept with
    /// a retrying protocol's file, and never seen trying in a window of at least a
    /// second, is idle (open, asleep); one caught in the attempt, or seen refused, stays
    /// polling; a window shorter than the protocols' retry interval changes nothing.
    func testOpenersAreClassifiedFromTheWindow() {
        let openers = [Opener(pid: 1, fd: 3, file: chain, activity: .polling, asleep: true),
                       Opener(pid: 2, fd: 3, file: chain, activity: .polling, asleep: false),
                       Opener(pid: 3, fd: 3, file: chain, activity: .polling, asleep: true)]
        let refused = EventPoller(pid: 3, comm: "iptables", file: chain, attempts: LockAttempts(attempts: 1, failed: 1, retryIntervalSeconds: nil))
        var short = LockReport(openers: openers)
        short.add(LockEventsObservation(seconds: 0.5, lostEvents: 0, pollers: [refused]), facts: { _ in nil })
        XCTAssertEqual(short.openers.map(\.activity), [.polling, .polling, .polling])
        var long = LockReport(openers: openers)
        long.add(LockEventsObservation(seconds: 1.2, lostEvents: 0, pollers: [refused]), facts: { _ in nil })
        XCTAssertEqual(long.openers.map(\.activity), [.idle, .polling, .polling])
        XCTAssertEqual(long.openers[0].asleep, true)
        XCTAssertEqual(long.openers[2].attempts?.failed, 1)
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
