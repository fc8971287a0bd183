#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

/// The one door to /proc. Every read the library does goes through a `ProcRoot`,
/// so tests can point it at a recorded fixture tree instead of the live system.
///
/// Reads are raw `open`/`read`/`readlink` calls: nothing here may `stat()` through
/// `/proc/PID/fd/N`, which blocks on a dead NFS server.
public struct ProcRoot: Sendable, Hashable {
    /// Absolute path of the proc mount (or fixture tree), without a trailing slash.
    public let path: String

    public init(_ path: String = "/proc") {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        self.path = p
    }

    /// True when this is the live /proc of the machine (tracing and live-only
    /// features need it; fixture trees cannot be traced).
    public var isLive: Bool { path == "/proc" }

    public func absolute(_ relative: String) -> String { path + "/" + relative }

    /// Reads a whole (small) /proc file as bytes.
    ///
    /// - Throws: `ProcReadError.gone` for ENOENT/ESRCH (the process vanished),
    ///   `.denied` for EACCES/EPERM, `.failed` otherwise.
    ///
    /// `chunk` is the size of each read. /proc/locks wants large ones: every read()
    /// of it enters `locks_start()` again, which takes the file-lock locks and walks
    /// the list from its head to the position (fs/locks.c). Read in 4 KiB pieces, the
    /// benchmark load's 5 KiB /proc/locks took 136 µs; in one 64 KiB read, 74 µs.
    public func readBytes(_ relative: String, limit: Int = 1 << 24, chunk: Int = 4096) throws(ProcReadError) -> [UInt8] {
        let full = absolute(relative)
        let fd = open(full, O_RDONLY | O_CLOEXEC | O_NOCTTY)
        if fd < 0 { throw ProcReadError(path: full, errno: Errno(rawValue: errno)) }
        defer { close(fd) }
        // /proc files report size 0, so read until EOF, a chunk at a time, through one
        // scratch buffer: zero-filling a 4 KiB array per read cost more than the reads'
        // copying (150 reads in one `metrics`).
        var out: [UInt8] = []
        var failure: Int32? = nil
        withUnsafeTemporaryAllocation(byteCount: max(1, chunk), alignment: 16) { page in
            while out.count < limit {
                let got = (try? retryingOnInterrupt { read(fd, page.baseAddress!, page.count) }) ?? -1
                if got < 0 { failure = errno; return }
                if got == 0 { return }
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: page[..<min(got, limit - out.count)]))
            }
        }
        if let failure { throw ProcReadError(path: full, errno: Errno(rawValue: failure)) }
        return out
    }

    /// Reads a whole /proc file as text (invalid UTF-8 is repaired, not fatal).
    public func readText(_ relative: String) throws(ProcReadError) -> String {
        let bytes = try readBytes(relative)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `readlink` of a /proc entry (e.g. `PID/fd/3`, `PID/ns/pid`), returned as raw
    /// bytes because file names need not be UTF-8.
    public func readLinkBytes(_ relative: String) throws(ProcReadError) -> [UInt8] {
        let full = absolute(relative)
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { raw in
            readlink(full, raw.baseAddress!.assumingMemoryBound(to: CChar.self), 4096)
        }
        if n < 0 { throw ProcReadError(path: full, errno: Errno(rawValue: errno)) }
        return Array(buffer[0..<n])
    }

    /// The link text; a name that is not UTF-8 keeps its bytes (`PathText`).
    public func readLink(_ relative: String) throws(ProcReadError) -> String {
        PathText.decode(try readLinkBytes(relative))
    }

    /// Names in a /proc directory, without `.` and `..`.
    public func listDirectory(_ relative: String) throws(ProcReadError) -> [String] {
        let full = absolute(relative)
        guard let dir = opendir(full) else { throw ProcReadError(path: full, errno: Errno(rawValue: errno)) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            names.append(name)
        }
        return names
    }

    /// Whether the entry exists (no stat through fd links: this is `access(F_OK)` on /proc itself).
    public func exists(_ relative: String) -> Bool { access(absolute(relative), F_OK) == 0 }

    /// Whether the directory can be listed (e.g. `PID/fd`, which needs ptrace access).
    public func canList(_ relative: String) -> Bool {
        guard let dir = opendir(absolute(relative)) else { return false }
        closedir(dir)
        return true
    }

    /// Numeric entries of /proc (the processes visible to us), ascending.
    public func listPids() throws(ProcReadError) -> [Int32] {
        try listDirectory("").compactMap { Int32($0) }.sorted()
    }
}

/// A failed read under /proc, classified the way the scanner needs to act on it.
public struct ProcReadError: Error, Equatable, Sendable, CustomStringConvertible {
    public let path: String
    public let errno: Errno

    public init(path: String, errno: Errno) {
        self.path = path
        self.errno = errno
    }

    /// The process (or fd, or task) no longer exists: skip it silently.
    public var isGone: Bool { errno == .noSuchFileOrDirectory || errno == .noSuchProcess }
    /// We are not allowed to look: count it and say so once.
    public var isDenied: Bool { errno == .permissionDenied || errno == .notPermitted }

    public var description: String { "\(path): \(errno)" }
}
