/// Numbers in /proc text, read from their ASCII bytes as Swift's integer parsing
/// reads a string: an optional sign, then digits only, nil on overflow.
enum ASCIIDecimal {
    static func signed(_ b: UnsafeRawBufferPointer) -> Int64? {
        var i = 0
        let negative = !b.isEmpty && b[0] == UInt8(ascii: "-")
        if !b.isEmpty && (b[0] == UInt8(ascii: "-") || b[0] == UInt8(ascii: "+")) { i = 1 }
        guard i < b.count else { return nil }
        var v: Int64 = 0
        while i < b.count {
            let d = b[i] &- UInt8(ascii: "0")
            guard d < 10 else { return nil }
            // Accumulate negatively so Int64.min parses, as `Int64("-9223372036854775808")` does.
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (n, o2) = m.subtractingReportingOverflow(Int64(d))
            if o1 || o2 { return nil }
            v = n
            i += 1
        }
        if negative { return v }
        return v == .min ? nil : -v
    }

    /// Digits in `radix` (10 or 16, either case), no sign; nil when empty, on another
    /// byte, or on overflow.
    static func unsigned(_ b: UnsafeRawBufferPointer, radix: UInt64) -> UInt64? {
        guard !b.isEmpty else { return nil }
        var v: UInt64 = 0
        for c in b {
            let d: UInt64
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt64(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt64(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt64(c - UInt8(ascii: "A") + 10)
            default: return nil
            }
            guard d < radix else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: radix)
            let (n, o2) = m.addingReportingOverflow(d)
            if o1 || o2 { return nil }
            v = n
        }
        return v
    }
}
