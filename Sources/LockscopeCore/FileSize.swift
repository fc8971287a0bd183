#if canImport(Glibc)
import Glibc
#endif

/// The size of a locked file, for `list`'s SIZE column (lslocks prints `stat(path).st_size`).
///
/// A path walk can hang on a dead network filesystem, so this only looks at files on
/// block-device filesystems (major number not 0: NFS, CIFS, FUSE and 9p superblocks
/// all have anonymous major-0 devices) and only when the inode still matches the
/// lock's, so a renamed or replaced path never lends its size to another file.
/// Returns nil when the size is not known. The corresponding C function is `stat`.
public func lockedFileSize(path: String, file: FileIdentity) -> Int64? {
    guard file.major != 0, path.hasPrefix("/") else { return nil }
    var st = stat()
    guard stat(path, &st) == 0, UInt64(st.st_ino) == file.inode else { return nil }
    return Int64(st.st_size)
}
