// Live-test helpers: a private temporary directory.
import Foundation
import Glibc
import SystemPackage

/// A private (mode 0700) directory made with `mkdtemp(3)` under `$TMPDIR` or
/// `/tmp`, removed with everything in it by ``remove()`` or on deinit.
///
///     let dir = try TempDir()
///     let lockFile = dir.file("xtables.lock")
public final class TempDir {
    /// Absolute path of the directory (no trailing slash).
    public let path: String
    private var removed = false

    /// Creates `<tmp>/<prefix>XXXXXX`. Throws `TestSupportError.system` on failure.
    public init(prefix: String = "lockscope-test.") throws {
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(base)/\(prefix)XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else { throw TestSupportError.system(call: "mkdtemp", errno: Errno(rawValue: errno), context: base) }
        path = String(cString: template)
    }

    /// `path + "/" + name` (nothing is created).
    public func file(_ name: String) -> String { path + "/" + name }

    /// Creates an empty file `name` (mode 0644) and returns its path.
    @discardableResult
    public func touch(_ name: String) throws -> String {
        let p = file(name)
        let fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TestSupportError.system(call: "open", errno: Errno(rawValue: errno), context: p) }
        close(fd)
        return p
    }

    /// Removes the directory and its contents; safe to call more than once.
    public func remove() {
        guard !removed else { return }
        removed = true
        try? FileManager.default.removeItem(atPath: path)
    }

    deinit { remove() }
}
