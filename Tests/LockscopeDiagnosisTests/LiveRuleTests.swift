import XCTest
import Glibc
@testable import LockscopeCore
@testable import LockscopeDiagnosis
import LockscopeTrace
import Foundation
import LockscopeTestSupport

/// One live end-to-end test per rule: real processes (lockscope-testbed, flock(1),
/// python3 for a futex wait, a frozen loop-mounted filesystem for D state, a
/// loopback blackhole DNS server in a private mount namespace), then the real
/// `Diagnoser` with the sampler, asserting the rule id, the pids in its evidence
/// and the key numbers. Everything runs on loopback; only processes the test
/// started are stopped.
final class LiveRuleTests: XCTestCase {
    var beds: [Testbed] = []
    var dirs: [TempDir] = []
    var cleanups: [() -> Void] = []

    override func tearDown() {
        for c in cleanups.reversed() { c() }
        cleanups = []
        for b in beds { b.terminate() }
        beds = []
        for d in dirs { d.remove() }
        dirs = []
        super.tearDown()
    }

    func tempDir() throws -> TempDir {
        let d = try TempDir(prefix: "lockscope-diag.")
        dirs.append(d)
        return d
    }

    @discardableResult
    func bed(_ steps: [String], wrapper: [String] = [], waitFor line: String? = nil) throws -> Testbed {
        let b = try Testbed.spawn(steps, maxSeconds: 120, wrapper: wrapper)
        beds.append(b)
        if let line { try b.waitFor(line: line) }
        return b
    }

    /// Blocks until the kernel lists `count` waiters on `path`'s lock.
    func waitQueued(_ path: String, _ count: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let id = try TargetResolver().resolve(path).file
        let ok = waitUntil(timeout: 10) {
            let locks = ProcLocksParser.parse(readProcText("/proc/locks") ?? "").locks
            return (locks.first { $0.lock.file == id }?.waiters.count ?? 0) >= count
        }
        XCTAssertTrue(ok, "\(count) waiter(s) never queued on \(path)", file: file, line: line)
    }

    func diagnose(_ path: String, window: Double = 0.5) throws -> Diagnosis {
        let target = try TargetResolver().resolve(path)
        return try Diagnoser(window: window, hz: 100, provider: Diagnoser.liveProvider()).diagnose(targets: [target])
    }

    func finding(_ d: Diagnosis, _ rule: RuleID, pid: Int32? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> Finding {
        let f = d.findings.first { $0.rule == rule && (pid == nil || $0.pid == pid) }
        return try XCTUnwrap(f, "no \(rule.rawValue) finding\(pid.map { " for pid \($0)" } ?? ""); got: "
            + d.findings.map { "\($0.rule.rawValue)[\($0.pid)]: \($0.summary)" }.joined(separator: " | ")
            + "\nverdict: " + d.verdict.joined(separator: " / "), file: file, line: line)
    }

    // MARK: - dns-timeout

    /// The incident: three blackhole nameservers on loopback (UDP sockets that
    /// never answer), a resolv.conf with timeout:2 attempts:2 bind-mounted over
    /// /etc/resolv.conf in the holder's private mount namespace (unshare(1) -m), the
    /// holder takes the flock and resolves a name, two waiters queue.
    func testDNSTimeoutInPrivateMountNamespace() throws {
        try requireRoot("bind-mounting resolv.conf in a private mount namespace")
        try requireExecutable("unshare")
        let dir = try tempDir()
        let lock = try dir.touch("xtables.lock")
        let (servers, conf) = try blackholeResolvConf(dir, count: 3, options: "timeout:2 attempts:2")
        // It looks the name up again and again, so a lookup is in progress whenever we look.
        let holder = try bed(["open:" + lock, "flock:ex"] + Array(repeating: "resolve:lockscope-test.invalid", count: 10),
                             wrapper: privateResolvConf(conf), waitFor: "ok flock:ex")
        let w1 = try bed(["open:" + lock, "flock:ex"], waitFor: "pid ")
        let w2 = try bed(["open:" + lock, "flock:ex"], waitFor: "pid ")
        try waitQueued(lock, 2)
        try waitUntilBlocked(holder.pid, inSyscall: 7)  // poll

        let d = try diagnose(lock)
        let f = try finding(d, .dnsTimeout, pid: holder.pid)
        // Which server it is waiting for depends on when we look; the evidence must agree with itself.
        guard case .int(let index)? = f["nameserver_index"], (1...3).contains(index) else { return XCTFail("nameserver_index: \(f)") }
        XCTAssertEqual(f["peer"], .string(servers[Int(index) - 1] + ":53"))
        XCTAssertEqual(f["timeout_ms"], .int([2000, 1000, 2000][Int(index) - 1]), "glibc gives server i max(1, (2 << i) / 3) s")
        XCTAssertEqual(f["nameservers"], .strings(servers))
        XCTAssertEqual(f["per_server_seconds"], .ints([2, 1, 2]))
        XCTAssertEqual(f["per_query_seconds"], .int(10))
        XCTAssertEqual(f["worst_case_seconds"], .int(10))
        XCTAssertEqual(f["naive_seconds"], .int(12))
        XCTAssertEqual(d.locks[0].cause?.rule, .dnsTimeout)
        XCTAssertEqual(Set(d.locks[0].lock.waiters.map(\.pid)), [w1.pid, w2.pid])
        XCTAssertEqual(d.outcome, .contention)
        XCTAssertTrue(d.verdict[0].contains("Holder lockscope-testb[\(holder.pid)] is stuck in a DNS lookup: poll() on UDP → \(servers[Int(index) - 1]):53 (nameserver \(index) of 3)"), d.verdict[0])
        XCTAssertTrue(d.verdict[0].contains("resolv.conf \"timeout:2 attempts:2\" with 3 nameservers makes one failed lookup cost up to 10 s."), d.verdict[0])
    }

    /// The cost model against glibc itself: timeout:2 attempts:1 with three
    /// nameservers that never answer takes 2 + 1 + 2 = 5 s (the naive product says 6).
    func testMeasuredLookupMatchesTheCostModel() throws {
        try requireRoot("bind-mounting resolv.conf in a private mount namespace")
        try requireExecutable("unshare")
        let dir = try tempDir()
        let (_, conf) = try blackholeResolvConf(dir, count: 3, options: "timeout:2 attempts:1")
        let model = DNSCost(conf: ResolvConf.parse(try String(contentsOfFile: conf, encoding: .utf8)))
        XCTAssertEqual(model.worstCaseSeconds, 5)
        let b = try bed(["sleep:200", "resolve:lockscope-test.invalid"], wrapper: privateResolvConf(conf))
        try b.waitFor(line: "ok sleep:200")
        let start = MonotonicClock.seconds
        try b.waitFor(line: "resolve-error", timeout: 20)
        let took = MonotonicClock.seconds - start
        // 5 s by the model; the naive timeout × attempts × servers would be 6 s.
        XCTAssertGreaterThanOrEqual(took, 4.8, "getaddrinfo took \(took) s")
        XCTAssertLessThan(took, 5.8, "getaddrinfo took \(took) s")
    }

    /// The kernel engine's evidence (the default as root): each try of the lookup
    /// in the window, server by server, with the exact time glibc waited. With
    /// timeout:1 and 3 blackhole nameservers each server gets 1 s, so a 2.5 s
    /// window holds at least one whole poll timeout and the move to the next server.
    func testDNSRetriesWithExactDurationsFromTheKernelEngine() throws {
        try requireRoot("bind-mounting resolv.conf in a private mount namespace; the kernel engine")
        try requireExecutable("unshare")
        if case .failure(let why) = KernelTracer().probe() { try skip("kernel engine unavailable: \(why)") }
        let dir = try tempDir()
        let lock = try dir.touch("xtables.lock")
        let (servers, conf) = try blackholeResolvConf(dir, count: 3, options: "timeout:1 attempts:1")
        let holder = try bed(["open:" + lock, "flock:ex"] + Array(repeating: "resolve:lockscope-test.invalid", count: 10),
                             wrapper: privateResolvConf(conf), waitFor: "ok flock:ex")
        let w = try bed(["open:" + lock, "flock:ex"], waitFor: "pid ")
        try waitQueued(lock, 1)
        try waitUntilBlocked(holder.pid, inSyscall: 7)  // poll

        let d = try diagnose(lock, window: 2.5)
        XCTAssertEqual(d.activitySource, .kernel)
        XCTAssertNil(d.activityFallback)
        XCTAssertEqual(d.activity[holder.pid]?.source, .kernel)
        let f = try finding(d, .dnsTimeout, pid: holder.pid)
        guard case .strings(let waits)? = f["nameserver_waits"], case .strings(let calls)? = f["lookup_calls"] else {
            return XCTFail("no per-try evidence: \(f.evidence)")
        }
        // Whole waits: "127.0.0.X:53 (nameserver i): poll 1000 ms timeout → no answer after 1.00x s".
        // (The first one may have begun before the window: "after at least 0.4 s".)
        let whole = waits.filter { $0.contains(" → no answer after ") && !$0.contains("at least") }
        XCTAssertFalse(whole.isEmpty, "\(waits)")
        for wait in whole {
            XCTAssertTrue(servers.contains { wait.hasPrefix($0 + ":53 (nameserver ") }, wait)
            XCTAssertTrue(wait.contains(": poll 1000 ms timeout → "), wait)
            let took = Double(wait.split(separator: " ").dropLast().last ?? "") ?? 0
            XCTAssertGreaterThanOrEqual(took, 0.99, wait)
            XCTAssertLessThan(took, 1.5, wait)
        }
        // The lookup moved on: more than one server in the window, and each wait follows a send to it.
        XCTAssertGreaterThanOrEqual(Set(waits.map { $0.prefix { $0 != " " } }).count, 2, "\(waits)")
        XCTAssertTrue(calls.contains { $0.contains(" sendmmsg(") || $0.contains(" sendto(") }, "\(calls)")
        XCTAssertTrue(calls.contains { $0.contains(" poll(") && $0.hasSuffix(">") }, "\(calls)")
        XCTAssertEqual(Set(d.locks[0].lock.waiters.map(\.pid)), [w.pid])
    }

    /// Without root the kernel engine cannot run: `diagnose` samples instead and
    /// says so (a note in the text, `activity_fallback` in JSON). Holder, waiter
    /// and lockscope all run as nobody.
    func testWithoutRootTheSamplerRunsAndSaysWhy() throws {
        try requireRoot("drops to nobody with setpriv")
        try requireExecutable("setpriv")
        let nobody = [which("setpriv")!, "--reuid=65534", "--regid=65534", "--clear-groups"]
        let dir = try tempDir()
        chmod(dir.path, 0o777)
        let lock = dir.file("lock")
        let holder = try bed(["open:" + lock, "flock:ex", "sleep:30000"], wrapper: nobody, waitFor: "ok flock:ex")
        _ = try bed(["open:" + lock, "flock:ex"], wrapper: nobody, waitFor: "pid ")
        try waitQueued(lock, 1)
        try waitUntilSleeping(holder.pid)
        let text = try runCommand(nobody + [TestBinaries.lockscope, "diagnose", "--window", "0.3", lock])
        if text.stderr.contains("Permission denied") && text.exitCode == 126 { try skip("lockscope not executable by nobody here") }
        XCTAssertEqual(text.exitCode, 3, text.stderr)
        XCTAssertTrue(text.stdout.contains("note: activity from the sampler: kernel engine unavailable: the kernel engine needs root (perf tracepoints and tracefs)"), text.stdout)
        let json = try runCommand(nobody + [TestBinaries.lockscope, "diagnose", "--json", "--window", "0.3", lock])
        let doc = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any], json.stdout)
        XCTAssertEqual(doc["activity_source"] as? String, "sampler")
        XCTAssertEqual(doc["activity_fallback"] as? String, "kernel engine unavailable: the kernel engine needs root (perf tracepoints and tracefs)")
        let holding = try finding(try diagnose(lock), .holderSleeping, pid: holder.pid)
        XCTAssertEqual(holding.pid, holder.pid)
    }

    // MARK: - wait-chain

    func testWaitChainToASleepingRootHolder() throws {
        let dir = try tempDir()
        let l1 = try dir.touch("first.lock"), l2 = try dir.touch("second.lock")
        let root = try bed(["open:" + l2, "flock:ex", "sleep:60000"], waitFor: "ok flock:ex")
        let middle = try bed(["open:" + l1, "flock:ex", "open:" + l2, "flock:ex"], waitFor: "ok flock:ex")
        let w = try bed(["open:" + l1, "flock:ex"], waitFor: "pid ")
        try waitQueued(l1, 1)
        try waitQueued(l2, 1)
        try waitUntilSleeping(root.pid)

        let d = try diagnose(l1)
        let f = try finding(d, .waitChain, pid: middle.pid)
        XCTAssertEqual(f["chain"], .pids([middle.pid, root.pid]))
        XCTAssertEqual(f["root_pid"], .pid(root.pid))
        XCTAssertEqual(f["root_rule"], .string("holder-sleeping"))
        XCTAssertEqual(d.locks[0].cause?.rule, .holderSleeping)
        XCTAssertEqual(d.locks[0].cause?.pid, root.pid)
        XCTAssertEqual(d.locks[0].lock.waiters.map(\.pid), [w.pid])
    }

    // MARK: - deadlock

    func testDeadlockOfTwoFlocks() throws {
        let dir = try tempDir()
        let a = try dir.touch("a.lock"), b = try dir.touch("b.lock")
        // p1 waits 2 s before wanting b, time enough for p2 to take it even on a busy machine.
        let p1 = try bed(["open:" + a, "flock:ex", "sleep:2000", "open:" + b, "flock:ex"], waitFor: "ok flock:ex")
        let p2 = try bed(["open:" + b, "flock:ex", "sleep:300", "open:" + a, "flock:ex"], waitFor: "ok flock:ex")
        try waitQueued(a, 1)
        try waitQueued(b, 1)

        let d = try diagnose(a)
        let f = try finding(d, .deadlock)
        XCTAssertEqual(Set(f.pids), [p1.pid, p2.pid])
        guard case .pids(let members)? = f["members"], case .strings(let holds)? = f["holds"], case .strings(let wants)? = f["wants"] else {
            return XCTFail("evidence shape")
        }
        let byPid = Dictionary(uniqueKeysWithValues: zip(members, zip(holds, wants).map { ($0.0, $0.1) }))
        XCTAssertEqual(byPid[p1.pid]?.0, a)
        XCTAssertEqual(byPid[p1.pid]?.1, b)
        XCTAssertEqual(byPid[p2.pid]?.0, b)
        XCTAssertEqual(byPid[p2.pid]?.1, a)
        XCTAssertEqual(d.locks[0].cause?.rule, .deadlock)
        XCTAssertTrue(d.verdict[0].contains("Deadlock"), d.verdict[0])
    }

    // MARK: - leaked-fd

    /// The taker daemonises: its child inherits the locked descriptor (no O_CLOEXEC)
    /// and the taker exits; /proc/locks still names the dead taker.
    func testLeakedDescriptorOfADaemonisedChild() throws {
        let dir = try tempDir()
        let lock = try dir.touch("leak.lock")
        let taker = try bed(["open:" + lock, "flock:ex", "daemonize", "sleep:60000"])
        let keeper = try XCTUnwrap(try taker.waitForChildren(1).first)
        XCTAssertNotNil(taker.waitForExit(timeout: 5))
        let w = try bed(["open:" + lock, "flock:ex"], waitFor: "pid ")
        try waitQueued(lock, 1)

        let d = try diagnose(lock)
        let f = try finding(d, .leakedFd)
        XCTAssertEqual(f["kernel_pid"], .pid(taker.pid))
        XCTAssertEqual(f["owner_status"], .string("gone"))
        XCTAssertEqual(f["keepers"], .pids([keeper]))
        XCTAssertEqual(d.locks[0].lock.waiters.map(\.pid), [w.pid])
        // What the keeper itself does is reported too.
        XCTAssertNotNil(d.findings.first { $0.rule == .holderSleeping && $0.pid == keeper })
    }

    // MARK: - holder-waits-child

    /// `flock FILE sleep 60`: flock(1) holds (as /proc/locks says) and waits in wait4
    /// for its child, which shares the locked descriptor and is the one asleep.
    func testFlockCommandWaitsForItsChild() throws {
        try requireExecutable("flock")
        let dir = try tempDir()
        let lock = try dir.touch("cmd.lock")
        let flock = try bed(["sleep:60000"], wrapper: [which("flock")!, lock, "/bin/sh", "-c", "echo pid $$; exec sleep 60", "sh"])
        _ = flock
        var child: Int32 = 0
        XCTAssertTrue(waitUntil(timeout: 10) {
            let ids = self.children(of: flock.spawnedPid)
            if let c = ids.first, (readProcText("/proc/\(c)/comm") ?? "").hasPrefix("sleep") { child = c; return true }
            return false
        })
        let w = try bed(["open:" + lock, "flock:ex"], waitFor: "pid ")
        try waitQueued(lock, 1)
        try waitUntilBlocked(flock.spawnedPid, inSyscall: 61)  // wait4

        let d = try diagnose(lock)
        let f = try finding(d, .holderWaitsChild, pid: flock.spawnedPid)
        XCTAssertEqual(f["children"], .pids([child]))
        XCTAssertEqual(f["children_sharing_lock"], .pids([child]))
        XCTAssertEqual(f["child_rule"], .string("holder-sleeping"))
        XCTAssertEqual(d.locks[0].cause?.pid, child)
        XCTAssertEqual(d.locks[0].lock.waiters.map(\.pid), [w.pid])
        XCTAssertTrue(d.verdict[0].contains("Holder flock[\(flock.spawnedPid)] waits for its child sleep[\(child)], which shares the lock"), d.verdict[0])
    }

    func children(of pid: Int32) -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }.filter { p in
            readProcText("/proc/\(p)/stat").flatMap(StatFields.parse)?.ppid == pid
        }.sorted()
    }

    // MARK: - holder-stopped

    func testStoppedHolder() throws {
        let dir = try tempDir()
        let lock = try dir.touch("stopped.lock")
        let h = try bed(["open:" + lock, "flock:ex"], waitFor: "ready")
        kill(h.pid, SIGSTOP)
        cleanups.append { kill(h.pid, SIGCONT) }
        XCTAssertTrue(waitUntil { (readProcText("/proc/\(h.pid)/stat") ?? "").contains(") T ") })
        _ = try bed(["open:" + lock, "flock:ex"], waitFor: "pid ")
        try waitQueued(lock, 1)

        let d = try diagnose(lock)
        let f = try finding(d, .holderStopped, pid: h.pid)
        XCTAssertEqual(f["state"], .string("T"))
        XCTAssertTrue(f.suggestion.contains("kill -CONT \(h.pid)"))
        XCTAssertEqual(f.severity, .critical)
    }

    // MARK: - holder-io

    /// D state for real: the holder creates a file on a frozen ext4 filesystem
    /// (loop device in the test's directory; fsfreeze), which blocks in
    /// sb_start_write until it is thawed.
    func testHolderInUninterruptibleIO() throws {
        try requireRoot("loop-mounting and freezing a filesystem")
        for tool in ["mkfs.ext4", "mount", "umount", "fsfreeze", "truncate"] { try requireExecutable(tool) }
        let dir = try tempDir()
        let image = dir.file("fs.img"), mnt = dir.file("mnt")
        mkdir(mnt, 0o755)
        XCTAssertEqual(try runCommand([which("truncate")!, "-s", "16M", image]).exitCode, 0)
        XCTAssertEqual(try runCommand([which("mkfs.ext4")!, "-q", "-F", image]).exitCode, 0)
        let m = try runCommand([which("mount")!, "-o", "loop", image, mnt])
        if m.exitCode != 0 { try skip("cannot loop-mount here: \(m.stderr)") }
        // Torn down in reverse: thaw, stop the holder, unmount (the loop device detaches with it).
        cleanups.append { _ = try? runCommand([which("umount")!, mnt]) }
        let lock = try dir.touch("io.lock")
        let h = try bed(["open:" + lock, "flock:ex", "sleep:2000", "open:" + mnt + "/new-file"], waitFor: "ok flock:ex")
        cleanups.append { h.terminate() }
        let f0 = try runCommand([which("fsfreeze")!, "-f", mnt])
        if f0.exitCode != 0 { try skip("fsfreeze not supported here: \(f0.stderr)") }
        cleanups.append { _ = try? runCommand([which("fsfreeze")!, "-u", mnt]) }
        XCTAssertTrue(waitUntil { (readProcText("/proc/\(h.pid)/stat") ?? "").contains(") D ") }, "holder never entered D state")
        _ = try bed(["open:" + lock, "flock:ex"], waitFor: "pid ")
        try waitQueued(lock, 1)

        let d = try diagnose(lock)
        let f = try finding(d, .holderIO, pid: h.pid)
        XCTAssertEqual(f["state"], .string("D"))
        XCTAssertEqual(f["syscall"], .string("openat"))
        if case .string(let w)? = f["wchan"] { XCTAssertFalse(w.isEmpty) }
        // Root reads the kernel stack: the freeze shows in it.
        guard case .strings(let stack)? = f["kernel_stack"] else { return XCTFail("no kernel_stack as root") }
        XCTAssertTrue(stack.contains { $0.contains("percpu_rwsem") || $0.contains("sb_start_write") || $0.contains("mnt_want_write") }, "\(stack)")
    }

    // MARK: - holder-sleeping, holder-busy, holder-network

    func testSleepingHolder() throws {
        let dir = try tempDir()
        let lock = try dir.touch("sleep.lock")
        let h = try bed(["open:" + lock, "flock:ex", "sleep:60000"], waitFor: "ok flock:ex")
        _ = try bed(["open:" + lock, "flock:ex"], waitFor: "pid ")
        try waitQueued(lock, 1)
        try waitUntilSleeping(h.pid)
        let f = try finding(try diagnose(lock), .holderSleeping, pid: h.pid)
        XCTAssertEqual(f["sleep_seconds"], .double(60))
        guard case .string(let call)? = f["syscall"] else { return XCTFail("no syscall") }
        XCTAssertTrue(call.hasSuffix("nanosleep"), call)
    }

    func testBusyHolder() throws {
        let dir = try tempDir()
        let lock = try dir.touch("busy.lock")
        let h = try bed(["open:" + lock, "flock:ex", "spin:60000"], waitFor: "ok flock:ex")
        _ = try bed(["open:" + lock, "flock:ex"], waitFor: "pid ")
        try waitQueued(lock, 1)
        let d = try diagnose(lock, window: 0.8)
        let f = try finding(d, .holderBusy, pid: h.pid)
        guard case .double(let cpu)? = f["cpu_seconds"] else { return XCTFail("no cpu_seconds") }
        XCTAssertGreaterThan(cpu, 0.1, "a spinning holder used \(cpu) s of CPU in 0.8 s")
    }

    func testHolderBlockedOnANonDNSSocket() throws {
        let dir = try tempDir()
        let lock = try dir.touch("net.lock")
        // Port 9 (discard) on loopback: nothing answers; the testbed keeps polling.
        let h = try bed(["open:" + lock, "flock:ex", "udp-poll:127.0.0.1:9:60000"], waitFor: "ok flock:ex")
        _ = try bed(["open:" + lock, "flock:ex"], waitFor: "pid ")
        try waitQueued(lock, 1)
        try waitUntilBlocked(h.pid, inSyscall: 7)
        let f = try finding(try diagnose(lock), .holderNetwork, pid: h.pid)
        XCTAssertEqual(f["peer"], .string("127.0.0.1:9"))
        guard case .int(let ms)? = f["timeout_ms"] else { return XCTFail("no timeout_ms") }
        XCTAssertGreaterThan(ms, 50_000, "the testbed polls with a 60 s timeout")
        XCTAssertEqual(f["syscall"], .string("poll"))
    }

    // MARK: - holder-futex

    /// A user-space wait: python3 takes the flock, starts a thread and joins it
    /// (a futex wait in the main thread).
    func testHolderInFutexWait() throws {
        try requireExecutable("python3")
        let dir = try tempDir()
        let lock = try dir.touch("futex.lock")
        let script = """
        import fcntl, os, sys, threading, time
        f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX)
        print('pid', os.getpid(), flush=True); print('ok flock:ex', os.getpid(), flush=True)
        t = threading.Thread(target=time.sleep, args=(60,)); t.start(); t.join()
        """
        let h = try bed([], wrapper: [which("python3")!, "-c", script, lock], waitFor: "ok flock:ex")
        _ = try bed(["open:" + lock, "flock:ex"], waitFor: "pid ")
        try waitQueued(lock, 1)
        try waitUntilBlocked(h.spawnedPid, tid: h.spawnedPid, inSyscall: 202)  // futex
        let f = try finding(try diagnose(lock), .holderFutex, pid: h.spawnedPid)
        XCTAssertEqual(f["syscall"], .string("futex"))
        XCTAssertNotNil(f["futex_address"])
        XCTAssertEqual(f["threads"], .int(2))
    }

    // MARK: - helpers

    /// nanosleep(2), or clock_nanosleep(2) which glibc's nanosleep() uses.
    func waitUntilSleeping(_ pid: Int32) throws {
        XCTAssertTrue(waitUntil(timeout: 10) { [35, 230].contains(syscallNumber(of: pid) ?? 0) }, "pid \(pid) never slept")
    }

    /// `count` UDP sockets bound on loopback port 53 that never answer, held by a
    /// testbed, and a resolv.conf listing them with `options`.
    func blackholeResolvConf(_ dir: TempDir, count: Int, options: String) throws -> ([String], String) {
        var addresses: [String] = []
        let start = 60 + Int(getpid() % 150)
        for last in Array(start...254) + Array(60..<start) where addresses.count < count {
            let a = "127.0.0.\(last)"
            guard let b = try? bed(["blackhole:\(a):53"], waitFor: "ready") else { continue }
            if b.lines.contains(where: { $0.hasPrefix("blackhole 53") }) { addresses.append(a) } else { b.terminate() }
        }
        XCTAssertEqual(addresses.count, count, "could not bind \(count) loopback addresses on port 53")
        let conf = dir.file("resolv.conf")
        let text = addresses.map { "nameserver \($0)\n" }.joined() + "options \(options)\n"
        try text.write(toFile: conf, atomically: true, encoding: .utf8)
        return (addresses, conf)
    }

    /// Runs the testbed in a private mount namespace with `conf` over /etc/resolv.conf.
    func privateResolvConf(_ conf: String) -> [String] {
        [which("unshare")!, "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
         "mount --bind \"$0\" /etc/resolv.conf && shift && exec \"$@\"", conf, "--"]
    }

}
