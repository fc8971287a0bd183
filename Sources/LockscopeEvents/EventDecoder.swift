import LockscopeCore

/// Where one integer field sits in a record.
struct FieldSlot: Sendable {
    var offset: Int
    var size: Int
    var isSigned: Bool

    init(_ f: TracepointField) { offset = f.offset; size = f.size; isSigned = f.isSigned }

    /// Reads the field, sign-extending signed fields; 0 when the record is too short.
    @inline(__always)
    func bits(_ raw: UnsafeRawBufferPointer) -> UInt64 {
        guard offset + size <= raw.count else { return 0 }
        switch size {
        case 1:
            let v = raw.load(fromByteOffset: offset, as: UInt8.self)
            return isSigned ? UInt64(bitPattern: Int64(Int8(bitPattern: v))) : UInt64(v)
        case 2:
            let v = raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self)
            return isSigned ? UInt64(bitPattern: Int64(Int16(bitPattern: v))) : UInt64(v)
        case 4:
            let v = raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
            return isSigned ? UInt64(bitPattern: Int64(Int32(bitPattern: v))) : UInt64(v)
        case 8:
            return raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        default:
            return 0
        }
    }
}

/// A string field: a fixed `char[N]` or a `__data_loc char[]` (u32: offset in
/// the low 16 bits, length in the high 16; include/trace/trace_events.h `__get_str`).
struct StringSlot: Sendable {
    var offset: Int
    var size: Int
    var isDataLocation: Bool

    init(_ f: TracepointField) { offset = f.offset; size = f.size; isDataLocation = f.isDataLocation }

    @inline(__always)
    func bytes(_ raw: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        if isDataLocation {
            guard offset + 4 <= raw.count else { return UnsafeRawBufferPointer(start: nil, count: 0) }
            let loc = raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
            let start = Int(loc & 0xffff), length = Int(loc >> 16)
            guard start + length <= raw.count else { return UnsafeRawBufferPointer(start: nil, count: 0) }
            return UnsafeRawBufferPointer(rebasing: raw[start..<(start + length)])
        }
        guard offset + size <= raw.count else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + size)])
    }
}

/// The offsets of one filelock tracepoint's fields. Two event classes share
/// names (filelock_lock, filelock_lease) and `generic_add_lease` has its own;
/// fields a class lacks are nil and decode as 0. Field names changed in Linux
/// 6.9 ("filelock: rename fields in trace entry structures": `fl_pid` → `pid`,
/// `fl_owner` → `owner`, `fl_flags` → `flags`, `fl_type` → `type`,
/// `fl_blocker` → `blocker`), so both spellings are looked up.
struct LockLayout: Sendable {
    var ino: FieldSlot
    var dev: FieldSlot
    var pid: FieldSlot?
    var owner: FieldSlot?
    var flags: FieldSlot?
    var type: FieldSlot?
    var start: FieldSlot?
    var end: FieldSlot?
    var ret: FieldSlot?
    var blocker: FieldSlot?
    var fl: FieldSlot?
    var writers: FieldSlot?
    var readers: FieldSlot?

    init(_ format: TracepointFormat) throws(EventsError) {
        guard let ino = format.field("i_ino") else { throw .missingField(tracepoint: format.name, field: "i_ino") }
        guard let dev = format.field("s_dev") else { throw .missingField(tracepoint: format.name, field: "s_dev") }
        self.ino = FieldSlot(ino)
        self.dev = FieldSlot(dev)
        pid = format.field(anyOf: ["pid", "fl_pid"]).map(FieldSlot.init)
        owner = format.field(anyOf: ["owner", "fl_owner"]).map(FieldSlot.init)
        flags = format.field(anyOf: ["flags", "fl_flags"]).map(FieldSlot.init)
        type = format.field(anyOf: ["type", "fl_type"]).map(FieldSlot.init)
        start = format.field("fl_start").map(FieldSlot.init)
        end = format.field("fl_end").map(FieldSlot.init)
        ret = format.field("ret").map(FieldSlot.init)
        blocker = format.field(anyOf: ["blocker", "fl_blocker"]).map(FieldSlot.init)
        fl = format.field("fl").map(FieldSlot.init)
        writers = format.field("wcount").map(FieldSlot.init)
        readers = format.field("rcount").map(FieldSlot.init)
    }
}

/// `leases_conflict` (include/trace/events/filelock.h, Linux 5.8+): `lease`,
/// `breaker` (addresses), `l_fl_flags` (the lease's), `b_fl_type` (the
/// breaker's request: F_WRLCK for an open for writing), `conflict`.
struct LeaseConflictLayout: Sendable {
    var lease: FieldSlot, breaker: FieldSlot, conflict: FieldSlot
    var flags: FieldSlot?, type: FieldSlot?
    init(_ f: TracepointFormat) throws(EventsError) {
        func need(_ n: String) throws(EventsError) -> TracepointField {
            guard let x = f.field(n) else { throw .missingField(tracepoint: f.name, field: n) }
            return x
        }
        lease = FieldSlot(try need("lease")); breaker = FieldSlot(try need("breaker"))
        conflict = FieldSlot(try need("conflict"))
        flags = f.field("l_fl_flags").map(FieldSlot.init); type = f.field("b_fl_type").map(FieldSlot.init)
    }
}

struct ForkLayout: Sendable {
    var parentComm: StringSlot, parentPid: FieldSlot, childComm: StringSlot, childPid: FieldSlot
    init(_ f: TracepointFormat) throws(EventsError) {
        func need(_ n: String) throws(EventsError) -> TracepointField {
            guard let x = f.field(n) else { throw .missingField(tracepoint: f.name, field: n) }
            return x
        }
        parentComm = StringSlot(try need("parent_comm")); parentPid = FieldSlot(try need("parent_pid"))
        childComm = StringSlot(try need("child_comm")); childPid = FieldSlot(try need("child_pid"))
    }
}

struct ExecLayout: Sendable {
    var filename: StringSlot, pid: FieldSlot, oldPid: FieldSlot
    init(_ f: TracepointFormat) throws(EventsError) {
        guard let fn = f.field("filename") else { throw .missingField(tracepoint: f.name, field: "filename") }
        guard let p = f.field("pid") else { throw .missingField(tracepoint: f.name, field: "pid") }
        guard let o = f.field("old_pid") else { throw .missingField(tracepoint: f.name, field: "old_pid") }
        filename = StringSlot(fn); pid = FieldSlot(p); oldPid = FieldSlot(o)
    }
}

struct ExitLayout: Sendable {
    var comm: StringSlot, pid: FieldSlot, groupDead: FieldSlot?
    init(_ f: TracepointFormat) throws(EventsError) {
        guard let c = f.field("comm") else { throw .missingField(tracepoint: f.name, field: "comm") }
        guard let p = f.field("pid") else { throw .missingField(tracepoint: f.name, field: "pid") }
        comm = StringSlot(c); pid = FieldSlot(p); groupDead = f.field("group_dead").map(FieldSlot.init)
    }
}

/// Turns raw tracepoint records into `KernelEvent` values by field name, using
/// layouts read from the running kernel's `format` files. Pure: bytes in, values
/// out, so it is tested on recorded records of several kernel layouts.
public struct EventDecoder: Sendable {
    enum Entry: Sendable {
        case lock(LockTracepoint, LockLayout)
        case leaseConflict(LeaseConflictLayout)
        case fork(ForkLayout)
        case exec(ExecLayout)
        case exit(ExitLayout)
    }
    /// Layouts indexed by `id - firstId`: one array load per record, no hashing.
    var entries: [Entry?] = []
    var firstId: Int = 0
    var commonType: FieldSlot

    /// Builds layouts for every format given; tracepoints lockscope does not
    /// know are ignored. Throws when a known tracepoint lacks a field it needs.
    public init(formats: [TracepointName: TracepointFormat]) throws(EventsError) {
        commonType = FieldSlot(TracepointField(name: "common_type", type: "unsigned short", offset: 0, size: 2, isSigned: false))
        var byId: [UInt16: Entry] = [:]
        for (name, format) in formats {
            if let ct = format.field("common_type") { commonType = FieldSlot(ct) }
            let id = UInt16(truncatingIfNeeded: format.id)
            if name.system == "filelock", let tp = LockTracepoint(rawValue: name.event) {
                if tp == .leasesConflict { byId[id] = .leaseConflict(try LeaseConflictLayout(format)) }
                else { byId[id] = .lock(tp, try LockLayout(format)) }
            } else if name.system == "sched", let tp = SchedTracepoint(rawValue: name.event) {
                switch tp {
                case .processFork: byId[id] = .fork(try ForkLayout(format))
                case .processExec: byId[id] = .exec(try ExecLayout(format))
                case .processExit: byId[id] = .exit(try ExitLayout(format))
                }
            }
        }
        if let lo = byId.keys.min(), let hi = byId.keys.max() {
            firstId = Int(lo)
            entries = (Int(lo)...Int(hi)).map { byId[UInt16($0)] }
        }
    }

    /// The tracepoint id a raw record starts with (`common_type`).
    @inline(__always)
    public func tracepointId(_ raw: UnsafeRawBufferPointer) -> UInt16 {
        UInt16(truncatingIfNeeded: commonType.bits(raw))
    }

    /// Decodes one raw record; nil for a tracepoint this decoder was not built for.
    public func decode(_ header: SampleHeader, raw: UnsafeRawBufferPointer) -> KernelEvent? {
        let index = Int(tracepointId(raw)) - firstId
        guard index >= 0, index < entries.count, let entry = entries[index] else { return nil }
        switch entry {
        case .lock(let tp, let l):
            let dev = UInt32(truncatingIfNeeded: l.dev.bits(raw))
            let file = FileIdentity(major: dev >> 20, minor: dev & 0xfffff, inode: l.ino.bits(raw))
            return .lock(LockEvent(
                header: header, tracepoint: tp, file: file,
                lockPid: UInt32(truncatingIfNeeded: l.pid?.bits(raw) ?? 0),
                owner: l.owner?.bits(raw) ?? 0,
                flags: LockFlags(rawValue: UInt32(truncatingIfNeeded: l.flags?.bits(raw) ?? 0)),
                type: LockType(rawValue: UInt8(truncatingIfNeeded: l.type?.bits(raw) ?? 1)),
                start: Int64(bitPattern: l.start?.bits(raw) ?? 0),
                end: Int64(bitPattern: l.end?.bits(raw) ?? UInt64(Int64.max)),
                ret: Int32(truncatingIfNeeded: Int64(bitPattern: l.ret?.bits(raw) ?? 0)),
                blocker: l.blocker?.bits(raw) ?? 0,
                lock: l.fl?.bits(raw) ?? 0,
                writers: Int32(truncatingIfNeeded: l.writers?.bits(raw) ?? 0),
                readers: Int32(truncatingIfNeeded: l.readers?.bits(raw) ?? 0)))
        case .leaseConflict(let l):
            return .lock(LockEvent(
                header: header, tracepoint: .leasesConflict, file: FileIdentity(major: 0, minor: 0, inode: 0),
                owner: 0, flags: LockFlags(rawValue: UInt32(truncatingIfNeeded: l.flags?.bits(raw) ?? 0)),
                type: LockType(rawValue: UInt8(truncatingIfNeeded: l.type?.bits(raw) ?? 1)),
                ret: l.conflict.bits(raw) != 0 ? 1 : 0, blocker: l.breaker.bits(raw), lock: l.lease.bits(raw)))
        case .fork(let l):
            return .fork(ForkEvent(
                header: header,
                parentPid: Int32(truncatingIfNeeded: l.parentPid.bits(raw)),
                parentComm: InlineName(l.parentComm.bytes(raw)),
                childPid: Int32(truncatingIfNeeded: l.childPid.bits(raw)),
                childComm: InlineName(l.childComm.bytes(raw))))
        case .exec(let l):
            return .exec(ExecEvent(
                header: header,
                pid: Int32(truncatingIfNeeded: l.pid.bits(raw)),
                oldPid: Int32(truncatingIfNeeded: l.oldPid.bits(raw)),
                name: InlineName(basenameOf: l.filename.bytes(raw))))
        case .exit(let l):
            let pid = Int32(truncatingIfNeeded: l.pid.bits(raw))
            let dead = l.groupDead.map { $0.bits(raw) != 0 } ?? (pid == header.pid)
            return .exit(ExitEvent(header: header, pid: pid, comm: InlineName(l.comm.bytes(raw)), groupDead: dead))
        }
    }
}
