// Live-test helpers: posix_spawn with pipes, shared by Testbed and Command, through
// Core's `Spawn` (the one the demo uses).
import Foundation
import Glibc
import LockscopeCore
import SystemPackage

/// Serialises pipe creation + spawn so no fd of one spawn leaks into another
/// (there is no pipe2(O_CLOEXEC) in Swift's Glibc; the pipes get FD_CLOEXEC after pipe()).
let spawnLock = NSLock()

/// Starts `argv` in a process group of its own (pgid == pid) with its stdin, stdout
/// and, when `pipeStderr`, stderr (else ours; then `stderr` is -1) on fresh pipes.
/// Returns the pid and our ends of the pipes. `environment` defaults to this process's.
func spawnPiped(_ argv: [String], pipeStderr: Bool, environment: [String: String]?) throws
    -> (pid: pid_t, stdin: Int32, stdout: Int32, stderr: Int32) {
    spawnLock.lock()
    defer { spawnLock.unlock() }
    var opened: [Int32] = []
    var call = "pipe"
    do throws(Errno) {
        func pipe() throws(Errno) -> (read: Int32, write: Int32) {
            let p = try Spawn.cloexecPipe()
            opened += [p.read, p.write]
            return p
        }
        let input = try pipe(), output = try pipe(), errors = pipeStderr ? try pipe() : nil
        call = "posix_spawn"
        let pid = try Spawn.process(argv, stdin: input.read, stdout: output.write, stderr: errors?.write ?? 2,
                                    environment: environment.map { $0.map { "\($0.key)=\($0.value)" } })
        for fd in [input.read, output.write, errors?.write ?? -1] where fd >= 0 { close(fd) }
        return (pid, input.write, output.read, errors?.read ?? -1)
    } catch {
        for fd in opened { close(fd) }
        throw TestSupportError.system(call: call, errno: error, context: argv[0])
    }
}
