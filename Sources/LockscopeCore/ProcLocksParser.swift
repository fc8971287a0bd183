/// One line of /proc/locks (or of a `lock:` line in /proc/PID/fdinfo/N).
///
/// The format is `lock_get_status()` in fs/locks.c:
/// ```
/// seq_printf(f, "%lld: ", id);
/// if (repeat) seq_printf(f, "%*s", repeat - 1 + (int)strlen(pfx), pfx);   // pfx = "-> "
/// FLOCK  ADVISORY  | POSIX  ADVISORY  | OFDLCK ADVISORY | ACCESS ... | POSIX  *NOINODE* |
/// LEASE  ACTIVE    | LEASE  BREAKING  | LEASE  BREAKER   | DELEG  ... | UNKNOWN UNKNOWN
/// "%s " READ|WRITE|UNLCK
/// "%d %02x:%02x:%lu " pid, MAJOR(sb->s_dev), MINOR(sb->s_dev), i_ino   (or "%d <none>:0 ")
/// POSIX-family: "%Ld EOF" | "%Ld %Ld"; others: "0 EOF"
/// ```
/// `locks_show()` walks each granted lock's tree of blocked requests depth-first
/// and prints the waiters with the same id and `repeat` = depth, so a waiter at
/// depth d has d-1 extra spaces before `->`. Kernels before 5.x printed
/// `MANDATORY` as the mode for mandatory-locking mounts; it is accepted as-is.
public struct LockLine: Sendable, Hashable {
    public var id: Int
    /// 0 for a granted lock; 1, 2, … for blocked requests in the tree under it.
    public var depth: Int
    public var kind: LockKind
    public var mode: String
    public var access: LockAccess
    /// As printed: -1 for OFD locks, 0 when the owner is not visible in our pid namespace.
    public var pid: Int32
    /// nil for `<none>:0` (a lock whose file has no inode, e.g. a lease breaker).
    public var file: FileIdentity?
    public var start: Int64
    /// nil for EOF.
    public var end: Int64?

    public var isWaiter: Bool { depth > 0 }

    public init(id: Int, depth: Int, kind: LockKind, mode: String, access: LockAccess, pid: Int32,
                file: FileIdentity?, start: Int64, end: Int64?) {
        self.id = id
        self.depth = depth
        self.kind = kind
        self.mode = mode
        self.access = access
        self.pid = pid
        self.file = file
        self.start = start
        self.end = end
    }
}

/// A granted lock from /proc/locks with the tree of requests blocked behind it.
public struct KernelLock: Sendable, Hashable {
    public var lock: LockLine
    /// The blocked requests in the kernel's depth-first order, each with the index
    /// (into `waiters`) of its direct blocker, or nil when the granted lock itself blocks it.
    public var waiters: [LockLine]
    public var waiterParents: [Int?]

    /// The pid of the entry directly above waiter `i` in the tree.
    public func directBlockerPid(ofWaiter i: Int) -> Int32 {
        if let p = waiterParents[i] { return waiters[p].pid }
        return lock.pid
    }
}

public enum ProcLocksParser {
    /// Parses the whole of /proc/locks into granted locks with their waiter trees.
    /// Lines that do not parse are returned in `rejected` rather than aborting:
    /// one odd line from a future kernel must not hide every other lock.
    ///
    /// Lines and fields are found on the bytes: the kernel writes ASCII, and a waiter
    /// 60 deep is indented by 60 spaces, so walking `Character`s cost ~90 k instructions
    /// per line, a fifth of what `list` and `metrics` spent in user space on a box with
    /// 60 waiters.
    public static func parse(_ text: String) -> (locks: [KernelLock], rejected: [String]) {
        var text = text
        return text.withUTF8 { parse(UnsafeRawBufferPointer($0)) }
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer) -> (locks: [KernelLock], rejected: [String]) {
        var locks: [KernelLock] = []
        var rejected: [String] = []
        // Stack of waiter indices by depth for the tree under the current granted lock.
        var stack: [Int] = []
        var lineStart = 0
        while lineStart < bytes.count {
            var lineEnd = lineStart
            while lineEnd < bytes.count && bytes[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            defer { lineStart = lineEnd + 1 }
            guard lineEnd > lineStart else { continue }
            let raw = UnsafeRawBufferPointer(rebasing: bytes[lineStart..<lineEnd])
            guard let line = parseLine(raw) else {
                rejected.append(String(decoding: raw, as: UTF8.self))
                continue
            }
            if line.depth == 0 {
                locks.append(KernelLock(lock: line, waiters: [], waiterParents: []))
                stack.removeAll(keepingCapacity: true)
                continue
            }
            guard !locks.isEmpty else {
                rejected.append(String(decoding: raw, as: UTF8.self))
                continue
            }
            let li = locks.count - 1
            // Depth d hangs under the most recent entry at depth d-1.
            let depth = min(line.depth, stack.count + 1)
            stack.removeSubrange((depth - 1)...)
            let parent: Int? = depth == 1 ? nil : stack[depth - 2]
            var normalized = line
            normalized.depth = depth
            locks[li].waiters.append(normalized)
            locks[li].waiterParents.append(parent)
            stack.append(locks[li].waiters.count - 1)
        }
        return (locks, rejected)
    }

    /// Parses one line: `ID: [ {depth-1 spaces}-> ]KIND MODE ACCESS PID DEV:INO START END`.
    public static func parseLine(_ raw: Substring) -> LockLine? {
        var line = String(raw)
        return line.withUTF8 { parseLine(UnsafeRawBufferPointer($0)) }
    }

    static func parseLine(_ b: UnsafeRawBufferPointer) -> LockLine? {
        guard let colon = b.firstIndex(of: UInt8(ascii: ":")),
              let id = ASCIIDecimal.signed(UnsafeRawBufferPointer(rebasing: b[..<colon])).flatMap({ Int(exactly: $0) })
        else { return nil }
        var i = colon + 1
        // Count the spaces before an optional "->": "%lld: " contributes one, then depth-1 more.
        var spaces = 0
        while i < b.count && b[i] == UInt8(ascii: " ") {
            spaces += 1
            i += 1
        }
        var depth = 0
        if i + 1 < b.count && b[i] == UInt8(ascii: "-") && b[i + 1] == UInt8(ascii: ">") {
            depth = max(1, spaces)
            i += 2
        }
        // The seven fields, separated by runs of spaces or tabs; more are ignored.
        func field() -> UnsafeRawBufferPointer? {
            while i < b.count && (b[i] == UInt8(ascii: " ") || b[i] == UInt8(ascii: "\t")) { i += 1 }
            let start = i
            while i < b.count && b[i] != UInt8(ascii: " ") && b[i] != UInt8(ascii: "\t") { i += 1 }
            return i > start ? UnsafeRawBufferPointer(rebasing: b[start..<i]) : nil
        }
        func text(_ f: UnsafeRawBufferPointer) -> String { String(decoding: f, as: UTF8.self) }
        guard let kindField = field(), let modeField = field(), let accessField = field(), let pidField = field(),
              let fileField = field(), let startField = field(), let endField = field() else { return nil }
        // "UNKNOWN UNKNOWN" has two words where others have kind + mode; all have a mode token.
        guard let kind = LockKind(rawValue: text(kindField)),
              let access = LockAccess(rawValue: text(accessField)),
              let pid = ASCIIDecimal.signed(pidField).flatMap({ Int32(exactly: $0) }) else { return nil }
        var file: FileIdentity? = nil
        if !fileField.elementsEqual("<none>:0".utf8) {
            guard let f = FileIdentity(parsing: fileField) else { return nil }
            file = f
        }
        guard let start = ASCIIDecimal.signed(startField) else { return nil }
        let end: Int64?
        if endField.elementsEqual("EOF".utf8) {
            end = nil
        } else if let e = ASCIIDecimal.signed(endField) {
            end = e
        } else {
            return nil
        }
        return LockLine(id: id, depth: depth, kind: kind, mode: text(modeField), access: access, pid: pid, file: file,
                        start: start, end: end)
    }
}
