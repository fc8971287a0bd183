#if canImport(Glibc)
import Glibc
#endif

/// Terminal styling: colour only on a TTY and never with NO_COLOR (no-color.org);
/// width from the terminal so tables fit, unbounded when piped.
public struct Style: Sendable {
    public var color: Bool
    /// Columns available, or nil when output is not a terminal (no truncation).
    public var width: Int?

    public init(color: Bool, width: Int?) {
        self.color = color
        self.width = width
    }

    public static let plain = Style(color: false, width: nil)

    /// Style for standard output as it is now.
    public static func forStandardOutput() -> Style {
        let tty = isatty(1) == 1
        let noColor = getenv("NO_COLOR").map { $0.pointee != 0 } ?? false
        let term = getenv("TERM").map { String(cString: $0) }
        var width: Int? = nil
        // COLUMNS, when set, is the width even through a pipe (as util-linux's
        // get_terminal_width() reads it first): tests and `watch` pin a width that way.
        if let c = getenv("COLUMNS").flatMap({ Int(String(cString: $0)) }), c > 0 {
            width = c
        } else if tty {
            var ws = winsize()
            if ioctl(1, UInt(TIOCGWINSZ), &ws) == 0 && ws.ws_col > 0 { width = Int(ws.ws_col) } else { width = 80 }
        }
        return Style(color: tty && !noColor && term != "dumb", width: width)
    }

    func sgr(_ code: String, _ text: String) -> String { color ? "\u{1b}[" + code + "m" + text + "\u{1b}[0m" : text }
    public func bold(_ s: String) -> String { sgr("1", s) }
    public func red(_ s: String) -> String { sgr("31", s) }
    public func yellow(_ s: String) -> String { sgr("33", s) }
    public func green(_ s: String) -> String { sgr("32", s) }
    public func dim(_ s: String) -> String { sgr("2", s) }

    /// Cuts a line to the terminal width, counting what the terminal shows: SGR colour
    /// sequences take no column and are never cut in half (a reset closes a cut line).
    public func fit(_ line: String) -> String {
        guard let w = width, w > 1, visibleWidth(line) > w else { return line }
        var out = ""
        var shown = 0
        var inEscape = false
        for ch in line {
            if inEscape { out.append(ch); if ch == "m" { inEscape = false }; continue }
            if ch == "\u{1b}" { inEscape = true; out.append(ch); continue }
            if shown == w - 1 { break }
            out.append(ch)
            shown += 1
        }
        return out + "…" + (color && out.contains("\u{1b}") ? "\u{1b}[0m" : "")
    }

    /// Word-wraps a note to the terminal width; continuation lines start with `indent`.
    /// Words longer than a line are cut by `fit`. Unbounded output is one line.
    public func wrap(_ text: String, indent: String = "  ") -> [String] {
        guard let w = width, visibleWidth(text) > w else { return [text] }
        var lines: [String] = []
        var current = ""
        var currentWidth = 0
        let lead = text.prefix { $0 == " " }
        for word in text.dropFirst(lead.count).split(separator: " ", omittingEmptySubsequences: false) {
            let ww = visibleWidth(String(word))
            let prefix = lines.isEmpty && current.isEmpty ? String(lead) : (current.isEmpty ? indent : "")
            let sep = current.isEmpty ? "" : " "
            if !current.isEmpty && currentWidth + 1 + ww > w {
                lines.append(current)
                current = indent + word
                currentWidth = indent.count + ww
            } else {
                current += prefix + sep + word
                currentWidth += prefix.count + sep.count + ww
            }
        }
        if !current.isEmpty { lines.append(current) }
        return lines.map(fit)
    }
}

/// Aligned columns; the last column takes what is left and is cut to fit.
public struct Table {
    public var headers: [String]
    public var rows: [[String]] = []
    /// Columns aligned to the right (numbers).
    public var rightAligned: Set<Int> = []

    public init(headers: [String], rightAligned: Set<Int> = []) {
        self.headers = headers
        self.rightAligned = rightAligned
    }

    public mutating func add(_ row: [String]) { rows.append(row) }

    public func render(style: Style, indent: String = "  ") -> [String] {
        var widths = headers.map(\.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String], header: Bool) -> String {
            var parts: [String] = []
            for (i, c) in cells.enumerated() {
                let last = i == cells.count - 1
                let pad = String(repeating: " ", count: max(0, widths[i] - c.count))
                if last && !rightAligned.contains(i) { parts.append(c) } else { parts.append(rightAligned.contains(i) ? pad + c : c + pad) }
            }
            let text = style.fit(indent + parts.joined(separator: "  "))
            return header ? style.dim(text) : text
        }
        return [line(headers, header: true)] + rows.map { line($0, header: false) }
    }
}

/// Columns a line takes on a terminal: characters, less SGR escape sequences.
public func visibleWidth(_ s: String) -> Int {
    var n = 0
    var inEscape = false
    for ch in s {
        if inEscape { if ch == "m" { inEscape = false }; continue }
        if ch == "\u{1b}" { inEscape = true; continue }
        n += 1
    }
    return n
}
