import Foundation
import Glibc
import LockscopeTestSupport
import XCTest

/// Names reach open() as the bytes given, and no name or argument can drive the
/// terminal: not in text, not in JSON, not in the argument parser's own errors (issue 13).
final class ExactBytesTests: XCTestCase {
    /// `sh -c SCRIPT` so argv can carry bytes a Swift String cannot (printf makes them).
    func shell(_ script: String, timeout: Double = 30) throws -> CommandResult {
        try runCommand(["/bin/sh", "-c", script], timeout: timeout)
    }

    func testAPathThatIsNotUTF8ReachesOpenAsTheBytesGiven() throws {
        try requireExecutable("flock")
        let dir = try TempDir()
        let name = "\"$(printf '\(dir.path)/bad\\377\\376.lock')\""
        // cat (sharing the lock) ends when the harness closes its stdin.
        let holder = try HarnessProcess(["/bin/sh", "-c", "touch \(name) && exec flock \(name) cat"])
        defer { holder.kill() }
        var r = try shell("exec '\(TestBinaries.lockscope)' who --json \(name)")
        for _ in 0..<100 where r.exitCode == 1 || !r.stdout.contains("\"pid\": \(holder.pid)") {
            usleep(50_000)  // until flock(1) has the lock
            r = try shell("exec '\(TestBinaries.lockscope)' who --json \(name)")
        }
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("\"pid\": \(holder.pid)"), r.stdout)
    }

    func testArgumentParserErrorsAreEscaped() throws {
        let cases: [[String]] = [
            ["list", "--pid", "\u{1b}[2J"],
            ["\u{1b}[2J\u{07}"],
            ["diagnose", "--window", "\u{1b}]0;title\u{07}"],
            ["diagnose", "--hz", "\u{07}"],
            ["list", "--kind", "x\u{9b}31m"],
        ]
        for args in cases {
            let r = try CLI.run(args)
            XCTAssertEqual(r.exitCode, 64, "\(args): \(r.stderr)")
            let raw = r.stderr.unicodeScalars.filter { $0.value == 0x1b || $0.value == 0x07 || $0.value == 0x9b }
            XCTAssertTrue(raw.isEmpty, "raw control characters on stderr for \(args): \(r.stderr.debugDescription)")
            XCTAssertTrue(r.stderr.contains("\\e") || r.stderr.contains("\\x07") || r.stderr.contains("\\x9b"), r.stderr)
        }
    }

    func testJSONEscapesC1Controls() throws {
        let dir = try TempDir()
        let path = try dir.touch("csi\u{9b}2J.lock")
        let holder = try Testbed.spawn(["open:\(path)", "flock:ex"])
        try holder.waitForReady()
        let r = try CLI.run(["who", "--json", path])
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        XCTAssertFalse(r.stdout.unicodeScalars.contains { $0.value == 0x9b }, "raw U+009B in JSON")
        XCTAssertTrue(r.stdout.contains("csi\\u009b2J.lock"), r.stdout)
        // Still the same text once decoded.
        let doc = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let targets = doc?["targets"] as? [[String: Any]]
        XCTAssertEqual(targets?.first?["path"] as? String, path)
    }
}

/// JSON keeps a name that is not UTF-8 exactly: `"path"` with U+FFFD, and `"path_bytes"`
/// (hex) beside it, in every document that prints the path (docs/json-schema.md).
final class PathBytesTests: XCTestCase {
    func testPathBytesBesidePath() throws {
        try requireExecutable("flock")
        let dir = try TempDir()
        let name = "\"$(printf '\(dir.path)/bad\\377\\376.lock')\""
        let holder = try HarnessProcess(["/bin/sh", "-c", "touch \(name) && exec flock \(name) cat"])
        defer { holder.kill() }
        let hex = (Array(dir.path.utf8) + Array("/bad".utf8) + [0xff, 0xfe] + Array(".lock".utf8))
            .map { String(format: "%02x", $0) }.joined()
        let repaired = dir.path + "/bad\u{FFFD}\u{FFFD}.lock"
        func run(_ args: String) throws -> CommandResult {
            try runCommand(["/bin/sh", "-c", "exec '\(TestBinaries.lockscope)' \(args)"], timeout: 30)
        }
        var who = try run("who --json \(name)")
        for _ in 0..<100 where !who.stdout.contains("\"pid\": \(holder.pid)") {
            usleep(50_000)  // until flock(1) has the lock
            who = try run("who --json \(name)")
        }
        for (what, r) in [("who", who), ("waiters", try run("waiters --json \(name)")), ("list", try run("list --json --path \(name)")),
                          ("diagnose", try run("diagnose --json --window 0.2 \(name)"))] {
            XCTAssertTrue(r.stdout.contains("\"path_bytes\": \"\(hex)\""), "\(what): \(r.stdout)")
            let doc = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            let lock = (doc?["locks"] as? [[String: Any]])?.first
            XCTAssertEqual(lock?["path"] as? String, repaired, "\(what)")
            XCTAssertEqual(lock?["path_bytes"] as? String, hex, "\(what)")
        }
        // The argument too, and the text view shows the bytes as they are.
        XCTAssertTrue(who.stdout.contains("\"argument_bytes\": \"\(hex)\""), who.stdout)
        let text = try run("who \(name)")
        XCTAssertTrue(text.stdout.contains("bad\\xff\\xfe.lock"), text.stdout)
    }
}
