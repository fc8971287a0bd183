// Numbers and durations as text, in one place for every output: prose for
// sentences (`durationText`), short sortable ages for table columns
// (`formatAge`), measured times (`secondsText`, `shortTimeText`).

/// Fixed-point formatting without Foundation's `String(format:)`.
public func formatDecimal(_ value: Double, places: Int) -> String {
    var scale = 1.0
    for _ in 0..<places { scale *= 10 }
    let rounded = (value * scale).rounded()
    let negative = rounded < 0
    let magnitude = UInt64(abs(rounded))
    let intPart = magnitude / UInt64(scale)
    var frac = String(magnitude % UInt64(scale))
    if places == 0 { return (negative ? "-" : "") + String(intPart) }
    frac = String(repeating: "0", count: places - frac.count) + frac
    return (negative ? "-" : "") + String(intPart) + "." + frac
}

/// `2 s`, `1.5 s`, `41 s`, `2 min 3 s`, `5 min`, `27 h 47 min`: durations in prose,
/// in the two largest units that matter (a zero second unit is left out).
public func durationText(_ s: Double) -> String {
    if s < 10 {
        let tenths = Int((s * 10).rounded())
        return (tenths % 10 == 0 ? String(tenths / 10) : formatDecimal(Double(tenths) / 10, places: 1)) + " s"
    }
    let t = Int(s.rounded())
    if t < 120 { return "\(t) s" }
    if t < 3600 { return "\(t / 60) min" + (t % 60 == 0 ? "" : " \(t % 60) s") }
    let minutes = (t + 30) / 60
    return "\(minutes / 60) h" + (minutes % 60 == 0 ? "" : " \(minutes % 60) min")
}

/// `41s`, `12m03s`, `3h02m`, `5d04h`: short and sortable by eye (table columns).
public func formatAge(_ seconds: Double?) -> String {
    guard let s = seconds else { return "-" }
    if s < 10 { return formatDecimal(s, places: 1) + "s" }
    let t = Int(s)
    func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
    if t < 60 { return "\(t)s" }
    if t < 3600 { return "\(t / 60)m" + two(t % 60) + "s" }
    if t < 86400 { return "\(t / 3600)h" + two((t % 3600) / 60) + "m" }
    return "\(t / 86400)d" + two((t % 86400) / 3600) + "h"
}

/// Measured seconds: `95 s`, `2.41 s`, `0.004 s`.
public func secondsText(_ s: Double) -> String {
    formatDecimal(s, places: s >= 60 ? 0 : (s >= 1 ? 2 : 3)) + " s"
}

/// Short measured times in the unit that shows them: `12 µs`, `3.5 ms`, `2.41 s`.
public func shortTimeText(_ s: Double) -> String {
    if s >= 1 { return secondsText(s) }
    if s >= 0.001 { return formatDecimal(s * 1e3, places: s >= 0.1 ? 0 : 1) + " ms" }
    return formatDecimal(s * 1e6, places: 0) + " µs"
}

/// A wait in prose: `41 s` for an estimate (a process's age), `exactly 1.23 s` when
/// lock events measured it.
public func waitText(_ w: WaitDuration) -> String {
    w.source == .event ? "exactly " + secondsText(w.seconds) : durationText(w.seconds)
}
