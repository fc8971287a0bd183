import LockscopeCore

/// How every renderer shows a lock protocol reading (text and JSON), so `who`,
/// `waiters`, `diagnose` and the JSON documents say the same thing.
enum ProtocolRender {
    /// `SQLite database app.db: python3[812] holds EXCLUSIVE (writing); 814 wants SHARED`
    static func line(_ r: ProtocolReading, name: (Int32) -> String) -> String {
        var parts: [String] = []
        let holding = r.participants.filter { !$0.wanted }
        let wanting = r.participants.filter(\.wanted)
        for p in holding.prefix(3) {
            parts.append(name(p.pid) + (p.state == "LOCKED" ? " holds it"
                : " holds " + p.state + (p.meaning.isEmpty ? "" : " (" + p.meaning + ")")))
        }
        if holding.count > 3 { parts.append("\(holding.count - 3) more hold it") }
        if wanting.allSatisfy({ $0.state == "LOCKED" }) {
            if !wanting.isEmpty { parts.append("\(wanting.count) wait\(wanting.count == 1 ? "s" : "") for it") }
        } else {
            for p in wanting.prefix(2) { parts.append(name(p.pid) + " wants " + p.state) }
            if wanting.count > 2 { parts.append("\(wanting.count - 2) more waiting") }
        }
        let title = r.title + (r.resource.map { " " + terminalSafe($0) } ?? "")
        return title + (parts.isEmpty ? "" : ": " + parts.joined(separator: "; "))
    }

    /// The lock's `"protocol"` object, or null.
    static func json(_ r: ProtocolReading?, state: String?) -> JSONValue {
        guard let r else { return .null }
        return .object([
            ("name", .string(r.name)),
            ("title", .string(r.title)),
            ("state", .string(state ?? r.state)),
            ("resource", .string(r.resource)),
            ("meaning", .string(r.meaning)),
            ("advice", .string(r.advice)),
            ("retry", .string(r.retryMechanism)),
            ("source", .string(r.source)),
        ])
    }

    /// A holder's, waiter's or opener's `"protocol"` object: what it holds or wants, or null.
    static func json(_ r: ProtocolReading?, pid: Int32, wanted: Bool) -> JSONValue {
        guard let r, let p = r.participant(pid, wanted: wanted) ?? r.participant(pid, wanted: !wanted) else { return .null }
        return .object([
            ("name", .string(r.name)),
            ("state", .string(p.state)),
            ("wanted", .bool(p.wanted)),
            ("meaning", .string(p.meaning)),
        ])
    }
}
