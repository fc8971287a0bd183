import LockscopeCore
@testable import LockscopeEvents
import Testing

@Suite struct AggregatorTests {
    let file = FileIdentity(major: 0xfe, minor: 0, inode: 16222403)

    @Test func recordedHolderWaiterAndFailedAttempt() throws {
        var agg = LockAggregator(paths: [file: "/tmp/lock"])
        var ops: [LockOperation] = []
        for e in try fixtureEvents("linux-6.18") { if let op = agg.apply(e) { ops.append(op) } }
        #expect(ops.map { "\($0.pid) \($0.outcome)" } == [
            "27889 acquired", "27893 failed(errno: 11)", "27892 queued", "27889 released", "27892 granted", "27892 released",
        ])
        #expect(ops[1].blockedBy == 27889 && ops[2].blockedBy == 27889)
        let s = agg.summary(now: agg.lastEventTime, durationSeconds: 1, lostEvents: 0)
        #expect(s.locks.count == 1)
        let l = try #require(s.locks.first)
        #expect(l.lock == LockKey(file: file, kind: .flock))
        #expect(l.path == "/tmp/lock")
        #expect((l.acquisitions, l.contended, l.failedAttempts) == (2, 1, 1))
        #expect(l.wait.count == 1 && abs(l.wait.max - 0.202623514) < 1e-9)
        #expect(abs(l.wait.p50 - 0.2026) < 0.003)
        #expect(l.hold.count == 2 && abs(l.hold.max - 0.302970504) < 1e-9)
        #expect(l.holder == nil && l.waitersNow == 0)
        let byPid = Dictionary(uniqueKeysWithValues: l.processes.map { ($0.pid, $0) })
        #expect(byPid.keys.sorted() == [27889, 27892, 27893])
        #expect(byPid[27889]?.comm == "flock" && byPid[27889]?.acquisitions == 1 && byPid[27889]?.waits == 0)
        #expect(byPid[27892]?.waits == 1 && abs((byPid[27892]?.waitSeconds ?? 0) - 0.202623514) < 1e-9)
        #expect(byPid[27893]?.failedAttempts == 1 && byPid[27893]?.acquisitions == 0)
    }

    // Synthetic events: a shell (100) runs `flock -n F true` every 0.5 s; three
    // attempts fail while 50 holds the lock, the fourth gets it.
    func header(_ t: Double, _ pid: Int32) -> SampleHeader {
        SampleHeader(time: UInt64(t * 1e9), cpu: 0, pid: pid, tid: pid)
    }
    func lock(_ t: Double, _ pid: Int32, owner: UInt64, type: LockType = .write, ret: Int32, flags: LockFlags = [.flock]) -> KernelEvent {
        .lock(LockEvent(header: header(t, pid), tracepoint: .flockLockInode, file: file, lockPid: UInt32(pid),
                        owner: owner, flags: flags, type: type, ret: ret))
    }

    @Test func retryLoopIsReportedUnderTheShell() throws {
        var agg = LockAggregator()
        var events: [KernelEvent] = [lock(0.1, 50, owner: 0x50, ret: 0)]
        for i in 0..<4 {
            let t = 1.0 + Double(i) * 0.5, child = Int32(101 + i)
            events.append(.fork(ForkEvent(header: header(t, 100), parentPid: 100, parentComm: InlineName("sh"),
                                          childPid: child, childComm: InlineName("sh"))))
            events.append(.exec(ExecEvent(header: header(t + 0.001, child), pid: child, oldPid: child, name: InlineName("flock"))))
            if i == 3 {
                events.append(lock(t + 0.002, child, owner: UInt64(child), ret: 0))
                events.append(lock(t + 0.003, child, owner: UInt64(child), type: .unlock, ret: 0, flags: [.flock, .close]))
            } else {
                events.append(lock(t + 0.002, child, owner: UInt64(child), ret: -11))
                events.append(lock(t + 0.003, child, owner: UInt64(child), type: .unlock, ret: 0, flags: [.flock, .close]))
            }
            events.append(.exit(ExitEvent(header: header(t + 0.004, child), pid: child, comm: InlineName("flock"), groupDead: true)))
            if i == 2 { events.append(lock(2.3, 50, owner: 0x50, type: .unlock, ret: 0)) }
        }
        for e in events { agg.apply(e) }
        let l = try #require(agg.summary(now: UInt64(3e9), durationSeconds: 3, lostEvents: 0).locks.first)
        #expect((l.acquisitions, l.failedAttempts, l.contended) == (2, 3, 0))
        #expect(l.processes.count == 2)
        let shell = try #require(l.processes.first { $0.pid == 100 })
        #expect(shell.comm == "sh")
        #expect(shell.attemptCommand == "flock")
        #expect(shell.attemptProcesses == 4 && shell.attempts == 4)
        #expect(shell.failedAttempts == 3 && shell.acquisitions == 1)
        #expect(abs((shell.retryIntervalSeconds ?? 0) - 0.5) < 1e-9)
        #expect(l.processes.contains { $0.pid == 50 && $0.acquisitions == 1 && abs($0.holdSeconds - 2.2) < 1e-9 })
    }

    /// `while ! timeout 5 flock -n F true; do sleep 0.5; done`: each attempt is a
    /// `timeout` (exits with it) running a `flock`. Folded under the shell, the
    /// first ancestor that outlives the attempts, not under each `timeout`.
    @Test func retryLoopThroughAnIntermediateIsFoldedUnderThePersistentAncestor() throws {
        var agg = LockAggregator()
        var events: [KernelEvent] = [lock(0.1, 50, owner: 0x50, ret: 0)]
        for i in 0..<3 {
            let t = 1.0 + Double(i) * 0.5, mid = Int32(200 + 2 * i), child = mid + 1
            events.append(.fork(ForkEvent(header: header(t, 100), parentPid: 100, parentComm: InlineName("sh"),
                                          childPid: mid, childComm: InlineName("sh"))))
            events.append(.exec(ExecEvent(header: header(t + 0.001, mid), pid: mid, oldPid: mid, name: InlineName("timeout"))))
            events.append(.fork(ForkEvent(header: header(t + 0.002, mid), parentPid: mid, parentComm: InlineName("timeout"),
                                          childPid: child, childComm: InlineName("timeout"))))
            events.append(.exec(ExecEvent(header: header(t + 0.003, child), pid: child, oldPid: child, name: InlineName("flock"))))
            events.append(lock(t + 0.004, child, owner: UInt64(child), ret: -11))
            events.append(lock(t + 0.005, child, owner: UInt64(child), type: .unlock, ret: 0, flags: [.flock, .close]))
            events.append(.exit(ExitEvent(header: header(t + 0.006, child), pid: child, comm: InlineName("flock"), groupDead: true)))
            events.append(.exit(ExitEvent(header: header(t + 0.007, mid), pid: mid, comm: InlineName("timeout"), groupDead: true)))
        }
        for e in events { agg.apply(e) }
        #expect(agg.persistentAncestor(of: 201) == 100)
        let l = try #require(agg.summary(now: UInt64(3e9), durationSeconds: 3, lostEvents: 0).locks.first)
        let shell = try #require(l.processes.first { $0.pid == 100 })
        #expect(shell.attemptCommand == "flock" && shell.attemptProcesses == 3 && shell.failedAttempts == 3)
        #expect(shell.attemptPids == [201, 203, 205])
        #expect(abs((shell.retryIntervalSeconds ?? 0) - 0.5) < 1e-9)
        #expect(!l.processes.contains { $0.pid >= 200 })
    }

    @Test func waiterKilledWhileQueuedIsAbandoned() {
        var agg = LockAggregator()
        agg.apply(lock(0, 1, owner: 1, ret: 0))
        let queued = agg.apply(lock(1, 2, owner: 2, ret: 1, flags: [.flock, .sleep]))
        #expect(queued?.outcome == .queued && queued?.blockedBy == 1)
        let gone = agg.apply(.exit(ExitEvent(header: header(3, 2), pid: 2, comm: InlineName("flock"), groupDead: true)))
        #expect(gone?.outcome == .abandoned && gone?.waited == 2_000_000_000)
        let l = agg.summary(now: UInt64(4e9), durationSeconds: 4, lostEvents: 0).locks[0]
        #expect(l.abandonedWaits == 1 && l.contended == 0 && l.waitersNow == 0)
        #expect(l.holder == 1 && l.holderSeconds == 4)
    }

    @Test func posixAndOfdAreSeparateLocksAndUpgradesAreOneHold() {
        var agg = LockAggregator()
        func posix(_ t: Double, _ pid: Int32, _ type: LockType, ret: Int32 = 0, ofd: Bool = false) -> KernelEvent {
            .lock(LockEvent(header: header(t, pid), tracepoint: .posixLockInode, file: file, lockPid: UInt32(pid),
                            owner: UInt64(pid), flags: ofd ? [.posix, .ofd] : [.posix], type: type, ret: ret))
        }
        agg.apply(posix(0, 7, .read))
        agg.apply(posix(0.5, 7, .write))  // upgrade: the same hold
        agg.apply(posix(1, 7, .unlock))
        agg.apply(posix(1, 8, .write, ofd: true))
        agg.apply(posix(1.2, 9, .write, ret: -11, ofd: true))
        let s = agg.summary(now: UInt64(2e9), durationSeconds: 2, lostEvents: 0)
        let posixLock = s.locks.first { $0.lock.kind == .posix }, ofdLock = s.locks.first { $0.lock.kind == .ofd }
        #expect(posixLock?.acquisitions == 1 && posixLock?.hold.count == 1 && posixLock?.hold.max == 1)
        #expect(ofdLock?.acquisitions == 1 && ofdLock?.failedAttempts == 1 && ofdLock?.holder == 8)
    }
}
