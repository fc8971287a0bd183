import Foundation
import Glibc
import LockscopeTestSupport
import XCTest
@testable import LockscopeCore

#if arch(x86_64)
let sysFlock: Int32 = 73
let sysFcntl: Int32 = 72
#elseif arch(arm64)
let sysFlock: Int32 = 32
let sysFcntl: Int32 = 25
#endif

/// The lock graph on real processes holding real locks (lockscope-testbed,
/// flock(1)). Every assertion names exact pids.
final class LiveGraphTests: XCTestCase {
    var dir: TempDir!
    var spawned: [Testbed] = []

    override func setUpWithError() throws {
        try requireRoot("live lock graphs read every process's fds and fdinfo")
        dir = try TempDir()
    }

    override func tearDown() {
        spawned.forEach { $0.terminate() }
        spawned = []
        dir?.remove()
    }

    func start(_ steps: [String]) throws -> Testbed {
        let t = try Testbed.spawn(steps, maxSeconds: 60)
        spawned.append(t)
        return t
    }

    func holdReady(_ steps: [String]) throws -> Testbed {
        let t = try start(steps)
        try t.waitForReady()
        return t
    }

    func blocked(_ steps: [String], in syscall: Int32) throws -> Testbed {
        let t = try start(steps)
        try waitUntilBlocked(t.pid, inSyscall: syscall)
        return t
    }

    func report(_ path: String, openers: Bool = true) throws -> LockReport {
        let target = try TargetResolver().resolve(path)
        return try LockScanner().report(for: [target], options: .init(openers: openers))
    }

    func testFlockSharedWithChildAndFiveWaitersBlockedByTheHolder() throws {
        let f = try dir.touch("shared.lock")
        let parent = try start(["open:\(f)", "flock:ex", "fork", "sleep:60000"])
        let child = try XCTUnwrap(parent.waitForChildren(1).first)
        try parent.waitForReady()
        var waiters: [Testbed] = []
        for _ in 0..<5 { waiters.append(try blocked(["open:\(f)", "flock:ex"], in: sysFlock)) }

        for openers in [false, true] {  // kcmp scan (who) and link scan (waiters) agree
            let r = try report(f, openers: openers)
            let lock = try XCTUnwrap(r.locks.first)
            XCTAssertEqual(r.locks.count, 1)
            XCTAssertEqual(lock.holders.map(\.pid), [parent.pid, child], "openers=\(openers)")
            XCTAssertEqual(lock.holders.map(\.isOwner), [true, false])
            XCTAssertEqual(lock.waiters.map(\.pid), waiters.map(\.pid))
            XCTAssertEqual(lock.waiters.map(\.blockedBy), Array(repeating: parent.pid, count: 5))
            XCTAssertEqual(lock.waiters.map(\.tid), waiters.map(\.pid))
            XCTAssertEqual(lock.waiters.map(\.queuePosition), [1, 2, 3, 4, 5])
            XCTAssertTrue(r.openers.isEmpty, "blocked waiters are not openers")
        }
    }

    func testFlockOneSharedWithTheCommandItRuns() throws {
        let flock = try XCTUnwrap(which("flock"), "flock(1) from util-linux (scripts/setup installs it)")
        let sleep = try XCTUnwrap(which("sleep"))
        let f = try dir.touch("flock1.lock")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: flock)
        p.arguments = [f, sleep, "60"]
        try p.run()
        defer { p.terminate(); kill(-p.processIdentifier, SIGKILL); p.waitUntilExit() }
        var child: pid_t = 0
        XCTAssertTrue(waitUntil(timeout: 5) {
            child = (readProcText("/proc/\(p.processIdentifier)/task/\(p.processIdentifier)/children") ?? "")
                .split(separator: " ").compactMap { pid_t($0) }.first ?? 0
            return child > 0 && !fdsHoldingLocks(pid: child).isEmpty
        })
        defer { kill(child, SIGKILL) }
        let lock = try XCTUnwrap(try report(f, openers: false).locks.first)
        XCTAssertEqual(lock.holders.map(\.pid), [p.processIdentifier, child])
        XCTAssertEqual(lock.holders.first?.process?.comm, "flock")
        XCTAssertEqual(lock.holders.last?.process?.comm, "sleep")
    }

    func testOFDHolderAndOFDWaiter() throws {
        let f = try dir.touch("ofd.lock")
        let holder = try holdReady(["open:\(f)", "ofd:w:0:0"])
        let waiter = try blocked(["open:\(f)", "ofd:w:0:0"], in: sysFcntl)
        let r = try report(f)
        let lock = try XCTUnwrap(r.locks.first)
        XCTAssertEqual(lock.kind, .ofd)
        XCTAssertEqual(lock.kernelPid, -1)
        XCTAssertEqual(lock.ownerStatus, .ofd)
        XCTAssertEqual(lock.holders.map(\.pid), [holder.pid])
        XCTAssertEqual(lock.waiters.map(\.pid), [waiter.pid])
        XCTAssertEqual(lock.waiters.first?.blockedBy, holder.pid)
        XCTAssertEqual(lock.waiters.first?.tid, waiter.pid)
        XCTAssertTrue(r.openers.isEmpty)
        // Asked for by identity only: the path is learnt from the holder.
        let byIdentity = try LockScanner().report(for: [Target(argument: "id", file: lock.file!, path: nil)])
        XCTAssertEqual(byIdentity.locks.first?.holders.map(\.pid), [holder.pid])
        XCTAssertEqual(byIdentity.targets.first?.path, f)
    }

    func testTwoPosixRangesEachWaiterBlockedByTheRightHolder() throws {
        let f = try dir.touch("ranges.lock")
        let a = try holdReady(["open:\(f)", "posix:w:0:100"])
        let b = try holdReady(["open:\(f)", "posix:w:200:100"])
        let wa = try blocked(["open:\(f)", "posix:w:50:10"], in: sysFcntl)
        let wb = try blocked(["open:\(f)", "posix:r:250:1"], in: sysFcntl)
        let r = try report(f)
        XCTAssertEqual(r.locks.count, 2)
        let la = try XCTUnwrap(r.locks.first { $0.kernelPid == a.pid })
        let lb = try XCTUnwrap(r.locks.first { $0.kernelPid == b.pid })
        XCTAssertEqual([la.start, la.end], [0, 99])
        XCTAssertEqual([lb.start, lb.end], [200, 299])
        XCTAssertEqual(la.waiters.map(\.pid), [wa.pid])
        XCTAssertEqual(la.waiters.map(\.blockedBy), [a.pid])
        XCTAssertEqual(lb.waiters.map(\.pid), [wb.pid])
        XCTAssertEqual(lb.waiters.map(\.blockedBy), [b.pid])
        XCTAssertEqual(lb.waiters.first?.access, .read)
    }

    func testLockKeptAliveByDaemonisedChildAfterTheLockingParentExited() throws {
        let f = try dir.touch("leaked.lock")
        let starter = try start(["open:\(f)", "flock:ex", "daemonize", "sleep:60000"])
        let daemon = try XCTUnwrap(starter.waitForChildren(1).first)
        XCTAssertEqual(starter.waitForExit(timeout: 5), 0, "the locking parent exits")
        let waiter = try blocked(["open:\(f)", "flock:ex"], in: sysFlock)
        let r = try report(f)
        let lock = try XCTUnwrap(r.locks.first)
        XCTAssertEqual(lock.kernelPid, starter.pid, "/proc/locks still names the exited parent")
        XCTAssertEqual(lock.ownerStatus, .gone)
        XCTAssertEqual(lock.holders.map(\.pid), [daemon])
        XCTAssertEqual(lock.holders.map(\.isOwner), [false])
        XCTAssertEqual(lock.waiters.map(\.pid), [waiter.pid])
        XCTAssertEqual(lock.waiters.first?.blockedBy, daemon)
    }

    func testLockNBPollersAreOpenersNotWaiters() throws {
        let f = try dir.touch("polled.lock")
        let holder = try holdReady(["open:\(f)", "flock:ex"])
        let pollers = try (0..<2).map { _ in try start(["open:\(f)", "poll-lock:200"]) }
        let idle = try holdReady(["open-ro:\(f)"])
        for p in pollers {
            try p.waitFor(line: "ok open")
        }
        XCTAssertTrue(waitUntil(timeout: 5) {
            pollers.allSatisfy { p in [230, 35].contains(syscallNumber(of: p.pid) ?? -1) }
        })
        let r = try report(f)
        XCTAssertEqual(r.locks.first?.holders.map(\.pid), [holder.pid])
        XCTAssertEqual(r.locks.first?.waiters.count, 0)
        // A snapshot sees an attempt only when it catches one (LOCK_NB in flight): asleep
        // between attempts, a poller of a plain file is idle (open, asleep); lock events see more.
        XCTAssertEqual(Set(r.openers.map(\.pid)), Set(pollers.map(\.pid) + [idle.pid]))
        for p in pollers {
            let o = try XCTUnwrap(r.openers.first { $0.pid == p.pid })
            XCTAssertTrue(o.activity == .polling || (o.activity == .idle && o.asleep), "\(o)")
        }
        XCTAssertEqual(r.openers.first { $0.pid == idle.pid }?.activity, .idle)
        XCTAssertEqual(r.openers.first { $0.pid == idle.pid }?.asleep, false)
        // `who` does not look for openers (kcmp scan).
        XCTAssertTrue(try report(f, openers: false).openers.isEmpty)
    }

    func testHostileFileName() throws {
        let f = dir.file("evil\nname\u{1b}[31m.lock")
        let holder = try holdReady(["open:\(f)", "flock:ex"])
        let r = try report(f)
        XCTAssertEqual(r.locks.first?.holders.map(\.pid), [holder.pid])
        XCTAssertEqual(r.locks.first?.path, f)
        let cli = try runCommand([TestBinaries.lockscope, "who", f])
        XCTAssertEqual(cli.exitCode, 0, cli.stderr)
        XCTAssertFalse(cli.stdout.contains("\u{1b}"), "no raw escape reaches the terminal")
        XCTAssertTrue(cli.stdout.contains("evil\\nname\\e[31m.lock"), cli.stdout)
        XCTAssertTrue(cli.stdout.contains(" \(holder.pid) "), cli.stdout)
    }

    func testWaitersJSONThroughTheCLI() throws {
        let f = try dir.touch("cli.lock")
        let holder = try holdReady(["open:\(f)", "flock:ex"])
        let w1 = try blocked(["open:\(f)", "flock:ex"], in: sysFlock)
        let w2 = try blocked(["open:\(f)", "flock:sh"], in: sysFlock)
        let r = try runCommand([TestBinaries.lockscope, "waiters", "--json", f])
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let lock = try XCTUnwrap((obj["locks"] as? [[String: Any]])?.first)
        XCTAssertEqual((lock["holders"] as? [[String: Any]])?.map { $0["pid"] as? Int }, [Int(holder.pid)])
        let waiters = try XCTUnwrap(lock["waiters"] as? [[String: Any]])
        XCTAssertEqual(waiters.map { $0["pid"] as? Int }, [Int(w1.pid), Int(w2.pid)])
        XCTAssertEqual(waiters.map { $0["blocked_by"] as? Int }, [Int(holder.pid), Int(holder.pid)])
        XCTAssertEqual(waiters.map { $0["direct_blocker"] as? Int }, [Int(holder.pid), Int(w1.pid)])
        XCTAssertEqual(waiters.map { $0["access"] as? String }, ["WRITE", "READ"])
        XCTAssertEqual(waiters.map { $0["comm"] as? String }, ["lockscope-testb", "lockscope-testb"])
        // Text groups identical waiters.
        let text = try runCommand([TestBinaries.lockscope, "waiters", f])
        XCTAssertTrue(text.stdout.contains("lockscope-testb ×2"), text.stdout)
        XCTAssertTrue(text.stdout.contains("blocked by \(holder.pid)"), text.stdout)
    }

    func testWithoutRootStillAnswersFromProcLocks() throws {
        let setpriv = try XCTUnwrap(which("setpriv"), "setpriv from util-linux")
        let f = try dir.touch("unprivileged.lock")
        chmod(dir.path, 0o755)
        chmod(f, 0o644)
        let holder = try holdReady(["open:\(f)", "flock:ex"])
        let r = try runCommand([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", TestBinaries.lockscope, "who", "--json", f])
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let lock = try XCTUnwrap((obj["locks"] as? [[String: Any]])?.first)
        XCTAssertEqual((lock["holders"] as? [[String: Any]])?.first?["pid"] as? Int, Int(holder.pid))
        let coverage = try XCTUnwrap(obj["coverage"] as? [String: Any])
        XCTAssertGreaterThan(coverage["processes_denied"] as? Int ?? 0, 0, "unreadable processes are counted once")
        let text = try runCommand([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", TestBinaries.lockscope, "who", f])
        XCTAssertEqual(text.stdout.components(separatedBy: "could not be inspected").count, 2, "reported once: \(text.stdout)")
    }

    /// Two processes take READ on the whole file (flock LOCK_SH, POSIX F_RDLCK), a third
    /// asks for WRITE: two granted locks with one holder each, the writer queued behind
    /// one — the shapes `LockGraphTests` builds by hand. A lock identity without the
    /// owner would give both locks both holders.
    func testTwoReadersOnOneRangeAreTwoGraphLocksWithOneHolderEach() throws {
        for (read, write, nr) in [("flock:sh", "flock:ex", sysFlock), ("posix:r:0:0", "posix:w:0:0", sysFcntl)] {
            let f = try dir.touch("readers-\(nr).lock")
            let a = try holdReady(["open:\(f)", read]), b = try holdReady(["open:\(f)", read])
            let w = try blocked(["open:\(f)", write], in: nr)
            let graph = LockGraph(try report(f).locks)
            XCTAssertEqual(Set(graph.locks.map(\.id.owner)), [a.pid, b.pid], read)
            XCTAssertEqual(Set(graph.locks.map(\.access)), [.read], read)
            for l in graph.locks { XCTAssertEqual(l.holders.map(\.pid), [l.id.owner], read) }
            let waited = graph.locksWaited(by: w.pid)
            XCTAssertEqual(waited.count, 1, read)
            XCTAssertEqual(waited.first.map { graph.locksHeld(by: $0.id.owner).map(\.id) }, waited.first.map { [$0.id] }, read)
            XCTAssertTrue(graph.cycles.isEmpty, read)
            spawned.forEach { $0.terminate() }
            spawned = []
        }
    }
}
