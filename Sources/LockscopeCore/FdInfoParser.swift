/// The fields of /proc/PID/fdinfo/N that lockscope uses (proc_pid_fdinfo(5);
/// `seq_show()` in fs/proc/fd.c prints `pos:`, `flags:` (octal), `mnt_id:`, `ino:`,
/// then `show_fd_locks()` in fs/locks.c adds one `lock:\t` line per lock whose
/// owner is this files table or this open file description — which is why every
/// process sharing a flock'd or OFD-locked file description shows the line).
public struct FdInfo: Sendable, Hashable {
    public var pos: Int64?
    public var flags: UInt32?
    public var mountId: Int?
    public var inode: UInt64?
    public var locks: [LockLine]

    public init(pos: Int64? = nil, flags: UInt32? = nil, mountId: Int? = nil, inode: UInt64? = nil, locks: [LockLine] = []) {
        self.pos = pos
        self.flags = flags
        self.mountId = mountId
        self.inode = inode
        self.locks = locks
    }

    public static func parse(_ text: String) -> FdInfo {
        var info = FdInfo()
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[line.startIndex..<colon]
            let value = line[line.index(after: colon)...].drop(while: { $0 == " " || $0 == "\t" })
            switch key {
            case "pos": info.pos = Int64(value)
            case "flags": info.flags = UInt32(value, radix: 8)
            case "mnt_id": info.mountId = Int(value)
            case "ino": info.inode = UInt64(value)
            case "lock":
                if let l = ProcLocksParser.parseLine(value) { info.locks.append(l) }
            default: continue
            }
        }
        return info
    }
}

/// /proc/PID/mountinfo (proc_pid_mountinfo(5)): maps a mount id to the superblock
/// device `MAJOR:MINOR` (field 3, decimal), which is the device /proc/locks prints.
public struct MountTable: Sendable, Hashable {
    public var devices: [Int: (major: UInt32, minor: UInt32)]

    public static func == (a: MountTable, b: MountTable) -> Bool {
        a.devices.count == b.devices.count && a.devices.allSatisfy { k, v in
            b.devices[k].map { $0.major == v.major && $0.minor == v.minor } ?? false
        }
    }
    public func hash(into h: inout Hasher) { h.combine(devices.count) }

    public init(devices: [Int: (major: UInt32, minor: UInt32)] = [:]) { self.devices = devices }

    /// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw`
    /// (fs/proc_namespace.c `show_mountinfo()`): the mount id and the device, fields 1
    /// and 3 of each line.
    public static func parse(_ text: String) -> MountTable {
        var text = text
        return text.withUTF8 { parse(UnsafeRawBufferPointer($0)) }
    }

    /// The same on the bytes: only two fields of each line are read, and walking the
    /// whole file by `Character` cost ~1 M instructions per table.
    public static func parse(_ b: UnsafeRawBufferPointer) -> MountTable {
        var devices: [Int: (major: UInt32, minor: UInt32)] = [:]
        var i = 0
        while i < b.count {
            // Fields 1 and 3 of this line, separated by runs of spaces.
            var first: Range<Int>? = nil, third: Range<Int>? = nil
            var seen = 0
            var start = i
            func ended(at end: Int) {
                guard end > start else { return }
                seen += 1
                if seen == 1 { first = start..<end } else if seen == 3 { third = start..<end }
            }
            while i < b.count && b[i] != UInt8(ascii: "\n") {
                if b[i] == UInt8(ascii: " ") {
                    ended(at: i)
                    start = i + 1
                }
                i += 1
            }
            ended(at: i)
            i += 1
            guard let first, let third,
                  let id = ASCIIDecimal.signed(UnsafeRawBufferPointer(rebasing: b[first])).flatMap({ Int(exactly: $0) }),
                  let dev = device(UnsafeRawBufferPointer(rebasing: b[third])) else { continue }
            devices[id] = dev
        }
        return MountTable(devices: devices)
    }

    /// `MAJ:MIN` in decimal.
    private static func device(_ b: UnsafeRawBufferPointer) -> (major: UInt32, minor: UInt32)? {
        guard let colon = b.firstIndex(of: UInt8(ascii: ":")),
              let major = ASCIIDecimal.unsigned(UnsafeRawBufferPointer(rebasing: b[..<colon]), radix: 10).flatMap({ UInt32(exactly: $0) }),
              let minor = ASCIIDecimal.unsigned(UnsafeRawBufferPointer(rebasing: b[(colon + 1)...]), radix: 10).flatMap({ UInt32(exactly: $0) })
        else { return nil }
        return (major, minor)
    }

    /// The identity of a file given an fdinfo from a process whose mount table this is.
    public func identity(of info: FdInfo) -> FileIdentity? {
        guard let m = info.mountId, let ino = info.inode, let dev = devices[m] else { return nil }
        return FileIdentity(major: dev.major, minor: dev.minor, inode: ino)
    }
}
