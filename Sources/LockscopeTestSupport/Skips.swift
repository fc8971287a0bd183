// Live-test helpers: skipping with a printed reason instead of failing.
import Foundation
import Glibc
import XCTest

/// Throws `XCTSkip` (and prints the reason on stderr, so it shows in CI logs)
/// unless the tests run as root. Live tests that read other users' /proc
/// entries, take leases on files they do not own, or bind-mount need it.
public func requireRoot(_ why: String = "needs root to inspect every process",
                        file: StaticString = #filePath, line: UInt = #line) throws {
    if geteuid() != 0 {
        try skip("not running as root: \(why)", file: file, line: line)
    }
}

/// Throws `XCTSkip` with a printed reason unless `command` (a name looked up in
/// `$PATH`, or an absolute path) is an executable, e.g. `flock`, `strace`, `unshare`.
public func requireExecutable(_ command: String,
                              file: StaticString = #filePath, line: UInt = #line) throws {
    if which(command) == nil {
        try skip("\(command) is not installed (scripts/setup installs it)", file: file, line: line)
    }
}

/// Throws `XCTSkip` with a printed reason unless this process may ptrace its
/// own children: root, or Yama `ptrace_scope` ≤ 1.
public func requirePtrace(file: StaticString = #filePath, line: UInt = #line) throws {
    if let text = try? String(contentsOfFile: "/proc/sys/kernel/yama/ptrace_scope", encoding: .utf8),
       let scope = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
        if scope >= 3 { try skip("ptrace disabled (kernel.yama.ptrace_scope=3)", file: file, line: line) }
        if scope == 2 && geteuid() != 0 {
            try skip("ptrace needs CAP_SYS_PTRACE (kernel.yama.ptrace_scope=2)", file: file, line: line)
        }
    }
}

/// The absolute path of `command` found in `$PATH` (or the path itself if it
/// contains a slash and is executable), or nil.
public func which(_ command: String) -> String? {
    if command.contains("/") { return access(command, X_OK) == 0 ? command : nil }
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    for dir in path.split(separator: ":") {
        let candidate = "\(dir)/\(command)"
        if access(candidate, X_OK) == 0 { return candidate }
    }
    return nil
}

/// Prints `SKIP: reason` on stderr and throws `XCTSkip(reason)`.
public func skip(_ reason: String, file: StaticString = #filePath, line: UInt = #line) throws -> Never {
    FileHandle.standardError.write(Data("SKIP: \(reason)\n".utf8))
    throw XCTSkip(reason, file: file, line: line)
}
