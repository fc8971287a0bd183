import Foundation
import LockscopeTestSupport

/// Runs the built `lockscope` binary and captures what a user would see, through
/// the support library's `runCommand` (stdout and stderr are read together, so a
/// child that fills one pipe cannot deadlock the test; killed after the timeout).
enum CLI {
    static func run(_ args: [String], timeout: Double = 30) throws -> CommandResult {
        try runCommand([TestBinaries.lockscope] + args, timeout: timeout)
    }

    static var fixtures: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("LockscopeCoreTests/Fixtures").path
    }

    /// A fixture's `manifest`: role → pids, as scripts/fixtures/record-all.py wrote it.
    static func roles(_ fixture: String) throws -> [String: [Int]] {
        var roles: [String: [Int]] = [:]
        for line in try String(contentsOfFile: fixtures + "/" + fixture + "/manifest", encoding: .utf8).split(separator: "\n") {
            let words = line.split(separator: " ")
            roles[String(words[0])] = words.dropFirst().compactMap { Int($0) }
        }
        return roles
    }
}
