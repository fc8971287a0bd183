import XCTest
@testable import LockscopeCore
@testable import LockscopeDiagnosis
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
