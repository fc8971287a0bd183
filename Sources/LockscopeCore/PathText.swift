/// File names are bytes; Swift strings are Unicode. A name read from the kernel
/// (readlink of /proc/PID/fd/N) or given as an argument may be any bytes but NUL, so
/// the model carries it as a `String` that keeps the bytes exactly:
///
/// - valid UTF-8 (nearly every name) is the plain string;
/// - each byte that is not part of a valid UTF-8 sequence is stored as the
///   private-use scalar U+10FF00 + byte (the bytes are 0x80–0xFF: U+10FF80–U+10FFFF).
///   A name that itself contains one of those scalars has that scalar's bytes stored
///   the same way, so every String here stands for exactly one byte string.
///
/// `bytes(of:)` gives the exact bytes back (for open(), for comparing with other
/// readlink text), `repaired(_:)` the text with U+FFFD (JSON's `"path"`), `hex(_:)` the
/// bytes for JSON's `"path_bytes"`, and `terminalSafe` prints each such byte as `\xHH`.
public enum PathText {
    static let base: UInt32 = 0x10FF00
    static let escapes: ClosedRange<UInt32> = 0x10FF80...0x10FFFF

    /// The name for these bytes (see the type's comment).
    public static func decode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        if bytes.allSatisfy({ $0 < 0x80 }) { return String(decoding: bytes, as: UTF8.self) }
        var out = String.UnicodeScalarView()
        var rest = bytes[...]
        while !rest.isEmpty {
            var parser = Unicode.UTF8.ForwardParser()
            var input = rest.makeIterator()
            let length: Int
            switch parser.parseScalar(from: &input) {
            case .valid(let encoded):
                length = encoded.count
                let scalar = Unicode.UTF8.decode(encoded)
                if !escapes.contains(scalar.value) {
                    out.append(scalar)
                    rest = rest.dropFirst(length)
                    continue
                }
            case .error(let n): length = n
            case .emptyInput: length = rest.count
            }
            // Only bytes >= 0x80 are ever invalid or part of an escape scalar.
            for b in rest.prefix(length) { out.append(Unicode.Scalar(base + UInt32(b))!) }
            rest = rest.dropFirst(length)
        }
        return String(out)
    }

    /// True when `name` is its own UTF-8 (no byte is stored as an escape). Escape
    /// scalars are the only ones whose UTF-8 starts with 0xF4 0x8F 0xBE/0xBF.
    public static func isExact(_ name: String) -> Bool {
        guard name.utf8.contains(0xF4) else { return true }
        return !name.unicodeScalars.contains { escapes.contains($0.value) }
    }

    /// The exact bytes `name` stands for.
    public static func bytes(of name: String) -> [UInt8] {
        if isExact(name) { return Array(name.utf8) }
        var out: [UInt8] = []
        out.reserveCapacity(name.utf8.count)
        for scalar in name.unicodeScalars {
            if escapes.contains(scalar.value) {
                out.append(UInt8(scalar.value - base))
            } else {
                Unicode.UTF8.encode(scalar) { out.append($0) }
            }
        }
        return out
    }

    /// The text, with U+FFFD for each maximal run of bytes that is not UTF-8
    /// (what `String(decoding:as:)` makes of the bytes).
    public static func repaired(_ name: String) -> String {
        isExact(name) ? name : String(decoding: bytes(of: name), as: UTF8.self)
    }

    /// The exact bytes as lowercase hex, two digits per byte.
    public static func hex(_ name: String) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in bytes(of: name) {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The byte an escape scalar stands for, or nil for any other scalar.
    public static func escapedByte(_ scalar: Unicode.Scalar) -> UInt8? {
        escapes.contains(scalar.value) ? UInt8(scalar.value - base) : nil
    }
}
