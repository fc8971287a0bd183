import Foundation
import Glibc
import LockscopeTestSupport
import XCTest

/// `lockscope serve` as a scraper and a hostile client see it: routes, content
/// negotiation, garbage, a slow client, a burst of 1,000 scrapes, SIGTERM.
final class ServeLiveTests: XCTestCase {
    func testRoutesNegotiationAndCleanStop() throws {
        try requireExecutable("promtool")
        let dir = try TempDir()
        let (server, port) = try startServe(["--no-events"], dir: dir)
        defer { server.stop() }

        let index = try HTTP.get(port: port, "/")
        XCTAssertEqual(index.status, 200)
        XCTAssertEqual(index.headers["content-type"], "text/html; charset=utf-8")
        XCTAssertTrue(index.body.contains(#"<a href="/metrics">"#), index.body)
        let health = try HTTP.get(port: port, "/healthz")
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(health.body, "ok\n")
        XCTAssertEqual(try HTTP.get(port: port, "/nothing-here").status, 404)

        let text = try HTTP.get(port: port, "/metrics")
        XCTAssertEqual(text.status, 200)
        XCTAssertEqual(text.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        XCTAssertTrue(text.body.contains("\nlockscope_events_available 0.0\n"), text.body)
        XCTAssertFalse(text.body.contains("# EOF"))
        let check = try promtoolCheckMetrics(Array(text.body.utf8), dir: dir)
        XCTAssertEqual(check.exitCode, 0, check.stdout + check.stderr)
        XCTAssertEqual(check.stdout + check.stderr, "", "promtool lint findings")

        let om = try HTTP.get(port: port, "/metrics", headers: ["Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"])
        XCTAssertEqual(om.headers["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8")
        XCTAssertTrue(om.body.hasSuffix("\n# EOF\n"), om.body)
        XCTAssertTrue(om.body.contains("# TYPE lockscope_scrape_errors counter\n"), om.body)

        XCTAssertEqual(server.stop(), 0, "SIGTERM is a clean stop: \(server.output)")
        XCTAssertFalse(server.output.contains("ERROR"), server.output)
        XCTAssertEqual(server.output.components(separatedBy: "lock events unavailable: --no-events; serving snapshot gauges only").count, 2,
                       "said once: \(server.output)")
    }

    func testSigintStopsCleanlyWithAClientConnected() throws {
        let dir = try TempDir()
        let (server, port) = try startServe(dir: dir)
        defer { server.stop() }
        let idle = try HTTP.connect(port: port)
        defer { close(idle) }
        XCTAssertEqual(try HTTP.get(port: port, "/metrics").status, 200)
        kill(server.pid, SIGINT)
        XCTAssertTrue(waitUntil(timeout: 15) { !server.process.isRunning }, "still running after SIGINT")
        XCTAssertEqual(server.stop(), 0, server.output)
    }

    func testGarbageAndSlowClientsDoNotStopOthers() throws {
        let dir = try TempDir()
        let (server, port) = try startServe(dir: dir)
        defer { server.stop() }

        // Garbage: not HTTP at all, a huge header line, a request line with binary.
        for junk in ["\u{0}\u{1}\u{2}garbage\r\n\r\n", "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 200_000) + "\r\n\r\n",
                     "GET /\u{7f}\u{1b} HTTP/9.9\r\n\r\n", "POST /metrics HTTP/1.1\r\nContent-Length: 99999999\r\n\r\nabc"] {
            let fd = try HTTP.connect(port: port, timeout: 5)
            HTTP.send(fd, junk)
            shutdown(fd, Int32(SHUT_WR))
            let reply = String(decoding: HTTP.readAll(fd), as: UTF8.self)
            close(fd)
            XCTAssertFalse(reply.hasPrefix("HTTP/1.1 200"), "junk answered with 200: \(reply.prefix(80))")
        }
        // Slow clients: half a request each, never finished, held open.
        var slow: [Int32] = []
        for _ in 0..<20 {
            let fd = try HTTP.connect(port: port)
            HTTP.send(fd, "GET /metrics HTTP/1.1\r\nHost: x")
            slow.append(fd)
        }
        defer { slow.forEach { close($0) } }
        let start = Date()
        XCTAssertEqual(try HTTP.get(port: port, "/healthz").status, 200)
        XCTAssertEqual(try HTTP.get(port: port, "/metrics").status, 200)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5, "others are answered while slow clients hang")
        XCTAssertTrue(processIsAlive(server.pid))
    }

    /// 1,000 connections at once, each a full scrape: every one answered, all from a
    /// handful of snapshots (at most one /proc/locks read per --min-interval), and the
    /// exporter's memory back within bounds afterwards.
    func testThousandConcurrentScrapes() throws {
        let dir = try TempDir()
        let (server, port) = try startServe(dir: dir)
        defer { server.stop() }
        XCTAssertEqual(try HTTP.get(port: port, "/metrics").status, 200)
        let rssBefore = residentKB(server.pid) ?? 0

        let n = 1000
        let started = Date()
        let bodies = UnsafeMutableBufferPointer<[UInt8]>.allocate(capacity: n)
        bodies.initialize(repeating: [])
        defer { bodies.deallocate() }
        let fds = try (0..<n).map { _ in try HTTP.connect(port: port, timeout: 30) }
        for fd in fds { HTTP.send(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") }
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for i in stride(from: worker, to: n, by: 8) {
                bodies[i] = HTTP.readAll(fds[i])
                close(fds[i])
            }
        }
        let elapsed = Date().timeIntervalSince(started)
        let responses = bodies.map { HTTP.parse($0) }
        XCTAssertEqual(responses.filter { $0?.status == 200 }.count, n, "every scrape answered")
        let durations = Set(responses.compactMap { r in
            r?.body.split(separator: "\n").first { $0.hasPrefix("lockscope_scrape_duration_seconds ") }.map(String.init)
        })
        XCTAssertLessThanOrEqual(durations.count, Int(elapsed) + 2, "snapshots shared within the interval (\(elapsed) s)")
        let rssAfter = residentKB(server.pid) ?? 0
        print("serve RSS before \(rssBefore) kB, after 1000 concurrent scrapes \(rssAfter) kB, \(elapsed) s")
        XCTAssertLessThan(rssAfter - rssBefore, 64 * 1024, "memory bounded")
        XCTAssertEqual(try HTTP.get(port: port, "/healthz").status, 200)
    }

    /// A snapshot that fails keeps the exporter up: the next scrape says so in
    /// `lockscope_scrape_errors_total` and carries no lock series; scrapes within
    /// --min-interval share one snapshot.
    func testFailedSnapshotIsCountedAndIntervalIsShared() throws {
        let dir = try TempDir()
        let root = dir.file("proc")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try "1: FLOCK  ADVISORY  WRITE 1 fe:00:99 0 EOF\n".write(toFile: root + "/locks", atomically: true, encoding: .utf8)
        let (server, port) = try startServe(["--proc-root", root, "--min-interval", "0.5", "--no-diagnosis"], dir: dir)
        defer { server.stop() }
        let first = try HTTP.get(port: port, "/metrics").body
        XCTAssertEqual(try HTTP.get(port: port, "/metrics").body, first, "same snapshot within the interval")
        XCTAssertTrue(first.contains(#"lockscope_lock_waiters{path="fe:00:99",kind="flock",reason="none"} 0.0"#), first)
        XCTAssertTrue(first.contains("\nlockscope_scrape_errors_total 0\n"), first)

        try FileManager.default.removeItem(atPath: root + "/locks")
        try FileManager.default.createDirectory(atPath: root + "/locks", withIntermediateDirectories: false)
        Thread.sleep(forTimeInterval: 0.6)
        let failed = try HTTP.get(port: port, "/metrics")
        XCTAssertEqual(failed.status, 200)
        XCTAssertTrue(failed.body.contains("\nlockscope_scrape_errors_total 1\n"), failed.body)
        XCTAssertFalse(failed.body.contains("lockscope_lock_waiters"), failed.body)
        XCTAssertTrue(failed.body.contains("\nlockscope_events_available 0.0\n"), failed.body)
        XCTAssertTrue(processIsAlive(server.pid))
    }

    func testBadInputExitCodes() throws {
        let dir = try TempDir()
        let bad = try runCommand([TestBinaries.lockscope, "serve", "--listen", "nonsense"])
        XCTAssertEqual(bad.exitCode, 64, bad.stderr)
        let badPort = try runCommand([TestBinaries.lockscope, "serve", "--listen", "127.0.0.1:70000"])
        XCTAssertEqual(badPort.exitCode, 64, badPort.stderr)

        let (server, port) = try startServe(dir: dir)
        defer { server.stop() }
        let inUse = try runCommand([TestBinaries.lockscope, "serve", "--listen", "127.0.0.1:\(port)"], timeout: 15)
        XCTAssertEqual(inUse.exitCode, 69)
        XCTAssertEqual(inUse.stderr, "lockscope: cannot listen on 127.0.0.1:\(port): Address already in use\n")
        let notLocal = try runCommand([TestBinaries.lockscope, "serve", "--listen", "192.0.2.1:9743"], timeout: 15)
        XCTAssertEqual(notLocal.exitCode, 69, notLocal.stderr)
        XCTAssertEqual(notLocal.stderr.split(separator: "\n").count, 1, notLocal.stderr)

        let unwritable = try runCommand([TestBinaries.lockscope, "metrics", "--output", dir.file("no/such/dir/x.prom")])
        XCTAssertEqual(unwritable.exitCode, 73)
        XCTAssertEqual(unwritable.stderr.split(separator: "\n").count, 1, unwritable.stderr)
        XCTAssertTrue(unwritable.stderr.hasPrefix("lockscope: cannot write "), unwritable.stderr)
        let top = try runCommand([TestBinaries.lockscope, "metrics", "--top", "-1"])
        XCTAssertEqual(top.exitCode, 64, top.stderr)
    }
}
