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
        guard offset + size <= raw.count, let base = raw.baseAddress else { return 0 }
        return loadField(base, offset: offset, size: size, signed: isSigned)
    }
}

/// The one reading of an integer field of 1, 2, 4 or 8 bytes at `offset`, widened to
/// 64 bits (sign-extended when `signed`); 0 for any other size. The caller checks the
/// bounds: `FieldSlot` against the record, `FlatSlot` once per record.
@inline(__always)
func loadField(_ p: UnsafeRawPointer, offset: Int, size: Int, signed: Bool) -> UInt64 {
    switch size {
    case 8: return p.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
    case 4:
        let v = p.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
        return signed ? UInt64(bitPattern: Int64(Int32(bitPattern: v))) : UInt64(v)
    case 2:
        let v = p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)
        return signed ? UInt64(bitPattern: Int64(Int16(bitPattern: v))) : UInt64(v)
    case 1:
        let v = p.load(fromByteOffset: offset, as: UInt8.self)
        return signed ? UInt64(bitPattern: Int64(Int8(bitPattern: v))) : UInt64(v)
    default: return 0
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

/// A `FieldSlot` in the flat layout: read without a bounds check, once the
/// record is known to be long enough. Size 0: the kernel has no such field.
struct FlatSlot: Sendable {
    var offset: UInt16 = 0
    var size: UInt8 = 0
    var isSigned = false

    init() {}
    /// Nil when the field cannot be read this way (a size other than 1, 2, 4 or
    /// 8, which `FieldSlot.bits` reads as 0).
    init?(_ slot: FieldSlot?) {
        guard let slot else { return }
        guard [1, 2, 4, 8].contains(slot.size), slot.offset >= 0, slot.offset + slot.size <= Int(UInt16.max) else { return nil }
        offset = UInt16(slot.offset); size = UInt8(slot.size); isSigned = slot.isSigned
    }

    var end: Int { Int(offset) + Int(size) }

    /// The same value `FieldSlot.bits` reads from a record at least `end` bytes long.
    @inline(__always)
    func bits(_ p: UnsafeRawPointer) -> UInt64 { loadField(p, offset: Int(offset), size: Int(size), signed: isSigned) }
}

/// A `LockLayout` as plain offsets (4 bytes a field, no optionals), for the
/// records every flock/fcntl call produces: a record at least `minLength` long
/// holds every field the kernel declares, so none needs a bounds check, and
/// an absent field reads as its default. Shorter records take `LockLayout`.
struct FlatLockLayout: Sendable {
    var tracepoint: LockTracepoint
    var ino: FlatSlot, dev: FlatSlot, pid: FlatSlot, owner: FlatSlot, flags: FlatSlot, type: FlatSlot
    var start: FlatSlot, end: FlatSlot, ret: FlatSlot, blocker: FlatSlot, fl: FlatSlot
    var writers: FlatSlot, readers: FlatSlot
    var minLength: Int

    init?(_ tracepoint: LockTracepoint, _ l: LockLayout) {
        guard let ino = FlatSlot(l.ino), let dev = FlatSlot(l.dev), let pid = FlatSlot(l.pid),
              let owner = FlatSlot(l.owner), let flags = FlatSlot(l.flags), let type = FlatSlot(l.type),
              let start = FlatSlot(l.start), let end = FlatSlot(l.end), let ret = FlatSlot(l.ret),
              let blocker = FlatSlot(l.blocker), let fl = FlatSlot(l.fl), let writers = FlatSlot(l.writers),
              let readers = FlatSlot(l.readers) else { return nil }
        self.tracepoint = tracepoint
        self.ino = ino; self.dev = dev; self.pid = pid; self.owner = owner; self.flags = flags; self.type = type
        self.start = start; self.end = end; self.ret = ret; self.blocker = blocker; self.fl = fl
        self.writers = writers; self.readers = readers
        minLength = [ino, dev, pid, owner, flags, type, start, end, ret, blocker, fl, writers, readers].map(\.end).max() ?? 0
    }

    /// What `EventDecoder.decode` returns for the record (`raw.count >= minLength`).
    @inline(__always)
    func decode(_ header: SampleHeader, _ raw: UnsafeRawBufferPointer) -> LockEvent {
        let p = raw.baseAddress!
        let dev = UInt32(truncatingIfNeeded: self.dev.bits(p))
        return LockEvent(
            header: header, tracepoint: tracepoint,
            file: FileIdentity(major: dev >> 20, minor: dev & 0xfffff, inode: ino.bits(p)),
            lockPid: UInt32(truncatingIfNeeded: pid.bits(p)),
            owner: owner.bits(p),
            flags: LockFlags(rawValue: UInt32(truncatingIfNeeded: flags.bits(p))),
            type: LockType(rawValue: type.size == 0 ? 1 : UInt8(truncatingIfNeeded: type.bits(p))),
            start: Int64(bitPattern: start.bits(p)),
            end: end.size == 0 ? Int64.max : Int64(bitPattern: end.bits(p)),
            ret: Int32(truncatingIfNeeded: Int64(bitPattern: ret.bits(p))),
            blocker: blocker.bits(p),
            lock: fl.bits(p),
            writers: Int32(truncatingIfNeeded: writers.bits(p)),
            readers: Int32(truncatingIfNeeded: readers.bits(p)))
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
    /// Also by `id - firstId`: the index in `flatLocks` of a lock tracepoint's flat
    /// layout, or -1 (not a lock tracepoint, or a field the flat layout cannot read).
    /// Kept apart from `entries` so the hot path copies no `Entry` payload.
    var flatIndex: [Int16] = []
    var flatLocks: [FlatLockLayout] = []
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
            var flats: [FlatLockLayout] = []
            flatIndex = entries.map { entry -> Int16 in
                guard case .lock(let tp, let layout)? = entry, let flat = FlatLockLayout(tp, layout) else { return -1 }
                flats.append(flat)
                return Int16(flats.count - 1)
            }
            flatLocks = flats
        }
    }

    /// The index in `flatLocks` of the record's layout when its tracepoint is a
    /// lock tracepoint and it is long enough to be read flat; else -1.
    @inline(__always)
    func flatLock(_ raw: UnsafeRawBufferPointer) -> Int {
        let index = Int(tracepointId(raw)) &- firstId
        guard index >= 0, index < flatIndex.count else { return -1 }
        let f = Int(flatIndex[index])
        guard f >= 0, raw.count >= flatLocks[f].minLength else { return -1 }
        return f
    }

    /// The tracepoint id a raw record starts with (`common_type`).
    @inline(__always)
    public func tracepointId(_ raw: UnsafeRawBufferPointer) -> UInt16 {
        UInt16(truncatingIfNeeded: commonType.bits(raw))
    }

    /// Decodes one raw record; nil for a tracepoint this decoder was not built for.
    public func decode(_ header: SampleHeader, raw: UnsafeRawBufferPointer) -> KernelEvent? {
        let flat = flatLock(raw)
        if flat >= 0 { return .lock(flatLocks[flat].decode(header, raw)) }
        return decodeByField(header, raw: raw)
    }

    /// `decode` one field at a time, each checked against the record's length:
    /// every record the flat layouts do not take (sched events, leases_conflict,
    /// truncated records).
    func decodeByField(_ header: SampleHeader, raw: UnsafeRawBufferPointer) -> KernelEvent? {
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
