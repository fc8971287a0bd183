import LockscopeCore
import LockscopeMetrics
import XCTest

/// The exposition built from hand-made reports: names, label bounds, escaping, framing.
final class ExpositionTests: XCTestCase {
    static func lock(_ path: String?, inode: UInt64, kind: LockKind = .flock, waiters: Int, pid: Int32 = 100) -> LockEntry {
        let ws = (0..<waiters).map { i in
            Waiter(pid: pid + 1 + Int32(i), tid: nil, fd: nil, kind: kind, access: .write, start: 0, end: nil,
                   blockedBy: pid, directBlocker: pid, queuePosition: i + 1, source: .kernel)
        }
        return LockEntry(file: FileIdentity(major: 0xfe, minor: 0, inode: inode), path: path, kind: kind, access: .write,
                         mode: "ADVISORY", start: 0, end: nil, kernelPid: pid, ownerStatus: .alive,
                         holders: [Holder(pid: pid, fd: 3, isOwner: true)], waiters: ws)
    }

    func render(_ report: LockReport, top: Int = 20, facts: LockMetrics.Facts = .init(), format: ExpositionFormat = .text) -> String {
        let m = LockMetrics(report: report, facts: facts, top: top)
        let e = Exposition(metrics: m, findings: ["dns-timeout": 1, "deadlock": 0],
                           status: ExporterStatus(scrapeDurationSeconds: 0.002, scrapeErrors: 0, eventsAvailable: false))
        return String(decoding: e.render(format), as: UTF8.self)
    }

    func samples(_ text: String, _ name: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter { $0.hasPrefix(name + "{") || $0.hasPrefix(name + " ") }
    }

    func testTopPathsKeepTheirLabelAndTheRestAreOther() {
        let report = LockReport(locks: [
            Self.lock("/run/a.lock", inode: 1, waiters: 5),
            Self.lock("/run/b.lock", inode: 2, waiters: 3),
            Self.lock("/run/c.lock", inode: 3, waiters: 1),
            Self.lock("/run/d.lock", inode: 4, kind: .posix, waiters: 2),
            Self.lock(nil, inode: 5, waiters: 0),
        ])
        var facts = LockMetrics.Facts()
        facts.oldestWait[LockKey(report.locks[2])] = 90
        facts.oldestWait[LockKey(report.locks[0])] = 12
        facts.reason[LockKey(report.locks[0])] = "dns-timeout"
        let m = LockMetrics(report: report, facts: facts, top: 2)
        XCTAssertEqual(m.waiters, [
            .init(path: "/run/a.lock", kind: "flock", reason: "dns-timeout", count: 5),
            .init(path: "/run/b.lock", kind: "flock", reason: "unknown", count: 3),
            .init(path: "other", kind: "flock", reason: "none", count: 0),
            .init(path: "other", kind: "flock", reason: "unknown", count: 1),
            .init(path: "other", kind: "posix", reason: "unknown", count: 2),
        ])
        XCTAssertEqual(m.oldestWaitSeconds, [.init(path: "/run/a.lock", seconds: 12), .init(path: "other", seconds: 90)])
        XCTAssertEqual(m.locksByKind.first { $0.kind == "flock" }?.count, 4)
        XCTAssertEqual(m.locksByKind.first { $0.kind == "posix" }?.count, 1)
        XCTAssertEqual(m.locksByKind.first { $0.kind == "lease" }?.count, 0)
        XCTAssertFalse(m.locksByKind.contains { $0.kind == "unknown" })
    }

    func testUnnamedLockIsLabelledByIdentityAndZeroWaitersAreExported() {
        let m = LockMetrics(report: LockReport(locks: [Self.lock(nil, inode: 77, waiters: 0)]), top: 20)
        XCTAssertEqual(m.waiters, [.init(path: "fe:00:77", kind: "flock", reason: "none", count: 0)])
    }

    func testTextExpositionHasEveryFamilyAndSaysSnapshotOnly() {
        let text = render(LockReport(locks: [Self.lock("/run/xtables.lock", inode: 1, waiters: 5)]))
        XCTAssertEqual(samples(text, "lockscope_lock_waiters"), [#"lockscope_lock_waiters{path="/run/xtables.lock",kind="flock",reason="unknown"} 5.0"#])
        XCTAssertEqual(samples(text, "lockscope_events_available"), ["lockscope_events_available 0.0"])
        XCTAssertEqual(samples(text, "lockscope_scrape_errors_total"), ["lockscope_scrape_errors_total 0"])
        XCTAssertEqual(samples(text, "lockscope_diagnosis_findings").count, 2)
        XCTAssertTrue(text.contains("# TYPE lockscope_scrape_errors_total counter"))
        XCTAssertTrue(text.contains("# HELP lockscope_events_available 1 when kernel lock events"))
        XCTAssertFalse(text.contains("# EOF"))
    }

    /// Every hostile byte a file name can hold: the exposition keeps one sample per
    /// line, the label value carries no raw control character, and the escapes are
    /// the text format's (checked against promtool and Prometheus in the live tests).
    func testHostileFileNamesCannotBreakTheExposition() {
        let invalidUTF8 = String(decoding: Array("/tmp/bad-".utf8) + [0xff, 0xfe, 0xc3], as: UTF8.self)
        let names = ["/tmp/quote\"d", "/tmp/back\\slash", "/tmp/new\nline", "/tmp/cr\rtab\t", "/tmp/esc\u{1b}[31m",
                     "/tmp/del\u{7f}c1\u{85}", invalidUTF8, "/tmp/} 99\nfake_metric 1"]
        let report = LockReport(locks: names.enumerated().map { Self.lock($0.element, inode: UInt64($0.offset + 1), waiters: 1) })
        for format in ExpositionFormat.allCases {
            let text = render(report, format: format)
            let waiterLines = samples(text, "lockscope_lock_waiters")
            XCTAssertEqual(waiterLines.count, names.count, text)
            XCTAssertFalse(text.split(separator: "\n").contains { $0.hasPrefix("fake_metric") }, text)
            for scalar in text.unicodeScalars where scalar != "\n" {
                XCTAssertFalse(scalar.value < 0x20 || scalar.value == 0x7f || (0x80..<0xa0).contains(scalar.value),
                               "raw control character U+\(String(scalar.value, radix: 16)) in \(format)")
            }
            XCTAssertTrue(text.contains(#"path="/tmp/quote\"d""#), text)
            XCTAssertTrue(text.contains(#"path="/tmp/back\\\\slash""#), text)  // terminalSafe doubles it, the format escapes both
            XCTAssertTrue(text.contains(#"path="/tmp/new\\nline""#), text)
            XCTAssertTrue(text.contains("path=\"/tmp/bad-\u{fffd}\u{fffd}\u{fffd}\""), text)
        }
    }

    func testOpenMetricsFraming() {
        let text = render(LockReport(locks: [Self.lock("/run/a", inode: 1, waiters: 1)]), format: .openMetrics)
        XCTAssertTrue(text.hasSuffix("# EOF\n"))
        XCTAssertEqual(text.components(separatedBy: "# EOF").count, 2)
        XCTAssertTrue(text.contains("# TYPE lockscope_scrape_errors counter\n"), text)
        XCTAssertTrue(text.contains("# HELP lockscope_scrape_errors Snapshots"), text)
        XCTAssertTrue(text.contains("\nlockscope_scrape_errors_total 0\n"), text)
        XCTAssertTrue(text.contains("# TYPE lockscope_lock_waiters gauge\n"), text)
    }

    func testOpenMetricsFramingRenamesCounterFamiliesOnlyAndEscapesHelpQuotes() {
        let input = Array("""
            # HELP a_total Says "hi".
            # TYPE a_total counter
            a_total 3
            # HELP g_total A gauge that happens to end in total.
            # TYPE g_total gauge
            g_total 1.0

            """.utf8)
        let out = String(decoding: OpenMetricsFraming.reframe(input), as: UTF8.self)
        XCTAssertEqual(out, """
            # HELP a Says \\"hi\\".
            # TYPE a counter
            a_total 3
            # HELP g_total A gauge that happens to end in total.
            # TYPE g_total gauge
            g_total 1.0
            # EOF

            """)
    }

    func testEventMetricsBoundTheirPathsAndFollowAvailability() {
        let events = EventMetrics(maxPaths: 2)
        events.setAvailable(true)
        for p in ["/a", "/b", "/c", "/d"] { events.recordAcquisition(file: nil, path: p, waitedSeconds: 0.3) }
        events.recordAcquisition(file: nil, path: "/a", waitedSeconds: 2.5)
        events.recordFailedAttempt(file: nil, path: "/zz")
        let e = Exposition(metrics: nil, findings: nil,
                           status: ExporterStatus(scrapeDurationSeconds: 0, scrapeErrors: 0, eventsAvailable: events.available),
                           events: events)
        let text = String(decoding: e.render(.text), as: UTF8.self)
        XCTAssertEqual(samples(text, "lockscope_lock_acquisitions_total").sorted(), [
            #"lockscope_lock_acquisitions_total{path="/a"} 2"#,
            #"lockscope_lock_acquisitions_total{path="/b"} 1"#,
            #"lockscope_lock_acquisitions_total{path="other"} 2"#,
        ])
        XCTAssertEqual(samples(text, "lockscope_lock_failed_attempts_total"), [#"lockscope_lock_failed_attempts_total{path="other"} 1"#])
        XCTAssertTrue(text.contains(#"lockscope_lock_wait_seconds_bucket{path="/a",le="0.5"} 1"#), text)
        XCTAssertTrue(text.contains(#"lockscope_lock_wait_seconds_bucket{path="/a",le="5.0"} 2"#), text)
        XCTAssertTrue(text.contains(#"lockscope_lock_wait_seconds_sum{path="/a"} 2.8"#), text)
        XCTAssertEqual(samples(text, "lockscope_events_available"), ["lockscope_events_available 1.0"])
    }

    /// An event names a file by identity: the path a snapshot learned for it labels
    /// the series, an unknown one falls back to MAJ:MIN:INODE, both under the cap;
    /// lost events are a running total turned into a counter.
    func testEventMetricsTakePathsFromSnapshotsAndCountLostEvents() {
        let events = EventMetrics(maxPaths: 2)
        events.setAvailable(true)
        let known = FileIdentity(major: 0xfe, minor: 0, inode: 7), unknown = FileIdentity(major: 0xfe, minor: 0, inode: 8)
        events.learnPaths(LockReport(locks: [Self.lock("/var/lock/x\"y", inode: 7, waiters: 1), Self.lock(nil, inode: 8, waiters: 0)]))
        events.recordAcquisition(file: known, path: nil, waitedSeconds: 0)
        events.recordAcquisition(file: unknown, path: nil, waitedSeconds: 0)
        events.recordAcquisition(file: FileIdentity(major: 0xfe, minor: 0, inode: 9), path: nil, waitedSeconds: 0)
        events.setLostEvents(3)
        events.setLostEvents(3)
        events.setLostEvents(5)
        let e = Exposition(metrics: nil, findings: nil,
                           status: ExporterStatus(scrapeDurationSeconds: 0, scrapeErrors: 0, eventsAvailable: events.available),
                           events: events)
        let text = String(decoding: e.render(.text), as: UTF8.self)
        XCTAssertEqual(samples(text, "lockscope_lock_acquisitions_total").sorted(), [
            #"lockscope_lock_acquisitions_total{path="/var/lock/x\"y"} 1"#,
            #"lockscope_lock_acquisitions_total{path="fe:00:8"} 1"#,
            #"lockscope_lock_acquisitions_total{path="other"} 1"#,
        ])
        XCTAssertEqual(samples(text, "lockscope_lost_events_total"), ["lockscope_lost_events_total 5"])
    }

    /// A release is one hold-histogram observation under the lock's path; the holder's
    /// age says whether it is exact (the grant event) or a lower bound (first seen).
    func testHoldHistogramAndHolderAgeSource() {
        let events = EventMetrics(maxPaths: 20)
        events.setAvailable(true)
        events.recordRelease(file: nil, path: "/run/a.lock", heldSeconds: 0.004)
        events.recordRelease(file: nil, path: "/run/a.lock", heldSeconds: 45)
        let report = LockReport(locks: [Self.lock("/run/a.lock", inode: 1, waiters: 2), Self.lock("/run/b.lock", inode: 2, waiters: 0),
                                        Self.lock(nil, inode: 3, waiters: 0, pid: 300), Self.lock(nil, inode: 4, waiters: 0, pid: 400)])
        var facts = LockMetrics.Facts()
        facts.held[LockKey(report.locks[0])] = .init(seconds: 12.5, source: .event)
        facts.held[LockKey(report.locks[1])] = .init(seconds: 3, source: .snapshot)
        // Two locks under one label (`other`): the longest-held one's value and source.
        facts.held[LockKey(report.locks[2])] = .init(seconds: 7, source: .snapshot)
        facts.held[LockKey(report.locks[3])] = .init(seconds: 9, source: .event)
        let m = LockMetrics(report: report, facts: facts, top: 2)
        let e = Exposition(metrics: m, findings: nil,
                           status: ExporterStatus(scrapeDurationSeconds: 0, scrapeErrors: 0, eventsAvailable: true), events: events)
        let text = String(decoding: e.render(.text), as: UTF8.self)
        XCTAssertEqual(samples(text, "lockscope_lock_holder_seconds").sorted(), [
            #"lockscope_lock_holder_seconds{path="/run/a.lock",source="event"} 12.5"#,
            #"lockscope_lock_holder_seconds{path="/run/b.lock",source="snapshot"} 3.0"#,
            #"lockscope_lock_holder_seconds{path="other",source="event"} 9.0"#,
        ])
        XCTAssertTrue(text.contains("# TYPE lockscope_lock_hold_seconds histogram\n"), text)
        XCTAssertTrue(text.contains(#"lockscope_lock_hold_seconds_bucket{path="/run/a.lock",le="0.01"} 1"#), text)
        XCTAssertTrue(text.contains(#"lockscope_lock_hold_seconds_bucket{path="/run/a.lock",le="30.0"} 1"#), text)
        XCTAssertTrue(text.contains(#"lockscope_lock_hold_seconds_bucket{path="/run/a.lock",le="60.0"} 2"#), text)
        XCTAssertTrue(text.contains(#"lockscope_lock_hold_seconds_count{path="/run/a.lock"} 2"#), text)
    }

    /// swift-prometheus keeps families and metrics in dictionaries; the exposition is
    /// put in a fixed order: families as `MetricName` lists them, metrics by labels, a
    /// histogram's buckets, sum and count together and in order. (Within one process
    /// the dictionaries' order repeats, so the order is checked, not two renders.)
    func testFamiliesAndSamplesComeInAFixedOrder() {
        let events = EventMetrics(maxPaths: 20)
        events.setAvailable(true)
        for p in ["/z", "/a", "/m"] { events.recordAcquisition(file: nil, path: p, waitedSeconds: 0.3) }
        let report = LockReport(locks: [Self.lock("/run/b.lock", inode: 2, waiters: 1), Self.lock("/run/a.lock", inode: 1, kind: .posix, waiters: 3)])
        var facts = LockMetrics.Facts()
        facts.oldestWait[LockKey(report.locks[0])] = 4
        facts.oldestWait[LockKey(report.locks[1])] = 5
        let e = Exposition(metrics: LockMetrics(report: report, facts: facts, top: 20), findings: ["wait-chain": 0, "deadlock": 1, "dns-timeout": 0],
                           status: ExporterStatus(scrapeDurationSeconds: 0, scrapeErrors: 0, eventsAvailable: true), events: events)
        let lines = String(decoding: e.render(.text), as: UTF8.self).split(separator: "\n").map(String.init)
        let families = lines.filter { $0.hasPrefix("# TYPE ") }.map { String($0.split(separator: " ")[2]) }
        XCTAssertEqual(families, MetricName.order.filter(families.contains))
        XCTAssertEqual(families.prefix(3), [MetricName.locks, MetricName.waiters, MetricName.oldestWait])
        XCTAssertEqual(samples(lines.joined(separator: "\n"), MetricName.findings), [
            #"lockscope_diagnosis_findings{rule="deadlock"} 1.0"#,
            #"lockscope_diagnosis_findings{rule="dns-timeout"} 0.0"#,
            #"lockscope_diagnosis_findings{rule="wait-chain"} 0.0"#,
        ])
        XCTAssertEqual(samples(lines.joined(separator: "\n"), MetricName.oldestWait), [
            #"lockscope_lock_oldest_wait_seconds{path="/run/a.lock"} 5.0"#,
            #"lockscope_lock_oldest_wait_seconds{path="/run/b.lock"} 4.0"#,
        ])
        // One histogram series after another, each bucket-ascending then _sum, _count.
        let wait = lines.filter { $0.hasPrefix(MetricName.waitSeconds + "_") }
        let paths = wait.map { String($0.split(separator: "\"")[1]) }
        XCTAssertEqual(paths.reduce(into: [String]()) { if $0.last != $1 { $0.append($1) } }, ["/a", "/m", "/z"], wait.joined(separator: "\n"))
        let first = wait.filter { $0.contains(#"path="/a""#) }
        let bounds = first.compactMap { line in line.range(of: #"le=""#).map { line[$0.upperBound...].prefix { $0 != "\"" } } }
            .map { $0 == "+Inf" ? Double.infinity : Double($0) ?? -1 }
        XCTAssertGreaterThan(bounds.count, 2)
        XCTAssertEqual(bounds, bounds.sorted(), first.joined(separator: "\n"))
        XCTAssertEqual(bounds.last, .infinity)
        XCTAssertTrue(first.prefix(bounds.count).allSatisfy { $0.contains("_bucket{") }, first.joined(separator: "\n"))
        XCTAssertEqual(first.count, bounds.count + 2, "the buckets, then _sum and _count")
    }

    /// The grant time of a lock /proc/locks shows: the event grant of the same file and
    /// kind to the same pid; for an OFD lock (pid -1) the earliest grant; nothing for
    /// another pid or kind, or once the holders are replaced.
    func testGrantTimeMatchesFileKindAndPid() {
        let events = EventMetrics(maxPaths: 20)
        let file = FileIdentity(major: 0xfe, minor: 0, inode: 1)
        events.setHolders([EventHolder(file: file, kind: .flock, pid: 100, since: 5_000),
                           EventHolder(file: file, kind: .flock, pid: 200, since: 1_000),
                           EventHolder(file: file, kind: .ofd, pid: 300, since: 7_000),
                           EventHolder(file: file, kind: .ofd, pid: 301, since: 6_000)])
        XCTAssertEqual(events.grantTime(of: Self.lock("/a", inode: 1, waiters: 0, pid: 100)), 5_000)
        XCTAssertEqual(events.grantTime(of: Self.lock("/a", inode: 1, waiters: 0, pid: 200)), 1_000)
        XCTAssertNil(events.grantTime(of: Self.lock("/a", inode: 1, waiters: 0, pid: 999)))
        XCTAssertNil(events.grantTime(of: Self.lock("/a", inode: 1, kind: .posix, waiters: 0, pid: 100)))
        XCTAssertNil(events.grantTime(of: Self.lock("/a", inode: 2, waiters: 0, pid: 100)))
        XCTAssertEqual(events.grantTime(of: Self.lock("/a", inode: 1, kind: .ofd, waiters: 0, pid: -1)), 6_000)
        events.setHolders([])
        XCTAssertNil(events.grantTime(of: Self.lock("/a", inode: 1, waiters: 0, pid: 100)))
    }

    func testContentNegotiation() {
        XCTAssertEqual(ExpositionFormat.negotiate(accept: nil), .text)
        XCTAssertEqual(ExpositionFormat.negotiate(accept: "*/*"), .text)
        XCTAssertEqual(ExpositionFormat.negotiate(accept: "text/plain; version=0.0.4"), .text)
        XCTAssertEqual(ExpositionFormat.negotiate(accept: "application/openmetrics-text"), .openMetrics)
        // What Prometheus 2.x sends.
        XCTAssertEqual(ExpositionFormat.negotiate(accept: "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"), .openMetrics)
        XCTAssertEqual(ExpositionFormat.negotiate(accept: "application/openmetrics-text;q=0"), .text)
        XCTAssertEqual(ExpositionFormat.negotiate(accept: "text/plain;q=1, application/openmetrics-text;q=0.5"), .text)
    }

    func testListenAddress() {
        XCTAssertEqual(ListenAddress(parsing: "127.0.0.1:9743"), ListenAddress(host: "127.0.0.1", port: 9743))
        XCTAssertEqual(ListenAddress(parsing: "[::1]:0"), ListenAddress(host: "::1", port: 0))
        XCTAssertEqual(ListenAddress(parsing: "localhost:80")?.host, "localhost")
        for bad in ["", "9743", ":9743", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "::1:80", "[::1]80", "a b:1", "h:1x", "h:１２"] {
            XCTAssertNil(ListenAddress(parsing: bad), bad)
        }
        XCTAssertEqual(ListenAddress(host: "::1", port: 5).description, "[::1]:5")
    }

    func testSchedClock() {
        let text = "cat (8794, #threads: 1)\n---\nse.exec_start                                :        374333.313327\nse.vruntime : 1\n"
        XCTAssertEqual(SchedClock.execStartMilliseconds(Array(text.utf8)), 374333.313327)
        XCTAssertNil(SchedClock.execStartMilliseconds(Array("nr_switches : 3\nx.se.exec_start : 4\n".utf8)))
        XCTAssertNil(SchedClock.execStartMilliseconds(Array("se.exec_start".utf8)))
        XCTAssertNil(SchedClock.execStartMilliseconds(nil))
    }

    func testAtomicFileReplacesAndReportsErrno() throws {
        let dir = NSTemporaryDirectory() + "lockscope-metrics-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try AtomicFile.write(Array("one\n".utf8), to: dir + "/x.prom")
        try AtomicFile.write(Array("two\n".utf8), to: dir + "/x.prom")
        XCTAssertEqual(try String(contentsOfFile: dir + "/x.prom", encoding: .utf8), "two\n")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["x.prom"])  // no temp file left
        XCTAssertThrowsError(try AtomicFile.write([], to: dir + "/missing/x.prom")) { e in
            XCTAssertEqual((e as? AtomicFile.WriteError)?.errno, ENOENT)
        }
    }
}
