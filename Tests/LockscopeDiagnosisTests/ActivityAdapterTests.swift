import XCTest
@testable import LockscopeCore
@testable import LockscopeDiagnosis
import LockscopeTrace

/// The tracer's sampler values → the view the rules read: each kind of call
/// becomes the right `BlockingCall`, and a sampled DNS wait ends as a
/// dns-timeout finding.
final class ActivityAdapterTests: XCTestCase {
    func call(_ name: String, _ classes: SyscallClass, _ args: [DecodedArgument]) -> DecodedSyscall {
        DecodedSyscall(arch: .host, number: 0, name: name, classes: classes, args: args, raw: [0, 0, 0, 0, 0, 0])
    }

    let dnsSocket = NetSocket(proto: .udp, inode: 77, local: NetEndpoint(address: "172.17.0.1", port: 40112),
                              remote: NetEndpoint(address: "10.0.0.1", port: 53), state: "ESTABLISHED")

    func pollOnDNS() -> DecodedSyscall {
        call("poll", [.poll, .blocking], [
            DecodedArgument(name: "fds", value: .pollFds([PollFd(fd: ResolvedFd(fd: 4, what: .socket(dnsSocket)), events: 1)])),
            DecodedArgument(name: "nfds", value: .uint(1)),
            DecodedArgument(name: "timeout", value: .timeout(.relative(nanoseconds: 2_000_000_000))),
        ])
    }

    func testPollOnAUDPSocketBecomesAnIOWaitWithThePeer() {
        let c = BlockingCall(pollOnDNS(), processTids: [10])
        guard case .io(let fds, let ms) = c else { return XCTFail("\(c)") }
        XCTAssertEqual(ms, 2000)
        XCTAssertEqual(fds.first?.fd, 4)
        XCTAssertEqual(fds.first?.what?.socket?.remote?.description, "10.0.0.1:53")
        XCTAssertEqual(fds.first?.what?.socket?.proto, .udp)
        XCTAssertEqual(fds.first.map { CallText.fd($0) }, "4 UDP 172.17.0.1:40112 → 10.0.0.1:53", "UDP has no state worth showing")
        XCTAssertEqual(CallText.call(pollOnDNS()), "poll([{fd=4 UDP 172.17.0.1:40112 → 10.0.0.1:53, POLLIN}], 1, 2000 ms)")
    }

    func testOtherCalls() {
        let flock = call("flock", [.lock, .blocking], [
            DecodedArgument(name: "fd", value: .fd(ResolvedFd(fd: 3, what: .path("/run/xtables.lock")))),
            DecodedArgument(name: "operation", value: .flockOperation(FlockOperation(raw: 2))),
        ])
        XCTAssertEqual(BlockingCall(flock, processTids: []), .lock(fd: 3, file: nil, path: "/run/xtables.lock", operation: "LOCK_EX"))
        let nb = call("flock", [.lock], [
            DecodedArgument(name: "fd", value: .fd(ResolvedFd(fd: 3, what: nil))),
            DecodedArgument(name: "operation", value: .flockOperation(FlockOperation(raw: 2 | 4))),
        ])
        XCTAssertNotEqual(BlockingCall(nb, processTids: []), .lock(fd: 3, file: nil, path: nil, operation: "LOCK_EX"))

        let wait = call("wait4", [.process, .blocking], [DecodedArgument(name: "pid", value: .waitTarget(.child(42)))])
        XCTAssertEqual(BlockingCall(wait, processTids: []), .waitChild(pid: 42))
        let waitAny = call("wait4", [.process, .blocking], [DecodedArgument(name: "pid", value: .waitTarget(.anyChild))])
        XCTAssertEqual(BlockingCall(waitAny, processTids: []), .waitChild(pid: nil))

        let sleep = call("nanosleep", [.sleep, .blocking], [DecodedArgument(name: "req", value: .timeout(.relative(nanoseconds: 1_500_000_000)))])
        XCTAssertEqual(BlockingCall(sleep, processTids: []), .sleep(seconds: 1.5))

        // pthread_join: the futex word is the joined thread's tid.
        let join = call("futex", [.futex, .blocking], [
            DecodedArgument(name: "uaddr", value: .futexWord(address: 0x7f00, value: 12)),
            DecodedArgument(name: "futex_op", value: .futexOperation(FutexOperation(raw: 0, command: "FUTEX_WAIT", isPrivate: false, realtime: false))),
        ])
        XCTAssertEqual(BlockingCall(join, processTids: [10, 12]), .futex(address: 0x7f00, ownerTid: 12))
        // A plain mutex word (0/1/2) names nobody.
        let mutex = call("futex", [.futex, .blocking], [
            DecodedArgument(name: "uaddr", value: .futexWord(address: 0x7f00, value: 2)),
            DecodedArgument(name: "futex_op", value: .futexOperation(FutexOperation(raw: 128, command: "FUTEX_WAIT", isPrivate: true, realtime: false))),
        ])
        XCTAssertEqual(BlockingCall(mutex, processTids: [10, 12]), .futex(address: 0x7f00, ownerTid: nil))

        // connect() to port 53 on a socket not yet connected: the address argument is the peer.
        let unconnected = NetSocket(proto: .udp, inode: 5, local: NetEndpoint(address: "0.0.0.0", port: 0))
        let connect = call("connect", [.net], [
            DecodedArgument(name: "sockfd", value: .fd(ResolvedFd(fd: 5, what: .socket(unconnected)))),
            DecodedArgument(name: "addr", value: .socketAddress(.inet(NetEndpoint(address: "10.0.0.2", port: 53)))),
        ])
        guard case .io(let fds, _) = BlockingCall(connect, processTids: []) else { return XCTFail() }
        XCTAssertEqual(fds.first?.what?.socket?.remote?.description, "10.0.0.2:53")
    }

    func testSampledDNSWaitEndsAsADNSFinding() throws {
        let thread = SampledThread(tid: 36057, name: "iptables", state: "S", samples: 100,
                                   histogram: [SampleCount(bucket: .syscall("poll"), count: 100, fraction: 1)],
                                   current: pollOnDNS(), currentObservedSeconds: 1.0, sinceLastRanSeconds: 1.4,
                                   wchan: "poll_schedule_timeout", cpuSeconds: 0, exited: false)
        let process = SampledProcess(pid: 36057, comm: "iptables", cmdline: ["iptables"], state: "S", tracerPid: 0,
                                     cpuSeconds: 0, threads: [thread], exited: false)
        let report = SamplerReport(hz: 100, requestedSeconds: 1, observedSeconds: 1, rounds: 100, interrupted: false,
                                   processes: [process], skipped: [.permissionDenied(pid: 99, errno: .permissionDenied)])
        let result = ActivityAdapter.result(report)
        XCTAssertEqual(result.uninspectable, [99])
        let act = try XCTUnwrap(result.activity[36057])
        XCTAssertEqual(act.threads.first?.inCallSeconds, 1.4, "the longer of the streak and the time since it last ran")
        XCTAssertEqual(act.threads.first?.runningFraction, 0)

        var input = B.incident()
        input.activity = result.activity
        let d = RuleEngine().diagnose(input)
        XCTAssertEqual(d.locks[0].cause?.rule, .dnsTimeout)
        XCTAssertEqual(d.locks[0].cause?["nameserver_index"], .int(1))
        XCTAssertEqual(d.locks[0].cause?["worst_case_seconds"], .int(10))
    }
}
