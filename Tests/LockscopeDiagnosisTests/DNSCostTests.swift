import XCTest
@testable import LockscopeCore
@testable import LockscopeDiagnosis
import LockscopeTrace

/// The worst-case cost of a lookup that gets no answer, per glibc's send_dg():
/// nameserver i waits max(1, (timeout << i) / (i > 0 ? N : 1)) seconds, every
/// round; `attempts` rounds; ×2 names when a search list applies.
/// The live test in DNSLiveTests measures the same numbers against a blackhole.
final class DNSCostTests: XCTestCase {
    func conf(_ servers: Int, _ options: String, search: String? = nil) -> ResolvConf {
        var text = (0..<servers).map { "nameserver 10.0.0.\($0 + 1)\n" }.joined()
        if let search { text += "search \(search)\n" }
        if !options.isEmpty { text += "options \(options)\n" }
        return ResolvConf.parse(text)
    }

    func testIncidentTimeout2Attempts2ThreeServersIs10Seconds() {
        let c = DNSCost(conf: conf(3, "timeout:2 attempts:2"))
        XCTAssertEqual(c.perServerSeconds, [2, 1, 2])   // 2, 4/3, 8/3
        XCTAssertEqual(c.perRoundSeconds, 5)
        XCTAssertEqual(c.perQuerySeconds, 10)
        XCTAssertEqual(c.worstCaseSeconds, 10)
        XCTAssertEqual(c.naiveSeconds, 12, "timeout × attempts × nameservers, the bound usually quoted")
        XCTAssertEqual(c.formula, "2 s + 1 s + 2 s = 5 s per round × 2 attempts = 10 s per query")
    }

    func testTable() {
        // (servers, options, per-server, per-query)
        let cases: [(Int, String, [Int], Int)] = [
            (1, "", [5], 10),                          // defaults: timeout:5 attempts:2
            (3, "", [5, 3, 6], 28),                    // defaults with three servers
            (1, "timeout:1 attempts:1", [1], 1),       // the incident's fix
            (2, "timeout:3 attempts:1", [3, 3], 6),
            (3, "timeout:1 attempts:3", [1, 1, 1], 9), // (1<<1)/3 = 0 → at least 1
            (1, "timeout:20", [20], 40),               // the incident's 20 s stall per poll
            (3, "timeout:30 attempts:5", [30, 20, 40], 450),
            (3, "timeout:2 attempts:1", [2, 1, 2], 5),
            (1, "timeout:0", [1], 2),                  // 0 → at least one second
        ]
        for (n, opts, per, total) in cases {
            let c = DNSCost(conf: conf(n, opts))
            XCTAssertEqual(c.perServerSeconds, per, "\(n) servers, \(opts)")
            XCTAssertEqual(c.perQuerySeconds, total, "\(n) servers, \(opts)")
        }
    }

    func testRotateAndSingleRequestDoNotChangeTheWorstCase() {
        let base = DNSCost(conf: conf(3, "timeout:2 attempts:2")).worstCaseSeconds
        XCTAssertEqual(DNSCost(conf: conf(3, "timeout:2 attempts:2 rotate")).worstCaseSeconds, base)
        let single = DNSCost(conf: conf(3, "timeout:2 attempts:2 single-request"))
        XCTAssertEqual(single.worstCaseSeconds, base)
        XCTAssertTrue(single.sequentialFamilies)
    }

    func testSearchListDoublesTheNamesTried() {
        let c = DNSCost(conf: conf(3, "timeout:2 attempts:2", search: "corp.example svc.example"))
        XCTAssertEqual(c.namesTried, 2, "first search domain, then the name as-is; glibc stops the list on a timeout")
        XCTAssertEqual(c.worstCaseSeconds, 20)
        XCTAssertEqual(DNSCost(conf: c.conf, searchApplies: false).worstCaseSeconds, 10, "a trailing dot skips the search list")
    }

    func testUseVCIsOneTryPerServer() {
        XCTAssertEqual(DNSCost(conf: conf(2, "timeout:2 attempts:3 use-vc")).attempts, 1)
    }

    func testShorteningsSayWhichOptionHelps() {
        let c = DNSCost(conf: conf(3, "timeout:2 attempts:2 rotate"))
        let s = c.shortenings
        // Single changes, cheapest result first, then all of them together.
        XCTAssertEqual(s.map(\.change), ["one nameserver (a local caching resolver)", "options attempts:1",
                                         "options timeout:1", "all of the above"])
        let byChange = Dictionary(uniqueKeysWithValues: s.map { ($0.change, $0.worstCaseSeconds) })
        XCTAssertEqual(byChange["options timeout:1"], 6)       // [1,1,1] × 2
        XCTAssertEqual(byChange["options attempts:1"], 5)      // [2,1,2] × 1
        XCTAssertEqual(byChange["one nameserver (a local caching resolver)"], 4)  // [2] × 2
        XCTAssertEqual(byChange["all of the above"], 1)
        XCTAssertFalse(s.contains { $0.change.contains("rotate") })
    }

    func testNothingToShortenAtTheMinimum() {
        XCTAssertEqual(DNSCost(conf: conf(1, "timeout:1 attempts:1")).shortenings, [])
    }
}

/// The kernel engine's per-try DNS evidence, on built calls: a send and a whole
/// poll timeout on nameserver 1, a poll begun before the window, one still waiting.
final class DNSTriesTests: XCTestCase {
    func testEachWaitNamesItsServerAndExactDuration() {
        let conf = ResolvConf.parse("nameserver 127.0.0.141\nnameserver 127.0.0.142\noptions timeout:1\n")
        let ns1 = B.socketFd(3, B.udp("127.0.0.1", 40000, "127.0.0.141", 53))
        let ns2 = B.socketFd(3, B.udp("127.0.0.1", 40001, "127.0.0.142", 53))
        let other = B.socketFd(4, B.udp("127.0.0.1", 40002, "127.0.0.9", 8080))
        func poll(_ fd: ResolvedFd) -> DecodedSyscall { B.call("poll", B.pollArgs(fd, ms: 1000), classes: [.poll]) }
        let send = B.call("sendmmsg", [DecodedArgument(name: "fd", value: .fd(ns1))], classes: [.net])
        var t = B.thread(9, "S", "poll", nil)
        t.calls = [
            ObservedCall(startSeconds: 0, durationSeconds: 0.4, call: poll(ns1), result: .value(0), startedBefore: true),
            ObservedCall(startSeconds: 0.4, durationSeconds: 0.00002, call: send, result: .value(2)),
            ObservedCall(startSeconds: 0.4, durationSeconds: 1.0012, call: poll(ns1), result: .value(0)),
            ObservedCall(startSeconds: 1.4, durationSeconds: 0.3, call: poll(other), result: .value(1)),
            ObservedCall(startSeconds: 1.5, durationSeconds: 0.5, call: poll(ns2), result: nil),
        ]
        let (calls, waits) = Rules.dnsTries(t, conf: conf)
        XCTAssertEqual(waits, [
            "127.0.0.141:53 (nameserver 1): poll 1000 ms timeout → no answer after at least 0.400 s",
            "127.0.0.141:53 (nameserver 1): poll 1000 ms timeout → no answer after 1.001 s",
            "127.0.0.142:53 (nameserver 2): poll 1000 ms timeout → still waiting after 0.500 s",
        ])
        XCTAssertEqual(calls.count, 4, "\(calls)")   // not the poll on port 8080
        XCTAssertTrue(calls[1].hasPrefix("+0.400 s sendmmsg(3 UDP"), calls[1])
        XCTAssertTrue(calls[1].hasSuffix(" = 2 <0.000020>"), calls[1])
        XCTAssertTrue(calls[0].hasPrefix("before poll("), calls[0])
        XCTAssertTrue(calls[3].hasSuffix(" = ? (unfinished) <0.500000>"), calls[3])
    }
}
