import XCTest
import LockscopeCore
import LockscopeRender
@testable import LockscopeTrace

/// Text and JSON for decoded calls: the lines people and programs read.
final class TraceRenderTests: XCTestCase {
    let udp = NetSocket(proto: .udp, inode: 77, local: NetEndpoint(address: "127.0.0.1", port: 56750),
                        remote: NetEndpoint(address: "127.0.0.53", port: 53), state: "ESTABLISHED")

    func poll() -> DecodedSyscall {
        DecodedSyscall(arch: .x86_64, number: 7, name: "poll", classes: [.poll, .desc, .blocking], args: [
            DecodedArgument(name: "fds", value: .pollFds([PollFd(fd: ResolvedFd(fd: 4, what: .socket(udp)), events: 1)])),
            DecodedArgument(name: "nfds", value: .uint(1)),
            DecodedArgument(name: "timeout", value: .timeout(.relative(nanoseconds: 3_000_000_000))),
        ], raw: [0x7fff0000, 1, 0xbb8, 0, 0, 0])
    }

    func testIncidentCallText() {
        XCTAssertEqual(CallText.call(poll()), "poll([{fd=4 UDP 127.0.0.1:56750 → 127.0.0.53:53, POLLIN}], 1, 3000 ms)")
        let flock = DecodedSyscall(arch: .x86_64, number: 73, name: "flock", classes: [.lock], args: [
            DecodedArgument(name: "fd", value: .fd(ResolvedFd(fd: 3, what: .path("/run/xtables.lock")))),
            DecodedArgument(name: "operation", value: .flockOperation(FlockOperation(raw: 2))),
        ], raw: [3, 2, 0, 0, 0, 0])
        XCTAssertEqual(CallText.call(flock), "flock(3 /run/xtables.lock, LOCK_EX)")
        XCTAssertEqual(CallText.value(.timeout(.relative(nanoseconds: 5_000_000_000))), "5 s")
        XCTAssertEqual(CallText.value(.timeout(.infinite)), "∞")
        XCTAssertEqual(TraceText.result(.error(errno: 4, name: "EINTR")), "-1 EINTR (errno 4)")
    }

    /// A hostile file name never reaches the terminal raw, but JSON keeps it exact.
    func testHostileNamesEscapedInTextExactInJSON() {
        let name = "/tmp/evil\n\u{1b}[31mred"
        let v = ArgumentValue.fd(ResolvedFd(fd: 5, what: .path(name)))
        XCTAssertEqual(CallText.value(v), "5 /tmp/evil\\n\\e[31mred")
        let json = JSONValue.object([("a", .object([("name", .string("fd"))] + TraceJSON.valueFields(v)))]).serialized(pretty: false)
        XCTAssertTrue(json.contains("\"path\":\"/tmp/evil\\n\\u001b[31mred\""), json)
    }

    func testCallJSON() {
        let j = TraceJSON.call(poll()).serialized(pretty: false)
        XCTAssertTrue(j.hasPrefix("{\"name\":\"poll\",\"number\":7,\"arch\":\"x86_64\",\"classes\":[\"poll\",\"desc\",\"blocking\"]"), j)
        XCTAssertTrue(j.contains("{\"name\":\"fds\",\"type\":\"pollfds\",\"value\":[{\"fd\":4,\"target\":{\"kind\":\"socket\",\"proto\":\"UDP\",\"inode\":77,\"local\":\"127.0.0.1:56750\",\"remote\":\"127.0.0.53:53\""), j)
        XCTAssertTrue(j.contains("{\"name\":\"timeout\",\"type\":\"timeout\",\"kind\":\"relative\",\"ms\":3000.000}"), j)
    }

    /// Where trace text and diagnosis text used to print the same call differently,
    /// the one format's choice (docs/trace.md lists them).
    func testOneFormatForEveryOutput() {
        XCTAssertEqual(CallText.value(.clock(1)), "CLOCK_MONOTONIC")
        XCTAssertEqual(CallText.value(.flags(FlagSet(raw: 0, names: [], unknown: 0))), "0")
        XCTAssertEqual(CallText.value(.pollFds([PollFd(fd: ResolvedFd(fd: 3, what: nil), events: 0)])), "[{fd=3, 0}]")
        XCTAssertEqual(CallText.value(.unreadable(address: 0x1000, errno: 14)), "0x1000 (EFAULT)")
        // l_pid is read on entry, before the kernel could set it: never shown.
        XCTAssertEqual(CallText.value(.flock(FlockRecord(type: 1, whence: 0, start: 0, length: 0, pid: -899315280))),
                       "{F_WRLCK, SEEK_SET, start=0, len=0}")
        let mapped = SyscallDecoder.sockaddr([10, 0, 0, 53] + [UInt8](repeating: 0, count: 14) + [0xff, 0xff, 10, 0, 0, 1, 0, 0, 0, 0])
        XCTAssertEqual(CallText.socketAddress(mapped), "[::ffff:10.0.0.1]:53")
    }

    func testDurationsInProse() {
        XCTAssertEqual(durationText(1.44), "1.4 s")
        XCTAssertEqual(durationText(2), "2 s")
        XCTAssertEqual(durationText(41), "41 s")
        XCTAssertEqual(durationText(123), "2 min 3 s")
        XCTAssertEqual(durationText(300), "5 min")
        XCTAssertEqual(durationText(1667), "27 min 47 s")
        XCTAssertEqual(durationText(3600), "1 h")
        XCTAssertEqual(durationText(100_000), "27 h 47 min")
    }

    func testFixedPoint() {
        XCTAssertEqual(TraceText.fixed(0.000735, places: 6), "0.000735")
        XCTAssertEqual(TraceText.fixed(12.5, places: 6), "12.500000")
        XCTAssertEqual(TraceText.fixed(0, places: 3), "0.000")
    }
}

extension TraceRenderTests {
    /// The byte writer and the text renderer agree on a full syscall line.
    func testSyscallLine() {
        let s = TracedSyscall(time: 1.5, pid: 10, tid: 11, call: poll(), result: .value(0), durationSeconds: 3.0012345,
                              inProgressAtAttach: true)
        XCTAssertEqual(TraceText().event(.syscall(s)),
                       "1.500000 [11] <in progress at attach> poll([{fd=4 UDP 127.0.0.1:56750 → 127.0.0.53:53, POLLIN}], 1, 3000 ms) = 0 <3.001235>")
        var err = s
        err.result = .error(errno: 4, name: "EINTR")
        err.inProgressAtAttach = false
        XCTAssertTrue(TraceText().event(.syscall(err)).hasSuffix(") = -1 EINTR (errno 4) <3.001235>"))
        var open = s
        open.result = nil
        open.durationSeconds = 2
        XCTAssertTrue(TraceText().event(.syscall(open)).hasSuffix(" = ? <unfinished, 2.00 s so far>"))
        var b = TraceBytes()
        b.hex(0xdeadbeef); b.put(" "); b.int(-42); b.put(" "); b.uint(18446744073709551615); b.put(" "); b.fixed(0.0000005, places: 6)
        XCTAssertEqual(b.string, "0xdeadbeef -42 18446744073709551615 0.000001")
        let pipe = ArgumentValue.fd(ResolvedFd(fd: 0, what: .pipe(inode: 9, peers: [PipePeer(pid: 5, fd: 1)])))
        XCTAssertEqual(CallText.value(pipe), "0 pipe:[9] ↔ 5:1")
        var pb = TraceBytes()
        pb.argument(DecodedArgument(name: "fd", value: pipe))
        XCTAssertEqual(pb.string, "0 pipe:[9] ↔ 5:1")
    }
}
