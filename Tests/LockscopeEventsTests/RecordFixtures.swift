import Foundation
import Glibc
import LockscopeCore
@testable import LockscopeEvents
import LockscopeTestSupport
import Testing

/// Not a test: with LOCKSCOPE_RECORD_EVENTS=DIR set, records the format files and
/// raw records of a flock holder + waiter + `flock -n` attempt into DIR (how the
/// fixtures under Fixtures/linux-6.18 were made). Disabled otherwise.
@Test(.enabled(if: ProcessInfo.processInfo.environment["LOCKSCOPE_RECORD_EVENTS"] != nil, "a recorder, not a test"))
func recordFixtures() throws {
    let dir = ProcessInfo.processInfo.environment["LOCKSCOPE_RECORD_EVENTS"] ?? "."
    let tracefs = TracefsSource.current()
    let wanted = (LockEventSource.requiredLock + LockEventSource.optionalLock).map(\.tracepoint) + SchedTracepoint.allCases.map(\.tracepoint)
    let files = try tracefs.read(wanted.map { "events/\($0)/format" })
    for (path, r) in files { if case .success(let b) = r {
        let name = path.split(separator: "/")[1...2].joined(separator: "-")
        try Data(b).write(to: URL(fileURLWithPath: dir + "/" + name + ".format"))
    } }
    let tmp = try TempDir()
    defer { tmp.remove() }
    let file = try tmp.touch("lock")
    let target = try TargetResolver().resolve(file)
    let source = try LockEventSource(files: [target.file])
    try source.enable()
    let holder = try runCommandAsync(["/usr/bin/flock", file, "sleep", "0.3"])
    usleep(100_000)
    let waiter = try runCommandAsync(["/usr/bin/flock", file, "true"])
    let nb = try runCommandAsync(["/usr/bin/flock", "-n", file, "true"])
    for p in [holder, waiter, nb] { var s: Int32 = 0; waitpid(p, &s, 0) }
    usleep(50_000)
    var out = ""
    source.session.drain(everything: true) { s in
        out += "\(s.header.time) \(s.header.cpu) \(s.header.pid) \(s.header.tid) " + s.raw.map { String(format: "%02x", $0) }.joined() + "\n"
    }
    try out.write(toFile: dir + "/records.txt", atomically: true, encoding: .utf8)
}

func runCommandAsync(_ argv: [String]) throws -> pid_t {
    var pid: pid_t = 0
    let c = argv.map { strdup($0) } + [nil]
    defer { c.forEach { free($0) } }
    let rc = posix_spawn(&pid, argv[0], nil, nil, c, environ)
    guard rc == 0 else { throw SpawnFailed(command: argv[0], errno: rc) }
    return pid
}
