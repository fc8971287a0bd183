import Foundation
import XCTest
import LockscopeTestSupport

/// Each bad input: one clear line on stderr, a documented exit code, no stack trace.
final class BadInputTests: XCTestCase {
    func assertOneLineError(_ r: CommandResult, status: Int32, contains needle: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.exitCode, status, "stderr: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(needle), "stderr was: \(r.stderr)", file: file, line: line)
        XCTAssertFalse(r.stderr.contains("Fatal error"), file: file, line: line)
        XCTAssertEqual(r.stdout, "", file: file, line: line)
    }

    func testNonexistentPath() throws {
        let r = try CLI.run(["who", "/nonexistent/lockscope-test.lock"])
        assertOneLineError(r, status: 66, contains: "no such file")
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1)
    }

    func testDirectory() throws {
        let r = try CLI.run(["waiters", "/tmp"])
        assertOneLineError(r, status: 66, contains: "is a directory")
    }

    func testInvalidIdentity() throws {
        let r = try CLI.run(["who", "zz:00:12"])
        assertOneLineError(r, status: 64, contains: "not a path or a MAJ:MIN:INODE")
    }

    func testPathWithNoLocks() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let f = try dir.touch("free.lock")
        let r = try CLI.run(["who", f])
        XCTAssertEqual(r.exitCode, 1)
        XCTAssertTrue(r.stdout.contains("no locks"), r.stdout)
        let j = try CLI.run(["who", "--json", f])
        XCTAssertEqual(j.exitCode, 1)
        let obj = try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [String: Any]
        XCTAssertEqual((obj?["locks"] as? [Any])?.count, 0)
    }

    func testNoFileArgument() throws {
        let r = try CLI.run(["who"])
        XCTAssertEqual(r.exitCode, 64)
        XCTAssertTrue(r.stderr.contains("Missing expected argument"), r.stderr)
    }

    func testConflictingFlags() throws {
        let r = try CLI.run(["waiters", "--json", "--each", "/tmp"])
        XCTAssertEqual(r.exitCode, 64)
        XCTAssertTrue(r.stderr.contains("--each only changes text output"), r.stderr)
    }

    func testBadListFilters() throws {
        XCTAssertEqual(try CLI.run(["list", "--kind", "bogus"]).exitCode, 64)
        XCTAssertEqual(try CLI.run(["list", "--pid", "0"]).exitCode, 64)
        let r = try CLI.run(["list", "--path", "/nonexistent/x"])
        assertOneLineError(r, status: 66, contains: "no such file")
    }

    func testBadProcRoot() throws {
        let r = try CLI.run(["list", "--proc-root", "/nonexistent"])
        XCTAssertEqual(r.exitCode, 64)
        XCTAssertTrue(r.stderr.contains("no 'locks' file there"), r.stderr)
    }

    func testUnknownSubcommandAndHelp() throws {
        XCTAssertEqual(try CLI.run(["frobnicate"]).exitCode, 64)
        let help = try CLI.run(["--help"])
        XCTAssertEqual(help.exitCode, 0)
        for cmd in ["who", "waiters", "list", "diagnose", "demo", "trace"] { XCTAssertTrue(help.stdout.contains("\n  \(cmd) "), cmd) }
    }
}

/// Golden-ish checks of text and JSON on recorded fixtures (stable inputs).
final class FixtureOutputTests: XCTestCase {
    func testHostileNameIsEscapedInTextAndExactInJSON() throws {
        let root = CLI.fixtures + "/hostile-name"
        let pid = String(try XCTUnwrap(CLI.roles("hostile-name")["owner"]?.first))
        let locks = try String(contentsOfFile: root + "/locks", encoding: .utf8)
        let line = try XCTUnwrap(locks.split(separator: "\n").first(where: { $0.split(separator: " ")[4] == pid }))
        let identity = String(line.split(separator: " ")[5])
        let text = try CLI.run(["who", "--proc-root", root, identity])
        XCTAssertEqual(text.exitCode, 0, text.stderr)
        XCTAssertFalse(text.stdout.contains("\u{1b}"), "no raw escape may reach the terminal")
        XCTAssertTrue(text.stdout.contains("evil\\nname\\e[31m.lock"), text.stdout)
        let json = try CLI.run(["who", "--json", "--proc-root", root, identity])
        let obj = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [String: Any]
        let lock = (obj["locks"] as! [[String: Any]])[0]
        XCTAssertTrue((lock["path"] as! String).hasSuffix("/evil\nname\u{1b}[31m.lock"))
        XCTAssertEqual(lock["kind"] as? String, "FLOCK")
        XCTAssertEqual((lock["holders"] as! [[String: Any]])[0]["pid"] as? Int, Int(pid))
        XCTAssertEqual((lock["holders"] as! [[String: Any]])[0]["owner"] as? Bool, true)
    }

    func testListOnFixture() throws {
        let root = CLI.fixtures + "/posix-ranges"
        let r = try CLI.run(["list", "--proc-root", root, "--kind", "posix", "-o", "TYPE,MODE,PATH"])
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        let rows = r.stdout.split(separator: "\n")
        XCTAssertTrue(rows[0].hasPrefix("TYPE"))
        // Two granted POSIX locks, each with one queued request (a row of its own, MODE WRITE*).
        XCTAssertEqual(rows.count, 5, r.stdout)
        XCTAssertEqual(rows.filter { $0.contains("WRITE*") }.count, 2, r.stdout)
        XCTAssertTrue(rows.dropFirst().allSatisfy { $0.hasPrefix("POSIX") && $0.hasSuffix("ranges.lock") }, r.stdout)
        let contended = try CLI.run(["list", "--proc-root", root, "--contended", "--json"])
        let obj = try JSONSerialization.jsonObject(with: Data(contended.stdout.utf8)) as! [String: Any]
        let locks = obj["locks"] as! [[String: Any]]
        XCTAssertTrue(locks.allSatisfy { !($0["waiters"] as! [Any]).isEmpty })
        XCTAssertGreaterThanOrEqual(locks.count, 2)
    }

    func testNoColorWhenPiped() throws {
        let root = CLI.fixtures + "/flock-chain"
        let r = try CLI.run(["list", "--proc-root", root])
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        XCTAssertEqual(r.stderr, "")
        let rows = r.stdout.split(separator: "\n")
        XCTAssertEqual(rows.count, 9, r.stdout)  // heading, 2 locks, 6 queued requests
        XCTAssertTrue(rows.first?.hasPrefix("COMMAND") ?? false, r.stdout)
        XCTAssertTrue(rows.last?.hasSuffix("/chain.lock") ?? false, r.stdout)
        XCTAssertFalse(r.stdout.contains("\u{1b}"), "no escape sequence in piped output")
    }
}
