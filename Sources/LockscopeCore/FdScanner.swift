#if canImport(Glibc)
import Glibc
#endif
import CLockscope
import Dispatch

/// One descriptor that met the scan's criterion.
public struct FdMatch: Sendable, Hashable {
    public var pid: Int32
    public var fd: Int32
    /// Index of the link text or reference that matched; -1 for `.anyPath`.
    public var target: Int
}

public struct FdScanResult: Sendable {
    public var matches: [FdMatch]
    public var coverage: ScanCoverage
    /// Every process the scan was refused, so callers that combine scans count each once.
    public var deniedPids: Set<Int32> = []
}

/// A descriptor by process and number (a reference for `.sameOpenFile`).
public struct FdRef: Sendable, Hashable {
    public var pid: Int32
    public var fd: Int32
    public init(pid: Int32, fd: Int32) {
        self.pid = pid
        self.fd = fd
    }
}

/// The hot path: walk every descriptor of every process and report those that
/// meet a criterion.
///
/// - `.sameOpenFile(refs)`: `kcmp(KCMP_FILE)` against a few known descriptors —
///   exactly the co-holders of a flock/OFD lock (they share the open file
///   description), with no path lookup per fd. Used by `who`.
/// - `.links(texts)`: `readlinkat` text equal to one of a few byte strings — also
///   finds other opens of the file (pollers). Every process sharing one open file
///   description sees the same `d_path()` string, since /proc/PID/fd links resolve
///   against the *reader's* root. Used by `waiters`.
/// - `.anyPath`: every link that is an absolute path (the last resort when a
///   lock's path is unknown).
/// Callers confirm each match through fdinfo (`ino:` + `mnt_id:`). Nothing here
/// calls `stat()` through /proc/PID/fd (it blocks on a dead NFS server).
///
/// Raw `openat`/`getdents64`/`readlinkat` with per-worker buffers, no Foundation,
/// no per-fd allocation; processes are spread over all cores.
public struct FdScanner: Sendable {
    public enum Criterion: Sendable {
        case links([[UInt8]])
        case anyPath
        case sameOpenFile([FdRef])
    }

    public let proc: ProcRoot

    public init(proc: ProcRoot) { self.proc = proc }

    /// - Parameters:
    ///   - pids: restrict the scan to these processes (nil: every process in /proc).
    ///   - excluding: processes never reported (lockscope itself).
    public func scan(_ criterion: Criterion, pids: [Int32]? = nil, excluding: Set<Int32> = []) -> FdScanResult {
        let procFd = open(proc.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        var coverage = ScanCoverage()
        guard procFd >= 0 else { return FdScanResult(matches: [], coverage: coverage) }
        defer { close(procFd) }
        let all = (pids ?? listPids(procFd: procFd)).filter { !excluding.contains($0) }
        let matcher = Matcher(criterion)

        // Enough chunks that one process with 50k fds does not leave a core idle.
        let cores = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let chunkCount = min(all.count, cores * 16)
        guard chunkCount > 0 else { return FdScanResult(matches: [], coverage: coverage) }
        let results = UnsafeMutableBufferPointer<ChunkResult>.allocate(capacity: chunkCount)
        results.initialize(repeating: ChunkResult())
        defer { results.deinitialize(); results.deallocate() }

        all.withUnsafeBufferPointer { pidBuffer in
            DispatchQueue.concurrentPerform(iterations: chunkCount) { chunk in
                var worker = ScanWorker(procFd: procFd, matcher: matcher)
                var i = chunk
                while i < pidBuffer.count {
                    worker.scanProcess(pidBuffer[i])
                    i += chunkCount
                }
                results[chunk] = worker.result
                worker.release()
            }
        }
        var matches: [FdMatch] = []
        var denied = Set<Int32>()
        for r in results {
            matches.append(contentsOf: r.matches)
            coverage.processesScanned += r.processes
            coverage.descriptorsScanned += r.descriptors
            coverage.processesDenied += r.denied
            coverage.processesVanished += r.vanished
            coverage.noteDenied(r.deniedPids.prefix(ScanCoverage.deniedListLimit).map { DeniedProcess(pid: $0) })
            denied.formUnion(r.deniedPids)
        }
        matches.sort { ($0.pid, $0.fd) < ($1.pid, $1.fd) }
        return FdScanResult(matches: matches, coverage: coverage, deniedPids: denied)
    }

    /// Numeric entries of the proc directory via getdents64.
    func listPids(procFd: Int32) -> [Int32] {
        var pids: [Int32] = []
        let dir = openat(procFd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dir >= 0 else { return [] }
        defer { close(dir) }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 65536, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            let n = cls_getdents64(dir, buffer, 65536)
            if n <= 0 { break }
            forEachDirent(buffer, count: n) { name in
                if let pid = parseDecimal(name) { pids.append(Int32(truncatingIfNeeded: pid)) }
            }
        }
        return pids
    }
}

struct ChunkResult {
    var matches: [FdMatch] = []
    var processes = 0
    var descriptors = 0
    var denied = 0
    var vanished = 0
    /// Every denied pid (ascending: each chunk walks its pids in order).
    var deniedPids: [Int32] = []
}

/// The criterion in the form the inner loop wants: a length filter before memcmp.
struct Matcher: @unchecked Sendable {
    let criterion: FdScanner.Criterion
    let targets: [[UInt8]]
    let maxLength: Int
    let lengthSeen: [Bool]
    let needsLink: Bool

    init(_ criterion: FdScanner.Criterion) {
        self.criterion = criterion
        if case .links(let texts) = criterion { targets = texts } else { targets = [] }
        let maxLen = targets.map(\.count).max() ?? 0
        maxLength = maxLen
        var seen = [Bool](repeating: false, count: maxLen + 1)
        for t in targets { seen[t.count] = true }
        lengthSeen = seen
        if case .sameOpenFile = criterion { needsLink = false } else { needsLink = true }
    }

    @inline(__always)
    func matchLink(_ bytes: UnsafeRawPointer, _ count: Int) -> Int? {
        if case .anyPath = criterion { return bytes.load(as: UInt8.self) == 0x2f ? -1 : nil }
        guard count <= maxLength, lengthSeen[count] else { return nil }
        for (i, t) in targets.enumerated() where t.count == count {
            let equal = t.withUnsafeBytes { memcmp($0.baseAddress!, bytes, count) == 0 }
            if equal { return i }
        }
        return nil
    }

    enum KcmpOutcome {
        case match(Int)
        case noMatch
        case denied
    }

    @inline(__always)
    func matchOpenFile(pid: Int32, fd: Int32) -> KcmpOutcome {
        guard case .sameOpenFile(let refs) = criterion else { return .noMatch }
        for (i, r) in refs.enumerated() {
            let rc = cls_kcmp_file(r.pid, pid, r.fd, fd)
            if rc == 0 { return .match(i) }
            if rc < 0 && (errno == EPERM || errno == EACCES) { return .denied }
        }
        return .noMatch
    }
}

/// Per-worker state: the buffers are allocated once per chunk, not per fd.
struct ScanWorker {
    let procFd: Int32
    let matcher: Matcher
    var result = ChunkResult()
    let dents = UnsafeMutableRawPointer.allocate(byteCount: 32768, alignment: 8)
    let link = UnsafeMutablePointer<CChar>.allocate(capacity: 4096)
    let path = UnsafeMutablePointer<CChar>.allocate(capacity: 32)

    init(procFd: Int32, matcher: Matcher) {
        self.procFd = procFd
        self.matcher = matcher
    }

    func release() {
        dents.deallocate()
        link.deallocate()
        path.deallocate()
    }

    mutating func scanProcess(_ pid: Int32) {
        writeFdDirPath(pid)
        let dir = openat(procFd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir < 0 {
            let e = errno
            if e == EACCES || e == EPERM { noteDenied(pid) } else { result.vanished += 1 }
            return
        }
        defer { close(dir) }
        result.processes += 1
        while true {
            let n = cls_getdents64(dir, dents, 32768)
            if n < 0 {
                // EACCES here means the fd table is protected (ptrace access mode check).
                if errno == EACCES || errno == EPERM { denied(pid) }
                return
            }
            if n == 0 { break }
            var offset = 0
            while offset < n {
                let record = dents + offset
                let reclen = Int(record.load(fromByteOffset: 16, as: UInt16.self))
                let name = (record + 19).assumingMemoryBound(to: CChar.self)
                offset += reclen
                if name[0] == 0x2e { continue }  // "." and ".."
                result.descriptors += 1
                if matcher.needsLink {
                    let len = readlinkat(dir, name, link, 4096)
                    if len <= 0 {
                        // The fd table may be listable while the links are not (ptrace
                        // access check on each link): count the process once, stop here.
                        if len < 0 && (errno == EACCES || errno == EPERM) { denied(pid); return }
                        continue
                    }
                    if let target = matcher.matchLink(UnsafeRawPointer(link), len),
                       let fd = parseDecimal(UnsafeRawPointer(name)) {
                        result.matches.append(FdMatch(pid: pid, fd: Int32(truncatingIfNeeded: fd), target: target))
                    }
                } else if let fd = parseDecimal(UnsafeRawPointer(name)) {
                    switch matcher.matchOpenFile(pid: pid, fd: Int32(truncatingIfNeeded: fd)) {
                    case .match(let target):
                        result.matches.append(FdMatch(pid: pid, fd: Int32(truncatingIfNeeded: fd), target: target))
                    case .denied: denied(pid); return
                    case .noMatch: continue
                    }
                }
            }
        }
    }

    mutating func denied(_ pid: Int32) {
        noteDenied(pid)
        result.processes -= 1
    }

    mutating func noteDenied(_ pid: Int32) {
        result.denied += 1
        result.deniedPids.append(pid)
    }

    /// Writes "PID/fd\0" into `path` without allocating a String.
    func writeFdDirPath(_ pid: Int32) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var v = UInt32(bitPattern: pid)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { raw in
            repeat {
                raw[count] = UInt8(0x30 + v % 10)
                v /= 10
                count += 1
            } while v > 0
            for i in 0..<count { path[i] = CChar(bitPattern: raw[count - 1 - i]) }
        }
        path[count] = 0x2f  // '/'
        path[count + 1] = 0x66  // 'f'
        path[count + 2] = 0x64  // 'd'
        path[count + 3] = 0
    }
}

/// Calls `body` with the NUL-terminated name of each `linux_dirent64` in the buffer.
/// Layout (getdents64(2)): u64 d_ino, s64 d_off, u16 d_reclen, u8 d_type, char d_name[].
func forEachDirent(_ buffer: UnsafeMutableRawPointer, count: Int, _ body: (UnsafeRawPointer) -> Void) {
    var offset = 0
    while offset < count {
        let record = buffer + offset
        let reclen = Int(record.load(fromByteOffset: 16, as: UInt16.self))
        body(UnsafeRawPointer(record + 19))
        offset += reclen
    }
}

/// Parses a NUL-terminated all-digit name; nil for anything else.
@inline(__always)
func parseDecimal(_ name: UnsafeRawPointer) -> Int? {
    var value = 0
    var i = 0
    while true {
        let c = name.load(fromByteOffset: i, as: UInt8.self)
        if c == 0 { break }
        guard c >= 0x30 && c <= 0x39 else { return nil }
        value = value * 10 + Int(c - 0x30)
        i += 1
        if i > 10 { return nil }
    }
    return i == 0 ? nil : value
}
