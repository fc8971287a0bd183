import LockscopeCore

/// A JSON value with ordered object keys, and its serializer.
///
/// Renderers build a `JSONValue` from the model and write it; keys keep the
/// order they were inserted in, so the documented schema reads the same way
/// the output does. No Foundation: this is on every `--json` start-up.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.int(x), .int(y)): return x == y
        case let (.double(x), .double(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// Convenience for optional fields: `nil` becomes JSON `null`.
    public static func int<T: BinaryInteger>(_ v: T?) -> JSONValue { v.map { .int(Int64($0)) } ?? .null }
    public static func string(_ v: String?) -> JSONValue { v.map { .string($0) } ?? .null }
    public static func double(_ v: Double?) -> JSONValue { v.map { .double($0) } ?? .null }

    /// A file name under `key`, and when the name is not valid UTF-8 its exact bytes
    /// under `key_bytes`, in lowercase hex (docs/json-schema.md, "Exact bytes"): `"path"`
    /// then reads with U+FFFD where the bytes are not text. The one way every renderer
    /// writes a path.
    public static func pathFields(_ key: String, _ name: String?) -> [(String, JSONValue)] {
        guard let name, !PathText.isExact(name) else { return [(key, .string(name))] }
        return [(key, .string(PathText.repaired(name))), (key + "_bytes", .string(PathText.hex(name)))]
    }

    /// Serializes compactly, or with two-space indentation when `pretty`.
    public func serialized(pretty: Bool = true) -> String {
        var out = ""
        write(to: &out, pretty: pretty, indent: 0)
        return out
    }

    public func write<Out: TextOutputStream>(to out: inout Out, pretty: Bool, indent: Int) {
        switch self {
        case .null: out.write("null")
        case .bool(let b): out.write(b ? "true" : "false")
        case .int(let i): out.write(String(i))
        case .double(let d):
            if d.isFinite {
                // Three decimals are plenty for seconds and milliseconds; keeps output stable.
                out.write(formatDecimal(d, places: 3))
            } else {
                out.write("null")
            }
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .array(let items):
            if items.isEmpty { out.write("[]"); return }
            out.write("[")
            for (i, item) in items.enumerated() {
                if i > 0 { out.write(",") }
                if pretty { out.write("\n"); out.write(String(repeating: "  ", count: indent + 1)) }
                item.write(to: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { out.write("\n"); out.write(String(repeating: "  ", count: indent)) }
            out.write("]")
        case .object(let fields):
            if fields.isEmpty { out.write("{}"); return }
            out.write("{")
            for (i, (key, value)) in fields.enumerated() {
                if i > 0 { out.write(",") }
                if pretty { out.write("\n"); out.write(String(repeating: "  ", count: indent + 1)) }
                JSONValue.writeString(key, to: &out)
                out.write(pretty ? ": " : ":")
                value.write(to: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { out.write("\n"); out.write(String(repeating: "  ", count: indent)) }
            out.write("}")
        }
    }

    /// RFC 8259 string escaping: quotes, backslash and every control character, C1
    /// (U+0080–U+009F: U+009B is a terminal's CSI) included, so a document printed on a
    /// terminal cannot drive it; `\u` escapes decode to the same text, nothing is lost.
    /// A name that is not UTF-8 (PathText) is written with U+FFFD, as `pathFields` does.
    static func writeString<Out: TextOutputStream>(_ text: String, to out: inout Out) {
        let s = PathText.repaired(text)
        var buf = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": buf += "\\\""
            case "\\": buf += "\\\\"
            case "\n": buf += "\\n"
            case "\r": buf += "\\r"
            case "\t": buf += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f || (scalar.value >= 0x80 && scalar.value < 0xa0):
                let hex = String(scalar.value, radix: 16)
                buf += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: buf.unicodeScalars.append(scalar)
            }
        }
        buf += "\""
        out.write(buf)
    }
}
