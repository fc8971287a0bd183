import XCTest
import Foundation
import LockscopeCore
import LockscopeTestSupport
@testable import LockscopeTrace

/// The one sampler on recorded trees: what `diagnose --proc-root` and a holder of
/// another user (best effort) get from it.
final class SamplerFixtureTests: XCTestCase {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../LockscopeCoreTests/Fixtures").standardized.path

    /// One sample of a recorded tree: the call decoded from the recorded registers,
    /// descriptors from the recorded links, memory unreadable (there is no process).
    func testRecordedTreeIsOneSampleWithoutMemory() throws {
        let sampler = Sampler(proc: ProcRoot(fixtures + "/flock-chain"), bestEffort: true)
        let r = try sampler.sample(pids: [5690, 5689], duration: .seconds(5), hz: 100, shouldStop: { false })
        XCTAssertEqual(r.rounds, 1, "a recorded tree has no window")
        let sleep = try XCTUnwrap(r.processes.first { $0.pid == 5690 }?.threads.first?.current)
        XCTAssertEqual(sleep.name, "clock_nanosleep")
        XCTAssertEqual(sleep.argument("request"), .unreadable(address: 0x7ffcc1cb1440, errno: ESRCH))
        let wait = try XCTUnwrap(r.processes.first { $0.pid == 5689 }?.threads.first?.current)
        XCTAssertEqual(wait.waitTarget, .child(5690))
    }

    /// A process whose syscall file cannot be read: best effort still reports its
    /// state; the strict sampler (`lockscope trace`) refuses it.
    func testBestEffortReportsWhatCanBeRead() throws {
        let dir = try TempDir()
        let stat = "77 (holder) S 1 77 77 0 -1 4194304 0 0 0 0 5 2 0 0 20 0 1 0 100 0 0 0\n"
        try FileManager.default.createDirectory(atPath: dir.file("77/task/77"), withIntermediateDirectories: true)
        try stat.write(toFile: dir.file("77/stat"), atomically: true, encoding: .utf8)
        try stat.write(toFile: dir.file("77/task/77/stat"), atomically: true, encoding: .utf8)
        let proc = ProcRoot(dir.path)
        let r = try Sampler(proc: proc, bestEffort: true).sample(pids: [77], duration: .zero, shouldStop: { false })
        let t = try XCTUnwrap(r.processes.first?.threads.first)
        XCTAssertEqual(t.state, "S")
        XCTAssertNil(t.current)
        XCTAssertEqual(t.histogram.map(\.bucket), [.unknown])
        XCTAssertThrowsError(try Sampler(proc: proc).sample(pids: [77], duration: .zero, shouldStop: { false }))
    }
}
