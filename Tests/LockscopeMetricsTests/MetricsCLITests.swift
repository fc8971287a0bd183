import Foundation
import LockscopeTestSupport
import XCTest

/// `lockscope metrics` on recorded /proc trees: the whole exposition, stable.
final class MetricsCLITests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("LockscopeCoreTests/Fixtures").path

    func samples(_ fixture: String, _ extra: [String] = []) throws -> [String] {
        let r = try runCommand([TestBinaries.lockscope, "metrics", "--proc-root", Self.fixtures + "/" + fixture] + extra)
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        return r.stdout.split(separator: "\n").map(String.init)
            .filter { !$0.hasPrefix("#") && !$0.hasPrefix("lockscope_scrape_duration_seconds ") && !$0.hasPrefix("lockscope_locks{") }
            .filter { !$0.hasPrefix("lockscope_diagnosis_findings{") || !$0.hasSuffix(" 0.0") }
            .sorted()
    }

    /// A holder (flock(1) waiting for its sleeping child) with three waiters queued behind it.
    func testFlockChainFixture() throws {
        XCTAssertEqual(try samples("flock-chain"), [
            #"lockscope_diagnosis_findings{rule="holder-sleeping"} 1.0"#,
            #"lockscope_diagnosis_findings{rule="holder-waits-child"} 1.0"#,
            "lockscope_events_available 0.0",
            #"lockscope_lock_waiters{path="/tmp/lockscope-fx-kdxg8t7t/chain.lock",kind="flock",reason="holder-sleeping"} 3.0"#,
            #"lockscope_lock_waiters{path="fe:00:16220329",kind="flock",reason="unknown"} 3.0"#,
            "lockscope_scrape_errors_total 0",
        ])
    }

    func testTopOneAggregatesTheRestAndNoDiagnosisMeansUnknown() throws {
        XCTAssertEqual(try samples("flock-chain", ["--top", "1", "--no-diagnosis"]), [
            "lockscope_events_available 0.0",
            #"lockscope_lock_waiters{path="/tmp/lockscope-fx-kdxg8t7t/chain.lock",kind="flock",reason="unknown"} 3.0"#,
            #"lockscope_lock_waiters{path="other",kind="flock",reason="unknown"} 3.0"#,
            "lockscope_scrape_errors_total 0",
        ])
    }

    /// The recorded hostile name (newline and an escape sequence in it) stays one escaped label.
    func testHostileNameFixture() throws {
        let lines = try samples("hostile-name")
        XCTAssertTrue(lines.contains(#"lockscope_lock_waiters{path="/tmp/lockscope-fx-kdxg8t7t/evil\\nname\\e[31m.lock",kind="flock",reason="none"} 0.0"#), "\(lines)")
    }

    func testUnreadableProcIsExit70AndWritesNothing() throws {
        let dir = try TempDir()
        let fake = dir.file("proc")
        try FileManager.default.createDirectory(atPath: fake + "/locks", withIntermediateDirectories: true)  // a directory: unreadable as text
        let out = dir.file("x.prom")
        let r = try runCommand([TestBinaries.lockscope, "metrics", "--proc-root", fake, "--output", out])
        XCTAssertEqual(r.exitCode, 70, r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}
