import Foundation
import LockscopeCore
@testable import LockscopeMetrics
import XCTest

/// The collector's wait estimate on a recorded tree (no CPUs to visit: the tree's own
/// thread-self/sched is the reference clock, as `OffCPUClock` documents).
final class WaitAgeTests: XCTestCase {
    /// Waiter 201 is the oldest process but woke 5 s ago; 202, younger, has slept 40 s;
    /// 203 is 3 s old and cannot have slept longer than the 40 s found, so its sched
    /// file is never read (it has none: reading it would fail the estimate, not change it).
    func testOldestSleepWinsAndYoungerWaitersAreBoundedByTheirAge() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-waitage-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        defer { try? FileManager.default.removeItem(at: root) }
        func write(_ relative: String, _ text: String) throws {
            let url = root.appendingPathComponent(relative)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: false, encoding: .utf8)
        }
        func sched(_ execStartMs: Double) -> String {
            "x (1, #threads: 1)\n----\nse.exec_start                                :      \(execStartMs)\n"
        }
        // Uptime 1000 s; clock ticks of 100 Hz (sysconf here; the test computes ages with it).
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        func stat(_ pid: Int32, startedAtSecond s: Double) -> String {
            "\(pid) (flock) S 1 \(pid) \(pid) 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 \(Int(s * hz)) 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0\n"
        }
        try write("uptime", "1000.00 1.00\n")
        try write("thread-self/sched", sched(1_000_000))
        try write("201/stat", stat(201, startedAtSecond: 900))   // 100 s old
        try write("201/task/201/sched", sched(995_000))          // ran 5 s ago
        try write("202/stat", stat(202, startedAtSecond: 950))   // 50 s old
        try write("202/task/202/sched", sched(960_000))          // ran 40 s ago
        try write("203/stat", stat(203, startedAtSecond: 997))   // 3 s old, no sched file
        let lock = ExpositionTests.lock("/run/x.lock", inode: 7, waiters: 3, pid: 200)
        let collector = Collector(proc: ProcRoot(root.path), excludedPids: [])
        XCTAssertEqual(collector.waitAges(LockReport(locks: [lock]))[LockKey(lock)] ?? -1, 40, accuracy: 1e-6)

        // Give 203 a sched file claiming a sleep longer than its life: it is still not read.
        try write("203/task/203/sched", sched(0))
        XCTAssertEqual(collector.waitAges(LockReport(locks: [lock]))[LockKey(lock)] ?? -1, 40, accuracy: 1e-6)
        // Make 203 old enough to matter, and it is.
        try write("203/stat", stat(203, startedAtSecond: 0))
        XCTAssertEqual(collector.waitAges(LockReport(locks: [lock]))[LockKey(lock)] ?? -1, 1000, accuracy: 1e-6)
        // 202 started within the tolerance of the 40 s sleep found first: not read either.
        try write("202/stat", stat(202, startedAtSecond: 999.95))
        try write("203/stat", stat(203, startedAtSecond: 960 - Collector.waitTolerance / 2))
        try write("201/task/201/sched", sched(960_000))          // 201 ran 40 s ago too
        XCTAssertEqual(collector.waitAges(LockReport(locks: [lock]))[LockKey(lock)] ?? -1, 40, accuracy: 1e-6,
                       "203, 40.05 s old, can add at most 0.05 s: its 1000 s sched file is not read")
    }
}
