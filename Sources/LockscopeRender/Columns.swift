import LockscopeCore

/// One row of `lockscope list`: a granted lock, or one request queued behind it
/// (util-linux lslocks prints the `->` entries of /proc/locks as rows of their own,
/// with BLOCKER set; so does `list`).
public struct ListRow: Sendable {
    public var lock: LockEntry
    /// Nil for the granted lock itself.
    public var waiter: Waiter?
    /// The file's size in bytes when it could be read (see `ListColumns.sizeOf`).
    public var size: Int64?
    /// The lock protocol of the file, as `LockProtocols` (the recogniser diagnose
    /// uses) reads every lock on it; nil when not recognised.
    public var reading: ProtocolReading?
    /// The row's state in that protocol: what the owner holds, or what the waiter wants.
    public var protocolState: String?

    public init(lock: LockEntry, waiter: Waiter? = nil, size: Int64? = nil,
                reading: ProtocolReading? = nil, protocolState: String? = nil) {
        self.lock = lock
        self.waiter = waiter
        self.size = size
        self.reading = reading
        self.protocolState = protocolState
    }

    /// The process the row is about: the waiter, or the lock's owner (the pid
    /// /proc/locks names, else the first holder found through fdinfo).
    var process: ProcessFacts? {
        if let waiter { return waiter.process }
        return owner?.process
    }

    var owner: Holder? { lock.holders.first(where: { $0.isOwner }) ?? lock.holders.first }

    var pid: Int32 {
        if let waiter { return waiter.pid }
        if lock.kernelPid == -1, let owner { return owner.pid }
        return lock.kernelPid
    }
}

/// How a column's value is typed in `list -J` (as lslocks types them).
public enum ColumnType: String, Sendable {
    case string, number, boolean
    /// Bytes: a number with `-b`, else a human-readable string ("24K").
    case size
}

/// Everything a cell's value may depend on besides the row.
public struct ColumnContext: Sendable {
    /// `-b`: SIZE in bytes instead of "1.4M".
    public var bytes = false
    public init(bytes: Bool = false) { self.bytes = bytes }
}

/// A column of `lockscope list`: its name, help line, JSON type, alignment and value.
/// `ListColumns.all` is the one table behind `-o`, `--output-all`, `-H`, the help
/// text, text, raw and `-J` output.
public struct ListColumn: Sendable {
    public var name: String
    public var help: String
    public var type: ColumnType
    public var rightAligned: Bool
    /// May be cut to fit the terminal (lslocks: COMMAND and PATH).
    public var truncatable: Bool
    /// Nil for an empty cell (JSON null).
    var value: @Sendable (ListRow, ColumnContext) -> String?
    /// The JSON value; defaults from `type` and `value`.
    var json: (@Sendable (ListRow, ColumnContext) -> JSONValue)?

    /// The key in `list -J`: lslocks lower-cases the column name ("maj:min").
    public var jsonKey: String { name.lowercased() }

    public func cell(_ row: ListRow, _ ctx: ColumnContext) -> String { value(row, ctx) ?? "" }

    public func jsonValue(_ row: ListRow, _ ctx: ColumnContext) -> JSONValue {
        if let json { return json(row, ctx) }
        guard let v = value(row, ctx) else { return .null }
        switch type {
        case .string: return .string(v)
        case .number: return Int64(v).map { .int($0) } ?? .string(v)
        case .boolean: return .bool(v == "1")
        case .size: return ctx.bytes ? (Int64(v).map { .int($0) } ?? .string(v)) : .string(v)
        }
    }
}

public enum ListColumns {
    /// Every column, in `--output-all` order (lslocks' order, then lockscope's own).
    public static let all: [ListColumn] = [
        ListColumn(name: "COMMAND", help: "command of the process holding the lock", type: .string, rightAligned: false, truncatable: true,
                   value: { r, _ in r.process.map { terminalSafe($0.comm) } ?? (r.waiter == nil ? statusWord(r.lock) : "?") }),
        ListColumn(name: "PID", help: "PID of the process holding the lock", type: .number, rightAligned: true, truncatable: false,
                   value: { r, _ in "\(r.pid)" }),
        ListColumn(name: "TYPE", help: "kind of lock (FLOCK, POSIX, OFDLCK, LEASE, DELEG, ACCESS)", type: .string, rightAligned: false, truncatable: false,
                   value: { r, _ in (r.waiter?.kind ?? r.lock.kind).rawValue }),
        ListColumn(name: "SIZE", help: "size of the locked file", type: .size, rightAligned: true, truncatable: false,
                   value: { r, ctx in
                       guard let s = r.size, s > 0 else { return nil }
                       return ctx.bytes ? "\(s)" : humanSize(s)
                   }),
        ListColumn(name: "INODE", help: "inode number", type: .number, rightAligned: true, truncatable: false,
                   value: { r, _ in r.lock.file.map { "\($0.inode)" } }),
        ListColumn(name: "MAJ:MIN", help: "major:minor device number", type: .string, rightAligned: false, truncatable: false,
                   value: { r, _ in r.lock.file.map { "\($0.major):\($0.minor)" } }),
        ListColumn(name: "MODE", help: "lock access mode (* for a request that waits)", type: .string, rightAligned: false, truncatable: false,
                   value: { r, _ in r.waiter.map { $0.access.rawValue + "*" } ?? r.lock.access.rawValue }),
        ListColumn(name: "M", help: "mandatory state of the lock: 0 (none), 1 (set)", type: .boolean, rightAligned: false, truncatable: false,
                   value: { r, _ in r.lock.mode == "MANDATORY" ? "1" : "0" }),
        ListColumn(name: "START", help: "relative byte offset of the lock", type: .number, rightAligned: true, truncatable: false,
                   value: { r, _ in "\(r.waiter?.start ?? r.lock.start)" }),
        ListColumn(name: "END", help: "ending offset of the lock (0: to the end of the file)", type: .number, rightAligned: true, truncatable: false,
                   value: { r, _ in
                       let end = r.waiter.map { $0.end } ?? r.lock.end
                       return end.map { "\($0)" } ?? "0"
                   }),
        ListColumn(name: "PATH", help: "path of the locked file (MAJ:MIN:INODE when unknown)", type: .string, rightAligned: false, truncatable: true,
                   value: { r, _ in r.lock.path.map(terminalSafe) ?? r.lock.file.map { $0.description } }),
        ListColumn(name: "BLOCKER", help: "PID of the process blocking the lock", type: .number, rightAligned: true, truncatable: false,
                   value: { r, _ in r.waiter?.blockedBy.map { "\($0)" } }),
        ListColumn(name: "HOLDERS", help: "PIDs holding the lock: owner and co-holders (complete with --holders)", type: .string, rightAligned: false, truncatable: false,
                   value: { r, _ in r.waiter == nil ? r.lock.holders.map { "\($0.pid)" }.joined(separator: ",") : nil },
                   json: { r, _ in r.waiter == nil ? .array(r.lock.holders.map { .int(Int64($0.pid)) }) : .null }),
        ListColumn(name: "NSPATH", help: "path of the file as the holder sees it, when its mount namespace shows another", type: .string, rightAligned: false, truncatable: true,
                   value: { r, _ in r.waiter == nil ? r.owner?.pathInNamespace.map(terminalSafe) : nil }),
        ListColumn(name: "WAITERS", help: "number of requests blocked in the kernel on the lock", type: .number, rightAligned: true, truncatable: false,
                   value: { r, _ in r.waiter == nil ? "\(r.lock.waiters.count)" : nil }),
        ListColumn(name: "OLDEST", help: "age of the oldest waiting process", type: .string, rightAligned: true, truncatable: false,
                   value: { r, _ in
                       guard r.waiter == nil else { return nil }
                       let ages = r.lock.waiters.compactMap { $0.wait?.seconds }
                       return ages.max().map { formatAge($0) }
                   },
                   json: { r, _ in
                       guard r.waiter == nil else { return .null }
                       return .double(r.lock.waiters.compactMap { $0.wait?.seconds }.max())
                   }),
        ListColumn(name: "PROTOCOL", help: "lock protocol and the row's state in it (sqlite:RESERVED, dpkg, xtables)", type: .string, rightAligned: false, truncatable: false,
                   value: { r, _ in
                       guard let p = r.reading else { return nil }
                       guard let state = r.protocolState, state != "LOCKED" else { return p.name }
                       return p.name + ":" + terminalSafe(state)
                   }),
    ]

    /// lslocks' default columns, and WAITERS.
    public static let defaultNames = ["COMMAND", "PID", "TYPE", "SIZE", "MODE", "M", "START", "END", "WAITERS", "PATH"]

    public static func named(_ name: String) -> ListColumn? {
        let upper = name.uppercased()
        return all.first { $0.name == upper }
    }

    public enum SelectionError: Error, Equatable, CustomStringConvertible {
        case unknown(String)
        case empty

        public var description: String {
            switch self {
            case .unknown(let n): return "unknown column: \(n) (lockscope list --list-columns shows them)"
            case .empty: return "no columns given"
            }
        }
    }

    /// Parses a column list as lslocks does: `A,B,C` replaces the default list,
    /// `+A,B` appends to it. `base` is the default (or `LOCKSCOPE_COLUMNS`).
    public static func select(_ spec: String?, base: [String] = defaultNames) throws(SelectionError) -> [ListColumn] {
        var names = base
        if var spec {
            if spec.hasPrefix("+") { spec.removeFirst() } else { names = [] }
            let added = spec.split(separator: ",", omittingEmptySubsequences: true).map(String.init)
            if added.isEmpty && names.isEmpty { throw .empty }
            names += added
        }
        var cols: [ListColumn] = []
        for n in names {
            guard let c = named(n.trimmingSpaces()) else { throw .unknown(n) }
            cols.append(c)
        }
        if cols.isEmpty { throw .empty }
        return cols
    }

    /// The "Available output columns" block of the help and of `--list-columns`.
    public static var helpText: String {
        let w = all.map(\.name.count).max() ?? 0
        return all.map { String(repeating: " ", count: w - $0.name.count + 2) + $0.name + "  " + $0.help }.joined(separator: "\n")
    }

    /// `--list-columns`: the name and help of each column; `raw` for scripts.
    public static func listing(raw: Bool) -> [String] {
        if raw { return all.map { $0.name + " " + $0.type.rawValue } }
        return helpText.split(separator: "\n").map(String.init)
    }

    static func statusWord(_ l: LockEntry) -> String {
        switch l.ownerStatus {
        case .gone: return "(exited)"
        case .reused: return "(pid reused)"
        case .exiting: return "(exiting)"
        case .ofd: return "(OFD)"
        case .invisible: return "(other ns)"
        default: return "?"
        }
    }
}

/// The rows of `list`, in /proc/locks order: each granted lock, then the requests
/// queued behind it. `protocols` is read from every lock on the system, not only the
/// rows shown: a filter (`--pid`, `--kind`) must not change what a file's locks mean.
public func listRows(_ locks: [LockEntry], protocols: ProtocolIndex, size: (LockEntry) -> Int64? = { _ in nil }) -> [ListRow] {
    var rows: [ListRow] = []
    for l in locks {
        let s = size(l)
        let reading = protocols[l.file]
        rows.append(ListRow(lock: l, size: s, reading: reading, protocolState: protocols.state(of: l)))
        for w in l.waiters {
            rows.append(ListRow(lock: l, waiter: w, size: s, reading: reading,
                                protocolState: reading?.participant(w.pid, wanted: true)?.state))
        }
    }
    return rows
}

/// `1.4M`, `24K`, `512B`: util-linux's `size_to_human_string(SIZE_SUFFIX_1LETTER)`,
/// powers of 1024 and one rounded decimal when it is not zero (lib/strutils.c).
public func humanSize(_ bytes: Int64) -> String {
    let b = UInt64(max(0, bytes))
    var exp = 0
    for shift in stride(from: 10, through: 60, by: 10) {
        exp = shift - 10
        if b < (UInt64(1) << UInt64(shift)) { break }
        exp = shift
    }
    let letters: [Character] = ["B", "K", "M", "G", "T", "P", "E"]
    let letter = letters[exp / 10]
    var dec = exp > 0 ? b >> UInt64(exp) : b
    var frac = exp > 0 ? b & ((UInt64(1) << UInt64(exp)) - 1) : 0
    if frac > 0 {
        // Thousandths, then rounded to one decimal (the overflow guard is util-linux's).
        frac = frac >= UInt64.max / 1000 ? (frac / 1024 * 1000) / (UInt64(1) << UInt64(exp - 10))
                                         : frac * 1000 / (UInt64(1) << UInt64(exp))
        frac = (frac + 50) / 100
        if frac == 10 { dec += 1; frac = 0 }
    }
    return frac > 0 ? "\(dec).\(frac)\(letter)" : "\(dec)\(letter)"
}

/// How `list` lays out its columns.
public struct ColumnLayout: Sendable {
    public var headings = true
    /// `-r`: one space between cells, no alignment, spaces and controls as `\x20`.
    public var raw = false
    /// `-u`: never cut a cell, even on a terminal.
    public var noTruncate = false
    public init(headings: Bool = true, raw: Bool = false, noTruncate: Bool = false) {
        self.headings = headings
        self.raw = raw
        self.noTruncate = noTruncate
    }
}

/// Text output of `list`: aligned columns that fit the terminal (COMMAND and PATH
/// are cut first, as lslocks does), or raw.
public func renderColumns(_ rows: [ListRow], columns: [ListColumn], context: ColumnContext, layout: ColumnLayout, style: Style) -> [String] {
    let cells = rows.map { r in columns.map { $0.cell(r, context) } }
    var out: [String] = []
    if layout.raw {
        if layout.headings { out.append(columns.map(\.name).joined(separator: " ")) }
        for row in cells { out.append(row.map(rawEscape).joined(separator: " ")) }
        return out
    }
    var widths = columns.map { layout.headings ? $0.name.count : 0 }
    for row in cells { for (i, c) in row.enumerated() { widths[i] = max(widths[i], c.count) } }
    if let w = style.width, !layout.noTruncate {
        shrink(&widths, columns: columns, toFit: w)
    }
    func line(_ row: [String]) -> String {
        var s = ""
        for (i, c) in row.enumerated() {
            let last = i == row.count - 1
            let cell = c.count > widths[i] ? cut(c, widths[i]) : c
            let pad = String(repeating: " ", count: max(0, widths[i] - cell.count))
            if i > 0 { s += " " }
            if columns[i].rightAligned { s += pad + cell } else { s += last ? cell : cell + pad }
        }
        return layout.noTruncate ? s : style.fit(s)
    }
    if layout.headings { out.append(line(columns.map(\.name))) }
    for row in cells { out.append(line(row)) }
    return out
}

/// Narrows truncatable columns (the widest first) until the table fits `width`,
/// never below their heading's width.
func shrink(_ widths: inout [Int], columns: [ListColumn], toFit width: Int) {
    var total: Int { widths.reduce(0, +) + max(0, widths.count - 1) }
    while total > width {
        let candidates = widths.indices.filter { columns[$0].truncatable && widths[$0] > max(columns[$0].name.count, 4) }
        guard let widest = candidates.max(by: { widths[$0] < widths[$1] }) else { return }
        let minimum = max(columns[widest].name.count, 4)
        widths[widest] = max(minimum, widths[widest] - (total - width))
    }
}

func cut(_ s: String, _ width: Int) -> String {
    guard s.count > width else { return s }
    if width <= 1 { return String(s.prefix(width)) }
    return String(s.prefix(width - 1)) + "…"
}

/// libsmartcols' raw escaping: space, backslash and non-printing bytes as `\xHH`.
func rawEscape(_ s: String) -> String { String(decoding: rawBytes(s), as: UTF8.self) }

func rawBytes(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    for b in s.utf8 {
        if b == 0x20 || b == 0x5C || b < 0x20 || b == 0x7F {
            let h = Array(String(b, radix: 16).utf8)
            out += [0x5C, 0x78] + (h.count < 2 ? [0x30] + h : h)
        } else {
            out.append(b)
        }
    }
    return out
}

/// `list -J`: lslocks' document, `{"locks": [{column: value, …}, …]}`, typed by the table.
public func columnsJSON(_ rows: [ListRow], columns: [ListColumn], context: ColumnContext) -> JSONValue {
    .object([("locks", .array(rows.map { r in .object(columns.map { ($0.jsonKey, $0.jsonValue(r, context)) }) }))])
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
