import Foundation
import XCTest
import LockscopeTestSupport

/// `list` columns as lslocks(8) has them (-o, +COLS, --output-all, -H, -n, -r, -u, -b,
/// -p, -J, LOCKSCOPE_COLUMNS), the terminal-width discipline of every table, and the
/// same cells as the system's lslocks on the same real locks.
final class ListColumnsTests: XCTestCase {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/columns").path

    func run(_ args: [String], env: [String: String] = [:]) throws -> CommandResult {
        var environment = ProcessInfo.processInfo.environment
        environment["COLUMNS"] = nil
        environment["LOCKSCOPE_COLUMNS"] = nil
        for (k, v) in env { environment[k] = v }
        return try runCommand([TestBinaries.lockscope] + args, environment: environment)
    }

    func fixture(_ name: String) -> [String] { ["--proc-root", CLI.fixtures + "/" + name] }

    /// Golden text at 80 and 120 columns; no line is ever wider than COLUMNS.
    func testTablesFitEightyAndOneHundredTwentyColumns() throws {
        for name in ["flock-chain", "hostile-name", "posix-ranges", "net-holders"] {
            let ids = try identities(name)
            for width in [80, 120] {
                let runs: [(String, [String])] = [
                    ("list-all", ["list", "--output-all"]),
                    ("list", ["list"]),
                    ("who", ["who"] + ids),
                    ("waiters-each", ["waiters", "--each"] + ids),
                ]
                for (label, args) in runs {
                    let r = try run(args + fixture(name), env: ["COLUMNS": "\(width)"])
                    XCTAssertTrue([0, 1].contains(r.exitCode), "\(label) \(name): \(r.stderr)")
                    for line in r.stdout.split(separator: "\n") {
                        XCTAssertLessThanOrEqual(line.count, width, "\(label) on \(name) at \(width): \(line)")
                    }
                    try assertGolden(r.stdout, path: "\(Self.golden)/\(name)-\(label)-\(width).txt")
                }
            }
        }
    }

    /// -u: nothing is cut even when the terminal is narrow.
    func testNoTruncateKeepsWholeCells() throws {
        let cut = try run(["list", "--output-all"] + fixture("flock-chain"), env: ["COLUMNS": "60"])
        let whole = try run(["list", "--output-all", "-u"] + fixture("flock-chain"), env: ["COLUMNS": "60"])
        XCTAssertTrue(cut.stdout.contains("…"), cut.stdout)
        XCTAssertFalse(whole.stdout.contains("…"), whole.stdout)
        XCTAssertTrue(whole.stdout.contains("/tmp/lockscope-fx-kdxg8t7t/chain.lock"), whole.stdout)
        XCTAssertTrue(whole.stdout.split(separator: "\n").contains { $0.count > 60 })
    }

    func testOutputSelectsAddsAndRejects() throws {
        let only = try run(["list", "-o", "PID,PATH", "-n"] + fixture("posix-ranges"))
        XCTAssertEqual(only.exitCode, 0, only.stderr)
        for line in only.stdout.split(separator: "\n") { XCTAssertEqual(line.split(separator: " ").count, 2, String(line)) }

        let plus = try run(["list", "-o", "+INODE,maj:min"] + fixture("posix-ranges"))
        XCTAssertEqual(plus.stdout.split(separator: "\n").first.map { $0.split(separator: " ").map(String.init) },
                       ["COMMAND", "PID", "TYPE", "SIZE", "MODE", "M", "START", "END", "WAITERS", "PATH", "INODE", "MAJ:MIN"])

        let env = try run(["list", "-r"] + fixture("posix-ranges"), env: ["LOCKSCOPE_COLUMNS": "TYPE,PID"])
        XCTAssertEqual(env.stdout.split(separator: "\n").first, "TYPE PID")
        let envPlus = try run(["list", "-r", "-o", "+END"] + fixture("posix-ranges"), env: ["LOCKSCOPE_COLUMNS": "TYPE,PID"])
        XCTAssertEqual(envPlus.stdout.split(separator: "\n").first, "TYPE PID END")

        let all = try run(["list", "--output-all", "-r"] + fixture("posix-ranges"))
        XCTAssertEqual(all.stdout.split(separator: "\n").first,
                       "COMMAND PID TYPE SIZE INODE MAJ:MIN MODE M START END PATH BLOCKER HOLDERS NSPATH WAITERS OLDEST PROTOCOL")

        let bad = try run(["list", "-o", "PID,BOGUS"] + fixture("posix-ranges"))
        XCTAssertEqual(bad.exitCode, 64)
        XCTAssertTrue(bad.stderr.contains("unknown column: BOGUS"), bad.stderr)
        let badEnv = try run(["list"] + fixture("posix-ranges"), env: ["LOCKSCOPE_COLUMNS": "NOPE"])
        XCTAssertEqual(badEnv.exitCode, 64)
        XCTAssertTrue(badEnv.stderr.contains("LOCKSCOPE_COLUMNS"), badEnv.stderr)
    }

    /// -H and --help both come from the one column table.
    func testColumnListingAndHelpNameEveryColumn() throws {
        let listing = try run(["list", "-H"])
        let help = try run(["list", "--help"])
        XCTAssertEqual(listing.exitCode, 0)
        for name in ["COMMAND", "PID", "TYPE", "SIZE", "MODE", "M", "START", "END", "PATH", "BLOCKER", "HOLDERS",
                     "INODE", "MAJ:MIN", "WAITERS", "OLDEST", "PROTOCOL"] {
            XCTAssertTrue(listing.stdout.split(separator: "\n").contains { $0.split(separator: " ").first.map(String.init) == name }, name)
            XCTAssertTrue(help.stdout.contains("  " + name + "  "), name)
        }
        XCTAssertTrue(help.stdout.contains("sqlite:RESERVED"), "PROTOCOL says what it holds")
        for flag in ["-o, --output", "--output-all", "-H, --list-columns", "-n, --noheadings", "-r, --raw",
                     "-u, --notruncate", "-b, --bytes", "-p, --pid", "-J, --json-columns", "LOCKSCOPE_COLUMNS"] {
            XCTAssertTrue(help.stdout.contains(flag), flag)
        }
    }

    /// -J types each value as the column table says (lslocks' document shape).
    func testColumnJSONIsTyped() throws {
        let r = try run(["list", "-J", "-o", "PID,M,START,END,BLOCKER,HOLDERS,MODE,SIZE"] + fixture("flock-chain"))
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let locks = try XCTUnwrap(doc["locks"] as? [[String: Any]])
        XCTAssertFalse(locks.isEmpty)
        let held = try XCTUnwrap(locks.first { ($0["mode"] as? String) == "WRITE" })
        XCTAssertTrue(held["pid"] is Int)
        XCTAssertEqual(held["m"] as? Bool, false)
        XCTAssertTrue(held["blocker"] is NSNull)
        XCTAssertTrue(held["holders"] is [Int])
        XCTAssertTrue(held["size"] is NSNull, "no size read from a recorded tree")
        let waiting = try XCTUnwrap(locks.first { ($0["mode"] as? String) == "WRITE*" })
        XCTAssertTrue(waiting["blocker"] is Int)
        XCTAssertEqual(try run(["list", "-J", "--json"] + fixture("flock-chain")).exitCode, 64)
    }

    /// PROTOCOL reads the recogniser diagnose uses, in text, raw and -J: a recorded
    /// SQLite writer (RESERVED), reader (SHARED) and a process queued for the EXCLUSIVE
    /// range; `--pid` keeps the reading of the whole file.
    func testProtocolColumnOnRecordedSQLite() throws {
        let m = try CLI.roles("sqlite")
        let writer = try XCTUnwrap(m["writer"]?.first), reader = try XCTUnwrap(m["reader"]?.first)
        let waiter = try XCTUnwrap(m["waiter"]?.first)
        let raw = try run(["list", "-r", "-n", "-o", "PID,MODE,PROTOCOL"] + fixture("sqlite"))
        XCTAssertEqual(raw.exitCode, 0, raw.stderr)
        XCTAssertEqual(raw.stdout.split(separator: "\n").map(String.init),
                       ["\(reader) READ sqlite:SHARED", "\(writer) WRITE sqlite:RESERVED", "\(writer) READ sqlite:RESERVED",
                        "\(waiter) WRITE* sqlite:EXCLUSIVE"])
        let one = try run(["list", "-r", "-n", "-o", "PROTOCOL", "-p", "\(reader)"] + fixture("sqlite"))
        XCTAssertEqual(one.stdout, "sqlite:SHARED\n")
        let text = try run(["list", "-o", "+PROTOCOL"] + fixture("sqlite"), env: ["COLUMNS": "200"])
        XCTAssertTrue(text.stdout.split(separator: "\n").first?.hasSuffix(" PROTOCOL") == true, text.stdout)
        XCTAssertEqual(text.stdout.split(separator: "\n").filter { $0.hasSuffix(" sqlite:RESERVED") }.count, 2, text.stdout)
        let json = try run(["list", "-J", "-o", "PID,PROTOCOL"] + fixture("sqlite"))
        let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let locks = try XCTUnwrap(doc["locks"] as? [[String: Any]])
        XCTAssertEqual(locks.map { $0["protocol"] as? String }, ["sqlite:SHARED", "sqlite:RESERVED", "sqlite:RESERVED", "sqlite:EXCLUSIVE"])
        // A lock no protocol names: an empty cell, null in -J.
        let plain = try run(["list", "-J", "-o", "PROTOCOL"] + fixture("posix-ranges"))
        XCTAssertTrue(plain.stdout.contains("\"protocol\": null"), plain.stdout)
    }

    /// Live: python3's sqlite3 in a write transaction, and a lock on a file named like
    /// dpkg's (`…/dpkg/lock`, recognised by its path) under a temporary directory.
    func testProtocolColumnOnLiveLocks() throws {
        try requireExecutable("python3")
        let py = try XCTUnwrap(which("python3"))
        let dir = try TempDir(prefix: "lockscope-proto.")
        let db = dir.file("app.db")
        let code = """
        import sqlite3, sys
        c = sqlite3.connect(sys.argv[1], isolation_level=None)
        c.execute("CREATE TABLE IF NOT EXISTS t(x)")
        c.execute("BEGIN IMMEDIATE"); c.execute("INSERT INTO t VALUES (1)")
        print("ready", flush=True)
        __import__("time").sleep(120)
        """
        let writer = try Spawned([py, "-c", code, db])
        defer { writer.terminate() }
        try writer.waitFor(line: "ready", timeout: 20)
        let sqlite = try run(["list", "-r", "-n", "-o", "PROTOCOL", "-p", "\(writer.pid)"])
        // Two POSIX locks: the SHARED range (read) and RESERVED_BYTE (write), both RESERVED.
        XCTAssertEqual(sqlite.stdout, "sqlite:RESERVED\nsqlite:RESERVED\n", sqlite.stderr)

        try FileManager.default.createDirectory(atPath: dir.file("dpkg"), withIntermediateDirectories: true)
        let lock = dir.file("dpkg/lock")
        XCTAssertTrue(FileManager.default.createFile(atPath: lock, contents: nil))
        let bed = try Testbed.spawn(["open:" + lock, "posix:w:0:0"])
        defer { bed.terminate() }
        try bed.waitForReady()
        let dpkg = try run(["list", "-r", "-n", "-o", "PROTOCOL,PATH", "-p", "\(bed.pid)"])
        XCTAssertEqual(dpkg.stdout, "dpkg " + rawEscaped(lock) + "\n", dpkg.stderr)
    }

    func rawEscaped(_ s: String) -> String { s.replacingOccurrences(of: " ", with: "\\x20") }

    func testHumanSizesRoundLikeUtilLinux() throws {
        // Values checked against lslocks 2.38 on files of these sizes.
        XCTAssertEqual(humanSizeByCLI(3000), "2.9K")
        XCTAssertEqual(humanSizeByCLI(1_441_792), "1.4M")
        XCTAssertEqual(humanSizeByCLI(24576), "24K")
    }

    /// The same real locks through lslocks and lockscope: every overlapping column equal,
    /// in text (-n -r), with -b, and restricted with -p.
    func testSameCellsAsLslocks() throws {
        try requireExecutable("lslocks")
        let lslocks = try XCTUnwrap(which("lslocks"))
        let dir = try TempDir(prefix: "lockscope-cols.")
        let a = dir.file("flock with space.lock"), b = dir.file("posix.lock")
        try Data(count: 3000).write(to: URL(fileURLWithPath: a))
        try Data(count: 1_441_792).write(to: URL(fileURLWithPath: b))
        let holder = try Testbed.spawn(["open:" + a, "flock:ex", "open:" + b, "posix:w:10:20"])
        defer { holder.terminate() }
        try holder.waitForReady()
        let waiter = try Testbed.spawn(["open:" + a, "flock:ex"])
        defer { waiter.terminate() }
        try waitUntil { readProcText("/proc/locks")?.contains("-> FLOCK") == true }
        let pids = Set(["\(holder.pid)", "\(waiter.pid)"])
        let cols = "COMMAND,PID,TYPE,SIZE,MODE,M,START,END,PATH,BLOCKER,INODE,MAJ:MIN"
        for extra in [[], ["-b"]] {
            let theirs = try runCommand([lslocks, "-n", "-r", "-o", cols] + extra)
            let ours = try run(["list", "-n", "-r", "-o", cols] + extra)
            XCTAssertEqual(ours.exitCode, 0, ours.stderr)
            XCTAssertEqual(rows(ours.stdout, pids: pids), rows(theirs.stdout, pids: pids), "flags \(extra)")
            XCTAssertEqual(rows(ours.stdout, pids: pids).count, 3)
        }
        let theirs = try runCommand([lslocks, "-n", "-r", "-o", cols, "-p", "\(waiter.pid)"])
        let ours = try run(["list", "-n", "-r", "-o", cols, "-p", "\(waiter.pid)"])
        XCTAssertEqual(ours.stdout, theirs.stdout)
    }

    // MARK: helpers

    func rows(_ text: String, pids: Set<String>) -> [String] {
        text.split(separator: "\n").map(String.init).filter { line in
            let words = line.split(separator: " ", omittingEmptySubsequences: false)
            return words.count > 1 && pids.contains(String(words[1]))
        }.sorted()
    }

    func identities(_ fixture: String) throws -> [String] {
        var ids: [String] = []
        for line in try String(contentsOfFile: CLI.fixtures + "/" + fixture + "/locks", encoding: .utf8).split(separator: "\n") {
            let words = line.split(separator: " ").filter { $0 != "->" }
            if words.count > 5, !ids.contains(String(words[5])) { ids.append(String(words[5])) }
        }
        return ids
    }

    /// SIZE of a real file of `bytes` bytes, through `list`.
    func humanSizeByCLI(_ bytes: Int) -> String? {
        guard let dir = try? TempDir(prefix: "lockscope-size."),
              (try? Data(count: bytes).write(to: URL(fileURLWithPath: dir.file("f")))) != nil,
              let bed = try? Testbed.spawn(["open:" + dir.file("f"), "flock:ex"]) else { return nil }
        defer { bed.terminate() }
        try? bed.waitForReady()
        let r = try? run(["list", "-n", "-r", "-o", "SIZE", "-p", "\(bed.pid)"])
        return r?.stdout.split(separator: "\n").first.map(String.init)
    }

    func waitUntil(timeout: Double = 10, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            usleep(20_000)
        }
        XCTFail("condition not met within \(timeout) s")
    }
}
