/// The path of a file as another process sees it, when it lives in another mount
/// namespace (a container, `unshare -m`): the same file is found through the mount
/// it was opened on (fdinfo `mnt_id:`), in that process's own /proc/PID/mountinfo.
///
/// proc_pid_mountinfo(5): `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS … - FSTYPE SOURCE …`;
/// ROOT is the directory of the filesystem that is mounted, MOUNT_POINT is relative
/// to the process's root; spaces, tabs, newlines and backslashes are octal-escaped
/// (fs/proc_namespace.c `show_mountinfo()`, `mangle()`).
public enum MountView {
    /// The mounts of one mountinfo text by mount id (parsed by `MountInfo`, the one parser).
    public static func parse(_ text: String) -> [Int: MountEntry] {
        Dictionary(MountInfo.parse(text).map { ($0.id, $0) }, uniquingKeysWith: { _, later in later })
    }

    /// `/a/b` under `/a` → `/b`; nil when `path` is not under `prefix`.
    static func relative(_ path: String, to prefix: String) -> String? {
        if prefix == "/" { return path.hasPrefix("/") ? path : nil }
        if path == prefix { return "/" }
        guard path.hasPrefix(prefix + "/") else { return nil }
        return String(path.dropFirst(prefix.count))
    }

    static func join(_ base: String, _ rel: String) -> String {
        if rel == "/" { return base }
        return base == "/" ? rel : base + rel
    }

    /// The path process P sees for a file we see at `ours`, opened through its mount
    /// `theirMountId`; nil when it cannot be told or when it is the same path.
    public static func path(ours: String, ourMounts: [Int: MountEntry], theirMounts: [Int: MountEntry],
                            theirMountId: Int) -> String? {
        guard let theirs = theirMounts[theirMountId] else { return nil }
        // Our mount of the same filesystem under which `ours` lies, the deepest first.
        let candidates = ourMounts.values
            .filter { $0.major == theirs.major && $0.minor == theirs.minor && relative(ours, to: $0.mountPoint) != nil }
            .sorted { ($0.mountPoint.count, $0.id) > ($1.mountPoint.count, $1.id) }
        for m in candidates {
            guard let rel = relative(ours, to: m.mountPoint) else { continue }
            let inFs = join(m.root, rel)
            guard let relTheirs = relative(inFs, to: theirs.root) else { continue }
            let seen = join(theirs.mountPoint, relTheirs)
            return seen == ours ? nil : seen
        }
        return nil
    }
}

extension MountView {
    /// The reverse: the path we see for a file process P sees at `theirs`, opened
    /// through its mount `theirMountId` (the fdinfo `mnt_id:` of its descriptor).
    /// Nil when none of our mounts shows that part of the filesystem, or when it is
    /// the same path.
    public static func ourPath(theirs: String, theirMounts: [Int: MountEntry], theirMountId: Int,
                               ourMounts: [Int: MountEntry]) -> String? {
        guard let m = theirMounts[theirMountId], let rel = relative(theirs, to: m.mountPoint) else { return nil }
        let inFs = join(m.root, rel)
        // Our mounts of that filesystem that show it; the one mounted at the shortest
        // path, then the lowest id (the first mounted), for a stable answer.
        let shows = ourMounts.values
            .filter { $0.major == m.major && $0.minor == m.minor && relative(inFs, to: $0.root) != nil }
            .sorted { ($0.mountPoint.count, $0.id) < ($1.mountPoint.count, $1.id) }
        guard let ours = shows.first, let relOurs = relative(inFs, to: ours.root) else { return nil }
        let seen = join(ours.mountPoint, relOurs)
        return seen == theirs ? nil : seen
    }

    /// Fills `Holder.pathInNamespace` for holders in a mount namespace other than
    /// ours. The holder's own descriptor link says it first: `d_path()` of a mount
    /// that is not reachable from our root is relative to that process's namespace
    /// (fs/d_path.c `prepend_path()`), so a container's `/run/xtables.lock` reads as
    /// such. When the link is a path we can reach too, its mount is mapped through the
    /// holder's mountinfo. Best effort: anything unreadable leaves it nil.
    public static func annotate(_ report: inout LockReport, proc: ProcRoot) {
        guard let ourNS = try? proc.readLink("self/ns/mnt") else { return }
        var ours: [Int: MountEntry]?
        var theirs: [Int32: [Int: MountEntry]] = [:]
        var namespaces: [Int32: String] = [:]
        for li in report.locks.indices {
            let file = report.locks[li].file
            let target = report.targets.first(where: { $0.file == file })?.path
            guard let path = target ?? report.locks[li].path else { continue }
            for hi in report.locks[li].holders.indices {
                let h = report.locks[li].holders[hi]
                // `list` reads brief facts (no namespaces): then the link is read here, once per pid.
                if h.process?.mountNamespace == nil && namespaces[h.pid] == nil {
                    namespaces[h.pid] = (try? proc.readLink("\(h.pid)/ns/mnt")) ?? ""
                }
                guard let fd = h.fd, let ns = h.process?.mountNamespace ?? namespaces[h.pid], !ns.isEmpty, ns != ourNS,
                      let link = try? proc.readLink("\(h.pid)/fd/\(fd)") else { continue }
                if link != path {
                    report.locks[li].holders[hi].pathInNamespace = link
                    continue
                }
                guard let info = try? proc.readText("\(h.pid)/fdinfo/\(fd)"), let mnt = FdInfo.parse(info).mountId else { continue }
                if theirs[h.pid] == nil { theirs[h.pid] = (try? proc.readText("\(h.pid)/mountinfo")).map(parse) ?? [:] }
                if ours == nil { ours = (try? proc.readText("self/mountinfo")).map(parse) ?? [:] }
                if target == nil {
                    // `list`: the lock's path is this very link, which may be the holder's
                    // view; when our mounts show the file elsewhere, that is the path, and
                    // the link is what the holder sees.
                    guard let mine = MountView.ourPath(theirs: link, theirMounts: theirs[h.pid] ?? [:], theirMountId: mnt,
                                                       ourMounts: ours ?? [:]) else { continue }
                    if h.isOwner || report.locks[li].holders.count == 1 { report.locks[li].path = mine }
                    report.locks[li].holders[hi].pathInNamespace = link
                    continue
                }
                report.locks[li].holders[hi].pathInNamespace = MountView.path(
                    ours: path, ourMounts: ours ?? [:], theirMounts: theirs[h.pid] ?? [:], theirMountId: mnt)
            }
        }
    }
}
