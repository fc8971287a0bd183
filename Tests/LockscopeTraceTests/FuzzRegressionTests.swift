import Foundation
import XCTest

/// Replays every input scripts/fuzz ever crashed on (Fuzz/regressions/<target>/) and the
/// seed corpus (Fuzz/corpus/<target>/) through the same parser calls as the fuzzer
/// (FuzzCases.swift). A regression traps here, in `swift test`, without libFuzzer.
final class FuzzRegressionTests: XCTestCase {
    static let fuzzDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz")

    func inputs(_ folder: String, _ target: FuzzTarget) -> [URL] {
        let dir = Self.fuzzDir.appendingPathComponent(folder).appendingPathComponent(target.rawValue)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.sorted().map { dir.appendingPathComponent($0) }
    }

    func replay(_ folder: String) throws -> Int {
        var count = 0
        for target in FuzzTarget.allCases {
            for url in inputs(folder, target) {
                let data = try Data(contentsOf: url)
                _ = data.withUnsafeBytes { fuzzParse(target, $0) }
                count += 1
            }
        }
        return count
    }

    func testCrashesFoundByTheFuzzerStayFixed() throws {
        let n = try replay("regressions")
        XCTAssertGreaterThan(n, 0, "Fuzz/regressions/ holds the crashes scripts/fuzz found")
    }

    func testSeedCorpusParses() throws {
        let n = try replay("corpus")
        XCTAssertGreaterThan(n, 100, "Fuzz/corpus/ is made by scripts/fuzz-seeds from the fixtures")
    }

    /// The crashes, spelled out: a decimal syscall number or thread count past
    /// Int.max, and a `)` before the `(` of comm
    /// (Fuzz/regressions/rawstat also holds a negative field of exactly Int64.min).
    func testOverflowingNumbersAndMisplacedParentheses() {
        let inputs: [(FuzzTarget, String)] = [
            (.rawsyscall, "99999999999999999999 0 0 0 0 0 0 0 0\n"),
            (.rawstat, "1 (x) S " + Array(repeating: "99999999999999999999", count: 20).joined(separator: " ") + "\n"),
            (.rawstat, ") x ( S 1 2 3\n"),
            (.stat, ") x ( S 1 2 3\n"),
        ]
        for (target, text) in inputs {
            _ = Array(text.utf8).withUnsafeBytes { fuzzParse(target, $0) }
        }
    }
}
