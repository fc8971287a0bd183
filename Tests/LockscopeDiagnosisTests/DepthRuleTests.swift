import XCTest
@testable import LockscopeCore
@testable import LockscopeDiagnosis
import LockscopeEvents
@testable import LockscopeRender
import LockscopeTrace

/// holder-pipe, lease-break, sqlite-busy and lock-protocol on hand-built inputs
/// (DepthLiveTests builds the same situations with the real programs).
final class DepthRuleTests: XCTestCase {
    let engine = RuleEngine()

    /// `flock F yes | sleep 600`: flock (810) waits for yes (811), which shares the
    /// lock and blocks writing into the pipe whose only reader is sleep (812).
    func pipeInput(readerHistogram: [HistogramBin] = [HistogramBin(label: "clock_nanosleep", fraction: 1)]) -> DiagnosisInput {
        let flock = B.proc(810, "flock"), yes = B.proc(811, "yes", ppid: 810), sleep = B.proc(812, "sleep", ppid: 809)
        let waiter = B.proc(900, "flock", age: 4)
        let l = B.lock("/tmp/F", inode: 42, holders: [(flock, 3, true), (yes, 3, false)], waiters: [waiter])
        let pipeFd = ResolvedFd(fd: 1, what: .pipe(inode: 797254, peers: [PipePeer(pid: 812, fd: 0)]))
        let activity: [Int32: ProcessActivity] = [
            810: B.activity(810, [B.thread(810, "S", "wait4", .waitChild(pid: 811), inCall: 6)]),
            811: B.activity(811, [B.thread(811, "S", "write", .io(fds: [pipeFd], timeoutMs: nil), inCall: 6, wchan: "anon_pipe_write")]),
            812: B.activity(812, [B.thread(812, "S", "clock_nanosleep", .sleep(seconds: 600), inCall: 6, histogram: readerHistogram)]),
        ]
        return DiagnosisInput(report: LockReport(targets: [], locks: [l]), activity: activity,
                              processes: [810: flock, 811: yes, 812: sleep],
                              pipeEnds: [797254: [PipeEnd(pid: 811, fd: 1, side: .write), PipeEnd(pid: 812, fd: 0, side: .read)]])
    }

    func testHolderPipeNamesTheReaderThatNeverReads() throws {
        let d = engine.diagnose(pipeInput())
        let f = try XCTUnwrap(d.findings.first { $0.rule == .holderPipe })
        XCTAssertEqual(f.pid, 811)
        XCTAssertEqual(f["readers"], .pids([812]))
        XCTAssertEqual(f["direction"], .string("write"))
        XCTAssertEqual(d.locks[0].cause?.rule, .holderPipe)
        XCTAssertEqual(d.verdict, ["/tmp/F: 1 process waiting (oldest 4 s). Holder flock[810] waits for its child yes[811], which shares the lock. yes[811] is blocked writing into a full pipe; its only reader, sleep[812], never reads (in clock_nanosleep() for at least 6 s)."])
    }

    func testHolderPipeWhenTheReaderReadsAndWhenNobodyHasTheOtherEnd() throws {
        let reading = engine.diagnose(pipeInput(readerHistogram: [HistogramBin(label: "read", fraction: 0.3)]))
        let f = try XCTUnwrap(reading.findings.first { $0.rule == .holderPipe })
        XCTAssertTrue(f.summary.hasSuffix("its only reader, sleep[812], is in clock_nanosleep() for at least 6 s"), f.summary)

        var alone = pipeInput()
        alone.pipeEnds = [797254: [PipeEnd(pid: 811, fd: 1, side: .write)]]
        let g = try XCTUnwrap(engine.diagnose(alone).findings.first { $0.rule == .holderPipe })
        XCTAssertTrue(g.summary.contains("no process visible from here has its other end open"), g.summary)
        XCTAssertEqual(g["readers"], .pids([]))

        var notLooked = pipeInput()
        notLooked.pipeEnds = [:]
        let h = try XCTUnwrap(engine.diagnose(notLooked).findings.first { $0.rule == .holderPipe })
        XCTAssertTrue(h.summary.contains("its other end was not looked for"), h.summary)
    }

    /// A flock holder (820) blocked in sendto on a unix socket (inode 5001) whose peer
    /// socket (5002) is open only in 821, asleep.
    func socketInput(peer: UnixSocketPeer?) -> DiagnosisInput {
        let holder = B.proc(820, "python3"), sleeper = B.proc(821, "python3", ppid: 820)
        let l = B.lock("/tmp/F", inode: 46, holders: [(holder, 3, true)], waiters: [B.proc(901, "flock", age: 2)])
        let sock = NetSocket(proto: .unix, inode: 5001, state: "CONNECTED", unixType: "STREAM")
        let activity: [Int32: ProcessActivity] = [
            820: B.activity(820, [B.thread(820, "S", "sendto", .io(fds: [B.socketFd(4, sock)], timeoutMs: nil), inCall: 5,
                                           wchan: "unix_stream_sendmsg")]),
            821: B.activity(821, [B.thread(821, "S", "clock_nanosleep", .sleep(seconds: 600), inCall: 5,
                                           histogram: [HistogramBin(label: "clock_nanosleep", fraction: 1)])]),
        ]
        var input = DiagnosisInput(report: LockReport(targets: [], locks: [l]), activity: activity,
                                   processes: [820: holder, 821: sleeper])
        if let peer { input.unixPeers = [5001: peer] }
        return input
    }

    func testHolderBlockedOnAUnixSocketNamesThePeer() throws {
        let mine = UnixDiagSocket(inode: 5001, peer: 5002, type: 1, state: 1, receiveQueue: 0, sendQueue: 212992)
        let theirs = UnixDiagSocket(inode: 5002, peer: 5001, type: 1, state: 1, receiveQueue: 212992, sendQueue: 0)
        let d = engine.diagnose(socketInput(peer: UnixSocketPeer(socket: mine, peerSocket: theirs, ends: [PipeEnd(pid: 821, fd: 5, side: .both)])))
        let f = try XCTUnwrap(d.findings.first { $0.rule == .holderPipe })
        XCTAssertEqual(f.pid, 820)
        XCTAssertEqual(f["readers"], .pids([821]))
        XCTAssertEqual(f["peer_socket_inode"], .int(5002))
        XCTAssertEqual(f["peer_unread_bytes"], .int(212992))
        XCTAssertEqual(d.locks[0].cause?.rule, .holderPipe)
        XCTAssertEqual(f.summary, "python3[820] is blocked writing to a unix socket socket:[5001] whose peer python3[821] is not reading (in clock_nanosleep() for at least 5 s)")

        // Unix diag unavailable, or never asked: said so, never a guess.
        let off = engine.diagnose(socketInput(peer: UnixSocketPeer(socket: nil, ends: [], unavailable: "sock_diag: ENOENT")))
        let g = try XCTUnwrap(off.findings.first { $0.rule == .holderPipe })
        XCTAssertTrue(g.summary.hasSuffix("its peer could not be looked up (sock_diag: ENOENT)"), g.summary)
        let none = try XCTUnwrap(engine.diagnose(socketInput(peer: nil)).findings.first { $0.rule == .holderPipe })
        XCTAssertTrue(none.summary.hasSuffix("its other end was not looked for"), none.summary)
    }

    /// A named FIFO: the descriptor is a path; the kernel's wait channel (pipe_write)
    /// says it is a FIFO, and the other end comes from `fifoEnds` by that path.
    func testHolderBlockedOnANamedFifo() throws {
        var input = pipeInput()
        let fifo = ResolvedFd(fd: 1, what: .path("/tmp/q/fifo"))
        input.activity[811] = B.activity(811, [B.thread(811, "S", "write", .io(fds: [fifo], timeoutMs: nil), inCall: 6, wchan: "pipe_write")])
        input.pipeEnds = [:]
        input.fifoEnds = ["/tmp/q/fifo": [PipeEnd(pid: 811, fd: 1, side: .write), PipeEnd(pid: 812, fd: 0, side: .read)]]
        let d = engine.diagnose(input)
        let f = try XCTUnwrap(d.findings.first { $0.rule == .holderPipe })
        XCTAssertEqual(f["fifo"], .string("/tmp/q/fifo"))
        XCTAssertEqual(f["readers"], .pids([812]))
        XCTAssertTrue(f.summary.hasPrefix("yes[811] is blocked writing into a full FIFO /tmp/q/fifo; its only reader, sleep[812], never reads"), f.summary)
        // The same path in an ordinary write (a file, not in pipe_write) is not a FIFO.
        input.activity[811] = B.activity(811, [B.thread(811, "S", "write", .io(fds: [fifo], timeoutMs: nil), inCall: 6, wchan: "ext4_file_write_iter")])
        XCTAssertFalse(engine.diagnose(input).findings.contains { $0.rule == .holderPipe })
    }

    func leaseInput(masks: SignalMasks?, breakTime: Int? = 45) -> DiagnosisInput {
        var holder = B.proc(700, "python3")
        holder.signalMasks = masks
        let breaker = B.proc(701, "python3", age: 3)
        var l = B.lock("/tmp/leased", inode: 43, holders: [(holder, 3, true)], waiters: [breaker], kind: .lease)
        l.mode = "BREAKING"
        l.access = .unlock
        let activity: [Int32: ProcessActivity] = [
            700: B.activity(700, [B.thread(700, "S", "clock_nanosleep", .sleep(seconds: 600), inCall: 1)]),
            701: B.activity(701, [B.thread(701, "S", "openat", .other, inCall: 2, wchan: "__break_lease")]),
        ]
        return DiagnosisInput(report: LockReport(targets: [], locks: [l]), activity: activity,
                              processes: [700: holder, 701: breaker], leaseBreakTime: breakTime)
    }

    func testLeaseBreakSecondsLeftAndSignal() throws {
        let d = engine.diagnose(leaseInput(masks: SignalMasks(caught: 1 << 28)))
        let f = try XCTUnwrap(d.findings.first { $0.rule == .leaseBreak })
        XCTAssertEqual(f.pid, 700)
        XCTAssertEqual(f["breakers"], .pids([701]))
        XCTAssertEqual(f["seconds_left"], .double(42))          // 45 − the breaker's age (3 s)
        XCTAssertEqual(f["seconds_left_at_most"], .double(43))  // 45 − the 2 s it was seen in openat
        XCTAssertEqual(f["sigio"], .string("handled"))
        XCTAssertEqual(f["breaker_calls"], .strings(["python3[701]: openat()"]))
        XCTAssertEqual(d.locks[0].cause?.rule, .leaseBreak)
        XCTAssertTrue(d.verdict[0].contains("the kernel breaks it itself in 42 s–43 s (lease-break-time 45 s)"), d.verdict[0])

        let noHandler = try XCTUnwrap(engine.diagnose(leaseInput(masks: SignalMasks())).findings.first { $0.rule == .leaseBreak })
        XCTAssertEqual(noHandler["sigio"], .string("default"))
        // A half-read holder (status gone) and an unreadable lease-break-time still give the finding.
        let unknown = try XCTUnwrap(engine.diagnose(leaseInput(masks: nil, breakTime: nil)).findings.first { $0.rule == .leaseBreak })
        XCTAssertNil(unknown["sigio"])
        XCTAssertNil(unknown["seconds_left"])
        XCTAssertTrue(unknown.summary.contains("unreadable here"), unknown.summary)
    }

    /// Lock events saw the open that began the break 3.75 s before the end of the
    /// window: the clock is exact and says so; a break they saw already flagged keeps
    /// the estimate, and says why.
    func testLeaseBreakTimedFromLockEvents() throws {
        var input = leaseInput(masks: SignalMasks(caught: 1 << 28))
        input.report.lockEvents = .observed(seconds: 4, lostEvents: 0)
        input.leaseBreaks = [EventLeaseBreak(file: B.file(43), holder: 700, breaker: 701, breakerComm: "python3", write: true,
                                             deadlineSetSecondsAgo: 3.75)]
        let d = engine.diagnose(input)
        let f = try XCTUnwrap(d.findings.first { $0.rule == .leaseBreak })
        XCTAssertEqual(f["seconds_left"], .double(41.25))
        XCTAssertEqual(f["seconds_left_at_most"], .double(41.25))
        XCTAssertEqual(f["seconds_left_source"], .string("event"))
        XCTAssertEqual(f["break_started_seconds_ago"], .double(3.75))
        XCTAssertEqual(f["waited_at_least_seconds"], .double(3.75))
        XCTAssertEqual(f["waited_at_most_seconds"], .double(3.75))
        XCTAssertTrue(f.summary.contains("the kernel breaks it itself in 41 s (lease-break-time 45 s; the break began 3.8 s ago, seen by lock events)"),
                      f.summary)

        // Another lease's break (another file) changes nothing here.
        input.leaseBreaks[0].file = B.file(99)
        XCTAssertEqual(engine.diagnose(input).findings.first { $0.rule == .leaseBreak }?["seconds_left_source"], .string("estimate"))

        input.leaseBreaks = [EventLeaseBreak(file: B.file(43), holder: 0, breaker: nil, breakerComm: nil, write: true,
                                             deadlineSetSecondsAgo: nil)]
        let before = try XCTUnwrap(engine.diagnose(input).findings.first { $0.rule == .leaseBreak })
        XCTAssertEqual(before["seconds_left"], .double(42))
        XCTAssertEqual(before["seconds_left_source"], .string("estimate"))
        XCTAssertNil(before["break_started_seconds_ago"])
        XCTAssertTrue(before.summary.contains("in 42 s–43 s (lease-break-time 45 s; estimated: the break began before lock events were recording)"),
                      before.summary)

        // No lock events at all: the estimate, as before.
        let plain = try XCTUnwrap(engine.diagnose(leaseInput(masks: nil)).findings.first { $0.rule == .leaseBreak })
        XCTAssertEqual(plain["seconds_left_source"], .string("estimate"))
        XCTAssertTrue(plain.summary.contains("in 42 s–43 s (lease-break-time 45 s)"), plain.summary)
    }

    /// A lease held and not yet broken when the snapshot was read: a break the events
    /// saw begin makes it BREAKING with its breaker a waiter; a break they saw only
    /// flagged is the snapshot's business (it would show it), and another holder's
    /// break is not this lease's.
    func testLeaseBreakSeenOnlyByEventsJoinsTheReport() throws {
        let holder = B.proc(700, "python3"), breaker = B.proc(701, "python3", age: 9)
        var l = B.lock("/tmp/leased", inode: 43, holders: [(holder, 3, true)], kind: .lease)
        l.mode = "ACTIVE"
        l.access = .read
        var report = LockReport(targets: [], locks: [l])
        let fresh = EventLeaseBreak(file: B.file(43), holder: 700, breaker: 701, breakerComm: "python3", write: true,
                                    deadlineSetSecondsAgo: 1.5)
        var untouched = report
        untouched.add(leaseBreaks: [EventLeaseBreak(file: B.file(43), holder: 700, breaker: 701, breakerComm: nil, write: true,
                                                    deadlineSetSecondsAgo: nil),
                                    EventLeaseBreak(file: B.file(43), holder: 702, breaker: 701, breakerComm: nil, write: true,
                                                    deadlineSetSecondsAgo: 1)], facts: { _ in breaker })
        XCTAssertEqual(untouched.locks[0].mode, "ACTIVE")
        XCTAssertTrue(untouched.locks[0].waiters.isEmpty)

        report.add(leaseBreaks: [fresh, fresh], facts: { $0 == 701 ? breaker : nil })
        XCTAssertEqual(report.locks[0].mode, "BREAKING")
        XCTAssertEqual(report.locks[0].waiters.map(\.pid), [701], "once, however often it is listed")
        XCTAssertEqual(report.locks[0].waiters.first?.source, .event)
        XCTAssertEqual(report.locks[0].waiters.first?.access, .write)
        XCTAssertEqual(report.locks[0].waiters.first?.blockedBy, 700)

        var input = DiagnosisInput(report: report, activity: [:], processes: [700: holder], leaseBreakTime: 45)
        input.leaseBreaks = [fresh]
        input.report.lockEvents = .observed(seconds: 2, lostEvents: 0)
        let d = engine.diagnose(input)
        let f = try XCTUnwrap(d.findings.first { $0.rule == .leaseBreak })
        XCTAssertEqual(f["breakers"], .pids([701]))
        XCTAssertEqual(f["seconds_left"], .double(43.5))
        XCTAssertEqual(d.locks[0].blockedCount, 1)
        XCTAssertEqual(d.outcome, .contention)
    }

    /// The aggregator's pending breaks: the deadline is set by the conflicting open
    /// the events saw (`leases_conflict` then `break_lease_block`), not by a later
    /// opener; a lease first seen already flagged (`time_out_leases` with
    /// FL_UNLOCK_PENDING) has no known deadline; a write breaker after a read one
    /// sets a new `fl_break_time`.
    func testPendingLeaseBreaksFromTheAggregator() throws {
        let file = B.file(43)
        let holderFiles: UInt64 = 0xaaaa, lease: UInt64 = 0x1111
        func ev(_ t: Double, _ pid: Int32, _ tp: LockTracepoint, owner: UInt64 = 0, type: LockType = .write,
                flags: LockFlags = [.lease], lock: UInt64 = 0, blocker: UInt64 = 0, ret: Int32 = 0) -> KernelEvent {
            .lock(LockEvent(header: SampleHeader(time: UInt64(t * 1e9), cpu: 0, pid: pid, tid: pid), tracepoint: tp,
                            file: tp == .leasesConflict ? FileIdentity(major: 0, minor: 0, inode: 0) : file, owner: owner,
                            flags: flags, type: type, ret: ret, blocker: blocker, lock: lock, writers: 0, readers: 1))
        }
        var agg = LockAggregator()
        agg.apply(ev(0, 100, .genericAddLease, owner: holderFiles, type: .read))
        agg.apply(ev(1, 200, .timeOutLeases, owner: holderFiles, type: .read, lock: lease))
        agg.apply(ev(1, 200, .leasesConflict, type: .write, lock: lease, ret: 1))
        agg.apply(ev(1.001, 200, .breakLeaseBlock, owner: 0xbbbb, lock: 0x2222, blocker: lease))
        // A second writer does not move the deadline (FL_UNLOCK_PENDING is set already).
        agg.apply(ev(2, 300, .timeOutLeases, owner: holderFiles, type: .read, flags: [.lease, .unlockPending], lock: lease))
        agg.apply(ev(2, 300, .breakLeaseBlock, owner: 0xcccc, lock: 0x3333, blocker: lease))
        let b = try XCTUnwrap(agg.pendingLeaseBreaks(now: UInt64(4.5e9)).first)
        XCTAssertEqual(b.holder, 100)
        XCTAssertEqual(b.breaker, 200)
        XCTAssertTrue(b.write)
        XCTAssertEqual(try XCTUnwrap(b.deadlineSetSecondsAgo), 3.5, accuracy: 1e-9)

        var late = LockAggregator()
        late.apply(ev(2, 300, .timeOutLeases, owner: holderFiles, type: .read, flags: [.lease, .unlockPending], lock: lease))
        late.apply(ev(2, 300, .breakLeaseBlock, owner: 0xcccc, lock: 0x3333, blocker: lease))
        let seen = try XCTUnwrap(late.pendingLeaseBreaks(now: UInt64(3e9)).first)
        XCTAssertEqual(seen.holder, 0)
        XCTAssertNil(seen.deadlineSetSecondsAgo, "flagged before the events began")

        var escalated = LockAggregator()
        escalated.apply(ev(0, 100, .genericAddLease, owner: holderFiles, type: .write, lock: lease))
        escalated.apply(ev(1, 200, .timeOutLeases, owner: holderFiles, type: .write, lock: lease))
        escalated.apply(ev(1, 200, .leasesConflict, type: .read, lock: lease, ret: 1))
        escalated.apply(ev(3, 300, .timeOutLeases, owner: holderFiles, type: .write, flags: [.lease, .downgradePending], lock: lease))
        escalated.apply(ev(3, 300, .leasesConflict, type: .write, lock: lease, ret: 1))
        let up = try XCTUnwrap(escalated.pendingLeaseBreaks(now: UInt64(4e9)).first)
        XCTAssertTrue(up.write)
        XCTAssertEqual(try XCTUnwrap(up.deadlineSetSecondsAgo), 1, accuracy: 1e-9)
    }

    /// `flock F sh -c 'echo x > /tmp/x.fifo'` with no reader: flock (810) waits for sh
    /// (811, sharing the lock), blocked in openat of the FIFO, which only cat (813)
    /// has open, for writing too.
    func fifoOpenInput(wchan: String? = "wait_for_partner", ends: [PipeEnd] = [PipeEnd(pid: 813, fd: 1, side: .write)]) -> DiagnosisInput {
        let flock = B.proc(810, "flock"), sh = B.proc(811, "sh", ppid: 810), cat = B.proc(813, "cat")
        let l = B.lock("/tmp/F", inode: 42, holders: [(flock, 3, true), (sh, 3, false)], waiters: [B.proc(900, "flock", age: 4)])
        let open = [DecodedArgument(name: "dirfd", value: .atFdcwd),
                    DecodedArgument(name: "pathname", value: .string("/tmp/x.fifo", truncated: false)),
                    DecodedArgument(name: "flags", value: .flags(FlagSet(raw: 0o1101, names: ["O_WRONLY", "O_CREAT", "O_TRUNC"], unknown: 0)))]
        var input = DiagnosisInput(report: LockReport(targets: [], locks: [l]), activity: [
            810: B.activity(810, [B.thread(810, "S", "wait4", .waitChild(pid: 811), inCall: 6)]),
            811: B.activity(811, [B.thread(811, "S", "openat", .other, args: open, inCall: 6, wchan: wchan)]),
        ], processes: [810: flock, 811: sh, 813: cat])
        input.fifoOpens = [811: FifoOpening(path: "/tmp/x.fifo", inode: 5150, side: .write, ends: ends)]
        return input
    }

    func testHolderBlockedOpeningAFifoNobodyReads() throws {
        let d = engine.diagnose(fifoOpenInput())
        let f = try XCTUnwrap(d.findings.first { $0.rule == .holderPipe })
        XCTAssertEqual(f.pid, 811)
        XCTAssertEqual(f["fifo"], .string("/tmp/x.fifo"))
        XCTAssertEqual(f["fifo_inode"], .int(5150))
        XCTAssertEqual(f["fifo_open"], .bool(true))
        XCTAssertEqual(f["direction"], .string("write"))
        XCTAssertEqual(f["readers"], .pids([]))
        XCTAssertEqual(f["open_by"], .pids([813]))
        XCTAssertNil(f["fd"], "no descriptor yet")
        XCTAssertEqual(f.summary, "sh[811] is blocked opening the FIFO /tmp/x.fifo for writing for at least 6 s: no process has it open for reading (cat[813] has it open for writing)")
        XCTAssertEqual(d.locks[0].cause?.rule, .holderPipe)
        XCTAssertTrue(d.verdict[0].contains("Holder flock[810] waits for its child sh[811], which shares the lock. sh[811] is blocked opening the FIFO /tmp/x.fifo for writing"),
                      d.verdict[0])

        // Nobody else has it open: said plainly.
        let alone = try XCTUnwrap(engine.diagnose(fifoOpenInput(ends: [])).findings.first { $0.rule == .holderPipe })
        XCTAssertTrue(alone.summary.hasSuffix("no process has it open for reading"), alone.summary)
        XCTAssertEqual(alone["open_by"], .pids([]))

        // No longer waiting for a partner (it got one, or it is elsewhere in open()): not this finding.
        XCTAssertFalse(engine.diagnose(fifoOpenInput(wchan: "path_openat")).findings.contains { $0.rule == .holderPipe })
    }

    func sqliteInput(path: String = "/srv/app.db") -> DiagnosisInput {
        let holder = B.proc(500, "python3")
        var l = B.lock(path, inode: 44, holders: [(holder, 3, true)], kind: .posix)
        l.start = LockProtocols.pendingByte
        l.end = LockProtocols.sharedFirst + LockProtocols.sharedSize - 1
        let pollers = [B.proc(501, "python3", age: 3), B.proc(502, "python3", age: 2)]
        let openers = pollers.map { Opener(pid: $0.pid, fd: 3, file: B.file(44), activity: .polling, process: $0) }
        let activity: [Int32: ProcessActivity] = [500: B.activity(500, [B.thread(500, "S", "clock_nanosleep", .sleep(seconds: 600), inCall: 1)])]
        return DiagnosisInput(report: LockReport(targets: [], locks: [l], openers: openers), activity: activity,
                              processes: [500: holder])
    }

    func testSQLiteVerdictSpeaksSQLite() throws {
        let d = engine.diagnose(sqliteInput())
        XCTAssertEqual(d.locks[0].lockProtocol?.state, "EXCLUSIVE")
        let f = try XCTUnwrap(d.findings.first { $0.rule == .sqliteBusy })
        XCTAssertEqual(f["retrying"], .pids([501, 502]))
        XCTAssertEqual(f["state"], .string("EXCLUSIVE"))
        XCTAssertTrue(d.verdict[0].hasPrefix("SQLite database /srv/app.db: python3[500] holds the EXCLUSIVE lock (writing); 2 connections retry in SQLite's busy handler (oldest 3 s). Holder python3[500] is sleeping"), d.verdict[0])
    }

    /// WAL mode as python3's sqlite3 leaves it: 510 holds WAL_WRITE_LOCK (byte 120,
    /// WRITE), a read mark and DMS; 511 holds only DMS (byte 128, READ) and sleeps in
    /// the busy handler; 512 holds only DMS and is idle in read(): a reader, not waiting.
    func walInput() -> DiagnosisInput {
        let writer = B.proc(510, "python3"), waiting = B.proc(511, "python3", age: 7), idle = B.proc(512, "python3")
        func range(_ p: ProcessFacts, _ byte: Int64, _ access: LockAccess) -> LockEntry {
            var l = B.lock("/srv/app.db-shm", inode: 47, holders: [(p, 4, true)], kind: .posix)
            l.start = byte; l.end = byte; l.access = access
            return l
        }
        let locks = [range(writer, 120, .write), range(writer, 124, .read), range(writer, 128, .read),
                     range(waiting, 128, .read), range(idle, 128, .read)]
        let activity: [Int32: ProcessActivity] = [
            510: B.activity(510, [B.thread(510, "S", "clock_nanosleep", .sleep(seconds: 600), inCall: 9)]),
            511: B.activity(511, [B.thread(511, "S", "clock_nanosleep", .sleep(seconds: 0.1), inCall: 0.05,
                                           histogram: [HistogramBin(label: "clock_nanosleep", fraction: 0.9), HistogramBin(label: "fcntl", fraction: 0.1)])]),
            512: B.activity(512, [B.thread(512, "S", "read", .other, inCall: 9)]),
        ]
        return DiagnosisInput(report: LockReport(targets: [], locks: locks), activity: activity,
                              processes: [510: writer, 511: waiting, 512: idle])
    }

    func testWALWriterRetryingInTheBusyHandlerIsAWaiterNotAHolder() throws {
        let d = engine.diagnose(walInput())
        let f = try XCTUnwrap(d.findings.first { $0.rule == .sqliteBusy })
        XCTAssertEqual(f.pid, 510)
        XCTAssertEqual(f["state"], .string("WAL_WRITE_LOCK"))
        XCTAssertEqual(f["retrying"], .pids([511]))
        XCTAssertEqual(d.findings.filter { $0.rule == .sqliteBusy }.count, 1)
        let write = d.locks[0]
        XCTAssertEqual(write.pollingCount, 1)
        XCTAssertEqual(write.oldestWaitSeconds, 7)
        XCTAssertEqual(write.lockProtocol?.participant(511, wanted: true)?.state, "WAL_WRITE_LOCK")
        XCTAssertNil(write.lockProtocol?.participant(512, wanted: true))
        XCTAssertEqual(d.outcome, .contention)
        XCTAssertTrue(write.verdict.hasPrefix("SQLite database (WAL mode) /srv/app.db: python3[510] holds the WAL_WRITE_LOCK lock (writing); 1 connection retries in SQLite's busy handler"), write.verdict)
        // The other entries on the -shm count nobody twice.
        XCTAssertEqual(d.locks.dropFirst().map(\.pollingCount), [0, 0, 0, 0])

        // Nobody holds WAL_WRITE_LOCK: a sleeping connection with DMS is only a reader.
        var input = walInput()
        input.report.locks.removeFirst()
        XCTAssertFalse(engine.diagnose(input).findings.contains { $0.rule == .sqliteBusy })
    }

    func testUnrecognisedLocksKeepTodaysText() throws {
        var input = sqliteInput(path: "/tmp/plain")
        input.report.locks[0].start = 0
        input.report.locks[0].end = nil
        let d = engine.diagnose(input)
        XCTAssertNil(d.locks[0].lockProtocol)
        XCTAssertFalse(d.findings.contains { $0.rule == .sqliteBusy || $0.rule == .lockProtocol })
        XCTAssertTrue(d.verdict[0].hasPrefix("/tmp/plain: 2 processes waiting (polling; oldest 3 s)."), d.verdict[0])
    }

    /// A protocol path with control characters: the finding carries it as is, text escapes it.
    func testHostileProtocolPathStaysEscaped() throws {
        let holder = B.proc(600, "db")
        let l = B.lock("/srv/\u{1b}[2Jx/LOCK", inode: 45, holders: [(holder, 3, true)], waiters: [B.proc(601, "db", age: 1)], kind: .posix)
        let d = engine.diagnose(DiagnosisInput(report: LockReport(targets: [], locks: [l]), processes: [600: holder]))
        let f = try XCTUnwrap(d.findings.first { $0.rule == .lockProtocol })
        XCTAssertTrue(f.summary.contains("\u{1b}[2Jx"))
        let text = DiagnosisText(style: Style(color: false, width: nil)).render(d).joined(separator: "\n")
        XCTAssertFalse(text.contains("\u{1b}"), text)
        XCTAssertTrue(text.contains("\\e[2Jx"), text)
    }
}
