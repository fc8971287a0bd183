import Foundation
import Glibc
import LockscopeTestSupport
import XCTest

/// `lockscope serve` with kernel lock events: a flock(1) holder, a refused `flock -n`
/// and N waiters on a temp file; the exposition counts the N contended grants under
/// the file's path, in the counter and in the wait histogram, gives the holder's exact
/// age from its grant event, and its hold time in the hold histogram once it lets go.
final class ServeEventsLiveTests: XCTestCase {
    /// The value of the one sample `name{path="path"}` (nil when absent).
    func sample(_ body: String, _ name: String, path: String, source: String? = nil) -> Double? {
        let prefix = name + "{path=\"" + path + "\"" + (source.map { ",source=\"\($0)\"" } ?? "") + "} "
        guard let line = body.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return nil }
        return Double(line.dropFirst(prefix.count))
    }

    func tracefsEnable() -> String? {
        for root in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
            if let s = try? String(contentsOfFile: root + "/events/filelock/enable", encoding: .utf8) { return s }
        }
        return nil
    }

    func testContendedAcquisitionsAreCountedUnderTheirPath() throws {
        try requireRoot("perf_event_open on the filelock tracepoints system-wide")
        try requireExecutable("flock")
        try requireExecutable("promtool")
        let enabledBefore = tracefsEnable()
        let dir = try TempDir()
        let (server, port) = try startServe(["--min-interval", "0.1", "--no-diagnosis"], dir: dir)
        defer { server.stop() }
        if server.output.contains("lock events unavailable") {
            try skip("serve runs without lock events here: \(server.output)")
        }
        let file = dir.file("contended.lock")
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: nil))

        let holderStarted = Date()
        let holder = try Background(["/usr/bin/flock", "-F", file, "/bin/sleep", "600"], log: dir.file("holder.log"))
        defer { holder.stop() }
        XCTAssertTrue(waitUntil(timeout: 10) { !procLocksLines(pid: holder.pid).isEmpty }, "holder never locked")
        // Its age comes from the grant event (drained within 0.5 s), not from the first scrape.
        var held: Double? = nil
        var seen = ""
        XCTAssertTrue(try waitUntil(timeout: 10, interval: 0.2) {
            seen = try HTTP.get(port: port, "/metrics").body
            held = sample(seen, "lockscope_lock_holder_seconds", path: file, source: "event")
            return held != nil
        }, "holder age not from events: \(seen)")
        XCTAssertLessThanOrEqual(held ?? .infinity, Date().timeIntervalSince(holderStarted) + 0.1)
        XCTAssertNil(sample(seen, "lockscope_lock_holder_seconds", path: file, source: "snapshot"))
        let refused = try runCommand(["/usr/bin/flock", "-n", file, "/bin/true"])
        XCTAssertEqual(refused.exitCode, 1, "flock -n on a held lock is refused")

        let n = 5
        let waiters = try (0..<n).map { try Background(["/usr/bin/flock", file, "/bin/true"], log: dir.file("waiter\($0).log")) }
        defer { waiters.forEach { $0.stop() } }
        // A snapshot sees the queue (and learns the lock's path from the holder's descriptor).
        var body = ""
        XCTAssertTrue(try waitUntil(timeout: 15, interval: 0.2) {
            body = try HTTP.get(port: port, "/metrics").body
            return body.split(separator: "\n").contains {
                $0.hasPrefix("lockscope_lock_waiters{path=\"\(file)\",kind=\"flock\",") && $0.hasSuffix("} \(n).0")
            }
        }, "waiters never seen: \(body)")
        let before = sample(body, "lockscope_lock_acquisitions_total", path: file) ?? 0

        let heldBeforeRelease = Date().timeIntervalSince(holderStarted)
        XCTAssertEqual(holder.stop(), 128 + SIGTERM)
        XCTAssertTrue(waitUntil(timeout: 15) { waiters.allSatisfy { !$0.process.isRunning } }, "waiters did not all get the lock")
        XCTAssertTrue(try waitUntil(timeout: 10, interval: 0.2) {
            body = try HTTP.get(port: port, "/metrics").body
            return (sample(body, "lockscope_lock_acquisitions_total", path: file) ?? 0) - before >= Double(n)
        }, "acquisitions not counted: \(body)")

        let acquisitions = sample(body, "lockscope_lock_acquisitions_total", path: file) ?? 0
        let waits = sample(body, "lockscope_lock_wait_seconds_count", path: file) ?? 0
        let waitSum = sample(body, "lockscope_lock_wait_seconds_sum", path: file) ?? 0
        let failed = sample(body, "lockscope_lock_failed_attempts_total", path: file) ?? 0
        // The holder's release and each waiter's (they exit holding it): n + 1 holds,
        // the holder's alone at least as long as it had held when the first check ran.
        let holds = sample(body, "lockscope_lock_hold_seconds_count", path: file) ?? 0
        let holdSum = sample(body, "lockscope_lock_hold_seconds_sum", path: file) ?? 0
        print("serve events: \(file): acquisitions_total \(acquisitions) (\(before) before the release), "
              + "wait_seconds_count \(waits), wait_seconds_sum \(waitSum), failed_attempts_total \(failed), "
              + "hold_seconds_count \(holds), hold_seconds_sum \(holdSum), holder age from events \(held ?? -1)")
        XCTAssertGreaterThanOrEqual(acquisitions - before, Double(n))
        XCTAssertGreaterThanOrEqual(waits, Double(n), "every contended grant is in the histogram")
        XCTAssertGreaterThan(waitSum, 0)
        XCTAssertGreaterThanOrEqual(failed, 1, "the refused flock -n")
        XCTAssertGreaterThanOrEqual(holds, Double(n + 1), "every release is in the hold histogram: \(body)")
        XCTAssertGreaterThanOrEqual(holdSum, held ?? .infinity)
        XCTAssertLessThanOrEqual(holdSum, heldBeforeRelease + 5)
        XCTAssertTrue(body.contains("\nlockscope_events_available 1.0\n"), body)
        XCTAssertTrue(body.contains("\nlockscope_lost_events_total "), body)
        let check = try promtoolCheckMetrics(Array(body.utf8), dir: dir)
        XCTAssertEqual(check.exitCode, 0, check.stdout + check.stderr)
        XCTAssertEqual(check.stdout + check.stderr, "", "promtool lint findings")

        // SIGTERM: a clean stop, and nothing left enabled in tracefs (perf only, never tracefs).
        XCTAssertEqual(server.stop(grace: 10), 0, server.output)
        XCTAssertEqual(tracefsEnable(), enabledBefore, "tracefs filelock/enable changed")
    }
}
