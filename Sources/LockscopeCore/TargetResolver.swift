#if canImport(Glibc)
import Glibc
#endif
import CLockscope
import SystemPackage

/// Turns what the user typed (a path or `MAJ:MIN:INODE`) into a `Target`.
public struct TargetResolver: Sendable {
    /// Where our *own* descriptors are inspected. Always the live /proc: the path
    /// the user gave is opened by this process.
    let selfProc = ProcRoot("/proc")

    public init() {}

    public func resolve(_ argument: String) throws(LockscopeError) -> Target {
        if argument.isEmpty { throw .noSuchPath(argument) }
        let fd = open(argument, CLS_O_PATH | O_CLOEXEC)
        if fd < 0 {
            let e = errno
            // A path that does not exist may be an identity as /proc/locks prints it.
            if e == ENOENT || e == ENOTDIR {
                if let id = FileIdentity(parsing: argument) { return Target(argument: argument, file: id, path: nil) }
                if looksLikeIdentity(argument) { throw .invalidIdentity(argument) }
                throw .noSuchPath(argument)
            }
            throw .cannotOpen(argument, Errno(rawValue: e))
        }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR { throw .isDirectory(argument) }
        // The superblock device comes from mnt_id + mountinfo, not st_dev (btrfs, overlayfs).
        let info: FdInfo
        do { info = FdInfo.parse(try selfProc.readText("self/fdinfo/\(fd)")) } catch { throw .procRead(error.path, error.errno) }
        let mounts: MountTable
        do { mounts = MountTable.parse(try selfProc.readText("self/mountinfo")) } catch { throw .procRead(error.path, error.errno) }
        var withInode = info
        if withInode.inode == nil { withInode.inode = UInt64(st.st_ino) }  // kernels before `ino:` in fdinfo
        guard let identity = mounts.identity(of: withInode) else {
            throw .environment("\(argument): cannot find mount \(info.mountId.map(String.init) ?? "?") in /proc/self/mountinfo")
        }
        let path = try? selfProc.readLink("self/fd/\(fd)")
        return Target(argument: argument, file: identity, path: path)
    }

    /// `x:y:z` with no slash: the user meant an identity, so say what is wrong with it.
    func looksLikeIdentity(_ s: String) -> Bool {
        !s.contains("/") && s.split(separator: ":", omittingEmptySubsequences: false).count == 3
    }
}
