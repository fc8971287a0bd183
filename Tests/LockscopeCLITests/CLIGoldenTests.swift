import Foundation
import XCTest
import LockscopeTestSupport

/// What a user sees from `who`, `waiters`, `list` and `diagnose` on every recorded
/// fixture tree (Tests/LockscopeCoreTests/Fixtures/*), pinned byte for byte in
/// Golden/<fixture>/<run>; each run's exit status and stderr are pinned in
/// Golden/<fixture>/status. `who`, `waiters` and `diagnose` get every lock identity
/// of the fixture's `locks` file. Nothing is normalised: ages come from the
/// fixture's recorded `uptime`, `diagnose --window 0` takes one snapshot.
///
/// To accept a deliberate change of output:
/// `LOCKSCOPE_UPDATE_GOLDEN=1 swift test --skip-build --filter CLIGoldenTests`, then review `git diff`.
final class CLIGoldenTests: XCTestCase {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden").path

    /// Golden file name → arguments; `true` appends the fixture's lock identities.
    static let runs: [(name: String, args: [String], identities: Bool)] = [
        ("who.txt", ["who"], true),
        ("who.json", ["who", "--json"], true),
        ("waiters.txt", ["waiters"], true),
        ("waiters-each.txt", ["waiters", "--each"], true),
        ("waiters.json", ["waiters", "--json"], true),
        ("list.txt", ["list"], false),
        ("list.json", ["list", "--json"], false),
        ("list-holders.txt", ["list", "--holders"], false),
        ("list-holders.json", ["list", "--holders", "--json"], false),
        ("diagnose.txt", ["diagnose", "--window", "0"], true),
        ("diagnose.json", ["diagnose", "--window", "0", "--json"], true),
        ("diagnose.dot", ["diagnose", "--window", "0", "--dot"], true),
        ("diagnose-all.txt", ["diagnose", "--window", "0"], false),
    ]

    func testEveryCommandOnEveryFixture() throws {
        let fixtures = try FileManager.default.contentsOfDirectory(atPath: CLI.fixtures).sorted()
        XCTAssertGreaterThanOrEqual(fixtures.count, 7)
        for fixture in fixtures {
            let root = CLI.fixtures + "/" + fixture
            var ids: [String] = []
            for line in try String(contentsOfFile: root + "/locks", encoding: .utf8).split(separator: "\n") {
                let words = line.split(separator: " ").filter { $0 != "->" }
                if words.count > 5, !ids.contains(String(words[5])) { ids.append(String(words[5])) }
            }
            var status = ""
            for run in Self.runs {
                let r = try CLI.run(run.args + ["--proc-root", root] + (run.identities ? ids : []))
                try assertGolden(r.stdout, path: "\(Self.golden)/\(fixture)/\(run.name)")
                status += "\(run.name): exit \(r.exitCode)" + (r.stderr.isEmpty ? "" : ", stderr: " + r.stderr.replacingOccurrences(of: "\n", with: "\\n")) + "\n"
            }
            try assertGolden(status, path: "\(Self.golden)/\(fixture)/status")
        }
    }

    /// `diagnose --json` findings on a recorded tree, by pid; the exit status must be 3 (contention).
    func findings(_ fixture: String, file: StaticString = #filePath, line: UInt = #line) throws -> [Int: [String: Any]] {
        let r = try CLI.run(["diagnose", "--json", "--window", "0", "--proc-root", CLI.fixtures + "/" + fixture])
        XCTAssertEqual(r.exitCode, 3, r.stderr, file: file, line: line)
        let doc = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], file: file, line: line)
        let list = try XCTUnwrap(doc["findings"] as? [[String: Any]], file: file, line: line)
        return Dictionary(list.map { ($0["pid"] as? Int ?? -1, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The socket rules on a recorded tree: the holder's fd links and its own net/
    /// tables (scripts/record-fixture keeps its sockets' rows) name the peer, its
    /// recorded root/etc/resolv.conf the nameserver. A call whose descriptor is an
    /// argument (recvfrom) is enough; poll's descriptors live in the holder's memory,
    /// which a recorded tree does not have, so the udp-poll holder (a thread in poll)
    /// gets no socket finding here (LiveRuleTests covers it on the live system): what
    /// is left is its main thread, blocked reading the recorder's stdin pipe.
    func testSocketRulesOnARecordedTree() throws {
        let roles = try CLI.roles("net-holders")
        let byPid = try findings("net-holders")
        let dns = try XCTUnwrap(byPid[try XCTUnwrap(roles["dns_recv_holder"]?.first)], "\(byPid)")
        XCTAssertEqual(dns["rule"] as? String, "dns-timeout")
        let evidence = try XCTUnwrap(dns["evidence"] as? [String: Any], "\(dns)")
        XCTAssertEqual(evidence["peer"] as? String, "127.0.0.153:53")
        XCTAssertEqual(evidence["worst_case_seconds"] as? Int, 10)
        let tcp = try XCTUnwrap(byPid[try XCTUnwrap(roles["tcp_holder"]?.first)], "\(byPid)")
        XCTAssertEqual(tcp["rule"] as? String, "holder-network")
        XCTAssertEqual((tcp["evidence"] as? [String: Any])?["tcp_state"] as? String, "ESTABLISHED")
        let poll = try XCTUnwrap(byPid[try XCTUnwrap(roles["dns_poll_holder"]?.first)], "\(byPid)")
        XCTAssertEqual(poll["rule"] as? String, "holder-pipe")
        XCTAssertEqual((poll["evidence"] as? [String: Any])?["direction"] as? String, "read")
    }

    /// holder-io on a recorded tree: a D-state holder (creating a file on a frozen
    /// filesystem) with the kernel stack the recorder read as root.
    func testIORuleWithKernelStackOnARecordedTree() throws {
        let holder = try XCTUnwrap(try CLI.roles("io-holder")["holder"]?.first)
        let f = try XCTUnwrap(try findings("io-holder")[holder])
        XCTAssertEqual(f["rule"] as? String, "holder-io")
        let evidence = try XCTUnwrap(f["evidence"] as? [String: Any], "\(f)")
        XCTAssertEqual(evidence["state"] as? String, "D")
        XCTAssertEqual((evidence["kernel_stack"] as? [String])?.first?.hasPrefix("percpu_rwsem_wait"), true, "\(evidence)")
    }
}
