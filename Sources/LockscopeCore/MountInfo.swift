/// The mounts of /proc/PID/mountinfo with what the never-hang rules need: where each
/// is mounted and its filesystem type (proc_pid_mountinfo(5); `show_mountinfo()` in
/// fs/proc_namespace.c writes `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] - FSTYPE SOURCE SUPEROPTS`,
/// with space, tab, newline and backslash in paths escaped as `\ooo`).
public struct MountEntry: Sendable, Hashable {
    public var id: Int
    public var major: UInt32
    public var minor: UInt32
    /// The directory of the filesystem this mount shows (`/` for a whole filesystem).
    public var root: String
    /// Where it is mounted, unescaped, as seen from the reading process's root.
    public var mountPoint: String
    public var fstype: String

    /// `00:28`, as /proc/locks prints the device.
    public var device: String { FileIdentity(major: major, minor: minor, inode: 0).device }

    /// A filesystem whose calls can wait on a server or a daemon that may never answer:
    /// FUSE (any `fuse.*`), NFS, SMB/CIFS, 9p, Ceph, AFS and other network filesystems.
    public var mayNotAnswer: Bool { Self.mayNotAnswer(fstype: fstype) }

    public static func mayNotAnswer(fstype: String) -> Bool {
        let prefixes = ["fuse", "nfs", "cifs", "smb", "9p", "ceph", "afs", "glusterfs", "lustre", "gfs2", "ocfs2",
                        "virtiofs", "davfs", "beegfs", "gpfs", "orangefs", "coda", "ncpfs"]
        return prefixes.contains { fstype.hasPrefix($0) }
    }
}

public enum MountInfo {
    /// Every well-formed line; malformed ones are skipped.
    public static func parse(_ text: String) -> [MountEntry] {
        var out: [MountEntry] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 7, let id = Int(fields[0]),
                  let dash = fields.firstIndex(of: "-"), dash >= 6, dash + 1 < fields.count else { continue }
            let dev = fields[2].split(separator: ":")
            guard dev.count == 2, let ma = UInt32(dev[0]), let mi = UInt32(dev[1]) else { continue }
            out.append(MountEntry(id: id, major: ma, minor: mi, root: unescape(fields[3]), mountPoint: unescape(fields[4]),
                                  fstype: String(fields[dash + 1])))
        }
        return out
    }

    /// The mount an absolute, normalised path lies on: the longest mount point that is
    /// the path or a directory above it (later mounts over the same point win, as they hide earlier ones).
    public static func mount(containing path: String, in mounts: [MountEntry]) -> MountEntry? {
        var best: MountEntry?
        for m in mounts {
            let p = m.mountPoint
            let inside = p == "/" || path == p || path.hasPrefix(p.hasSuffix("/") ? p : p + "/")
            if inside, p.count >= (best?.mountPoint.count ?? -1) { best = m }
        }
        return best
    }

    /// `\040` → space (octal escapes of `seq_path`/`mangle()`); anything else stays.
    public static func unescape(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        let u = Array(field.utf8)
        var i = 0
        while i < u.count {
            if u[i] == UInt8(ascii: "\\"), i + 3 < u.count {
                let digits = u[(i + 1)...(i + 3)]
                if digits.allSatisfy({ $0 >= 48 && $0 <= 55 }) {
                    let v = digits.reduce(0) { $0 * 8 + Int($1 - 48) }
                    if v < 256 { bytes.append(UInt8(v)); i += 4; continue }
                }
            }
            bytes.append(u[i])
            i += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Lexically absolute and normalised (`.`, `..` and repeated slashes resolved without
/// touching any filesystem), so a path can be placed on a mount before it is opened.
/// Symlinks are not followed: the answer is a hint, and the open is bounded anyway.
public func lexicalAbsolutePath(_ path: String, cwd: String) -> String {
    let joined = path.hasPrefix("/") ? path : cwd + "/" + path
    var parts: [Substring] = []
    for c in joined.split(separator: "/") {
        if c == "." { continue }
        if c == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
        parts.append(c)
    }
    return "/" + parts.joined(separator: "/")
}
