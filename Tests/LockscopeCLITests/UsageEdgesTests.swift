import Foundation
import XCTest
import LockscopeTestSupport
import Glibc

/// The rough edges a new user hits first: no subcommand, `help bogus`, negative
/// numbers, conflicting flags, the help text itself.
final class UsageEdgesTests: XCTestCase {
    func testNoSubcommandIsUsageOnStderr() throws {
        let r = try CLI.run([])
        XCTAssertEqual(r.exitCode, 64)
        XCTAssertEqual(r.stdout, "")
        XCTAssertTrue(r.stderr.contains("Usage: lockscope"), r.stderr)
        XCTAssertTrue(r.stderr.contains("give a command: who, waiters, list"), r.stderr)
    }

    func testHelpForAnUnknownCommandIsUsageOnStderr() throws {
        let r = try CLI.run(["help", "bogus"])
        XCTAssertEqual(r.exitCode, 64)
        XCTAssertEqual(r.stdout, "")
        XCTAssertTrue(r.stderr.contains("no such command 'bogus'"), r.stderr)
        XCTAssertTrue(r.stderr.contains("Usage: lockscope"), r.stderr)
        let ok = try CLI.run(["help", "list"])
        XCTAssertEqual(ok.exitCode, 0)
        XCTAssertTrue(ok.stdout.contains("USAGE: lockscope list"), ok.stdout)
    }

    /// A negative number reaches the check that says what is wrong with it.
    func testNegativeNumbersSayWhatIsWrong() throws {
        let cases: [([String], String)] = [
            (["trace", "--duration", "-1", "1"], "--duration must be 0 or more seconds"),
            (["trace", "--hz", "-3", "1"], "--hz must be between 1 and 1000"),
            (["diagnose", "--window", "-1"], "--window must be between 0 and 60 seconds"),
            (["list", "--pid", "-1"], "--pid must be a positive process id"),
            (["list", "-p", "-1"], "--pid must be a positive process id"),
            (["trace", "-5"], "-5: a pid or count is a positive number"),
        ]
        for (args, message) in cases {
            let r = try CLI.run(args)
            XCTAssertEqual(r.exitCode, 64, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(message), "\(args): \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("Missing"), "\(args): \(r.stderr)")
        }
    }

    /// Text-only flags with a machine format are refused the same way everywhere.
    func testTextOnlyFlagsWithJSONAreRefusedAlike() throws {
        let each = try CLI.run(["waiters", "--each", "--json", "/"])
        let brief = try CLI.run(["diagnose", "--brief", "--json"])
        let briefDot = try CLI.run(["diagnose", "--brief", "--dot"])
        for r in [each, brief, briefDot] {
            XCTAssertEqual(r.exitCode, 64, r.stderr)
            XCTAssertTrue(r.stderr.contains("only changes text output"), r.stderr)
        }
    }

    func testListHelpNamesEveryKind() throws {
        let r = try CLI.run(["list", "--help"])
        for kind in ["flock", "posix", "ofdlck", "lease", "deleg", "access"] {
            XCTAssertTrue(r.stdout.contains(kind), kind)
        }
    }

    /// At 80 columns the examples of the top-level help stay indented under "Examples:".
    func testTopLevelHelpFitsEightyColumns() throws {
        var env = ProcessInfo.processInfo.environment
        env["COLUMNS"] = "80"
        let r = try runCommand([TestBinaries.lockscope, "--help"], environment: env)
        XCTAssertEqual(r.exitCode, 0)
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        for line in lines { XCTAssertLessThanOrEqual(line.count, 80, String(line)) }
        let start = try XCTUnwrap(lines.firstIndex { $0.hasSuffix("Examples:") })
        let examples = lines[(start + 1)...].prefix { !$0.isEmpty }
        XCTAssertGreaterThanOrEqual(examples.count, 3)
        for line in examples { XCTAssertTrue(line.hasPrefix("  lockscope "), "wrapped example line: \(line)") }
    }

    /// Few uninspectable processes are named in the note, and JSON lists their pids.
    /// A recorded tree whose owner's fd tables are unreadable, read as nobody.
    func testDeniedProcessesAreNamedWhenFew() throws {
        try requireRoot("switching to an unprivileged user")
        try requireExecutable("setpriv")
        let setpriv = try XCTUnwrap(which("setpriv"))
        let dir = try TempDir(prefix: "lockscope-denied.")
        chmod(dir.path, 0o755)
        let tree = dir.file("proc")
        let cp = try runCommand(["/bin/cp", "-a", CLI.fixtures + "/posix-ranges", tree])
        XCTAssertEqual(cp.exitCode, 0, cp.stderr)
        _ = try runCommand(["/bin/chmod", "-R", "a+rX", tree])
        chmod(tree + "/5944/fd", 0)
        chmod(tree + "/5944/fdinfo", 0)
        let asNobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--", TestBinaries.lockscope]
        let text = try runCommand(asNobody + ["list", "--proc-root", tree])
        XCTAssertEqual(text.exitCode, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("note: 1 process (pid 5944 (python3)) could not be inspected"), text.stdout)
        let json = try runCommand(asNobody + ["list", "--json", "--proc-root", tree])
        let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let coverage = try XCTUnwrap(doc["coverage"] as? [String: Any])
        XCTAssertEqual(coverage["denied_pids"] as? [Int], [5944])
        XCTAssertEqual(coverage["processes_denied"] as? Int, 1)
    }
}
