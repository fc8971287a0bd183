/// One field of a tracepoint's record, as its tracefs `format` file declares it:
/// `field:unsigned long i_ino;	offset:16;	size:8;	signed:0;`
///
/// The layout is produced by the kernel's `TP_STRUCT__entry` (see
/// include/trace/trace_events.h and kernel/trace/trace_events.c,
/// `f_show()`/`trace_define_field()`); offsets change between kernel versions
/// (e.g. include/trace/events/filelock.h before and after `file_lock_core`,
/// Linux 6.9), so they are always read at run time, never hard-coded.
public struct TracepointField: Sendable, Hashable {
    /// The C name (`i_ino`, `parent_comm`).
    public var name: String
    /// The C type as declared, without the name (`unsigned long`, `__data_loc char[]`, `char[16]`).
    public var type: String
    public var offset: Int
    public var size: Int
    public var isSigned: Bool

    /// `__data_loc` fields hold a 32-bit word: the offset of the payload within the
    /// record in the low 16 bits, its length in the high 16 (`__get_str`).
    public var isDataLocation: Bool { type.hasPrefix("__data_loc") }

    public init(name: String, type: String, offset: Int, size: Int, isSigned: Bool) {
        self.name = name
        self.type = type
        self.offset = offset
        self.size = size
        self.isSigned = isSigned
    }
}

/// A tracepoint's `format` file: its name, its id (the `config` for
/// `perf_event_open(PERF_TYPE_TRACEPOINT)`) and its fields. The print format
/// is ignored: records are decoded by field, never by parsing printed text.
public struct TracepointFormat: Sendable, Hashable {
    public var name: String
    public var id: UInt64
    /// Every field including the `common_*` header, in file order.
    public var fields: [TracepointField]

    public init(name: String, id: UInt64, fields: [TracepointField]) {
        self.name = name
        self.id = id
        self.fields = fields
    }

    public func field(_ name: String) -> TracepointField? { fields.first { $0.name == name } }

    /// The first field that exists among `names` (field names changed between
    /// kernel versions: `fl_pid` became `pid` in 6.9).
    public func field(anyOf names: [String]) -> TracepointField? {
        for n in names { if let f = field(n) { return f } }
        return nil
    }

    /// Parses the text of `events/SYSTEM/NAME/format`.
    ///
    /// ```
    /// name: flock_lock_inode
    /// ID: 1125
    /// format:
    /// 	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
    /// ```
    /// Lines after `print fmt:` are ignored. Throws on a field line that does not
    /// parse, or when `name`/`ID` is missing.
    public static func parse(_ text: String) throws(EventsError) -> TracepointFormat {
        var name: String?
        var id: UInt64?
        var fields: [TracepointField] = []
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = rawLine.drop { $0 == " " || $0 == "\t" }
            if line.hasPrefix("print fmt:") { break }
            if line.hasPrefix("name:") {
                name = String(line.dropFirst(5).trimmingSpaces())
            } else if line.hasPrefix("ID:") {
                id = UInt64(line.dropFirst(3).trimmingSpaces())
                if id == nil { throw .malformedFormat(tracepoint: name ?? "?", line: String(line)) }
            } else if line.hasPrefix("field:") {
                guard let f = parseField(line) else { throw .malformedFormat(tracepoint: name ?? "?", line: String(line)) }
                fields.append(f)
            }
        }
        guard let name, let id else { throw .malformedFormat(tracepoint: name ?? "?", line: "missing name: or ID:") }
        return TracepointFormat(name: name, id: id, fields: fields)
    }

    /// `field:TYPE NAME;	offset:N;	size:N;	signed:N;` (signed: is absent on very old kernels).
    static func parseField(_ line: Substring) -> TracepointField? {
        var decl: Substring?
        var offset: Int?
        var size: Int?
        var isSigned = false
        for part in line.split(separator: ";") {
            let p = part.trimmingSpaces()
            if p.hasPrefix("field:") { decl = p.dropFirst(6) }
            else if p.hasPrefix("offset:") { offset = Int(p.dropFirst(7)) }
            else if p.hasPrefix("size:") { size = Int(p.dropFirst(5)) }
            else if p.hasPrefix("signed:") { isSigned = p.dropFirst(7) == "1" }
        }
        guard let decl, let offset, let size, offset >= 0, size >= 0 else { return nil }
        // The name is the last word; an array suffix (`comm[16]`) belongs to the type.
        let d = decl.trimmingSpaces()
        guard let space = d.lastIndex(where: { $0 == " " || $0 == "\t" }) else { return nil }
        var fieldName = d[d.index(after: space)...]
        var type = String(d[..<space].trimmingSpaces())
        while fieldName.hasPrefix("*") { fieldName = fieldName.dropFirst(); type += " *" }
        if let bracket = fieldName.firstIndex(of: "[") {
            type += String(fieldName[bracket...])
            fieldName = fieldName[..<bracket]
        }
        guard !fieldName.isEmpty else { return nil }
        return TracepointField(name: String(fieldName), type: type, offset: offset, size: size, isSigned: isSigned)
    }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return s
    }
}
