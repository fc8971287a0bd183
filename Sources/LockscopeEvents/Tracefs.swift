#if canImport(Glibc)
import Glibc
#endif
import CLockscopeEvents
import LockscopeCore
import SystemPackage

/// A tracepoint by its tracefs directory: `filelock/flock_lock_inode`.
public struct TracepointName: Hashable, Sendable, CustomStringConvertible, Comparable {
    public var system: String
    public var event: String
    public init(_ system: String, _ event: String) { self.system = system; self.event = event }
    public var description: String { system + "/" + event }
    public static func < (a: Self, b: Self) -> Bool { a.description < b.description }
}

/// Where tracepoint formats come from. tracefs is read only for the `format`
/// files (ids and layouts); events themselves are opened with perf_event_open,
/// so nothing is ever written to tracefs: no instance, no `enable`, no filter
/// file. Events opened that way vanish with the process that holds their fds.
public enum TracefsSource: Sendable, Equatable {
    /// A tracefs already mounted on this machine (`/sys/kernel/tracing`, or
    /// `tracing/` under a debugfs mount).
    case mounted(String)
    /// None is mounted: one forked child mounts tracefs in a mount namespace of
    /// its own, reads the files and exits (`cls_tracefs_private_read`).
    case privateMount

    /// Finds a mounted tracefs in the text of /proc/self/mountinfo
    /// (proc_pid_mountinfo(5): field 5 is the mount point, with `\ooo` octal
    /// escapes; the filesystem type follows the ` - ` separator). tracefs wins
    /// over debugfs's `tracing` directory. Pure.
    public static func discover(mountinfo: String) -> String? {
        let mounts = MountInfo.parse(mountinfo)
        if let tracefs = mounts.first(where: { $0.fstype == "tracefs" }) { return tracefs.mountPoint }
        return mounts.first { $0.fstype == "debugfs" }.map { $0.mountPoint + "/tracing" }
    }

    /// The source to use on this machine: a mounted tracefs if /proc/self/mountinfo
    /// names one whose `events/` can be listed, else the private mount.
    public static func current() -> TracefsSource {
        if let text = try? ProcRoot("/proc").readText("self/mountinfo"), let path = discover(mountinfo: text),
           access(path + "/events", R_OK) == 0 {
            return .mounted(path)
        }
        return .privateMount
    }

    /// Reads files relative to the tracefs root. A file that cannot be read is
    /// returned as its errno; the whole call throws only when no tracefs can be
    /// reached at all.
    public func read(_ relativePaths: [String]) throws(EventsError) -> [String: Result<[UInt8], Errno>] {
        var out: [String: Result<[UInt8], Errno>] = [:]
        switch self {
        case .mounted(let root):
            for p in relativePaths { out[p] = Self.readFile(root + "/" + p) }
        case .privateMount:
            var request: [UInt8] = []
            for p in relativePaths { request += Array(p.utf8); request.append(0) }
            request.append(0)
            var buffer = [UInt8](repeating: 0, count: 8192 * max(relativePaths.count, 1))
            let n = request.withUnsafeBufferPointer { req in
                buffer.withUnsafeMutableBytes { out in
                    req.baseAddress!.withMemoryRebound(to: CChar.self, capacity: req.count) {
                        cls_tracefs_private_read($0, out.baseAddress!, out.count)
                    }
                }
            }
            if n < 0 {
                let e = Errno(rawValue: Int32(-n))
                if e == .notPermitted || e == .permissionDenied {
                    throw .notPermitted("tracefs is not mounted and mounting it privately was refused (needs root / CAP_SYS_ADMIN)")
                }
                throw .tracefsUnavailable("private tracefs mount failed: \(e)")
            }
            var offset = 0
            for p in relativePaths {
                guard offset + 8 <= n else { break }
                let status = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: Int32.self) }
                let length = Int(buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self) })
                offset += 8
                guard offset + length <= n else { break }
                out[p] = status == 0 ? .success(Array(buffer[offset..<(offset + length)])) : .failure(Errno(rawValue: -status))
                offset += length
            }
        }
        return out
    }

    static func readFile(_ path: String) -> Result<[UInt8], Errno> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return .failure(Errno(rawValue: errno)) }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 8192)
        while true {
            let r = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if r < 0 { if errno == EINTR { continue }; return .failure(Errno(rawValue: errno)) }
            if r == 0 { break }
            out += chunk[0..<r]
        }
        return .success(out)
    }

    /// The `format` of each tracepoint. Tracepoints this kernel lacks are
    /// absent from the result (the caller decides which are required).
    public func formats(_ names: [TracepointName]) throws(EventsError) -> [TracepointName: TracepointFormat] {
        let paths = names.map { "events/\($0)/format" }
        let files = try read(paths)
        var out: [TracepointName: TracepointFormat] = [:]
        for (name, path) in zip(names, paths) {
            guard case .success(let bytes)? = files[path] else { continue }
            out[name] = try TracepointFormat.parse(String(decoding: bytes, as: UTF8.self))
        }
        return out
    }
}
