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
    public static func parse(_ text: String) -> MountTable {
        var devices: [Int: (major: UInt32, minor: UInt32)] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 3)
            guard fields.count >= 3, let id = Int(fields[0]) else { continue }
            let dev = fields[2].split(separator: ":")
            guard dev.count == 2, let ma = UInt32(dev[0]), let mi = UInt32(dev[1]) else { continue }
            devices[id] = (ma, mi)
        }
        return MountTable(devices: devices)
    }

    /// The identity of a file given an fdinfo from a process whose mount table this is.
    public func identity(of info: FdInfo) -> FileIdentity? {
        guard let m = info.mountId, let ino = info.inode, let dev = devices[m] else { return nil }
        return FileIdentity(major: dev.major, minor: dev.minor, inode: ino)
    }
}
