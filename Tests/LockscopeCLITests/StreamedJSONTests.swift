import XCTest
import LockscopeCore
import LockscopeRender

/// `who`/`waiters`/`list --json` stream the report lock by lock; the result must be
/// byte-identical to serializing the whole tree (the documented schema).
final class StreamedJSONTests: XCTestCase {
    struct Text: TextOutputStream {
        var value = ""
        mutating func write(_ s: String) { value += s }
    }

    func testStreamedDocumentEqualsTheTree() throws {
        let json = ReportJSON(syscallName: { $0 == 73 ? "flock" : nil })
        for name in ["flock-chain", "ofd", "posix-ranges", "leaked-fd", "hostile-name", "lease", "pid-reused", "net-holders", "io-holder"] {
            let proc = ProcRoot(CLI.fixtures + "/" + name)
            let report = try LockScanner(proc: proc, excludedPids: []).allLocks(options: .init(coHolders: true))
            XCTAssertFalse(report.locks.isEmpty, name)
            var streamed = Text()
            json.write(report, to: &streamed)
            XCTAssertEqual(streamed.value, json.value(report).serialized(), name)
        }
        var empty = Text()
        json.write(LockReport(), to: &empty)
        XCTAssertEqual(empty.value, json.value(LockReport()).serialized())
    }
}
