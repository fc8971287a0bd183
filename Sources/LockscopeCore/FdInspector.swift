/// Reads fdinfo for the few descriptors that matter and turns them into
/// identities, caching one mount table per mount namespace.
struct FdInspector {
    let proc: ProcRoot
    var mountsByNamespace: [String: MountTable] = [:]

    init(proc: ProcRoot) { self.proc = proc }

    enum Outcome {
        case fds([LockScanner.OpenFd])
        case gone
        case denied
    }

    /// Every descriptor of `pid` that refers to one of `files`, with its `lock:` lines.
    /// Only path-like links are examined (sockets, pipes and anon inodes cannot be the file).
    mutating func lockedFds(of pid: Int32, files: Set<FileIdentity>) -> Outcome {
        let names: [String]
        do {
            names = try proc.listDirectory("\(pid)/fd")
        } catch {
            return error.isDenied ? .denied : .gone
        }
        var found: [LockScanner.OpenFd] = []
        for name in names {
            guard let fd = Int32(name), let link = try? proc.readLink("\(pid)/fd/\(fd)"), link.hasPrefix("/") else { continue }
            guard let (file, locks) = confirm(pid: pid, fd: fd, files: files) else { continue }
            found.append(LockScanner.OpenFd(pid: pid, fd: fd, file: file, locks: locks, link: link))
        }
        return .fds(found)
    }

    /// The identity of `pid`'s `fd` if it is one of `files`, with the locks it carries on it.
    mutating func confirm(pid: Int32, fd: Int32, files: Set<FileIdentity>) -> (FileIdentity, [LockLine])? {
        guard let text = try? proc.readText("\(pid)/fdinfo/\(fd)") else { return nil }
        let info = FdInfo.parse(text)
        let identity: FileIdentity?
        if let mounts = mountTable(of: pid) {
            identity = mounts.identity(of: info)
        } else {
            identity = nil
        }
        // Without `ino:`/`mnt_id:` (very old kernels, or unreadable mountinfo) the
        // lock lines still carry the identity of what they lock.
        guard let file = identity ?? info.locks.first?.file, files.contains(file) else { return nil }
        return (file, info.locks.filter { $0.file == file })
    }

    mutating func mountTable(of pid: Int32) -> MountTable? {
        let key = (try? proc.readLink("\(pid)/ns/mnt")) ?? "pid:\(pid)"
        if let t = mountsByNamespace[key] { return t }
        guard let bytes = try? proc.readBytes("\(pid)/mountinfo") else { return nil }
        let table = bytes.withUnsafeBytes { MountTable.parse($0) }
        mountsByNamespace[key] = table
        return table
    }
}
