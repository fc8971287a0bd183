// Live-test helpers: finding the built executables.
import Foundation
import Glibc

/// Paths of the executables SwiftPM built next to the running test bundle.
///
/// `swift test` runs `<scratch>/<triple>/debug/lockscopePackageTests.xctest`, an
/// executable whose directory also holds `lockscope` and `lockscope-testbed`
/// (test targets depend on both, so they are always built). The lookup order is:
/// 1. `$LOCKSCOPE_BIN_DIR` if set (for running tests against another build);
/// 2. the directory of `realpath(/proc/self/exe)`;
/// 3. `.build/debug` in the current directory or any parent of it, then any parent
///    of this source file (`#filePath`).
public enum TestBinaries {
    /// The directory holding the built executables (see the lookup order above).
    public static let directory: String = locateDirectory()

    /// Absolute path of `lockscope-testbed`; `$LOCKSCOPE_TESTBED` overrides it. The
    /// sanitizer runs (scripts/sanitize) point it at an uninstrumented build: the testbed
    /// is the observed fixture, not the code under test, and ThreadSanitizer's runtime
    /// adds a thread of its own to every instrumented process (it sleeps in 100 ms
    /// `nanosleep`s), which the tracer tests would rightly see and count.
    public static var testbed: String {
        if let env = ProcessInfo.processInfo.environment["LOCKSCOPE_TESTBED"], !env.isEmpty { return env }
        return path(of: "lockscope-testbed")
    }

    /// Absolute path of the `lockscope` CLI.
    public static var lockscope: String { path(of: "lockscope") }

    /// Absolute path of a built executable named `name` in ``directory``.
    public static func path(of name: String) -> String { directory + "/" + name }

    static func locateDirectory(file: String = #filePath) -> String {
        func hasBinaries(_ dir: String) -> Bool {
            access(dir + "/lockscope-testbed", X_OK) == 0
        }
        if let env = ProcessInfo.processInfo.environment["LOCKSCOPE_BIN_DIR"], !env.isEmpty {
            return env
        }
        if let exe = realpathString("/proc/self/exe") {
            let dir = (exe as NSString).deletingLastPathComponent
            if hasBinaries(dir) { return dir }
        }
        var starts = [FileManager.default.currentDirectoryPath]
        starts.append((file as NSString).deletingLastPathComponent)
        for start in starts {
            var dir = start
            while dir != "/" && !dir.isEmpty {
                let candidate = dir + "/.build/debug"
                if hasBinaries(candidate), let real = realpathString(candidate) { return real }
                dir = (dir as NSString).deletingLastPathComponent
            }
        }
        // Not found: return the exe's directory so the error names a real place.
        return realpathString("/proc/self/exe").map { ($0 as NSString).deletingLastPathComponent } ?? ".build/debug"
    }

    static func realpathString(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }
}
