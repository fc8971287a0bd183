import Foundation
import Glibc
import LockscopeTestSupport
import XCTest

/// The real consumers: Prometheus scraping `lockscope serve`, node_exporter's textfile
/// collector reading `lockscope metrics --output`, promtool on every exposition and on
/// the README's scrape config and alert rule. All on loopback, stopped by pid.
final class FleetTests: XCTestCase {
    static var readme: String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)) ?? ""
    }

    /// The fenced block after `<!-- fleet:NAME ...-->` in the README.
    static func readmeBlock(_ name: String) throws -> String {
        let text = readme
        guard let marker = text.range(of: "<!-- fleet:\(name) "),
              let open = text.range(of: "```yaml\n", range: marker.upperBound..<text.endIndex),
              let close = text.range(of: "\n```", range: open.upperBound..<text.endIndex) else {
            throw TestSupportError.unexpected(what: "README", detail: "no fleet:\(name) block")
        }
        return String(text[open.upperBound..<close.lowerBound]) + "\n"
    }

    /// Starts `flock -F file sleep 600` (the lock held by that very pid) and waits until /proc/locks shows it.
    func holdLock(_ file: String, dir: TempDir, name: String) throws -> Background {
        let holder = try Background(["/usr/bin/flock", "-F", file, "/bin/sleep", "600"], log: dir.file(name + ".log"))
        XCTAssertTrue(waitUntil(timeout: 10) { !procLocksLines(pid: holder.pid).isEmpty }, "holder \(holder.pid) never locked")
        return holder
    }

    func query(_ promPort: Int, _ expr: String) throws -> [(labels: [String: String], value: String)] {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "+&=")
        let q = expr.addingPercentEncoding(withAllowedCharacters: allowed) ?? expr
        let r = try HTTP.get(port: promPort, "/api/v1/query?query=\(q)")
        guard r.status == 200, let json = try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any],
              let data = json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]] else { return [] }
        return result.map { item in
            ((item["metric"] as? [String: String]) ?? [:], ((item["value"] as? [Any])?.last as? String) ?? "")
        }
    }

    /// Prometheus 2.x scrapes serve every second (OpenMetrics negotiated: it asks for it
    /// first); with one holder and five waiters it reports 5 for that path, and 0 once
    /// the holder is gone and the file is held again without contention.
    func testPrometheusSeesWaitersComeAndGo() throws {
        try requireExecutable("prometheus")
        try requireExecutable("flock")
        let dir = try TempDir()
        let file = try dir.touch("xtables.lock")
        var holder = try holdLock(file, dir: dir, name: "holder")
        var waiters: [Background] = []
        defer { waiters.forEach { $0.stop(grace: 1) } }
        for i in 0..<5 { waiters.append(try Background(["/usr/bin/flock", file, "/bin/true"], log: dir.file("waiter\(i).log"))) }
        XCTAssertTrue(waitUntil(timeout: 10) { procLocksLines(pid: holder.pid).count >= 1 && (readProcText("/proc/locks") ?? "").components(separatedBy: "->").count - 1 >= 5 })

        let (server, port) = try startServe(dir: dir)
        defer { server.stop() }
        let promPort = HTTP.freePort()
        let config = """
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
            scrape_configs:
              - job_name: lockscope
                static_configs:
                  - targets: ["127.0.0.1:\(port)"]

            """
        try config.write(toFile: dir.file("prometheus.yml"), atomically: true, encoding: .utf8)
        let prometheus = try Background(["/usr/bin/prometheus", "--config.file=" + dir.file("prometheus.yml"),
                                         "--storage.tsdb.path=" + dir.file("tsdb"), "--web.listen-address=127.0.0.1:\(promPort)",
                                         "--log.level=warn"], log: dir.file("prometheus.log"))
        defer { prometheus.stop() }

        let series = "lockscope_lock_waiters{path=\"\(file)\"}"
        var seen = ""
        let five = waitUntil(timeout: 30, interval: 0.5) {
            let r = (try? self.query(promPort, series)) ?? []
            seen = "\(r)"
            return r.count == 1 && r[0].value == "5" && r[0].labels["kind"] == "flock"
        }
        XCTAssertTrue(five, "Prometheus never saw 5 waiters: \(seen)\n\(prometheus.output)")
        let up = try query(promPort, "up{job=\"lockscope\"}")
        XCTAssertEqual(up.first?.value, "1", "the OpenMetrics scrape parsed: \(up)")

        // The holder exits; the waiters get the lock in turn and exit; the file is held again, uncontended.
        XCTAssertEqual(holder.stop(), 128 + SIGTERM)
        for w in waiters { XCTAssertTrue(waitUntil(timeout: 10) { !w.process.isRunning }) }
        holder = try holdLock(file, dir: dir, name: "holder2")
        defer { holder.stop() }
        let zero = waitUntil(timeout: 30, interval: 0.5) {
            let r = (try? self.query(promPort, series)) ?? []
            seen = "\(r)"
            return r.count == 1 && r[0].value == "0"
        }
        XCTAssertTrue(zero, "Prometheus never saw the waiters drop to 0: \(seen)")
    }

    /// A live holder asleep with two waiters queued for ~1.5 s: the counts, the wait
    /// age from the waiters' scheduler clocks, and the quick diagnosis's reason.
    ///
    /// The waiters run on the last CPU and lockscope on CPU 0 (`taskset`, when the box
    /// has two): each CPU's scheduler clock has its own offset (SchedClock; 2.5 s apart
    /// on the 2-vCPU VM after three hours), so an age read against the wrong CPU's
    /// clock misses the bounds below by that much.
    func testLiveWaitAgeAndReason() throws {
        try requireExecutable("flock")
        try requireRoot("reads other processes' /proc/PID/task/TID/sched")
        let dir = try TempDir()
        let file = try dir.touch("aged.lock")
        let holder = try holdLock(file, dir: dir, name: "holder")
        defer { holder.stop() }
        let cpus = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        let pin: (Int) -> [String] = { cpu in
            cpus > 1 && FileManager.default.isExecutableFile(atPath: "/usr/bin/taskset") ? ["/usr/bin/taskset", "-c", "\(cpu)"] : []
        }
        let queued = Date()
        let waiters = try (0..<2).map { try Background(pin(cpus - 1) + ["/usr/bin/flock", file, "/bin/true"], log: dir.file("w\($0).log")) }
        defer { waiters.forEach { $0.stop(grace: 1) } }
        XCTAssertTrue(waitUntil(timeout: 10) { (readProcText("/proc/locks") ?? "").components(separatedBy: "->").count - 1 >= 2 })
        Thread.sleep(forTimeInterval: 1.5)
        let r = try runCommand(pin(0) + [TestBinaries.lockscope, "metrics"])
        let elapsed = Date().timeIntervalSince(queued)
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("lockscope_lock_waiters{path=\"\(file)\",kind=\"flock\",reason=\"holder-sleeping\"} 2.0"), r.stdout)
        let age = lines.first { $0.hasPrefix("lockscope_lock_oldest_wait_seconds{path=\"\(file)\"} ") }
            .flatMap { Double($0.split(separator: " ").last ?? "") }
        XCTAssertNotNil(age, r.stdout)
        XCTAssertGreaterThanOrEqual(age ?? 0, 1.4)
        XCTAssertLessThanOrEqual(age ?? 999, elapsed + 0.05, "longer than the waiters have existed (\(elapsed) s)")
    }

    /// node_exporter's textfile collector reads what `metrics --output` wrote, with no
    /// parse error.
    func testNodeExporterTextfileCollector() throws {
        try requireExecutable("prometheus-node-exporter")
        let dir = try TempDir()
        let textfiles = dir.file("textfile")
        try FileManager.default.createDirectory(atPath: textfiles, withIntermediateDirectories: true)
        let file = try dir.touch("held.lock")
        let holder = try holdLock(file, dir: dir, name: "holder")
        defer { holder.stop() }
        let write = try runCommand([TestBinaries.lockscope, "metrics", "--output", textfiles + "/lockscope.prom"])
        XCTAssertEqual(write.exitCode, 0, write.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: textfiles), ["lockscope.prom"], "no temp file left")

        let port = HTTP.freePort()
        let exporter = try Background(["/usr/bin/prometheus-node-exporter", "--collector.disable-defaults", "--collector.textfile",
                                       "--collector.textfile.directory=" + textfiles, "--web.listen-address=127.0.0.1:\(port)"],
                                      log: dir.file("node_exporter.log"))
        defer { exporter.stop() }
        var body = ""
        XCTAssertTrue(waitUntil(timeout: 15, interval: 0.1) {
            body = (try? HTTP.get(port: port, "/metrics").body) ?? ""
            return !body.isEmpty
        }, exporter.output)
        let lines = body.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("node_textfile_scrape_error 0"), body)
        XCTAssertTrue(lines.contains { $0.hasPrefix("lockscope_lock_waiters{") && $0.contains("path=\"\(file)\"") }, body)
        XCTAssertTrue(lines.contains("lockscope_events_available 0"), body)
        XCTAssertTrue(lines.contains { $0.hasPrefix("node_textfile_mtime_seconds{file=") && $0.contains("lockscope.prom") }, body)
    }

    /// promtool lints the live exposition with locks on hostile file names held by
    /// this test: quotes, backslashes, newlines, control characters, invalid UTF-8.
    func testPromtoolAcceptsHostileFileNames() throws {
        try requireExecutable("promtool")
        let dir = try TempDir()
        let names: [[UInt8]] = [Array("quote\"d".utf8), Array("back\\slash".utf8), Array("new\nline".utf8),
                                Array("cr\rtab\t".utf8), Array("esc\u{1b}[31m".utf8), [0x62, 0x61, 0x64, 0xff, 0xfe, 0xc3],
                                Array("} 99\nfake_metric 1".utf8), Array("\u{85}c1".utf8)]
        var fds: [Int32] = []
        defer { fds.forEach { close($0) } }
        for name in names {
            let path = Array(dir.path.utf8) + [UInt8(ascii: "/")] + name + [0]
            let fd = path.withUnsafeBufferPointer { p in
                p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) { open($0, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
            }
            XCTAssertGreaterThanOrEqual(fd, 0)
            XCTAssertEqual(flock(fd, LOCK_EX), 0)
            fds.append(fd)
        }
        for format in ["--openmetrics", nil] {
            let r = try runCommand([TestBinaries.lockscope, "metrics", "--top", "10000"] + (format.map { [$0] } ?? []))
            XCTAssertEqual(r.exitCode, 0, r.stderr)
            let ours = r.stdout.split(separator: "\n").filter { $0.hasPrefix("lockscope_lock_waiters{path=\"\(dir.path)/") }
            XCTAssertEqual(ours.count, names.count, r.stdout)
            XCTAssertFalse(r.stdout.split(separator: "\n").contains { $0.hasPrefix("fake_metric") })
            if format == nil {
                let check = try promtoolCheckMetrics(r.stdoutBytes, dir: dir)
                XCTAssertEqual(check.exitCode, 0, check.stdout + check.stderr)
                XCTAssertEqual(check.stdout + check.stderr, "", "promtool lint findings")
            }
        }
    }

    /// The README's scrape config and alert rule load in promtool, and the rule fires
    /// on a wait over 60 s and not on one under it.
    func testReadmeScrapeConfigAndAlertRule() throws {
        try requireExecutable("promtool")
        let dir = try TempDir()
        try Self.readmeBlock("prometheus.yml").write(toFile: dir.file("prometheus.yml"), atomically: true, encoding: .utf8)
        try Self.readmeBlock("lockscope-rules.yml").write(toFile: dir.file("lockscope-rules.yml"), atomically: true, encoding: .utf8)
        let config = try runCommand(["/usr/bin/promtool", "check", "config", dir.file("prometheus.yml")])
        XCTAssertEqual(config.exitCode, 0, config.stdout + config.stderr)
        XCTAssertTrue(config.stdout.contains("SUCCESS: 1 rules found"), config.stdout)
        let rules = try runCommand(["/usr/bin/promtool", "check", "rules", dir.file("lockscope-rules.yml")])
        XCTAssertEqual(rules.exitCode, 0, rules.stdout + rules.stderr)

        let unit = """
            rule_files:
              - lockscope-rules.yml
            evaluation_interval: 15s
            tests:
              - interval: 15s
                input_series:
                  - series: 'lockscope_lock_oldest_wait_seconds{instance="node1:9743",job="lockscope",path="/run/xtables.lock"}'
                    values: '10 25 40 55 70 85'
                  - series: 'lockscope_lock_oldest_wait_seconds{instance="node2:9743",job="lockscope",path="/run/xtables.lock"}'
                    values: '1 1 1 1 1 1'
                alert_rule_test:
                  - eval_time: 45s
                    alertname: FileLockWaitOver60s
                    exp_alerts: []
                  - eval_time: 60s
                    alertname: FileLockWaitOver60s
                    exp_alerts:
                      - exp_labels:
                          severity: page
                          instance: node1:9743
                          path: /run/xtables.lock
                        exp_annotations:
                          summary: "node1:9743: a process has waited 1m 10s for /run/xtables.lock"
                          description: "Log in and run: lockscope diagnose /run/xtables.lock"

            """
        try unit.write(toFile: dir.file("rules-test.yml"), atomically: true, encoding: .utf8)
        let test = try runCommand(["/bin/sh", "-c", "cd \"$0\" && exec promtool test rules rules-test.yml", dir.path])
        XCTAssertEqual(test.exitCode, 0, test.stdout + test.stderr)
    }
}
