/// A file as the kernel's lock code names it: the superblock device
/// (`MAJOR(i_sb->s_dev)`, `MINOR(i_sb->s_dev)`) and the inode number.
///
/// This is the identity `/proc/locks` prints (`fe:00:16015361`, see
/// `lock_get_status()` in fs/locks.c: `"%02x:%02x:%lu"`). It is deliberately not
/// `stat().st_dev`, which differs from the superblock device on btrfs subvolumes
/// and overlayfs.
public struct FileIdentity: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var major: UInt32
    public var minor: UInt32
    public var inode: UInt64

    public init(major: UInt32, minor: UInt32, inode: UInt64) {
        self.major = major
        self.minor = minor
        self.inode = inode
    }

    /// `fe:00` — the device half, formatted as the kernel does (at least two hex digits each).
    public var device: String { hex2(major) + ":" + hex2(minor) }

    /// `fe:00:16015361`, the exact text /proc/locks uses.
    public var description: String { device + ":" + String(inode) }

    /// Parses `MAJ:MIN:INODE` with hexadecimal major/minor and decimal inode,
    /// as /proc/locks prints it. Returns nil for anything else.
    public init?(parsing text: Substring) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3,
              !parts[0].isEmpty, !parts[1].isEmpty, !parts[2].isEmpty,
              let maj = UInt32(parts[0], radix: 16),
              let min = UInt32(parts[1], radix: 16),
              let ino = UInt64(parts[2], radix: 10)
        else { return nil }
        self.init(major: maj, minor: min, inode: ino)
    }

    public init?(parsing text: String) { self.init(parsing: Substring(text)) }

    public static func < (a: FileIdentity, b: FileIdentity) -> Bool {
        (a.major, a.minor, a.inode) < (b.major, b.minor, b.inode)
    }
}

@inline(__always)
func hex2(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return s.count < 2 ? "0" + s : s
}
