// Live-test helpers: errors thrown by the support code.
import SystemPackage

/// Why a test-support call failed. Thrown, so an XCTest method marked `throws`
/// reports it as a failure with the message below.
public enum TestSupportError: Error, CustomStringConvertible {
    /// A system call failed.
    case system(call: String, errno: Errno, context: String)
    /// A wait ran out of time; `detail` says what was seen instead.
    case timeout(what: String, seconds: Double, detail: String)
    /// The testbed exited or closed stdout before printing what we waited for.
    case exited(what: String, output: [String])
    /// Something a test expected was not there (no errno involved).
    case unexpected(what: String, detail: String)

    public var description: String {
        switch self {
        case let .system(call, e, context):
            return "\(call) failed for \(context): \(e) (errno \(e.rawValue))"
        case let .timeout(what, seconds, detail):
            return "timed out after \(seconds) s waiting for \(what); \(detail)"
        case let .exited(what, output):
            return "process ended before \(what); its output was:\n" + output.joined(separator: "\n")
        case let .unexpected(what, detail):
            return "\(what): \(detail)"
        }
    }
}
