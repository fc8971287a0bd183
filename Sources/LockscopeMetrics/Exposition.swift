import Prometheus

/// The two wire formats `metrics` and `serve` write.
public enum ExpositionFormat: String, Sendable, CaseIterable {
    /// Prometheus text format 0.0.4 (what node_exporter's textfile collector parses).
    case text
    /// OpenMetrics 1.0.0 text.
    case openMetrics

    public var contentType: String {
        switch self {
        case .text: return "text/plain; version=0.0.4; charset=utf-8"
        case .openMetrics: return "application/openmetrics-text; version=1.0.0; charset=utf-8"
        }
    }

    /// Content negotiation on an `Accept` header: OpenMetrics when the client lists
    /// `application/openmetrics-text` with a q-value above zero and at least that of
    /// any text/plain or wildcard range it also lists (Prometheus asks for both, with
    /// OpenMetrics first); the text format otherwise, and for a missing header.
    public static func negotiate(accept: String?) -> ExpositionFormat {
        guard let accept else { return .text }
        var om = -1.0, other = -1.0
        for range in accept.split(separator: ",") {
            let parts = range.split(separator: ";").map { $0.trimmingCharacters(in: " \t") }
            guard let type = parts.first?.lowercased() else { continue }
            var q = 1.0
            for p in parts.dropFirst() where p.lowercased().hasPrefix("q=") {
                q = Double(p.dropFirst(2)) ?? 0
            }
            if type == "application/openmetrics-text" {
                om = max(om, q)
            } else if type == "text/plain" || type == "*/*" || type == "text/*" {
                other = max(other, q)
            }
        }
        return om > 0 && om >= other ? .openMetrics : .text
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = self[...]
        while let f = s.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.last, chars.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

/// Facts about the exporter itself that every exposition carries.
public struct ExporterStatus: Sendable, Hashable {
    /// How long collecting this exposition's snapshot took.
    public var scrapeDurationSeconds: Double
    /// Snapshots that failed since the exporter started (one-shot: this one).
    public var scrapeErrors: Int
    /// A lock-events source is feeding `EventMetrics`.
    public var eventsAvailable: Bool

    public init(scrapeDurationSeconds: Double, scrapeErrors: Int, eventsAvailable: Bool) {
        self.scrapeDurationSeconds = scrapeDurationSeconds
        self.scrapeErrors = scrapeErrors
        self.eventsAvailable = eventsAvailable
    }
}

/// Names and help texts, in one table (docs/metrics.md documents the same set).
public enum MetricName {
    public static let locks = "lockscope_locks"
    public static let waiters = "lockscope_lock_waiters"
    public static let oldestWait = "lockscope_lock_oldest_wait_seconds"
    public static let holder = "lockscope_lock_holder_seconds"
    public static let findings = "lockscope_diagnosis_findings"
    public static let scrapeDuration = "lockscope_scrape_duration_seconds"
    public static let scrapeErrors = "lockscope_scrape_errors_total"
    public static let eventsAvailable = "lockscope_events_available"
    public static let waitSeconds = "lockscope_lock_wait_seconds"
    public static let holdSeconds = "lockscope_lock_hold_seconds"
    public static let acquisitions = "lockscope_lock_acquisitions_total"
    public static let failedAttempts = "lockscope_lock_failed_attempts_total"
    public static let lostEvents = "lockscope_lost_events_total"

    /// The order families are written in (`ExpositionOrder`): the snapshot's gauges,
    /// the exporter's own status, then what the lock events feed.
    public static let order = [locks, waiters, oldestWait, holder, findings, scrapeDuration, scrapeErrors, eventsAvailable,
                        waitSeconds, holdSeconds, acquisitions, failedAttempts, lostEvents]

    static let help: [String: String] = [
        locks: "Granted file locks in /proc/locks, by kind.",
        waiters: "Processes queued in the kernel for a file lock, by path (the --top most-waited, the rest as path=other), lock kind and the quick diagnosis's cause (reason).",
        oldestWait: "Estimated seconds the longest-waiting waiter of the lock has waited (time since its blocked thread last ran).",
        holder: "Seconds the current holder has held the lock: source=event is exact (since the kernel lock event that granted it), source=snapshot a lower bound (since a scrape first saw it).",
        findings: "Findings of the quick diagnosis (one /proc snapshot of the contended locks' owners, no window), by rule.",
        scrapeDuration: "Seconds this exposition's snapshot took (one read of /proc/locks).",
        scrapeErrors: "Snapshots that failed (for example /proc/locks unreadable) since the exporter started.",
        eventsAvailable: "1 when kernel lock events feed the wait histograms and counters; 0 means this exposition holds snapshot gauges only.",
        waitSeconds: "Seconds each granted lock request waited, from kernel lock events.",
        holdSeconds: "Seconds each lock was held, from grant to release, from kernel lock events.",
        acquisitions: "Lock requests granted, from kernel lock events.",
        failedAttempts: "Non-blocking lock attempts refused (EAGAIN/EWOULDBLOCK), from kernel lock events.",
        lostEvents: "Kernel lock events dropped because the exporter's perf ring buffers were full (the counters above undercount by up to this many).",
    ]

    /// The unit suffixes (Prometheus naming: base units, `_total` for counters).
    static let units = ["_seconds", "_total"]

    /// swift-prometheus's descriptor for one of the names above: base name, unit, help.
    static func descriptor(_ name: String) -> MetricNameDescriptor {
        let unit = units.first { name.hasSuffix($0) }
        let base = unit.map { String(name.dropLast($0.count)) } ?? name
        return MetricNameDescriptor(metricName: base, unitName: unit.map { String($0.dropFirst()) } ?? "", helpText: help[name] ?? "")
    }
}

/// Writes one exposition: the snapshot gauges of `LockMetrics`, the exporter's own
/// status, and (when a source runs) the event-derived counters and histograms.
/// swift-prometheus renders the text format and escapes label values; OpenMetrics is
/// the same text re-framed (`OpenMetricsFraming`), since swift-prometheus 2.4 writes
/// only the 0.0.4 text format.
public struct Exposition: Sendable {
    public var metrics: LockMetrics?
    public var findings: [String: Int]?
    public var status: ExporterStatus
    public var events: EventMetrics?

    public init(metrics: LockMetrics?, findings: [String: Int]?, status: ExporterStatus, events: EventMetrics? = nil) {
        self.metrics = metrics
        self.findings = findings
        self.status = status
        self.events = events
    }

    public func render(_ format: ExpositionFormat) -> [UInt8] {
        let registry = PrometheusCollectorRegistry()
        func gauge(_ name: String, _ labels: [(String, String)], _ value: Double) {
            if labels.isEmpty {
                registry.makeGauge(descriptor: MetricName.descriptor(name)).set(value)
            } else {
                registry.makeGauge(descriptor: MetricName.descriptor(name), labels: labels).set(value)
            }
        }
        if let m = metrics {
            for k in m.locksByKind { gauge(MetricName.locks, [("kind", k.kind)], Double(k.count)) }
            for w in m.waiters {
                gauge(MetricName.waiters, [("path", w.path), ("kind", w.kind), ("reason", w.reason)], Double(w.count))
            }
            for o in m.oldestWaitSeconds { gauge(MetricName.oldestWait, [("path", o.path)], o.seconds) }
            for h in m.holderSeconds { gauge(MetricName.holder, [("path", h.path), ("source", h.source.rawValue)], h.seconds) }
        }
        if let findings {
            for (rule, n) in findings.sorted(by: { $0.key < $1.key }) { gauge(MetricName.findings, [("rule", rule)], Double(n)) }
        }
        gauge(MetricName.scrapeDuration, [], status.scrapeDurationSeconds)
        registry.makeCounter(descriptor: MetricName.descriptor(MetricName.scrapeErrors)).increment(by: Int64(status.scrapeErrors))
        gauge(MetricName.eventsAvailable, [], status.eventsAvailable ? 1 : 0)

        var out: [UInt8] = []
        out.reserveCapacity(4096)
        registry.emit(into: &out)
        events?.emit(into: &out)
        out = ExpositionOrder.ordered(out)
        switch format {
        case .text: return out
        case .openMetrics: return OpenMetricsFraming.reframe(out)
        }
    }
}

/// Turns swift-prometheus's 0.0.4 text into OpenMetrics 1.0.0 text. The sample lines
/// are already valid OpenMetrics (same label escaping, `le` buckets with `+Inf`,
/// `_sum`/`_count`); what differs is the framing:
/// - a counter's family is named without `_total` in its `# TYPE`/`# HELP` lines,
///   while its sample keeps the suffix (OpenMetrics 1.0, "Counter");
/// - `"` in help text is escaped (`\"`), as OpenMetrics' escaped-string requires;
/// - the exposition ends with `# EOF`.
public enum OpenMetricsFraming {
    public static func reframe(_ text: [UInt8]) -> [UInt8] {
        let lines = text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
        let typePrefix = Array("# TYPE ".utf8), helpPrefix = Array("# HELP ".utf8)
        let totalSuffix = Array("_total".utf8)
        // Counter families, from their TYPE lines (HELP comes first, so look ahead).
        var counters = Set<[UInt8]>()
        for line in lines where line.starts(with: typePrefix) {
            let rest = line.dropFirst(typePrefix.count)
            guard let space = rest.firstIndex(of: UInt8(ascii: " ")) else { continue }
            if Array(rest[space...].dropFirst()) == Array("counter".utf8) { counters.insert(Array(rest[..<space])) }
        }
        var out: [UInt8] = []
        out.reserveCapacity(text.count + 16)
        for line in lines {
            let isType = line.starts(with: typePrefix), isHelp = line.starts(with: helpPrefix)
            if isType || isHelp {
                let rest = line.dropFirst(typePrefix.count)
                let space = rest.firstIndex(of: UInt8(ascii: " ")) ?? rest.endIndex
                var name = Array(rest[..<space])
                if counters.contains(name), name.count > totalSuffix.count, name.suffix(totalSuffix.count).elementsEqual(totalSuffix) {
                    name.removeLast(totalSuffix.count)
                }
                out += isType ? typePrefix : helpPrefix
                out += name
                for b in rest[space...] {
                    if isHelp && b == UInt8(ascii: "\"") { out += Array(#"\""#.utf8) } else { out.append(b) }
                }
            } else {
                out += line
            }
            out.append(UInt8(ascii: "\n"))
        }
        out += Array("# EOF\n".utf8)
        return out
    }
}
