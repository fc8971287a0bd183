/// The two system-call tracepoints (include/trace/events/syscalls.h,
/// `TRACE_EVENT_FN(sys_enter, …)` and `sys_exit`): every call's number and six
/// argument registers at entry, its number and return value at exit. They fire
/// for every task; a perf event bound to a task sees only that task's calls.
public enum RawSyscallTracepoint: String, Sendable, CaseIterable {
    case enter = "sys_enter"
    case exit = "sys_exit"
    public var tracepoint: TracepointName { TracepointName("raw_syscalls", rawValue) }
}

/// One raw_syscalls record, decoded in place (no allocation).
public enum RawSyscallRecord: Sendable, Equatable {
    /// `id` (the syscall number, -1 for an invalid one) and `args[6]`.
    case enter(number: Int64, args: SyscallRegisters)
    /// `id` and `ret` (a value, or -errno).
    case exit(number: Int64, result: Int64)
    /// A signal delivered or an execve (`tasks` set on the decoder).
    case task(TaskRecord)
}

/// Six argument registers, inline.
public struct SyscallRegisters: Sendable, Equatable {
    public var a0: UInt64, a1: UInt64, a2: UInt64, a3: UInt64, a4: UInt64, a5: UInt64
    public init(_ a0: UInt64 = 0, _ a1: UInt64 = 0, _ a2: UInt64 = 0, _ a3: UInt64 = 0, _ a4: UInt64 = 0, _ a5: UInt64 = 0) {
        self.a0 = a0; self.a1 = a1; self.a2 = a2; self.a3 = a3; self.a4 = a4; self.a5 = a5
    }
    public var array: [UInt64] { [a0, a1, a2, a3, a4, a5] }
}

/// Decodes raw_syscalls records by field name from the running kernel's
/// `format` files (`field:long id; offset:8; size:8;`, `field:unsigned long
/// args[6]; offset:16; size:48;`, `field:long ret; offset:16; size:8;`). Pure.
public struct RawSyscallDecoder: Sendable {
    public let enterId: UInt16
    public let exitId: UInt16
    let commonType: FieldSlot
    let enterNumber: FieldSlot
    let args: FieldSlot
    let exitNumber: FieldSlot
    let ret: FieldSlot
    /// The task tracepoints opened with the syscall ones, when the kernel has them.
    public var tasks: TaskEventDecoder?

    public init(enter: TracepointFormat, exit: TracepointFormat) throws(EventsError) {
        func need(_ f: TracepointFormat, _ n: String) throws(EventsError) -> TracepointField {
            guard let x = f.field(n) else { throw .missingField(tracepoint: f.name, field: n) }
            return x
        }
        commonType = FieldSlot(enter.field("common_type")
                               ?? TracepointField(name: "common_type", type: "unsigned short", offset: 0, size: 2, isSigned: false))
        enterId = UInt16(truncatingIfNeeded: enter.id)
        exitId = UInt16(truncatingIfNeeded: exit.id)
        enterNumber = FieldSlot(try need(enter, "id"))
        let a = try need(enter, "args")
        guard a.size >= 48 else { throw .malformedFormat(tracepoint: enter.name, line: "args is \(a.size) bytes, not 6 × 8") }
        args = FieldSlot(a)
        exitNumber = FieldSlot(try need(exit, "id"))
        ret = FieldSlot(try need(exit, "ret"))
    }

    /// From a map of formats (as `TracefsSource.formats` returns); nil when either is missing.
    public init?(formats: [TracepointName: TracepointFormat]) throws(EventsError) {
        guard let e = formats[RawSyscallTracepoint.enter.tracepoint],
              let x = formats[RawSyscallTracepoint.exit.tracepoint] else { return nil }
        try self.init(enter: e, exit: x)
    }

    @inline(__always)
    public func decode(_ raw: UnsafeRawBufferPointer) -> RawSyscallRecord? {
        let type = UInt16(truncatingIfNeeded: commonType.bits(raw))
        if type == enterId {
            let o = args.offset
            guard o + 48 <= raw.count else { return nil }
            let r = SyscallRegisters(raw.loadUnaligned(fromByteOffset: o, as: UInt64.self),
                                     raw.loadUnaligned(fromByteOffset: o + 8, as: UInt64.self),
                                     raw.loadUnaligned(fromByteOffset: o + 16, as: UInt64.self),
                                     raw.loadUnaligned(fromByteOffset: o + 24, as: UInt64.self),
                                     raw.loadUnaligned(fromByteOffset: o + 32, as: UInt64.self),
                                     raw.loadUnaligned(fromByteOffset: o + 40, as: UInt64.self))
            return .enter(number: Int64(bitPattern: enterNumber.bits(raw)), args: r)
        }
        if type == exitId {
            return .exit(number: Int64(bitPattern: exitNumber.bits(raw)), result: Int64(bitPattern: ret.bits(raw)))
        }
        return tasks?.decode(type: type, raw).map { .task($0) }
    }

    /// An in-kernel filter keeping only these syscall numbers
    /// (`id == 0 || id == 1`), for PERF_EVENT_IOC_SET_FILTER. Pure.
    public static func filter(numbers: [Int]) -> String {
        numbers.sorted().map { "id == \($0)" }.joined(separator: " || ")
    }
}
