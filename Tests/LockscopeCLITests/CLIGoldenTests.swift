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
}
