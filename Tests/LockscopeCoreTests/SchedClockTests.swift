import XCTest
@testable import LockscopeCore

/// The per-CPU scheduler clock helpers (see SchedClock: readings from different CPUs
/// are not comparable).
final class SchedClockTests: XCTestCase {
    /// A stat line recorded from Linux 6.18 (a sleeping thread whose comm has a space and
    /// a parenthesis): field 39, the CPU it last ran on, is 1.
    func testLastCPUIsField39AfterTheLastParenthesis() {
        let line = "4242 (we ird) name) S 1 4242 4242 0 -1 4194560 120 0 0 0 0 0 0 0 20 0 1 0 1734 5521408 344 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
        XCTAssertEqual(StatFields.parse(line)?.processor, 1)
        XCTAssertEqual(StatFields.parse(line)?.startTicks, 1734)
        // Ends after field 22: parsed, with no CPU.
        XCTAssertNil(try XCTUnwrap(StatFields.parse("4242 (short) S 1 2 3 0 -1 0 0 0 0 0 0 0 0 0 0 0 1 0 99\n")).processor)
        XCTAssertNil(StatFields.parse("4242 (short) S 1 2 3\n"))
        XCTAssertNil(StatFields.parse("no parenthesis at all"))
    }

    /// Live: two readings on the same CPU a few ms apart differ by about that time, which
    /// a reading from "whichever CPU we are on" does not promise.
    func testNowOnOneCPUAdvancesLikeTheWallClock() throws {
        let read = { (try? String(contentsOfFile: "/proc/thread-self/sched", encoding: .utf8)).map { Array($0.utf8) } }
        guard let a = SchedClock.nowMilliseconds(onCPU: 0, readOwnSched: read) else {
            throw XCTSkip("CPU 0 not allowed here, or no /proc/thread-self/sched")
        }
        let wall0 = MonotonicClock.seconds
        usleep(50_000)
        let b = try XCTUnwrap(SchedClock.nowMilliseconds(onCPU: 0, readOwnSched: read))
        let wallMs = (MonotonicClock.seconds - wall0) * 1000
        // The clock is the runqueue's clock_task, which leaves out IRQ and steal time: on
        // a loaded VM it advanced 40 ms in 50 ms of wall time. Another CPU's clock would
        // be off by seconds.
        XCTAssertGreaterThanOrEqual(b - a, wallMs * 0.5)
        XCTAssertLessThan(b - a, wallMs + 5)
        XCTAssertNil(SchedClock.nowMilliseconds(onCPU: -1, readOwnSched: read))
    }
}
