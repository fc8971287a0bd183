import SystemPackage

/// Everything the library can fail with. Errors carry their context (what was
/// being read, which pid, which errno); only the executable turns them into
/// messages and exit codes. The library never exits.
public enum LockscopeError: Error, Equatable, Sendable {
    /// A path given by the user does not exist (or a component is not a directory).
    case noSuchPath(String)
    /// A path given by the user names a directory where a file was expected.
    case isDirectory(String)
    /// A path the user gave could not be opened for a reason other than absence.
    case cannotOpen(String, Errno)
    /// A `MAJ:MIN:INODE` (or other) argument that does not parse.
    case invalidIdentity(String)
    /// A process the user named does not exist.
    case noSuchProcess(Int32)
    /// Reading something under /proc failed in a way that is not "process gone".
    case procRead(String, Errno)
    /// A /proc file had a line the parser cannot make sense of.
    case malformed(file: String, line: String)
    /// Opening a path the user gave did not finish within `seconds`: its filesystem
    /// (`fstype` mounted at `mountPoint`, when the path's text places it) does not answer.
    /// `locks` names the locks held on that filesystem, by identity.
    case unresponsiveFilesystem(path: String, fstype: String?, mountPoint: String?, seconds: Double, locks: [String])
    /// A generic precondition of the environment (e.g. not root for `demo`).
    case environment(String)
}

extension LockscopeError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .noSuchPath(let p): return "\(p): no such file or directory"
        case .isDirectory(let p): return "\(p): is a directory (give a file, or its MAJ:MIN:INODE)"
        case .cannotOpen(let p, let e): return "\(p): cannot open: \(e)"
        case .invalidIdentity(let s): return "\(s): not a path or a MAJ:MIN:INODE identity (e.g. fe:00:16015361)"
        case .noSuchProcess(let pid): return "no such process: \(pid)"
        case .procRead(let p, let e): return "cannot read \(p): \(e)"
        case .malformed(let f, let l): return "\(f): unexpected line: \(l)"
        case .environment(let s): return s
        case .unresponsiveFilesystem(let p, let fstype, let mountPoint, let seconds, let locks):
            let fs = fstype.map { t in "(\(t)\(mountPoint.map { " at " + $0 } ?? ""))" } ?? "(no answer within \(seconds) s)"
            let held = locks.isEmpty ? "" : "; locks on it: " + locks.joined(separator: ", ")
            return "\(p) is on an unresponsive filesystem \(fs); give MAJ:MIN:INODE or the holder's pid\(held)"
        }
    }
}
