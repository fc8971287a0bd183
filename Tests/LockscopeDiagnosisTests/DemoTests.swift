import XCTest
import Foundation
import Glibc
@testable import LockscopeCore
@testable import LockscopeDemo
@testable import LockscopeDiagnosis
import LockscopeTestSupport

/// `lockscope demo` end to end (the built binary): it reproduces the incident,
/// diagnoses it, and leaves no process, lock, mount, socket or file behind —
/// also when interrupted with Ctrl-C.
final class DemoTests: XCTestCase {
    struct Snapshot {
        var mountinfo: String
        var udp: String
    }

    func snapshot() -> Snapshot {
        Snapshot(mountinfo: readProcText("/proc/self/mountinfo") ?? "", udp: readProcText("/proc/net/udp") ?? "")
    }

    /// Nothing the demo started may remain: processes, locks on its file, mounts,
    /// blackhole sockets, its directory.
    func assertNothingLeft(dir: String, pids: [Int32], inode: Int64?, nameservers: [String], before: Snapshot,
                           file: StaticString = #filePath, line: UInt = #line) {
        for pid in pids {
            XCTAssertFalse(processIsAlive(pid), "pid \(pid) started by the demo is still running", file: file, line: line)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir), "\(dir) was not removed", file: file, line: line)
        if let inode {
            let locks = (readProcText("/proc/locks") ?? "").split(separator: "\n").filter { $0.contains(":\(inode) ") }
            XCTAssertEqual(locks, [], "locks on the demo file remain", file: file, line: line)
        }
        XCTAssertEqual(snapshot().mountinfo, before.mountinfo, "the host mount table changed", file: file, line: line)
        // No process still runs the testbed with the demo's directory in its argv.
        for p in ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap({ Int32($0) }) {
            let argv = (readProcText("/proc/\(p)/cmdline") ?? "").replacingOccurrences(of: "\0", with: " ")
            XCTAssertFalse(argv.contains(dir), "pid \(p) still runs with the demo directory: \(argv)", file: file, line: line)
        }
        // No UDP socket bound on a demo nameserver's port 53 (host namespace).
        let bound = NetTableParser.parseInet(readProcText("/proc/net/udp") ?? "", proto: .udp).compactMap(\.local)
        for ns in nameservers {
            XCTAssertFalse(bound.contains { $0.address == ns && $0.port == 53 },
                           "a blackhole socket on \(ns):53 remains", file: file, line: line)
        }
    }

    func testDemoReproducesTheIncidentAndLeavesNothingBehind() throws {
        try requireRoot("the demo's root mode (a private mount namespace)")
        let before = snapshot()
        // The lone binary, copied into an empty directory: the testbed is built in.
        let lone = try TempDir(prefix: "lockscope-lone.")
        let exe = lone.file("lockscope")
        try FileManager.default.copyItem(atPath: TestBinaries.lockscope, toPath: exe)
        var env = ProcessInfo.processInfo.environment
        env["LOCKSCOPE_TESTBED"] = nil
        let r = try runCommand([exe, "demo", "--json", "--waiters", "6", "--window", "0.5"], timeout: 60, environment: env)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: lone.path), ["lockscope"])
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let demo = try XCTUnwrap(json["demo"] as? [String: Any])
        let diagnosis = try XCTUnwrap(json["diagnosis"] as? [String: Any])
        XCTAssertEqual(demo["mode"] as? String, "root")
        let holder = try XCTUnwrap(demo["holder_pid"] as? Int)
        let waiters = try XCTUnwrap(demo["waiter_pids"] as? [Int])
        let nameservers = try XCTUnwrap(demo["nameservers"] as? [String])
        XCTAssertEqual(waiters.count, 6)
        XCTAssertEqual(nameservers.count, 3)
        XCTAssertEqual(demo["lookup_seconds"] as? Int, 10)

        let findings = try XCTUnwrap(diagnosis["findings"] as? [[String: Any]])
        let dns = try XCTUnwrap(findings.first { $0["rule"] as? String == "dns-timeout" }, "\(findings)")
        XCTAssertEqual(dns["pid"] as? Int, holder)
        let evidence = try XCTUnwrap(dns["evidence"] as? [String: Any])
        XCTAssertEqual(evidence["worst_case_seconds"] as? Int, 10)
        XCTAssertEqual(evidence["nameserver_index"] as? Int, 1)
        XCTAssertEqual(evidence["peer"] as? String, nameservers[0] + ":53")
        let locks = try XCTUnwrap(diagnosis["locks"] as? [[String: Any]])
        let blocked = locks.first?["waiters"] as? [[String: Any]] ?? []
        XCTAssertEqual(Set(blocked.compactMap { $0["pid"] as? Int }), Set(waiters))
        XCTAssertEqual(diagnosis["outcome"] as? String, "contention")
        let verdict = (diagnosis["verdict"] as? [String])?.first ?? ""
        XCTAssertTrue(verdict.contains("6 processes waiting"), verdict)
        XCTAssertTrue(verdict.contains("Holder iptables[\(holder)] is stuck in a DNS lookup"), verdict)

        let cleanup = try XCTUnwrap(demo["cleanup"] as? [String: Any])
        XCTAssertEqual(cleanup["directory_removed"] as? Bool, true)
        let pids = ([holder, demo["helper_pid"] as? Int ?? 0] + waiters).map { Int32($0) }
        assertNothingLeft(dir: demo["dir"] as? String ?? "?", pids: pids, inode: locks.first?["inode"] as? Int64 ?? (locks.first?["inode"] as? Int).map(Int64.init),
                          nameservers: nameservers, before: before)
    }

    /// Ctrl-C while the scene stands: everything stops, exit 130.
    func testDemoCleansUpOnInterrupt() throws {
        try requireRoot("the demo's root mode (a private mount namespace)")
        let before = snapshot()
        let out = try Spawn.cloexecPipe(), input = try Spawn.cloexecPipe()
        let devnull = open("/dev/null", O_WRONLY)
        defer { close(devnull) }
        // A long window so the interrupt lands while the holder is being sampled.
        let pid = try Spawn.process([TestBinaries.lockscope, "demo", "--waiters", "4", "--window", "20", "--no-color"],
                                    stdin: input.read, stdout: out.write, stderr: devnull)
        close(out.write)
        close(input.read)
        defer { close(input.write); close(out.read) }
        XCTAssertGreaterThan(pid, 0)
        let reader = LineReader(fd: out.read)
        var dir = "", holder: Int32 = 0, nameservers: [String] = []
        var lines: [String] = []
        while let line = reader.next(timeout: 20) {
            lines.append(line)
            if line.hasPrefix("lockscope demo: the xtables incident, reproduced in ") { dir = String(line.split(separator: " ").last ?? "") }
            if line.contains("holder:"), let open = line.firstIndex(of: "["), let close = line.firstIndex(of: "]") {
                holder = Int32(line[line.index(after: open)..<close]) ?? 0
            }
            if line.contains("nameservers:") {
                nameservers = line.split(separator: " ").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: ",")) }.filter { $0.hasPrefix("127.") }
            }
            if line.hasPrefix("Running: lockscope diagnose") { break }
        }
        XCTAssertFalse(dir.isEmpty, lines.joined(separator: "\n"))
        XCTAssertGreaterThan(holder, 0, lines.joined(separator: "\n"))
        XCTAssertTrue(processIsAlive(holder))
        usleep(300_000)
        kill(pid, SIGINT)
        let status = Spawn.reap(pid, block: true) ?? -1
        XCTAssertEqual(Spawn.exitCode(fromWaitStatus: status), 130, "exit status \(status)")
        assertNothingLeft(dir: dir, pids: [holder], inode: nil, nameservers: nameservers, before: before)
    }

    /// Without root, the demo runs in a user namespace where the kernel allows it,
    /// and otherwise says why in one line (exit 69).
    func testDemoWithoutRoot() throws {
        try requireRoot("switching to an unprivileged user to test the unprivileged path")
        guard let setpriv = which("setpriv") else { try skip("setpriv (util-linux) is not installed") }
        // The binaries must be reachable for an unprivileged user.
        let probe = try runCommand([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--", TestBinaries.lockscope, "--version"])
        if probe.exitCode != 0 { try skip("the build directory is not accessible to uid 65534: \(probe.stderr.prefix(100))") }
        let r = try runCommand([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                                TestBinaries.lockscope, "demo", "--json", "--waiters", "3", "--window", "0.5"],
                               timeout: 60, environment: ["PATH": "/usr/bin:/bin", "TMPDIR": "/tmp"])
        if r.exitCode == 69 {
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "one line: \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("needs root"), r.stderr)
            return
        }
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let demo = try XCTUnwrap(json["demo"] as? [String: Any])
        XCTAssertEqual(demo["mode"] as? String, "user-namespace")
        let findings = ((json["diagnosis"] as? [String: Any])?["findings"] as? [[String: Any]]) ?? []
        XCTAssertTrue(findings.contains { $0["rule"] as? String == "dns-timeout" }, "\(findings)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: demo["dir"] as? String ?? "/"))
    }
}
