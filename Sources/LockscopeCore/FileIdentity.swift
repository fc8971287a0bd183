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
    public init?(parsing text: Substring) { self.init(parsing: String(text)) }

    public init?(parsing text: String) {
        var text = text
        guard let id = text.withUTF8({ Self(parsing: UnsafeRawBufferPointer($0)) }) else { return nil }
        self = id
    }

    /// The same from bytes (the /proc/locks parser's field, in place).
    init?(parsing b: UnsafeRawBufferPointer) {
        guard let c1 = b.firstIndex(of: UInt8(ascii: ":")),
              let c2 = b[(c1 + 1)...].firstIndex(of: UInt8(ascii: ":")),
              !b[(c2 + 1)...].contains(UInt8(ascii: ":")),
              let maj = ASCIIDecimal.unsigned(UnsafeRawBufferPointer(rebasing: b[..<c1]), radix: 16).flatMap({ UInt32(exactly: $0) }),
              let min = ASCIIDecimal.unsigned(UnsafeRawBufferPointer(rebasing: b[(c1 + 1)..<c2]), radix: 16).flatMap({ UInt32(exactly: $0) }),
              let ino = ASCIIDecimal.unsigned(UnsafeRawBufferPointer(rebasing: b[(c2 + 1)...]), radix: 10)
        else { return nil }
        self.init(major: maj, minor: min, inode: ino)
    }

    public static func < (a: FileIdentity, b: FileIdentity) -> Bool {
        (a.major, a.minor, a.inode) < (b.major, b.minor, b.inode)
    }
}

@inline(__always)
func hex2(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return s.count < 2 ? "0" + s : s
}
