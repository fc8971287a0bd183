import Foundation
import Glibc
import LockscopeCore
@testable import LockscopeEvents
import LockscopeTestSupport
import XCTest

/// A process started without waiting, in a process group of its own so cleanup
/// reaches everything it started.
struct Started {
    let pid: pid_t
    let started: Double

    init(_ argv: [String], stdout: String? = nil, stdin: String? = nil) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin ?? "/dev/null", O_RDONLY, 0)
        if let stdout { posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setpgroup(&attr, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF))
        let c = argv.map { strdup($0) } + [nil]
        defer { c.forEach { free($0) } }
        var p: pid_t = 0
        let rc = posix_spawn(&p, argv[0], &actions, &attr, c, environ)
        guard rc == 0 else { throw SpawnFailed(command: argv[0], errno: rc) }
        pid = p
        started = monotonicNow()
    }

    /// Waits for the exit; returns (status, seconds since start).
    @discardableResult
    func wait() -> (status: Int32, seconds: Double) {
        var s: Int32 = 0
        while waitpid(pid, &s, 0) < 0 && errno == EINTR {}
        return (s, monotonicNow() - started)
    }

    func kill(_ sig: Int32 = SIGKILL) { _ = Glibc.kill(-pid, sig) }
}

/// True once `pid` has exited (a zombie), without reaping it.
func reapNothing(_ pid: pid_t) -> Bool {
    var info = siginfo_t()
    return waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info._sifields._sigchld.si_pid == pid
}

func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Number of perf_event fds a process holds.
func perfFds(_ pid: pid_t) -> Int {
    guard let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else { return 0 }
    return fds.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")) == "anon_inode:[perf_event]" }.count
}

/// `lockscope watch ARGS` running in the background, output to a file.
final class RunningWatch {
    let process: Started
    let output: String

    init(_ args: [String], dir: TempDir) throws {
        output = dir.file("watch.out")
        process = try Started([TestBinaries.lockscope, "watch"] + args, stdout: output)
        // Ready when its perf fds exist (one per tracepoint per CPU), plus a moment for enable.
        let ok = waitUntil(timeout: 20) { perfFds(process.pid) >= 2 || !processIsAlive(process.pid) }
        if !ok || !processIsAlive(process.pid) { throw TestSupportError.exited(what: "watch ready", output: []) }
        usleep(300_000)
    }

    func finish() throws -> (status: Int32, text: String) {
        let (status, _) = process.wait()
        return (status, try String(contentsOfFile: output, encoding: .utf8))
    }

    func summaryJSON() throws -> [String: Any] {
        let (status, text) = try finish()
        XCTAssertEqual(status, 0, text)
        let last = text.split(separator: "\n").last.map(String.init) ?? text
        let doc = text.hasPrefix("{\n") ? text : last
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(doc.utf8)) as? [String: Any])
    }
}

func locks(_ doc: [String: Any]) -> [[String: Any]] { doc["locks"] as? [[String: Any]] ?? [] }
func processes(_ lock: [String: Any]) -> [Int32: [String: Any]] {
    var out: [Int32: [String: Any]] = [:]
    for p in lock["processes"] as? [[String: Any]] ?? [] { if let pid = p["pid"] as? Int { out[Int32(pid)] = p } }
    return out
}
func num(_ v: Any?) -> Double { (v as? NSNumber)?.doubleValue ?? -1 }

/// A dpkg admin directory of its own under `dir` and the apt-get command that
/// polls its `lock-frontend` with `DPkg::Lock::Timeout=seconds` (Dir::State points
/// there, so the machine's own dpkg lock is never touched).
func aptGetLockTimeout(_ dir: TempDir, seconds: Int) throws -> (lock: String, argv: [String]) {
    for d in ["state", "cache/archives/partial", "lists/partial"] {
        try FileManager.default.createDirectory(atPath: dir.file(d), withIntermediateDirectories: true)
    }
    let status = try dir.touch("state/status")
    return (dir.file("state/lock-frontend"),
            ["/usr/bin/apt-get", "-o", "Dir::State::status=" + status, "-o", "Dir::State=" + dir.file("state"),
             "-o", "Dir::Cache=" + dir.file("cache"), "-o", "Dir::State::Lists=" + dir.file("lists"),
             "-o", "DPkg::Lock::Timeout=\(seconds)", "-q", "install", "-y", "lockscope-no-such-package"])
}

final class WatchLiveTests: XCTestCase {
    func requireWatch() throws {
        try requireLockEvents()
        try requireExecutable("flock")
    }

    /// flock(1) holds 0.6 s; two waiters queue behind it.
    func testFlockHolderWithWaiters() throws {
        try requireWatch()
        let dir = try TempDir()
        defer { dir.remove() }
        let file = try dir.touch("lock")
        let watch = try RunningWatch(["--json", "--duration", "2.5", file], dir: dir)
        let holder = try Started(["/usr/bin/flock", file, "sleep", "0.6"])
        usleep(150_000)
        let w1 = try Started(["/usr/bin/flock", file, "true"])
        let w2 = try Started(["/usr/bin/flock", file, "true"])
        let h = holder.wait(), a = w1.wait(), b = w2.wait()
        let doc = try watch.summaryJSON()
        XCTAssertEqual(doc["schema"] as? String, "lockscope.watch/1")
        XCTAssertEqual(doc["lost_events"] as? Int, 0)
        let l = try XCTUnwrap(locks(doc).first)
        XCTAssertEqual(locks(doc).count, 1)
        XCTAssertEqual(l["kind"] as? String, "FLOCK")
        XCTAssertEqual(l["acquisitions"] as? Int, 3)
        XCTAssertEqual(l["contended"] as? Int, 2)
        XCTAssertEqual(l["failed_attempts"] as? Int, 0)
        let p = processes(l)
        XCTAssertEqual(Set(p.keys), [holder.pid, w1.pid, w2.pid])
        XCTAssertEqual(p[holder.pid]?["waits"] as? Int, 0)
        XCTAssertEqual(num(p[holder.pid]?["hold_seconds"]), h.seconds, accuracy: 0.05)
        for (w, r) in [(w1, a), (w2, b)] {
            XCTAssertEqual(p[w.pid]?["waits"] as? Int, 1)
            XCTAssertEqual(p[w.pid]?["comm"] as? String, "flock")
            XCTAssertEqual(num(p[w.pid]?["wait_seconds"]), r.seconds, accuracy: 0.05)
        }
        let waits = try XCTUnwrap(l["wait_seconds"] as? [String: Any])
        XCTAssertEqual(waits["count"] as? Int, 2)
    }

    /// A holder takes the lock 0.4 s of every second, two waiters queue each time.
    func testPeriodicHolderWithTwoWaiters() throws {
        try requireWatch()
        let dir = try TempDir()
        defer { dir.remove() }
        let file = try dir.touch("lock")
        let watch = try RunningWatch(["--json", "--duration", "4", file], dir: dir)
        var holders: [(Started, Double)] = [], waiters: [(Started, Double)] = []
        for _ in 0..<3 {
            let cycle = monotonicNow()
            let h = try Started(["/usr/bin/flock", file, "sleep", "0.4"])
            usleep(100_000)
            let w = [try Started(["/usr/bin/flock", file, "true"]), try Started(["/usr/bin/flock", file, "true"])]
            holders.append((h, h.wait().seconds))
            for x in w { waiters.append((x, x.wait().seconds)) }
            let left = 1.0 - (monotonicNow() - cycle)
            if left > 0 { usleep(UInt32(left * 1e6)) }
        }
        let doc = try watch.summaryJSON()
        let l = try XCTUnwrap(locks(doc).first)
        XCTAssertEqual(l["acquisitions"] as? Int, 9)
        XCTAssertEqual(l["contended"] as? Int, 6)
        let p = processes(l)
        XCTAssertEqual(Set(p.keys), Set((holders + waiters).map(\.0.pid)))
        for (h, seconds) in holders {
            XCTAssertEqual(p[h.pid]?["acquisitions"] as? Int, 1)
            XCTAssertEqual(num(p[h.pid]?["hold_seconds"]), seconds, accuracy: 0.05)
        }
        for (w, seconds) in waiters {
            XCTAssertEqual(p[w.pid]?["waits"] as? Int, 1)
            XCTAssertEqual(num(p[w.pid]?["wait_seconds"]), seconds, accuracy: 0.05)
        }
        let hold = try XCTUnwrap(l["hold_seconds"] as? [String: Any])
        XCTAssertEqual(hold["count"] as? Int, 9)
        XCTAssertEqual(num(hold["max"]), holders.map(\.1).max()!, accuracy: 0.05)
    }

    /// `while ! flock -n F true; do sleep 0.5; done` is reported once, under the shell.
    func testRetryLoopReportedUnderTheShell() throws {
        try requireWatch()
        let dir = try TempDir()
        defer { dir.remove() }
        let file = try dir.touch("lock")
        let watch = try RunningWatch(["--json", "--duration", "3.5", file], dir: dir)
        let holder = try Started(["/usr/bin/flock", file, "sleep", "1.7"])
        usleep(100_000)
        let shell = try Started(["/bin/sh", "-c", "while ! flock -n \"$0\" true; do sleep 0.5; done", file])
        holder.wait()
        XCTAssertEqual(shell.wait().status, 0)
        let doc = try watch.summaryJSON()
        let l = try XCTUnwrap(locks(doc).first)
        let p = processes(l)
        XCTAssertEqual(Set(p.keys), [holder.pid, shell.pid], "\(p)")
        let sh = try XCTUnwrap(p[shell.pid])
        XCTAssertEqual(sh["comm"] as? String, "sh")
        XCTAssertEqual(sh["attempt_command"] as? String, "flock")
        let failed = try XCTUnwrap(sh["failed_attempts"] as? Int)
        XCTAssertTrue((3...4).contains(failed), "\(failed) failed attempts in 1.6 s at 0.5 s intervals")
        XCTAssertEqual(sh["acquisitions"] as? Int, 1)
        XCTAssertEqual(sh["attempt_processes"] as? Int, failed + 1)
        XCTAssertEqual(num(sh["retry_interval_seconds"]), 0.5, accuracy: 0.1)
        XCTAssertEqual(l["failed_attempts"] as? Int, failed)
    }

    /// POSIX (fcntl F_SETLKW) and OFD locks from the testbed, with a waiter and a refused F_OFD_SETLK.
    func testPosixAndOfdLocks() throws {
        try requireWatch()
        let dir = try TempDir()
        defer { dir.remove() }
        let pfile = try dir.touch("posix"), ofile = try dir.touch("ofd")
        let watch = try RunningWatch(["--json", "--duration", "3", pfile, ofile], dir: dir)
        let ph = try Testbed.spawn(["open:" + pfile, "posix:w:0:0"])
        defer { ph.terminate() }
        try ph.waitForReady()
        let pw = try Testbed.spawn(["open:" + pfile, "posix:w:0:0"])
        defer { pw.terminate() }
        let oh = try Testbed.spawn(["open:" + ofile, "ofd:w:0:0"])
        defer { oh.terminate() }
        try oh.waitForReady()
        let onb = try Testbed.spawn(["open:" + ofile, "ofd-nb:w:0:0"])
        XCTAssertEqual(onb.waitForExit(), 3)
        usleep(300_000)
        ph.release()
        _ = ph.waitForExit()
        try pw.waitForReady()
        pw.release(); oh.release()
        _ = pw.waitForExit(); _ = oh.waitForExit()
        let doc = try watch.summaryJSON()
        let posix = try XCTUnwrap(locks(doc).first { $0["kind"] as? String == "POSIX" })
        let ofd = try XCTUnwrap(locks(doc).first { $0["kind"] as? String == "OFDLCK" })
        XCTAssertEqual(locks(doc).count, 2)
        XCTAssertEqual(posix["acquisitions"] as? Int, 2)
        XCTAssertEqual(posix["contended"] as? Int, 1)
        XCTAssertEqual(Set(processes(posix).keys), [ph.pid, pw.pid])
        XCTAssertEqual(processes(posix)[pw.pid]?["waits"] as? Int, 1)
        XCTAssertEqual(ofd["acquisitions"] as? Int, 1)
        XCTAssertEqual(ofd["failed_attempts"] as? Int, 1)
        XCTAssertEqual(processes(ofd)[onb.pid]?["failed_attempts"] as? Int, 1)
        XCTAssertEqual(processes(ofd)[oh.pid]?["acquisitions"] as? Int, 1)
    }

    /// Real apt-get with DPkg::Lock::Timeout polling a lock-frontend in a temporary
    /// directory (Dir::State::status points there, so the machine's dpkg lock is
    /// never touched): it opens, tries F_SETLK, closes and sleeps 1 s — invisible
    /// to a snapshot, counted here as failed attempts once a second.
    func testAptGetLockTimeoutPoller() throws {
        try requireWatch()
        try requireExecutable("/usr/bin/apt-get")
        let dir = try TempDir()
        defer { dir.remove() }
        let (lock, argv) = try aptGetLockTimeout(dir, seconds: 2)
        let holder = try Testbed.spawn(["open:" + lock, "posix:w:0:0"])
        defer { holder.terminate() }
        try holder.waitForReady()
        let watch = try RunningWatch(["--json", "--duration", "5", lock], dir: dir)
        let apt = try Started(argv, stdout: dir.file("apt.out"))
        let r = apt.wait()
        XCTAssertNotEqual(r.status, 0, "apt-get must fail: the lock stays held")
        let doc = try watch.summaryJSON()
        let l = try XCTUnwrap(locks(doc).first)
        XCTAssertEqual(l["kind"] as? String, "POSIX")
        XCTAssertEqual(l["acquisitions"] as? Int, 0)
        let p = processes(l)
        XCTAssertEqual(Set(p.keys), [apt.pid])
        let a = try XCTUnwrap(p[apt.pid])
        XCTAssertEqual(a["comm"] as? String, "apt-get")
        let failed = try XCTUnwrap(a["failed_attempts"] as? Int)
        XCTAssertTrue((2...4).contains(failed), "\(failed)")
        XCTAssertEqual(num(a["retry_interval_seconds"]), 1.0, accuracy: 0.1)
    }

    /// --events --json: one JSON object per operation as it happens, the summary last.
    func testEventLinesAndPipeClosed() throws {
        try requireWatch()
        let dir = try TempDir()
        defer { dir.remove() }
        let file = try dir.touch("lock")
        let watch = try RunningWatch(["--events", "--json", "--duration", "1.5", file], dir: dir)
        let holder = try Started(["/usr/bin/flock", file, "sleep", "0.2"])
        usleep(50_000)
        let nb = try Started(["/usr/bin/flock", "-n", file, "true"])
        nb.wait(); holder.wait()
        let (status, text) = try watch.finish()
        XCTAssertEqual(status, 0)
        let lines = text.split(separator: "\n").map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertTrue(lines.allSatisfy { $0 != nil }, text)
        let events = lines.compactMap { $0 }.filter { $0["schema"] == nil }
        XCTAssertEqual(events.map { "\($0["pid"] ?? "") \($0["outcome"] ?? "")" },
                       ["\(holder.pid) acquired", "\(nb.pid) failed", "\(holder.pid) released"])
        XCTAssertEqual(events[1]["errno"] as? String, "EAGAIN")
        XCTAssertEqual(events[1]["blocked_by"] as? Int, Int(holder.pid))
        XCTAssertEqual(lines.last??["schema"] as? String, "lockscope.watch/1")

        // `watch --events | head -1`: ends at once and cleanly when the reader goes.
        let sh = try Started(["/bin/sh", "-c", "\"$0\" watch --events \"$1\" | head -1 > \"$2\"",
                              TestBinaries.lockscope, file, dir.file("head")])
        usleep(1_500_000)
        for _ in 0..<3 { _ = try runCommand(["/usr/bin/flock", file, "true"]) }
        // Give up after 10 s rather than hang the suite (the pipe group is killed).
        _ = waitUntil(timeout: 10) { reapNothing(sh.pid) }
        if !reapNothing(sh.pid) { sh.kill(SIGKILL) }
        let r = sh.wait()
        XCTAssertEqual(r.status, 0)
        XCTAssertLessThan(r.seconds, 10)
        XCTAssertTrue(try String(contentsOfFile: dir.file("head"), encoding: .utf8).contains("acquired"))
    }

    /// SIGKILL leaves no tracing state: lockscope never writes tracefs (no instance,
    /// no enabled event, no filter), and its perf events die with its fds.
    func testSigkillLeavesNothingEnabled() throws {
        try requireWatch()
        let dir = try TempDir()
        defer { dir.remove() }
        let file = try dir.touch("lock")
        let probe = ["set_event", "events/filelock/enable", "events/filelock/flock_lock_inode/enable",
                     "events/filelock/flock_lock_inode/filter", "events/sched/sched_process_fork/enable"]
        let before = try TracefsSource.current().read(probe)
        let watch = try RunningWatch(["--events", file], dir: dir)
        XCTAssertGreaterThan(perfFds(watch.process.pid), 0)
        let during = try TracefsSource.current().read(probe)
        watch.process.kill(SIGKILL)
        XCTAssertEqual(watch.process.wait().status & 0x7f, SIGKILL)
        let after = try TracefsSource.current().read(probe)
        for p in probe {
            guard case .success(let b)? = before[p], case .success(let d)? = during[p], case .success(let a)? = after[p] else {
                XCTFail("cannot read \(p)"); continue
            }
            XCTAssertEqual(d, b, p)
            XCTAssertEqual(a, b, p)
        }
        XCTAssertEqual(String(decoding: try XCTUnwrap(try? after["set_event"]?.get()), as: UTF8.self), "")
        // The kernel freed the events: a new session opens and sees a lock at once.
        let id = try TargetResolver().resolve(file).file
        let source = try LockEventSource(files: [id], ancestry: false)
        try source.enable()
        flockLoop(file, count: 1)
        var n = 0
        _ = waitUntil(timeout: 3) { source.drain(everything: true) { _ in n += 1 }; return n >= 2 }
        XCTAssertEqual(n, 2)
    }

    /// The terminal view in a real terminal (tmux on a private socket): refreshed
    /// rows that fit 80 and 200 columns, `q` ends it and prints the summary.
    func testTerminalViewInTmux() throws {
        try requireWatch()
        try requireExecutable("tmux")
        for columns in [80, 200] {
            let dir = try TempDir()
            defer { dir.remove() }
            let file = try dir.touch("lock")
            let socket = "lockscope-test-\(getpid())-\(columns)"
            func tmux(_ args: [String]) throws -> CommandResult {
                try runCommand(["/usr/bin/tmux", "-L", socket] + args, timeout: 10)
            }
            defer { _ = try? tmux(["kill-server"]) }
            let script = "\"$0\" watch \"$1\"; echo EXIT=$?; sleep 60"
            XCTAssertEqual(try tmux(["-f", "/dev/null", "new-session", "-d", "-x", "\(columns)", "-y", "24",
                                     "/bin/sh", "-c", script, TestBinaries.lockscope, file]).exitCode, 0)
            XCTAssertTrue(waitUntil(timeout: 20) { ((try? tmux(["capture-pane", "-p"]))?.stdout ?? "").contains("lockscope watch") })
            let holder = try Started(["/usr/bin/flock", file, "sleep", "3"])
            defer { holder.kill(); holder.wait() }
            usleep(200_000)
            let waiter = try Started(["/usr/bin/flock", file, "true"])
            defer { waiter.kill(); waiter.wait() }
            var screen = ""
            XCTAssertTrue(waitUntil(timeout: 5) {
                screen = (try? tmux(["capture-pane", "-p"]))?.stdout ?? ""
                return screen.contains("FLOCK") && screen.split(separator: "\n").contains { $0.contains("FLOCK") && $0.contains(" 1 ") }
            }, screen)
            let lines = screen.split(separator: "\n")
            XCTAssertTrue(lines.allSatisfy { $0.count <= columns }, screen)
            XCTAssertTrue(lines.contains { $0.contains("ACQ") && $0.contains("LOCK") }, screen)
            let row = try XCTUnwrap(lines.first { $0.contains("FLOCK") })
            if columns == 200 { XCTAssertTrue(row.hasSuffix(file), screen) } else { XCTAssertTrue(row.hasSuffix("…"), screen) }
            XCTAssertTrue(row.contains("\(holder.pid)"), "holder shown: \(row)")
            _ = try tmux(["send-keys", "q"])
            XCTAssertTrue(waitUntil(timeout: 10) {
                screen = (try? tmux(["capture-pane", "-p"]))?.stdout ?? ""
                return screen.contains("EXIT=")
            }, screen)
            XCTAssertTrue(screen.contains("EXIT=0"), screen)
            XCTAssertTrue(screen.contains("lock activity over"), screen)
            XCTAssertTrue(screen.contains("held now by \(holder.pid)"), screen)
        }
    }

    /// Not root: one line saying why, exit 69.
    func testNotRootSaysWhyAndExits69() throws {
        try requireRoot("drops to nobody with setpriv to be refused")
        try requireExecutable("setpriv")
        let dir = try TempDir()
        defer { dir.remove() }
        chmod(dir.path, 0o755)
        let file = try dir.touch("lock")
        let r = try runCommand(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                TestBinaries.lockscope, "watch", "--duration", "1", file])
        XCTAssertEqual(r.exitCode, 69, r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("not root"), r.stderr)
    }

    func testBadInput() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        for (args, code) in [(["watch", dir.file("missing")], Int32(66)), (["watch", dir.path], 66),
                             (["watch", "--duration", "0"], 64), (["watch", "--duration", "-1"], 64),
                             (["watch", "--duration", "1e9"], 64), (["watch", "--duration", "nan"], 64)] {
            let r = try runCommand([TestBinaries.lockscope] + args)
            XCTAssertEqual(r.exitCode, code, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stdout.isEmpty)
        }
    }
}

struct SpawnFailed: Error {
    var command: String
    var errno: Int32
}
