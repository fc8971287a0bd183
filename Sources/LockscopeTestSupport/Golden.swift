// Test helpers: golden files, compared byte for byte.
import Foundation
import XCTest

/// Fails unless `actual` equals the file at `path` byte for byte, naming the first
/// differing line. With `LOCKSCOPE_UPDATE_GOLDEN=1` in the environment it writes
/// `actual` to `path` instead (to accept a deliberate change; review the diff).
public func assertGolden(_ actual: String, path: String, file: StaticString = #filePath, line: UInt = #line) throws {
    if ProcessInfo.processInfo.environment["LOCKSCOPE_UPDATE_GOLDEN"] == "1" {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try actual.write(toFile: path, atomically: true, encoding: .utf8)
        return
    }
    guard let expected = try? String(contentsOfFile: path, encoding: .utf8) else {
        return XCTFail("no golden file \(path) (LOCKSCOPE_UPDATE_GOLDEN=1 to write it)", file: file, line: line)
    }
    guard expected != actual else { return }
    let e = expected.split(separator: "\n", omittingEmptySubsequences: false)
    let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
    let first = zip(e, a).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(e.count, a.count)
    XCTFail("\(path) differs at line \(first + 1):\n- \(first < e.count ? String(e[first]) : "(end)")\n+ \(first < a.count ? String(a[first]) : "(end)")\n(LOCKSCOPE_UPDATE_GOLDEN=1 to accept)", file: file, line: line)
}
