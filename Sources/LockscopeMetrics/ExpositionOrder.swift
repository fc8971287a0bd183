/// Puts an exposition in a fixed order. swift-prometheus keeps its families and each
/// family's metrics in dictionaries, so two scrapes of the same state came out in two
/// different orders: a textfile written by `metrics --output` changed on every run,
/// and two expositions could not be compared with `diff`. The order here is the
/// families in `MetricName.order` (others after them, by name), and within a family
/// the metrics by their labels; a histogram's lines for one label set (its buckets,
/// `_sum`, `_count`) stay together and in the order they were written.
enum ExpositionOrder {
    static func ordered(_ text: [UInt8]) -> [UInt8] {
        struct Family {
            var name: [UInt8]
            var comments: [ArraySlice<UInt8>] = []
            var samples: [(key: [UInt8], line: ArraySlice<UInt8>)] = []
        }
        var families: [Family] = []
        let help = Array("# HELP ".utf8), type = Array("# TYPE ".utf8)
        for line in text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            if line.starts(with: help) || line.starts(with: type) {
                let rest = line.dropFirst(help.count)
                let name = Array(rest.prefix { $0 != UInt8(ascii: " ") })
                if families.last?.name != name { families.append(Family(name: name)) }
                families[families.count - 1].comments.append(line)
            } else {
                if families.isEmpty { families.append(Family(name: [])) }
                families[families.count - 1].samples.append((labelsWithoutBucket(line), line))
            }
        }
        let rank = Dictionary(MetricName.order.enumerated().map { (Array($0.element.utf8), $0.offset) }, uniquingKeysWith: { a, _ in a })
        let sorted = families.enumerated().sorted { a, b in
            let ra = rank[a.element.name] ?? Int.max, rb = rank[b.element.name] ?? Int.max
            if ra != rb { return ra < rb }
            if a.element.name != b.element.name { return a.element.name.lexicographicallyPrecedes(b.element.name) }
            return a.offset < b.offset
        }
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        for (_, family) in sorted {
            for c in family.comments { out += c; out.append(UInt8(ascii: "\n")) }
            // Stable: equal keys (one histogram's lines) keep the order they were written in.
            let samples = family.samples.enumerated().sorted { a, b in
                a.element.key != b.element.key ? a.element.key.lexicographicallyPrecedes(b.element.key) : a.offset < b.offset
            }
            for (_, s) in samples { out += s.line; out.append(UInt8(ascii: "\n")) }
        }
        return out
    }

    /// The label set of a sample line without its `le` label (a histogram bucket's
    /// bound), as written: `name{a="x",le="0.5"} 3` → `a="x"`. Values are quoted with
    /// `\"` and `\\` escaped (the text format), so a quote ends a value only unescaped.
    static func labelsWithoutBucket(_ line: ArraySlice<UInt8>) -> [UInt8] {
        guard let open = line.firstIndex(of: UInt8(ascii: "{")) else { return [] }
        var pairs: [ArraySlice<UInt8>] = []
        var i = open + 1
        var start = i
        var inValue = false
        while i < line.endIndex {
            let c = line[i]
            if inValue {
                if c == UInt8(ascii: "\\") { i += 2; continue }
                if c == UInt8(ascii: "\"") { inValue = false }
            } else if c == UInt8(ascii: "\"") {
                inValue = true
            } else if c == UInt8(ascii: ",") || c == UInt8(ascii: "}") {
                if i > start { pairs.append(line[start..<i]) }
                start = i + 1
                if c == UInt8(ascii: "}") { break }
            }
            i += 1
        }
        let bucket = Array("le=".utf8)
        var key: [UInt8] = []
        for p in pairs where !p.starts(with: bucket) {
            if !key.isEmpty { key.append(UInt8(ascii: ",")) }
            key += p
        }
        return key
    }
}
