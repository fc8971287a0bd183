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

    /// How long opening the user's path may take (`Careful.defaultTimeout`).
    public var timeout: Double = Careful.defaultTimeout

    /// - Parameters:
    ///   - argument: the argument as text (messages, identities).
    ///   - bytes: the argument's exact bytes, when they are not valid UTF-8 (Swift's
    ///     `CommandLine.arguments` repairs them with U+FFFD, which names another file).
    public func resolve(_ text: String, bytes: [UInt8]? = nil) throws(LockscopeError) -> Target {
        // The argument keeps its exact bytes (PathText), so messages and JSON show them.
        let argument = bytes.map(PathText.decode) ?? text
        if argument.isEmpty { throw .noSuchPath(argument) }
        // The path walk may hang on a dead FUSE/NFS mount: it happens in a disposable child
        // that hands back an O_PATH descriptor (and the fstat, which may hang too).
        let fd: Int32
        let mode: UInt32
        let inode: UInt64
        switch Careful.open(PathText.bytes(of: argument), flags: CLS_O_PATH, timeout: timeout) {
        case .success(let opened):
            (fd, mode, inode) = opened
        case .failure(.timedOut):
            throw unresponsive(argument)
        case .failure(.failed(let errno)):
            let e = errno.rawValue
            // A path that does not exist may be an identity as /proc/locks prints it.
            if e == ENOENT || e == ENOTDIR {
                if let id = FileIdentity(parsing: argument) { return Target(argument: argument, file: id, path: nil) }
                if looksLikeIdentity(argument) { throw .invalidIdentity(argument) }
                throw .noSuchPath(argument)
            }
            throw .cannotOpen(argument, errno)
        }
        defer { close(fd) }
        if (mode & 0o170000) == 0o040000 { throw .isDirectory(argument) }  // S_IFMT, S_IFDIR
        // The superblock device comes from mnt_id + mountinfo, not st_dev (btrfs, overlayfs).
        let info: FdInfo
        do { info = FdInfo.parse(try selfProc.readText("self/fdinfo/\(fd)")) } catch { throw .procRead(error.path, error.errno) }
        let mounts: MountTable
        do { mounts = MountTable.parse(try selfProc.readText("self/mountinfo")) } catch { throw .procRead(error.path, error.errno) }
        var withInode = info
        if withInode.inode == nil { withInode.inode = inode }  // kernels before `ino:` in fdinfo
        guard let identity = mounts.identity(of: withInode) else {
            throw .environment("\(argument): cannot find mount \(info.mountId.map(String.init) ?? "?") in /proc/self/mountinfo")
        }
        let path = try? selfProc.readLink("self/fd/\(fd)")
        return Target(argument: argument, file: identity, path: path)
    }

    /// The error for a path whose walk did not finish: which mount it lies on (by the
    /// path's text, without touching any filesystem) and the locks on that mount's device,
    /// so the user can ask again by identity or pid.
    func unresponsive(_ argument: String) -> LockscopeError {
        var cwd = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let dir = getcwd(&cwd, cwd.count) != nil ? String(cString: cwd) : "/"
        let absolute = lexicalAbsolutePath(argument, cwd: dir)
        let mounts = MountInfo.parse((try? selfProc.readText("self/mountinfo")) ?? "")
        let mount = MountInfo.mount(containing: absolute, in: mounts)
        var locks: [String] = []
        if let mount, let text = try? selfProc.readText("locks") {
            for l in ProcLocksParser.parse(text).locks {
                guard let file = l.lock.file, file.major == mount.major, file.minor == mount.minor else { continue }
                locks.append("\(file) (\(l.lock.kind.rawValue) held by pid \(l.lock.pid))")
            }
        }
        return .unresponsiveFilesystem(path: argument, fstype: mount?.fstype, mountPoint: mount?.mountPoint,
                                       seconds: timeout, locks: locks)
    }

    /// `x:y:z` with no slash: the user meant an identity, so say what is wrong with it.
    func looksLikeIdentity(_ s: String) -> Bool {
        !s.contains("/") && s.split(separator: ":", omittingEmptySubsequences: false).count == 3
    }
}
