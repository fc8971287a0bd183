/// The path of a file, found from a process that has it open: `readlink` of
/// /proc/PID/fd/N, confirmed by fdinfo `mnt_id:`/`ino:` and the process's
/// mountinfo (so a reused fd number or pid cannot name another file). Only
/// procfs answers these reads, never the file's own filesystem: a lookup cannot
/// hang on a dead NFS or FUSE mount (docs/reliability.md, "Never hang").
/// A process in another mount namespace gives its own view of the path.
public struct OpenFilePaths: Sendable {
    public let proc: ProcRoot
    /// Descriptors examined per lookup, at most (a process with very many open
    /// files costs one readlink each).
    public var maxDescriptors = 4096

    public init(proc: ProcRoot = ProcRoot("/proc")) { self.proc = proc }

    /// The path under which `pid` has `file` open, or nil (gone, not open there, unreadable).
    public func path(of file: FileIdentity, openedBy pid: Int32) -> String? {
        guard pid > 0, let names = try? proc.listDirectory("\(pid)/fd") else { return nil }
        var mounts: MountTable?
        for name in names.prefix(maxDescriptors) {
            guard let fd = Int32(name), let link = try? proc.readLink("\(pid)/fd/\(fd)"), link.hasPrefix("/"),
                  let text = try? proc.readText("\(pid)/fdinfo/\(fd)") else { continue }
            let info = FdInfo.parse(text)
            if let ino = info.inode, ino != file.inode { continue }
            if mounts == nil { mounts = (try? proc.readText("\(pid)/mountinfo")).map(MountTable.parse) }
            if (mounts?.identity(of: info) ?? info.locks.first?.file) == file { return link }
        }
        return nil
    }
}
