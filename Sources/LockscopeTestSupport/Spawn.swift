// Live-test helpers: posix_spawn with pipes, shared by Testbed and Command, through
// Core's `Spawn` (the one the demo uses).
import Foundation
import Glibc
import LockscopeCore

/// Serialises pipe creation + spawn so no fd of one spawn leaks into another
/// (there is no pipe2(O_CLOEXEC) in Swift's Glibc; we set FD_CLOEXEC after pipe()).
let spawnLock = NSLock()

/// A pipe whose both ends are close-on-exec in this process.
func cloexecPipe() throws -> (read: Int32, write: Int32) {
    do { return try Spawn.cloexecPipe() } catch {
        throw TestSupportError.system(call: "pipe", errno: error.rawValue, context: "spawn")
    }
}

/// Spawns `argv` with stdin/stdout/stderr connected to the given fds (dup2'ed
/// in the child). `newProcessGroup` puts the child in a process group of its own
/// (pgid == pid). Returns the pid.
func spawnProcess(_ argv: [String], stdin: Int32, stdout: Int32, stderr: Int32,
                  newProcessGroup: Bool, environment: [String: String]? = nil) throws -> pid_t {
    do {
        return try Spawn.process(argv, stdin: stdin, stdout: stdout, stderr: stderr, newProcessGroup: newProcessGroup,
                                 environment: environment.map { $0.map { "\($0.key)=\($0.value)" } })
    } catch {
        throw TestSupportError.system(call: "posix_spawn", errno: error.rawValue, context: argv[0])
    }
}
