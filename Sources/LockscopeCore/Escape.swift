/// Makes untrusted text (file names, command lines, comm) safe for a terminal:
/// a name must never move the user's cursor or change colours.
///
/// Control characters become C-style escapes (`\n`, `\t`, `\e`, `\x7f`), and a
/// backslash is doubled so the escaped form is unambiguous. JSON output does not
/// use this: it carries the exact text, escaped by JSON's own rules.
public func terminalSafe(_ text: String) -> String {
    var needs = false
    for scalar in text.unicodeScalars where scalar.value < 0x20 || scalar.value == 0x7f || scalar == "\\"
        || (scalar.value >= 0x80 && scalar.value < 0xa0) || PathText.escapedByte(scalar) != nil {
        needs = true
        break
    }
    if !needs { return text }
    var out = ""
    out.reserveCapacity(text.utf8.count + 8)
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\u{1b}": out += "\\e"
        case _ where scalar.value < 0x20 || scalar.value == 0x7f || (scalar.value >= 0x80 && scalar.value < 0xa0):
            let hex = String(scalar.value, radix: 16)
            out += "\\x" + (hex.count < 2 ? "0" : "") + hex
        default:
            // A byte of a name that is not UTF-8 (PathText): shown as the byte it is.
            if let byte = PathText.escapedByte(scalar) { out += "\\x" + String(byte, radix: 16) } else { out.unicodeScalars.append(scalar) }
        }
    }
    return out
}

/// A command line for display: argv joined by spaces, each word escaped, and
/// words with spaces quoted so the boundary stays visible.
public func displayCommandLine(_ argv: [String], fallback: String) -> String {
    if argv.isEmpty { return "[" + terminalSafe(fallback) + "]" }
    return argv.map { word -> String in
        let safe = terminalSafe(word)
        return (word.isEmpty || word.contains(" ")) ? "'" + safe + "'" : safe
    }.joined(separator: " ")
}
