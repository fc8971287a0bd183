import Foundation
import Glibc
import LockscopeCore
@testable import LockscopeEvents
import LockscopeTestSupport
import XCTest

/// watch on byte-range locks, a lease break and a system-wide watch's paths,
/// with real processes.
final class WatchRangeLeaseLiveTests: XCTestCase {
    /// Every JSON line `watch --events --json` printed (events, then the summary).
    func jsonLines(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
    }

    /// Two owners on disjoint byte ranges hold at once (no contention); a third
    /// process's range overlaps the second's: it waits, and names that owner.
    func testDisjointRangesAndAnOverlappingWaiter() throws {
        try requireLockEvents()
        let dir = try TempDir()
        defer { dir.remove() }
        let file = try dir.touch("ranges")
        let watch = try RunningWatch(["--events", "--json", "--duration", "4", file], dir: dir)
        let a = try Testbed.spawn(["open:" + file, "posix:w:0:100"])
        defer { a.terminate() }
        try a.waitForReady()
        let b = try Testbed.spawn(["open:" + file, "posix:w:100:100"])
        defer { b.terminate() }
        try b.waitForReady()
        let c = try Testbed.spawn(["open:" + file, "posix:w:150:10"])
        defer { c.terminate() }
        usleep(400_000)
        b.release()
        _ = b.waitForExit()
        try c.waitForReady()
        a.release(); c.release()
        _ = a.waitForExit(); _ = c.waitForExit()
        let (status, text) = try watch.finish()
        XCTAssertEqual(status, 0, text)
        let lines = try jsonLines(text)
        let queued = lines.filter { $0["outcome"] as? String == "queued" }
        XCTAssertEqual(queued.count, 1, text)
        XCTAssertEqual(queued.first?["pid"] as? Int, Int(c.pid))
        XCTAssertEqual(queued.first?["blocked_by"] as? Int, Int(b.pid), "the waiter must name the owner of the overlapping range")
        let range = queued.first?["range"] as? [String: Any]
        XCTAssertEqual(range?["start"] as? Int, 150)
        XCTAssertEqual(range?["end"] as? Int, 159)
        let acquired = lines.filter { $0["outcome"] as? String == "acquired" }.compactMap { $0["pid"] as? Int }
        XCTAssertEqual(Set(acquired), [Int(a.pid), Int(b.pid)], "both disjoint owners acquire at once")
        let doc = try XCTUnwrap(lines.last)
        let l = try XCTUnwrap(locks(doc).first)
        XCTAssertEqual(l["acquisitions"] as? Int, 3)
        XCTAssertEqual(l["contended"] as? Int, 1)
        XCTAssertEqual(processes(l)[a.pid]?["waits"] as? Int, 0)
        XCTAssertEqual(processes(l)[b.pid]?["waits"] as? Int, 0)
        XCTAssertEqual(processes(l)[c.pid]?["waits"] as? Int, 1)
        XCTAssertEqual(num(processes(l)[c.pid]?["wait_seconds"]), 0.4, accuracy: 0.2)
    }

    static let leaseHolder = """
    import fcntl, os, signal, sys, time
    broken = []
    signal.signal(signal.SIGIO, lambda *a: broken.append(time.monotonic()))
    fd = os.open(sys.argv[1], os.O_RDONLY)
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    print('ready', flush=True)
    while not broken:
        time.sleep(0.01)
    time.sleep(0.3)
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    print('released', flush=True)
    time.sleep(600)
    """

    /// `watch --events --json --duration D FILE` over one lease break: `holderScript`
    /// (python3) takes a lease on FILE and prints `ready`; another process opens FILE
    /// with `opening` (which breaks the lease) and prints `opened`; the holder prints
    /// `answered` once it has answered the break. Both are gone when this returns.
    func watchLeaseBreak(holderScript: String, opening: String, answered: String, duration: Int) throws
        -> (holder: Spawned, opener: Spawned, text: String, lines: [[String: Any]]) {
        try requireLockEvents()
        try requireExecutable("python3")
        guard readProcText("/proc/sys/fs/leases-enable")?.hasPrefix("1") ?? false else { try skip("leases disabled (fs.leases-enable)") }
        let py = try XCTUnwrap(which("python3"))
        let dir = try TempDir()
        defer { dir.remove() }
        let file = try dir.touch("leased")
        let watch = try RunningWatch(["--events", "--json", "--duration", String(duration), file], dir: dir)
        let holder = try Spawned([py, "-c", holderScript, file])
        defer { holder.terminate() }
        _ = try holder.waitFor(line: "ready")
        let opener = try Spawned([py, "-c", "import os, sys; os.open(sys.argv[1], os.\(opening)); print('opened', flush=True)", file])
        defer { opener.terminate() }
        _ = try opener.waitFor(line: "opened")
        _ = try holder.waitFor(line: answered)
        let (status, text) = try watch.finish()
        XCTAssertEqual(status, 0, text)
        return (holder, opener, text, try jsonLines(text))
    }

    /// A read lease (F_SETLEASE) broken by another process's open() for writing;
    /// the holder answers the SIGIO after 0.3 s with F_SETLEASE F_UNLCK.
    func testLeaseBrokenByAnOpen() throws {
        let scene = try watchLeaseBreak(holderScript: Self.leaseHolder, opening: "O_WRONLY", answered: "released", duration: 6)
        let (holder, breaker, text, lines) = (scene.holder, scene.opener, scene.text, scene.lines)
        let doc = try XCTUnwrap(lines.last)
        let l = try XCTUnwrap(locks(doc).first { $0["kind"] as? String == "LEASE" }, text)
        XCTAssertEqual(l["acquisitions"] as? Int, 1)
        XCTAssertEqual(l["contended"] as? Int, 1, "the opener waited for the break")
        let breaks = try XCTUnwrap(l["lease_breaks"] as? [String: Any])
        XCTAssertEqual(breaks["count"] as? Int, 1)
        let b = try XCTUnwrap((breaks["breaks"] as? [[String: Any]])?.first)
        XCTAssertEqual(b["holder"] as? Int, Int(holder.pid))
        XCTAssertEqual(b["breaker"] as? Int, Int(breaker.pid))
        XCTAssertEqual(b["resolution"] as? String, "released")
        XCTAssertEqual(num(b["seconds"]), 0.3, accuracy: 0.15)
        XCTAssertEqual(num(processes(l)[breaker.pid]?["wait_seconds"]), 0.3, accuracy: 0.15)
        let released = try XCTUnwrap(lines.first { $0["kind"] as? String == "LEASE" && $0["outcome"] as? String == "released" })
        XCTAssertEqual(released["pid"] as? Int, Int(holder.pid))
        XCTAssertEqual(released["broken_by"] as? Int, Int(breaker.pid))
    }

    static let writeLeaseHolder = """
    import fcntl, os, signal, sys, time
    broken = []
    signal.signal(signal.SIGIO, lambda *a: broken.append(time.monotonic()))
    # Read-only: a read lease is refused while the file is open for writing, the
    # holder's own open included (check_conflicting_open), so the downgrade needs it.
    fd = os.open(sys.argv[1], os.O_RDONLY)
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
    print('ready', flush=True)
    while not broken:
        time.sleep(0.01)
    time.sleep(0.5)
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    print('downgraded', flush=True)
    time.sleep(600)
    """

    /// A write lease broken by a reader's open(): the kernel flags it
    /// FL_DOWNGRADE_PENDING and the opener wakes every jiffy until the holder
    /// downgrades (0.5 s later). One wait and one break, not one per wake.
    func testWriteLeaseBrokenByAReaderIsOneBreak() throws {
        let scene = try watchLeaseBreak(holderScript: Self.writeLeaseHolder, opening: "O_RDONLY", answered: "downgraded", duration: 2)
        let (holder, reader, text, lines) = (scene.holder, scene.opener, scene.text, scene.lines)
        let queued = lines.filter { $0["kind"] as? String == "LEASE" && $0["outcome"] as? String == "queued" }
        XCTAssertEqual(queued.count, 1, "one queued open, not one per wake: \(text)")
        let doc = try XCTUnwrap(lines.last)
        let l = try XCTUnwrap(locks(doc).first { $0["kind"] as? String == "LEASE" }, text)
        XCTAssertEqual(l["contended"] as? Int, 1, "the opener waited once")
        let breaks = try XCTUnwrap(l["lease_breaks"] as? [String: Any])
        XCTAssertEqual(breaks["count"] as? Int, 1, text)
        let b = try XCTUnwrap((breaks["breaks"] as? [[String: Any]])?.first)
        XCTAssertEqual(b["holder"] as? Int, Int(holder.pid))
        XCTAssertEqual(b["breaker"] as? Int, Int(reader.pid))
        XCTAssertEqual(b["resolution"] as? String, "downgraded")
        XCTAssertEqual(num(b["seconds"]), 0.5, accuracy: 0.2)
        XCTAssertEqual(processes(l)[reader.pid]?["waits"] as? Int, 1)
        XCTAssertEqual(num(processes(l)[reader.pid]?["wait_seconds"]), 0.5, accuracy: 0.2)
    }

    /// With no FILE, a lock's path comes from the locker's open files.
    func testSystemWideWatchResolvesPaths() throws {
        try requireLockEvents()
        try requireExecutable("flock")
        let dir = try TempDir()
        defer { dir.remove() }
        let file = try dir.touch("sys wide")
        let id = try TargetResolver().resolve(file).file
        let watch = try RunningWatch(["--json", "--duration", "3"], dir: dir)
        let holder = try Testbed.spawn(["open:" + file, "flock:ex"])
        defer { holder.terminate() }
        try holder.waitForReady()
        usleep(200_000)
        holder.release()
        _ = holder.waitForExit()
        let doc = try watch.summaryJSON()
        let l = try XCTUnwrap(locks(doc).first { $0["inode"] as? Int == Int(id.inode) && $0["device"] as? String == id.device })
        XCTAssertEqual(l["path"] as? String, file)
    }
}
