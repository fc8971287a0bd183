import XCTest
import Glibc
import LockscopeCore
import LockscopeTestSupport
@testable import LockscopeTrace

/// The ptrace tracer in-process on testbed tracees. (The tracer waits for any
/// child, so these tests run one traced testbed at a time.)
final class PtraceLiveTests: XCTestCase {
    override func setUpWithError() throws {
        try requirePtrace()
    }

    func status(_ pid: Int32) -> (state: String, tracer: String) {
        let text = readProcText("/proc/\(pid)/status") ?? ""
        func field(_ name: String) -> String {
            text.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                .map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) } ?? ""
        }
        return (field("State"), field("TracerPid"))
    }

    /// Calls with decoded arguments, errors, the in-progress call at attach, the summary.
    func testTracesSyscallsAndDetaches() throws {
        let bed = try Testbed.spawn(["sleep:400", "syscalls:50:10", "sleep:5000"])
        defer { bed.terminate() }
        try waitUntilBlocked(bed.pid, inSyscall: 230)
        var events: [TraceEvent] = []
        let summary = try PtraceTracer().trace(pids: [bed.pid], options: TraceOptions(duration: .seconds(2))) { e in
            events.append(e)
            return true
        }
        XCTAssertEqual(summary.endedBy, .duration)
        let calls = events.compactMap { e -> TracedSyscall? in if case .syscall(let s) = e { return s } else { return nil } }
        // The sleep it was in when we attached, resumed and finished.
        let first = try XCTUnwrap(calls.first)
        XCTAssertTrue(first.inProgressAtAttach)
        XCTAssertEqual(first.call.name, "clock_nanosleep")
        XCTAssertEqual(first.result, .value(0))
        // The workload: one-byte writes and reads on a pipe.
        let writes = calls.filter { $0.call.name == "write" && $0.call.argument("count") == .uint(1) }
        XCTAssertGreaterThanOrEqual(writes.count, 50)
        guard case .pipe? = writes.first?.call.fds.first?.what else { return XCTFail("write fd: \(String(describing: writes.first))") }
        XCTAssertEqual(writes.first?.result, .value(1))
        // Still sleeping at the end: reported unfinished.
        let last = try XCTUnwrap(calls.last)
        XCTAssertNil(last.result)
        XCTAssertEqual(last.call.timeout?.seconds, 5)
        XCTAssertTrue(events.contains { if case .detached(_, bed.pid) = $0 { return true } else { return false } })
        let stats = try XCTUnwrap(summary.stats.first { $0.name == "write" })
        XCTAssertGreaterThanOrEqual(stats.count, 50)
        XCTAssertEqual(summary.stats.first?.classes.contains(.blocking), true, "blocking calls first")
        // Let go: not stopped, not traced.
        XCTAssertTrue(waitUntil(timeout: 2) { self.status(bed.pid).tracer == "0" })
        XCTAssertFalse(status(bed.pid).state.hasPrefix("t"), status(bed.pid).state)
        XCTAssertFalse(status(bed.pid).state.hasPrefix("T"), status(bed.pid).state)
    }
}

extension PtraceLiveTests {
    /// A thread born during the trace is followed; a filter limits events and the summary.
    func testNewThreadFollowedAndFilter() throws {
        let bed = try Testbed.spawn(["sleep:300", "thread:sleep:200", "sleep:600"])
        defer { bed.terminate() }
        try waitUntilBlocked(bed.pid, inSyscall: 230)
        var events: [TraceEvent] = []
        let filter = try SyscallFilter(parsing: "sleep", table: .host)
        let summary = try PtraceTracer().trace(pids: [bed.pid], options: TraceOptions(duration: .seconds(1.2), filter: filter)) { e in
            events.append(e)
            return true
        }
        let newThreads = events.compactMap { e -> Int32? in
            if case .newTask(_, _, let tid, true) = e { return tid } else { return nil }
        }
        XCTAssertEqual(newThreads.count, 1, "\(events)")
        let sleeps = events.compactMap { e -> TracedSyscall? in if case .syscall(let s) = e { return s } else { return nil } }
        XCTAssertTrue(sleeps.allSatisfy { $0.call.classes.contains(.sleep) }, "\(sleeps.map(\.call.name))")
        XCTAssertTrue(sleeps.contains { $0.tid == newThreads.first && $0.call.timeout?.milliseconds == 200 && $0.result == .value(0) })
        XCTAssertEqual(summary.stats.map(\.name), ["clock_nanosleep"])
        XCTAssertEqual(Set(summary.tids).count, 2)
        XCTAssertEqual(status(bed.pid).tracer, "0")
    }

    /// Attach refusals as values.
    func testRefusalValues() throws {
        XCTAssertThrowsError(try PtraceTracer().trace(pids: [getpid()], onEvent: { _ in true })) {
            XCTAssertEqual($0 as? TraceError, .ownProcess(getpid()))
        }
        XCTAssertThrowsError(try PtraceTracer().trace(pids: [999_999_999], onEvent: { _ in true })) {
            XCTAssertEqual($0 as? TraceError, .noSuchProcess(999_999_999))
        }
        XCTAssertThrowsError(try PtraceTracer(proc: ProcRoot("/tmp")).trace(pids: [1], onEvent: { _ in true })) {
            XCTAssertEqual($0 as? TraceError, .notLive("/tmp"))
        }
    }
}

extension PtraceLiveTests {
    /// A descriptor number reused for another file is resolved afresh (the fd cache follows close/open).
    func testFdCacheFollowsCloseAndReopen() throws {
        let dir = try TempDir()
        let a = dir.file("a.lock"), b = dir.file("b.lock")
        let bed = try Testbed.spawn(["sleep:300", "open:\(a)", "flock:sh", "flock:un", "close", "open:\(b)", "flock:ex"])
        defer { bed.terminate() }
        try waitUntilBlocked(bed.pid, inSyscall: 230)
        var flocks: [TracedSyscall] = []
        _ = try PtraceTracer().trace(pids: [bed.pid], options: TraceOptions(duration: .seconds(1), filter: try SyscallFilter(parsing: "lock"))) { e in
            if case .syscall(let s) = e, s.call.name == "flock" { flocks.append(s) }
            return true
        }
        XCTAssertEqual(flocks.count, 3, "\(flocks.map { $0.call })")
        guard flocks.count == 3 else { return }
        XCTAssertEqual(flocks[0].call.fds.first?.what, .path(a))
        XCTAssertEqual(flocks[2].call.fds.first?.fd, flocks[0].call.fds.first?.fd, "the fd number is reused")
        XCTAssertEqual(flocks[2].call.fds.first?.what, .path(b))
        XCTAssertEqual(flocks[2].call.flockOperation?.kind, .exclusive)
    }
}
