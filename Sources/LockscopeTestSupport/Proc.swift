// Live-test helpers: waiting on /proc facts about live processes.
import Foundation
import Glibc
import LockscopeCore

/// Polls `condition` every `interval` seconds until it returns true (then
/// returns true) or `timeout` seconds pass (then returns false).
@discardableResult
public func waitUntil(timeout: Double = 10, interval: Double = 0.01, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = MonotonicClock.seconds + timeout
    while true {
        if try condition() { return true }
        if MonotonicClock.seconds >= deadline { return false }
        usleep(UInt32(interval * 1_000_000))
    }
}

/// The system call number `/proc/PID/task/TID/syscall` shows for a thread
/// (`tid` defaults to `pid`, the main thread): the number while it is blocked or
/// sleeping in a call, -1 when it is blocked outside a system call, nil when it
/// is running or the file is unreadable (gone, or no permission).
public func syscallNumber(of pid: pid_t, tid: pid_t? = nil) -> Int? {
    guard let text = readProcText("/proc/\(pid)/task/\(tid ?? pid)/syscall") else { return nil }
    guard let first = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).first else { return nil }
    return Int(first)
}

/// The thread ids in /proc/PID/task (empty if the process is gone).
public func threadIds(of pid: pid_t) -> [pid_t] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? [])
        .compactMap { pid_t($0) }.sorted()
}

/// Waits until a thread of `pid` (`tid` if given, otherwise any thread) sits in
/// system call `number` (x86_64: flock = 73, fcntl = 72, poll = 7, nanosleep = 35,
/// clock_nanosleep = 230, wait4 = 61). Throws a timeout error listing what each
/// thread was doing.
public func waitUntilBlocked(_ pid: pid_t, tid: pid_t? = nil, inSyscall number: Int32,
                             timeout: Double = 10) throws {
    let ok = waitUntil(timeout: timeout) {
        let tids = tid.map { [$0] } ?? threadIds(of: pid)
        return tids.contains { syscallNumber(of: pid, tid: $0) == Int(number) }
    }
    if !ok {
        let seen = threadIds(of: pid).map { "\($0): \(readProcText("/proc/\(pid)/task/\($0)/syscall")?.prefix(40) ?? "unreadable")" }
        throw TestSupportError.timeout(what: "pid \(pid) to block in syscall \(number)", seconds: timeout,
                                       detail: seen.isEmpty ? "process gone" : "threads: " + seen.joined(separator: "; "))
    }
}

/// True while /proc/PID exists and the process is not a zombie.
public func processIsAlive(_ pid: pid_t) -> Bool {
    guard let state = readProcText("/proc/\(pid)/stat").flatMap(StatFields.parse)?.state else { return false }
    return state != "Z" && state != "X"
}

/// The lines of /proc/locks whose pid column is `pid` (the owner as the kernel
/// names it), waiters (`->`) included.
public func procLocksLines(pid: pid_t) -> [String] {
    (readProcText("/proc/locks") ?? "").split(separator: "\n").map(String.init).filter { line in
        var words = line.split(separator: " ")
        if words.count > 1 && words[1] == "->" { words.remove(at: 1) }
        return words.count > 4 && words[4] == "\(pid)"
    }
}

/// The `lock:` lines of /proc/PID/fdinfo/FD (locks held through that fd).
public func fdinfoLockLines(pid: pid_t, fd: Int32) -> [String] {
    (readProcText("/proc/\(pid)/fdinfo/\(fd)") ?? "").split(separator: "\n")
        .filter { $0.hasPrefix("lock:") }.map(String.init)
}

/// The fds of `pid` whose fdinfo has at least one `lock:` line.
public func fdsHoldingLocks(pid: pid_t) -> [Int32] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fdinfo")) ?? [])
        .compactMap { Int32($0) }.sorted().filter { !fdinfoLockLines(pid: pid, fd: $0).isEmpty }
}

/// Reads a small /proc file with plain read(2) (no stat, never follows fd links).
public func readProcText(_ path: String) -> String? { try? ProcRoot("/").readText(String(path.drop { $0 == "/" })) }
