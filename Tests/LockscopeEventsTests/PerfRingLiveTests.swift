import Glibc
import LockscopeCore
@testable import LockscopeEvents
import LockscopeTestSupport
import XCTest

/// Skips (with a printed reason) unless lock events can be opened here.
func requireLockEvents(file: StaticString = #filePath, line: UInt = #line) throws {
    try requireRoot("perf_event_open on tracepoints system-wide", file: file, line: line)
    do { _ = try LockEventSource(ancestry: false, pages: 1) } catch {
        try skip("lock events unavailable: \(error)", file: file, line: line)
    }
}

/// flock(2) on `path` from this process: LOCK_EX then LOCK_UN, `count` times.
func flockLoop(_ path: String, count: Int) {
    let fd = open(path, O_RDWR | O_CLOEXEC)
    defer { close(fd) }
    for _ in 0..<count {
        _ = flock(fd, LOCK_EX)
        _ = flock(fd, LOCK_UN)
    }
}

final class PerfRingLiveTests: XCTestCase {
    /// System-wide rings see this process's flocks, in time order across CPUs, and
    /// the in-kernel filter keeps only the named file.
    func testFilteredEventsInTimeOrder() throws {
        try requireLockEvents()
        let dir = try TempDir()
        defer { dir.remove() }
        let a = try dir.touch("a"), b = try dir.touch("b")
        let ida = try TargetResolver().resolve(a).file
        let source = try LockEventSource(files: [ida], ancestry: false)
        defer { source.close() }
        try source.enable()
        flockLoop(b, count: 50)
        flockLoop(a, count: 100)
        flockLoop(b, count: 50)
        var events: [LockEvent] = []
        _ = waitUntil(timeout: 5) {
            source.drain(everything: true) { if case .lock(let l) = $0 { events.append(l) } }
            return events.count >= 200
        }
        XCTAssertEqual(events.count, 200, "100 LOCK_EX + 100 LOCK_UN on a, none on b")
        XCTAssertTrue(events.allSatisfy { $0.file == ida && $0.header.pid == getpid() })
        XCTAssertEqual(events.filter { $0.type == .unlock }.count, 100)
        XCTAssertEqual(events.filter { $0.type == .write && $0.ret == 0 }.count, 100)
        XCTAssertEqual(zip(events, events.dropFirst()).filter { $0.0.header.time > $0.1.header.time }.count, 0)
        XCTAssertEqual(source.lostEvents, 0)
    }

    /// A one-page ring overrun: the kernel's PERF_RECORD_LOST is counted, and
    /// delivered + lost accounts for every event.
    func testLostEventsAreCounted() throws {
        try requireLockEvents()
        let dir = try TempDir()
        defer { dir.remove() }
        let a = try dir.touch("a")
        let id = try TargetResolver().resolve(a).file
        let source = try LockEventSource(files: [id], ancestry: false, pages: 1)
        defer { source.close() }
        try source.enable()
        flockLoop(a, count: 1000)  // 2000 events of 96 bytes into 4 KiB rings
        source.session.disable()
        var seen: UInt64 = 0
        source.drain(everything: true) { _ in seen += 1 }
        XCTAssertGreaterThan(source.lostEvents, 0)
        XCTAssertGreaterThan(seen, 0)
        XCTAssertEqual(seen + source.lostEvents, 2000)
    }

    /// Task-bound events (the engine `trace --kernel` builds on) see only their task.
    func testTaskBoundSession() throws {
        try requireLockEvents()
        let formats = try TracefsSource.current().formats([LockTracepoint.flockLockInode.tracepoint])
        let f = try XCTUnwrap(formats[LockTracepoint.flockLockInode.tracepoint])
        let session = try PerfSession(tracepointIds: [f.id], target: .task(pid: getpid(), inherit: false))
        let decoder = try EventDecoder(formats: formats)
        try session.enable()
        let dir = try TempDir()
        defer { dir.remove() }
        let a = try dir.touch("a")
        flockLoop(a, count: 10)
        _ = try runCommand(["/usr/bin/flock", a, "true"])  // another process: not seen
        var mine = 0, others = 0
        session.drain(everything: true) { s in
            guard case .lock(let l)? = decoder.decode(s.header, raw: s.raw) else { return }
            if l.header.pid == getpid() { mine += 1 } else { others += 1 }
        }
        XCTAssertEqual(mine, 20)
        XCTAssertEqual(others, 0)
        session.close()
    }
}
