import XCTest
import Foundation
import Glibc
@testable import LockscopeCore
@testable import LockscopeDiagnosis
@testable import LockscopeRender
import LockscopeTestSupport

/// The holder followed one step further, on real programs: SQLite through python3's
/// sqlite3 module, `flock F yes | sleep 600`, a real lease broken by a writer, a
/// holder in its own pid namespace and holders in cgroups named like docker's and
/// a Kubernetes pod's. Only processes (and cgroups) the test made are removed.
final class DepthLiveTests: XCTestCase {
    var spawned: [Spawned] = []
    var dirs: [TempDir] = []
    var cleanups: [() -> Void] = []

    override func tearDown() {
        for s in spawned { s.terminate() }
        spawned = []
        for c in cleanups.reversed() { c() }
        cleanups = []
        for d in dirs { d.remove() }
        dirs = []
        super.tearDown()
    }

    func run(_ argv: [String], waitFor line: String? = nil) throws -> Spawned {
        let s = try Spawned(argv)
        spawned.append(s)
        if let line { try s.waitFor(line: line, timeout: 20) }
        return s
    }

    func python() throws -> String {
        try requireExecutable("python3")
        guard let p = which("python3") else { try skip("python3 not found") }
        return p
    }

    func tempDir() throws -> TempDir {
        let d = try TempDir(prefix: "lockscope-depth.")
        dirs.append(d)
        return d
    }

    func diagnose(_ path: String, window: Double = 0.5) throws -> Diagnosis {
        let target = try TargetResolver().resolve(path)
        return try Diagnoser(window: window, hz: 100, provider: Diagnoser.liveProvider()).diagnose(targets: [target])
    }

    func finding(_ d: Diagnosis, _ rule: RuleID, file: StaticString = #filePath, line: UInt = #line) throws -> Finding {
        try XCTUnwrap(d.findings.first { $0.rule == rule }, "no \(rule.rawValue); got: "
            + d.findings.map { "\($0.rule.rawValue)[\($0.pid)]: \($0.summary)" }.joined(separator: " | ")
            + "\nverdict: " + d.verdict.joined(separator: " / "), file: file, line: line)
    }

    /// The processes of a process group with their comm, from /proc/PID/stat.
    func members(ofGroup pgid: pid_t) -> [(pid: Int32, comm: String)] {
        ((try? ProcRoot().listPids()) ?? []).compactMap { pid in
            guard let s = readProcText("/proc/\(pid)/stat").flatMap(StatFields.parse), s.pgrp == pgid else { return nil }
            return (pid, s.comm)
        }
    }

    /// Waits until `count` processes poll the file (asleep between attempts, as the scanner sees them).
    func waitPolling(_ path: String, _ count: Int) throws {
        let target = try TargetResolver().resolve(path)
        let ok = waitUntil(timeout: 15, interval: 0.1) {
            let r = try? LockScanner().report(for: [target])
            return (r?.openers.filter { $0.activity == .polling }.count ?? 0) >= count
        }
        XCTAssertTrue(ok, "\(count) pollers never showed up on \(path)")
    }

    // MARK: - SQLite

    /// One python3 sqlite3 connection per mode on a fresh `app.db`, each started once
    /// the one before says `ready`.
    func sqliteConnections(_ script: String, _ modes: [String]) throws -> (db: String, [Spawned]) {
        let py = try python()
        try requireRoot("reading other processes' fdinfo to find the pollers")
        let db = try tempDir().file("app.db")
        return (db, try modes.map { try run([py, "-c", script, $0, db], waitFor: "ready") })
    }

    static let sqliteScript = """
    import sqlite3, sys, time
    mode, path = sys.argv[1], sys.argv[2]
    c = sqlite3.connect(path, isolation_level=None, timeout=60)
    if mode == 'exclusive' or mode == 'reserved':
        c.execute('create table if not exists t(x)')
        c.execute('BEGIN EXCLUSIVE' if mode == 'exclusive' else 'BEGIN IMMEDIATE')
        c.execute('insert into t values(1)')
        print('ready', flush=True)
        time.sleep(600)
    print('ready', flush=True)
    try:
        if mode == 'read':
            c.execute('select count(*) from t').fetchall()
        else:
            c.execute('insert into t values(2)')
    except sqlite3.OperationalError as e:
        print('error', e, flush=True)
    time.sleep(600)
    """

    /// BEGIN EXCLUSIVE in one connection, a reader and a writer with a 60 s busy
    /// timeout: "SQLite database …: python3[N] holds the EXCLUSIVE lock (writing);
    /// 2 connections retry in SQLite's busy handler".
    func testSQLiteExclusiveHolderAndTwoBusyConnections() throws {
        let (db, c) = try sqliteConnections(Self.sqliteScript, ["exclusive", "read", "write"])
        let (holder, reader, writer) = (c[0], c[1], c[2])
        try waitPolling(db, 2)

        // Pollers are recognised by what they do at the moment of the scan (asleep in
        // the busy handler, not inside its F_SETLK attempt): a scan may catch one mid-attempt.
        var d = try diagnose(db)
        for _ in 0..<5 where d.findings.first(where: { $0.rule == .sqliteBusy })?["retrying"] != .pids([reader.pid, writer.pid].sorted()) {
            d = try diagnose(db)
        }
        let ld = try XCTUnwrap(d.locks.first)
        XCTAssertEqual(ld.lockProtocol?.name, "sqlite")
        XCTAssertEqual(ld.lockProtocol?.state, "EXCLUSIVE")
        XCTAssertEqual(ld.lockProtocol?.participant(holder.pid)?.state, "EXCLUSIVE")
        let f = try finding(d, .sqliteBusy)
        XCTAssertEqual(f.pid, holder.pid)
        XCTAssertEqual(f["state"], .string("EXCLUSIVE"))
        XCTAssertEqual(f["retrying"], .pids([reader.pid, writer.pid].sorted()))
        XCTAssertTrue(d.verdict[0].contains("holds the EXCLUSIVE lock (writing); 2 connections retry in SQLite's busy handler"),
                      d.verdict[0])

        // The report's JSON carries the protocol on the lock and on the holder.
        let report = try LockScanner().report(for: [try TargetResolver().resolve(db)])
        let json = ReportJSON(syscallName: { _ in nil }).value(report).serialized()
        XCTAssertTrue(json.contains("\"name\": \"sqlite\""), json)
        XCTAssertTrue(json.contains("\"state\": \"EXCLUSIVE\""), json)
    }

    /// BEGIN IMMEDIATE (RESERVED: WRITE on 0x40000001, READ on the SHARED range) and a
    /// writer retrying for RESERVED; a reader may still read, so only the writer polls.
    func testSQLiteReservedHolder() throws {
        let (db, c) = try sqliteConnections(Self.sqliteScript, ["reserved", "write"])
        let (holder, writer) = (c[0], c[1])
        try waitPolling(db, 1)
        let d = try diagnose(db)
        let reading = try XCTUnwrap(d.locks.compactMap(\.lockProtocol).first)
        XCTAssertEqual(reading.name, "sqlite")
        XCTAssertEqual(reading.state, "RESERVED")
        XCTAssertEqual(reading.participant(holder.pid)?.state, "RESERVED")
        let f = try finding(d, .sqliteBusy)
        XCTAssertEqual(f["retrying"], .pids([writer.pid]))
    }

    static let walScript = """
    import sqlite3, sys, time
    mode, path = sys.argv[1], sys.argv[2]
    c = sqlite3.connect(path, isolation_level=None, timeout=60)
    c.execute('PRAGMA journal_mode=WAL')
    c.execute('create table if not exists t(x)')
    if mode == 'hold':
        c.execute('BEGIN IMMEDIATE')
        c.execute('insert into t values(1)')
        print('ready', flush=True)
        time.sleep(600)
    print('ready', flush=True)
    c.execute('BEGIN IMMEDIATE')
    time.sleep(600)
    """

    /// WAL mode: BEGIN IMMEDIATE holds WAL_WRITE_LOCK (byte 120 of app.db-shm); a
    /// second connection with a busy timeout retries for it while holding only the
    /// DMS read lock (byte 128). It is a waiter retrying in the busy handler, not a holder.
    func testSQLiteWALWriterWaitsInTheBusyHandler() throws {
        let (db, c) = try sqliteConnections(Self.walScript, ["hold", "wait"])
        let (holder, writer) = (c[0], c[1])
        let shm = db + "-shm"
        let id = try TargetResolver().resolve(shm).file
        XCTAssertTrue(waitUntil(timeout: 10) {
            ProcLocksParser.parse(readProcText("/proc/locks") ?? "").locks.contains { $0.lock.file == id && $0.lock.pid == writer.pid }
        }, "the waiting connection never opened the WAL index")

        var d = try diagnose(shm)
        // The sampler must catch it between attempts for most of the window: rare to miss, retried.
        for _ in 0..<3 where d.findings.first(where: { $0.rule == .sqliteBusy }) == nil { d = try diagnose(shm) }
        let f = try finding(d, .sqliteBusy)
        XCTAssertEqual(f.pid, holder.pid)
        XCTAssertEqual(f["state"], .string("WAL_WRITE_LOCK"))
        XCTAssertEqual(f["retrying"], .pids([writer.pid]))
        let reading = try XCTUnwrap(d.locks.compactMap(\.lockProtocol).first)
        XCTAssertEqual(reading.participant(writer.pid, wanted: true)?.state, "WAL_WRITE_LOCK")
        XCTAssertEqual(reading.participant(writer.pid)?.state, "DMS")
        XCTAssertEqual(d.outcome, .contention)
        let write = try XCTUnwrap(d.locks.first { $0.lock.access == .write && $0.lock.start == LockProtocols.shmBase })
        XCTAssertEqual(write.pollingCount, 1)
        XCTAssertTrue(write.verdict.contains("holds the WAL_WRITE_LOCK lock (writing); 1 connection retries in SQLite's busy handler"),
                      write.verdict)
    }

    // MARK: - holder-pipe

    /// `flock F yes | sleep 600`: yes shares flock's lock and blocks writing into the
    /// full pipe; its only reader, sleep, never reads. The verdict names the reader.
    func testHolderBlockedWritingIntoAPipeNobodyReads() throws {
        try requireRoot("reading every process's fd links")
        try requireExecutable("flock")
        guard let sh = which("sh"), let flock = which("flock") else { try skip("sh/flock not found") }
        let dir = try tempDir()
        let f = try dir.touch("F")
        let pipeline = try run([sh, "-c", "\(flock) \(f) yes | sleep 600"])
        var yes: Int32 = 0, sleeper: Int32 = 0
        let found = waitUntil(timeout: 10, interval: 0.05) {
            let m = members(ofGroup: pipeline.pid)
            yes = m.first { $0.comm == "yes" }?.pid ?? 0
            sleeper = m.first { $0.comm == "sleep" }?.pid ?? 0
            return yes > 0 && sleeper > 0 && readProcText("/proc/\(yes)/wchan")?.contains("pipe_write") == true
        }
        try XCTSkipUnless(found, "yes never blocked on the pipe: \(members(ofGroup: pipeline.pid))")
        _ = try run([flock, f, "true"])
        let id = try TargetResolver().resolve(f).file
        XCTAssertTrue(waitUntil(timeout: 10) {
            (ProcLocksParser.parse(readProcText("/proc/locks") ?? "").locks.first { $0.lock.file == id }?.waiters.count ?? 0) >= 1
        })

        let d = try diagnose(f)
        let pipe = try finding(d, .holderPipe)
        XCTAssertEqual(pipe.pid, yes)
        XCTAssertEqual(pipe["readers"], .pids([sleeper]))
        XCTAssertEqual(pipe["direction"], .string("write"))
        XCTAssertEqual(d.locks.first?.cause?.rule, .holderPipe)
        XCTAssertTrue(d.verdict[0].contains("yes[\(yes)] is blocked writing into a full pipe; its only reader, sleep[\(sleeper)], never reads"),
                      d.verdict[0])
    }

    /// A holder that writes into a unix stream socket its peer never reads: python3
    /// holds the flock, forks a child that keeps the other end of a socketpair and
    /// sleeps, and writes until the socket buffer is full. The peer is found through
    /// sock_diag's UNIX_DIAG_PEER, by pid.
    func testHolderBlockedWritingToAUnixSocketWhosePeerSleeps() throws {
        let py = try python()
        try requireRoot("reading every process's fd links")
        let dir = try tempDir()
        let f = try dir.touch("F")
        let script = """
        import fcntl, os, socket, sys, time
        fd = os.open(sys.argv[1], os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        child = os.fork()
        if child == 0:
            os.close(fd); a.close()
            print('peer', os.getpid(), flush=True)
            time.sleep(600)
            os._exit(0)
        b.close()
        print('writing', flush=True)
        while True:
            a.sendall(b'x' * 65536)
        """
        let holder = try run([py, "-c", script, f], waitFor: "writing")
        var peer: Int32 = 0
        let blocked = waitUntil(timeout: 10, interval: 0.05) {
            peer = members(ofGroup: holder.pid).first { $0.pid != holder.pid }?.pid ?? 0
            return peer > 0 && readProcText("/proc/\(holder.pid)/syscall")?.hasPrefix("\(SyscallTable.host.number(of: "sendto") ?? -1) ") == true
        }
        try XCTSkipUnless(blocked, "the holder never blocked in sendto (syscall \(readProcText("/proc/\(holder.pid)/syscall") ?? "?"))")
        _ = try run([which("flock") ?? "flock", f, "true"])

        let d = try diagnose(f)
        let s = try finding(d, .holderPipe)
        XCTAssertEqual(s.pid, holder.pid)
        XCTAssertEqual(s["readers"], .pids([peer]))
        XCTAssertEqual(s["direction"], .string("write"))
        XCTAssertNotNil(s["peer_socket_inode"])
        XCTAssertEqual(d.locks.first?.cause?.rule, .holderPipe)
        XCTAssertTrue(s.summary.contains("python3[\(holder.pid)] is blocked writing to a unix socket socket:[")
                      && s.summary.contains("whose peer python3[\(peer)] is not reading (in clock_nanosleep()"), s.summary)
        let json = DiagnosisJSON(syscallName: { _ in nil }, exitCode: { _ in 0 }).value(d).serialized()
        XCTAssertTrue(json.contains("\"peer_socket_inode\""), json)
    }

    /// `sleep 600 < fifo & flock F sh -c 'yes > fifo'`: yes holds the lock (shared with
    /// flock's child), blocks writing into the full named FIFO, and its only reader,
    /// sleep, never reads. The other end is found by the FIFO's path and inode.
    func testHolderBlockedWritingIntoANamedFifo() throws {
        try requireRoot("reading every process's fd links")
        guard let sh = which("sh"), let flock = which("flock"), let mkfifo = which("mkfifo") else { try skip("sh/flock/mkfifo not found") }
        let dir = try tempDir()
        let f = try dir.touch("F")
        let fifo = dir.file("fifo")
        XCTAssertEqual(try runCommand([mkfifo, fifo]).exitCode, 0)
        let pipeline = try run([sh, "-c", "sleep 600 < \(fifo) & exec \(flock) \(f) sh -c 'exec yes > \(fifo)'"])
        var yes: Int32 = 0, sleeper: Int32 = 0
        let found = waitUntil(timeout: 10, interval: 0.05) {
            let m = members(ofGroup: pipeline.pid)
            yes = m.first { $0.comm == "yes" }?.pid ?? 0
            sleeper = m.first { $0.comm == "sleep" }?.pid ?? 0
            return yes > 0 && sleeper > 0 && readProcText("/proc/\(yes)/wchan")?.contains("pipe_write") == true
        }
        try XCTSkipUnless(found, "yes never blocked on the FIFO: \(members(ofGroup: pipeline.pid))")
        _ = try run([flock, f, "true"])

        let d = try diagnose(f)
        let p = try finding(d, .holderPipe)
        XCTAssertEqual(p.pid, yes)
        XCTAssertEqual(p["readers"], .pids([sleeper]))
        XCTAssertEqual(p["fifo"], .string(fifo))
        XCTAssertTrue(p.summary.contains("yes[\(yes)] is blocked writing into a full FIFO \(fifo); its only reader, sleep[\(sleeper)], never reads"),
                      p.summary)
    }

    /// `flock F sh -c 'echo x > fifo'` with no reader: sh (flock's child, sharing the
    /// lock) blocks in openat until someone opens the FIFO for reading. A writer whose
    /// reader came and went (sleep, fd 3) has it open too, which the finding says.
    func testHolderBlockedOpeningAFifoWithNoReader() throws {
        try requireRoot("reading every process's fd links")
        let py = try python()
        guard let sh = which("sh"), let flock = which("flock"), let mkfifo = which("mkfifo") else { try skip("sh/flock/mkfifo not found") }
        let dir = try tempDir()
        let f = try dir.touch("F")
        let fifo = dir.file("x.fifo")
        XCTAssertEqual(try runCommand([mkfifo, fifo]).exitCode, 0)
        // The other writer: opens once a reader comes, keeps it open after the reader left.
        let other = try run([sh, "-c", "exec 3>\(fifo); echo open; exec sleep 600"])
        XCTAssertEqual(try runCommand([py, "-c", "import os, sys; os.close(os.open(sys.argv[1], os.O_RDONLY))", fifo]).exitCode, 0)
        try other.waitFor(line: "open")
        XCTAssertTrue(waitUntil(timeout: 10) { readProcText("/proc/\(other.pid)/comm") == "sleep\n" }, "the other writer never went to sleep")

        let pipeline = try run([flock, f, sh, "-c", "echo x > \(fifo)"])
        var opener: Int32 = 0
        var wchan = ""
        let blocked = waitUntil(timeout: 10, interval: 0.05) {
            opener = members(ofGroup: pipeline.pid).first { $0.comm == "sh" }?.pid ?? 0
            wchan = opener > 0 ? readProcText("/proc/\(opener)/wchan") ?? "" : ""
            return opener > 0 && FifoOpen.waitsForPartner(wchan: wchan, stack: readProcText("/proc/\(opener)/stack").map { $0.split(separator: "\n").map(String.init) })
        }
        XCTAssertTrue(blocked, "sh never waited for a reader in fifo_open (pid \(opener), wchan \(wchan))")
        _ = try run([flock, f, "true"])

        let d = try diagnose(f)
        let p = try finding(d, .holderPipe)
        XCTAssertEqual(p.pid, opener)
        XCTAssertEqual(p["fifo"], .string(fifo))
        XCTAssertEqual(p["direction"], .string("write"))
        XCTAssertEqual(p["fifo_open"], .bool(true))
        XCTAssertEqual(p["readers"], .pids([]))
        XCTAssertEqual(p["open_by"], .pids([other.pid]))
        var st = stat()
        XCTAssertEqual(stat(fifo, &st), 0)
        XCTAssertEqual(p["fifo_inode"], .int(Int64(st.st_ino)))
        XCTAssertTrue(p.summary.hasPrefix("sh[\(opener)] is blocked opening the FIFO \(fifo) for writing"), p.summary)
        XCTAssertTrue(p.summary.hasSuffix("no process has it open for reading (sleep[\(other.pid)] has it open for writing)"), p.summary)
        // The JSON evidence says the same.
        let json = DiagnosisJSON(syscallName: { _ in nil }, exitCode: { _ in 0 }).value(d).serialized()
        XCTAssertTrue(json.contains("\"fifo\": \"\(fifo)\""), json)
        XCTAssertTrue(json.contains("\"direction\": \"write\""), json)
        XCTAssertTrue(json.contains("\"fifo_open\": true"), json)
        // Still waiting: our look (an O_PATH open) woke nobody.
        XCTAssertTrue(FifoOpen.waitsForPartner(wchan: readProcText("/proc/\(opener)/wchan"), stack: nil))
    }

    // MARK: - lease-break

    static let leaseScript = """
    import fcntl, os, signal, sys, time
    signal.signal(signal.SIGIO, lambda *a: None)
    fd = os.open(sys.argv[1], os.O_RDONLY)
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    print('ready', flush=True)
    while True:
        time.sleep(600)
    """

    /// The machine's lease-break-time, only read; skips unless leases are enabled and
    /// it gives the lease scenes at least 5 s to diagnose a break in.
    func leaseBreakTime() throws -> Int {
        guard let btText = readProcText("/proc/sys/fs/lease-break-time"), let bt = LeaseFacts.breakTime(btText), bt >= 5 else {
            try skip("lease-break-time unreadable or under 5 s")
        }
        guard readProcText("/proc/sys/fs/leases-enable")?.hasPrefix("1") ?? false else { try skip("leases disabled (fs.leases-enable)") }
        return bt
    }

    /// A read lease (F_SETLEASE) broken by a writer's open(): the writer blocks in
    /// openat until the holder releases or lease-break-time runs out; seconds_left
    /// is lease-break-time minus how long the writer has waited.
    func testLeaseBeingBrokenByAWriter() throws {
        let py = try python()
        try requireRoot("reading the lease holder's fdinfo")
        let bt = try leaseBreakTime()
        let dir = try tempDir()
        let file = try dir.touch("leased")
        let holder = try run([py, "-c", Self.leaseScript, file], waitFor: "ready")
        let started = monotonicClock()
        let breaker = try run([py, "-c", "import os, sys; print('opening', flush=True); os.open(sys.argv[1], os.O_WRONLY); print('opened', flush=True)", file],
                              waitFor: "opening")
        XCTAssertTrue(waitUntil(timeout: 10) { readProcText("/proc/\(breaker.pid)/wchan")?.contains("break_lease") == true },
                      "the writer never blocked in __break_lease")
        usleep(500_000)
        let d = try diagnose(file)
        let elapsed = monotonicClock() - started
        let f = try finding(d, .leaseBreak)
        XCTAssertEqual(f.pid, holder.pid)
        XCTAssertEqual(f["breakers"], .pids([breaker.pid]))
        XCTAssertEqual(f["lease_break_time"], .int(Int64(bt)))
        guard case .double(let left)? = f["seconds_left"] else { return XCTFail("no seconds_left: \(f.evidence)") }
        XCTAssertEqual(left, Double(bt) - elapsed, accuracy: 1.5, "seconds_left \(left), expected about \(Double(bt) - elapsed)")
        XCTAssertEqual(f["sigio"], .string("handled"))
        XCTAssertEqual(d.locks.first?.cause?.rule, .leaseBreak)
    }

    /// The sampler of a diagnosis, with something started first: the window (and the
    /// lock events recorded over it) are running when `first` runs. Records when the
    /// sampling ended, which is when the recording is stopped.
    final class StartsInWindow: ActivityProvider, @unchecked Sendable {
        let inner: ActivityProvider
        let first: () throws -> Void
        var failure: Error?
        var ended = 0.0
        init(_ inner: ActivityProvider, first: @escaping () throws -> Void) {
            self.inner = inner
            self.first = first
        }
        func activity(pids: [Int32], window: Double, hz: Int, shouldStop: @escaping () -> Bool) -> ActivityResult {
            do { try first() } catch { failure = error }
            let r = inner.activity(pids: pids, window: window, hz: hz, shouldStop: shouldStop)
            ended = MonotonicClock.seconds
            return r
        }
    }

    /// A read lease broken by a writer that opens the file during `diagnose --window`
    /// (after the snapshot, which saw the lease unbroken): lock events saw the open
    /// that set the kernel's deadline (`jiffies + lease_break_time * HZ`), so
    /// seconds_left is exact. The truth: the writer prints CLOCK_MONOTONIC just before
    /// its open(); the kernel breaks the lease lease-break-time later. The machine's
    /// lease-break-time is only read.
    func testLeaseBreakDuringTheWindowIsTimedFromLockEvents() throws {
        let py = try python()
        try requireRoot("lock events need root")
        let bt = try leaseBreakTime()
        let dir = try tempDir()
        let file = try dir.touch("leased")
        let holder = try run([py, "-c", Self.leaseScript, file], waitFor: "ready")
        var breaker: Spawned?
        var openedAt = 0.0
        // Half a second of its own before the open: the process is older than its wait
        // (an estimate from its age would be off by that much).
        let provider = StartsInWindow(Diagnoser.liveProvider()) {
            let b = try self.run([py, "-c", "import os, sys, time; time.sleep(0.5); print('opening', time.monotonic(), flush=True); os.open(sys.argv[1], os.O_WRONLY); print('opened', flush=True)", file])
            breaker = b
            let line = try b.waitFor(line: "opening")
            openedAt = Double(line.split(separator: " ").last ?? "") ?? 0
            _ = waitUntil(timeout: 10) { readProcText("/proc/\(b.pid)/wchan")?.contains("break_lease") == true }
        }
        let target = try TargetResolver().resolve(file)
        let d = try Diagnoser(window: 2, hz: 100, provider: provider, lockEvents: KernelLockEvents()).diagnose(targets: [target])
        if let e = provider.failure { throw e }
        if case .unavailable(let why)? = d.lockEvents { try skip("lock events unavailable: \(why)") }
        let writer = try XCTUnwrap(breaker)
        XCTAssertGreaterThan(openedAt, 0)
        let f = try finding(d, .leaseBreak)
        XCTAssertEqual(f.pid, holder.pid)
        XCTAssertEqual(f["breakers"], .pids([writer.pid]))
        XCTAssertEqual(f["seconds_left_source"], .string("event"), f.summary)
        let lock = try XCTUnwrap(d.locks.first)
        XCTAssertEqual(lock.lock.mode, "BREAKING")
        XCTAssertEqual(lock.lock.waiters.map(\.source), [.event])
        guard case .double(let left)? = f["seconds_left"], case .double(let ago)? = f["break_started_seconds_ago"] else {
            return XCTFail("no exact clock: \(f.evidence)")
        }
        let truth = openedAt + Double(bt) - provider.ended
        XCTAssertEqual(left, truth, accuracy: 0.1, "seconds_left \(left), the kernel breaks it in \(truth) s")
        XCTAssertEqual(ago, provider.ended - openedAt, accuracy: 0.1)
        XCTAssertEqual(f["seconds_left_at_most"], .double(left))
        XCTAssertTrue(f.summary.contains("seen by lock events"), f.summary)
        XCTAssertEqual(d.locks.first?.cause?.rule, .leaseBreak)
    }

    func monotonicClock() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    // MARK: - namespaces and containers

    /// A holder under `unshare --pid --fork --mount-proc`: flock is pid 1 in its
    /// namespace; the report says so (`NSpid` last field) in values and in text.
    func testHolderInItsOwnPidNamespace() throws {
        try requireRoot("unshare --pid needs root")
        guard let unshare = which("unshare"), let flock = which("flock"), let sleep = which("sleep") else {
            try skip("unshare/flock/sleep not found")
        }
        let dir = try tempDir()
        let f = try dir.touch("ns.lock")
        let s = try run([unshare, "--pid", "--fork", "--mount-proc", flock, f, sleep, "600"])
        let id = try TargetResolver().resolve(f).file
        var owner: Int32 = 0
        let locked = waitUntil(timeout: 10) {
            owner = ProcLocksParser.parse(readProcText("/proc/locks") ?? "").locks.first { $0.lock.file == id }?.lock.pid ?? 0
            return owner > 0
        }
        try XCTSkipUnless(locked, "the namespaced flock never took the lock (pgid \(s.pid))")
        let report = try LockScanner().report(for: [try TargetResolver().resolve(f)])
        let h = try XCTUnwrap(report.locks.first?.holders.first { $0.isOwner })
        XCTAssertEqual(h.pid, owner)
        XCTAssertEqual(h.process?.nsPid, 1)
        let text = ReportText(style: Style(color: false, width: nil), syscallName: { _ in nil }).who(report).joined(separator: "\n")
        XCTAssertTrue(text.contains("(pid 1 in pid ns pid:["), text)
        let json = ReportJSON(syscallName: { _ in nil }).value(report).serialized()
        XCTAssertTrue(json.contains("\"nspid\": 1"), json)
    }

    /// A flock(1) holder in its own mount namespace (unshare -m, private) that opened
    /// `view/f` through a bind mount of `real/`: from here the file is `real/f`.
    func holderBehindPrivateBindMount() throws -> (real: String, view: String) {
        try requireRoot("unshare -m and mount --bind need root")
        guard let unshare = which("unshare"), let sh = which("sh"), let flock = which("flock"), let sleep = which("sleep") else {
            try skip("unshare/sh/flock/sleep not found")
        }
        let dir = try tempDir()
        try FileManager.default.createDirectory(atPath: dir.file("real"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir.file("view"), withIntermediateDirectories: true)
        let real = try dir.touch("real/f")
        // unshare(1) makes the new namespace's mounts private: the bind never shows up here.
        let s = try run([unshare, "-m", "--propagation", "private", sh, "-c",
                         "mount --bind \(dir.file("real")) \(dir.file("view")) && exec \(flock) \(dir.file("view/f")) \(sleep) 600"])
        let id = try TargetResolver().resolve(real).file
        let locked = waitUntil(timeout: 10) {
            ProcLocksParser.parse(readProcText("/proc/locks") ?? "").locks.contains { $0.lock.file == id }
        }
        try XCTSkipUnless(locked, "the namespaced flock never took the lock (pgid \(s.pid))")
        return (real, dir.file("view/f"))
    }

    /// `unshare -m` with a private bind mount: the holder opened `view/f`, which is
    /// `real/f` from here; who says what the holder sees.
    func testPathAsTheHolderSeesItInItsMountNamespace() throws {
        let (real, view) = try holderBehindPrivateBindMount()
        let report = try LockScanner().report(for: [try TargetResolver().resolve(real)])
        let h = try XCTUnwrap(report.locks.first?.holders.first { $0.isOwner })
        XCTAssertEqual(h.pathInNamespace, view)
        let text = ReportText(style: Style(color: false, width: nil), syscallName: { _ in nil }).who(report).joined(separator: "\n")
        XCTAssertTrue(text.contains("(sees \(view))"), text)
    }

    /// The same holder in `list`: the NSPATH column (text and -J) and `list --json`'s
    /// `path_in_namespace`, from the real binary; not shown unless asked for.
    func testListShowsThePathTheHolderSees() throws {
        let (real, view) = try holderBehindPrivateBindMount()
        // --path picks the lock by identity; PATH is our path, NSPATH the holder's.
        let spec = real
        let text = try runCommand([TestBinaries.lockscope, "list", "--path", spec, "-o", "PID,PATH,NSPATH", "-u"])
        XCTAssertEqual(text.exitCode, 0, text.stderr)
        let row = try XCTUnwrap(text.stdout.split(separator: "\n").dropFirst().first.map(String.init), text.stdout)
        XCTAssertEqual(row.split(separator: " ").map(String.init).dropFirst(), [real, view], text.stdout)
        let cols = try runCommand([TestBinaries.lockscope, "list", "--path", spec, "-o", "PID,NSPATH", "-J"])
        XCTAssertTrue(cols.stdout.contains("\"nspath\": \"\(view)\""), cols.stdout)
        let json = try runCommand([TestBinaries.lockscope, "list", "--path", spec, "--json"])
        XCTAssertTrue(json.stdout.contains("\"path_in_namespace\": \"\(view)\""), json.stdout)
        let plain = try runCommand([TestBinaries.lockscope, "list", "--path", spec, "-u"])
        XCTAssertFalse(plain.stdout.contains(view), plain.stdout)
    }

    /// Holders moved into cgroup v2 groups named like docker's and like a Kubernetes
    /// pod's container (made here under the cgroup2 mount, removed after).
    func testHoldersInDockerAndKubernetesNamedCgroups() throws {
        try requireRoot("creating cgroups")
        guard let mount = cgroup2Mount() else { try skip("no cgroup2 mount") }
        guard let flock = which("flock"), let sleep = which("sleep") else { try skip("flock/sleep not found") }
        let dockerID = "3f2a91c0e4b1d5c6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4"
        let podUID = "6f1c2b7e-0d4a-4c1e-9b7a-2f3e4d5c6b7a"
        let crID = "b7a2f3e4d5c6b7a86f1c2b7e0d4a4c1e9b7a2f3e4d5c6b7a86f1c2b7e0d4a4c1"
        let root = mount + "/lockscope-test-\(getpid())"
        let docker = root + "/system.slice/docker-\(dockerID).scope"
        let pod = root + "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(podUID.replacingOccurrences(of: "-", with: "_")).slice"
        let cri = pod + "/cri-containerd-\(crID).scope"
        for path in [docker, cri] {
            guard (try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)) != nil else {
                removeCgroups(root)
                try skip("cgroup2 at \(mount) is not writable")
            }
        }
        cleanups.append { [weak self] in self?.removeCgroups(root) }

        let dir = try tempDir()
        var holders: [Int32] = []
        for (i, group) in [docker, cri].enumerated() {
            let f = try dir.touch("c\(i).lock")
            let s = try run([flock, f, sleep, "600"])
            guard (try? "\(s.pid)\n".write(toFile: group + "/cgroup.procs", atomically: false, encoding: .utf8)) != nil else {
                try skip("cannot move a process into \(group)")
            }
            holders.append(s.pid)
        }
        let reader = ProcessReader(proc: ProcRoot())
        // flock forks sleep after it took the lock: both are in the group (the child inherits it only if forked after the move).
        XCTAssertEqual(reader.facts(of: holders[0])?.container, ContainerInfo(runtime: "docker", id: dockerID))
        XCTAssertEqual(reader.facts(of: holders[1])?.container, ContainerInfo(runtime: "containerd", id: crID, podUID: podUID))
        let place = ProcessPlace.text(reader.facts(of: holders[1]), observer: nil)
        XCTAssertEqual(place, "in containerd container b7a2f3e4d5c6 of pod \(podUID)")
    }

    func cgroup2Mount() -> String? {
        for line in (readProcText("/proc/self/mountinfo") ?? "").split(separator: "\n") {
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2, halves[1].hasPrefix("cgroup2 ") else { continue }
            let fields = halves[0].split(separator: " ")
            if fields.count > 4 { return String(fields[4]) }
        }
        return nil
    }

    /// Removes the cgroups under `root`, deepest first (each is empty once its processes are gone).
    func removeCgroups(_ root: String) {
        for s in spawned { s.terminate() }
        guard let all = FileManager.default.enumerator(atPath: root) else { return }
        var paths: [String] = []
        while let p = all.nextObject() as? String { paths.append(root + "/" + p) }
        // rmdir(2) removes only (empty) directories; the interface files go with them.
        for d in paths.sorted(by: { $0.count > $1.count }) + [root] { rmdir(d) }
    }
}
