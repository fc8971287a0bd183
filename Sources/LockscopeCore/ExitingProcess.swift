/// A lock owner that is exiting: `do_exit()` has begun (the group leader may already be
/// a zombie) but a thread is still closing the process's files, so the lock is still
/// held. A slow close is what keeps it there: `filp_close()` calls the filesystem's
/// `flush` (fuse_flush, nfs_file_flush) before the lock goes, and a flock is released
/// only by the final `fput()` after that (fs/file.c, fs/locks.c `locks_remove_file()`).
/// Its descriptors are no longer listed (`exit_files()` clears `task->files` first), so
/// without this check it looks like a pid that was reused.

/// One thread of an exiting process that has not become a zombie yet.
public struct ExitingThread: Sendable, Hashable {
    public var tid: Int32
    /// R, S, D … from /proc/PID/task/TID/stat.
    public var state: Character
    /// /proc/PID/task/TID/wchan (the kernel function it sleeps in), when readable and nonzero.
    public var wchan: String?
    /// /proc/PID/task/TID/stack, innermost frame first; nil when unreadable (root only).
    public var kernelStack: [String]?

    public init(tid: Int32, state: Character, wchan: String? = nil, kernelStack: [String]? = nil) {
        self.tid = tid
        self.state = state
        self.wchan = wchan
        self.kernelStack = kernelStack
    }
}

public enum ExitingProcess {
    /// `PF_EXITING` (include/linux/sched.h), set by `exit_signals()` as `do_exit()` begins
    /// and kept on the zombie; field 9 of /proc/PID/stat.
    public static let pfExiting: UInt64 = 0x4

    /// `exiting: 2 threads still closing files`: the words every output uses.
    public static func summary(closing count: Int) -> String {
        "exiting: \(count) thread\(count == 1 ? "" : "s") still closing files"
    }

    /// The threads still in `do_exit()` when `pid` (whose stat is `leader`) is exiting;
    /// nil when it is not: the leader lacks `PF_EXITING`, or a thread that is not a zombie
    /// lacks it (a leader that called `pthread_exit()` while the others run on).
    public static func threads(proc: ProcRoot, pid: Int32, leader: StatFields) -> [ExitingThread]? {
        guard leader.flags & pfExiting != 0 else { return nil }
        let tids = ((try? proc.listDirectory("\(pid)/task")) ?? []).compactMap { Int32($0) }.sorted()
        var out: [ExitingThread] = []
        for tid in tids {
            let base = "\(pid)/task/\(tid)"
            guard let text = try? proc.readText(base + "/stat"), let stat = StatFields.parse(text) else { continue }
            if stat.state == "Z" || stat.state == "X" { continue }
            guard stat.flags & pfExiting != 0 else { return nil }
            let wchan = (try? proc.readText(base + "/wchan")).flatMap { $0.isEmpty || $0 == "0" ? nil : $0 }
            out.append(ExitingThread(tid: tid, state: stat.state, wchan: wchan,
                                     kernelStack: (try? proc.readText(base + "/stack")).flatMap(KernelStack.parse)))
        }
        return out
    }
}

public enum KernelStack {
    /// /proc/PID/task/TID/stack, one `[<0>] request_wait_answer+0x11a/0x260` line per frame
    /// (fs/proc/base.c `proc_pid_stack()`: `"[<0>] %pB\n"`) → the frames without the
    /// address. Nil when there are none (a running thread, or an empty recording).
    public static func parse(_ text: String) -> [String]? {
        let frames = text.split(separator: "\n").map { line -> Substring in
            let frame = line.firstIndex(of: "]").map { line[line.index(after: $0)...] } ?? line
            return frame.drop { $0 == " " }
        }.filter { !$0.isEmpty }.map(String.init)
        return frames.isEmpty ? nil : frames
    }
}
