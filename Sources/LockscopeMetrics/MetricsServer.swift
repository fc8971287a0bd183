#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import HummingbirdCore
import Logging
import LockscopeCore
import NIOCore
import NIOPosix

/// `lockscope serve`: /metrics, / and /healthz over HTTP/1.1 (Hummingbird on SwiftNIO).
///
/// Each exposition is rendered from one `Collector` snapshot; snapshots are at least
/// `minInterval` apart whatever the scrape rate, so any number of scrapers costs at
/// most one /proc/locks read per interval. Connections are capped, idle ones are
/// closed, request bodies are never read: memory stays bounded under garbage, slow
/// clients and bursts of scrapes.
public struct MetricsServer: Sendable {
    public struct Options: Sendable {
        public var host: String
        public var port: Int
        /// Minimum seconds between two reads of /proc/locks.
        public var minInterval: Double = 1
        /// Connections served at once; more wait in the listen backlog.
        public var maxConnections = 1024
        /// Seconds before an idle (or slow, silent) connection is closed.
        public var idleTimeout: Double = 10
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    public var options: Options
    public var collector: Collector
    public var events: EventMetrics

    public init(options: Options, collector: Collector, events: EventMetrics) {
        self.options = options
        self.collector = collector
        self.events = events
    }

    /// Runs until SIGTERM or SIGINT (graceful: in-flight requests finish). `onListening`
    /// gets the bound address (`127.0.0.1:9743`) once the socket accepts connections.
    /// Throws `ServeError.cannotBind` when the address cannot be bound.
    public func run(onListening: @escaping @Sendable (String) -> Void) async throws(ServeError) {
        let cache = ExpositionCache(collector: collector, events: events, minInterval: options.minInterval)
        let router = Router()
        router.get("/metrics") { request, _ -> Response in
            let format = ExpositionFormat.negotiate(accept: request.headers[.accept])
            let body = await cache.exposition(format)
            return Response(status: .ok, headers: [.contentType: format.contentType],
                            body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        router.get("/healthz") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: Self.indexPage)))
        }

        var logger = Logger(label: "lockscope-serve")
        logger.logLevel = .critical
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .milliseconds(Int64(options.idleTimeout * 1000)))),
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "lockscope",
                                 backlog: 1024, reuseAddress: true,
                                 availableConnectionsDelegate: MaximumAvailableConnections(options.maxConnections)),
            onServerRunning: { channel in
                onListening(channel.localAddress.map(Self.describe) ?? "\(options.host):\(options.port)")
            },
            eventLoopGroupProvider: .shared(group),
            logger: logger
        )
        // The event loop is left to the process's exit: shutting it down races the
        // connections' own close-out (NIO then complains about tasks on a dead loop).
        do {
            try await app.runService()
        } catch {
            throw ServeError.cannotBind(address: "\(options.host):\(options.port)", reason: Self.reason(error))
        }
    }

    static func describe(_ a: SocketAddress) -> String {
        let ip = a.ipAddress ?? "?"
        let port = a.port ?? 0
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    static func reason(_ error: any Error) -> String {
        if let io = error as? IOError {
            return String(cString: strerror(io.errnoCode))
        }
        return "\(error)"
    }

    static let indexPage = """
        <!DOCTYPE html>
        <html><head><meta charset="utf-8"><title>lockscope exporter</title></head>
        <body><h1>lockscope exporter</h1>
        <p>File-lock contention on this host: who waits for which lock, and for how long.</p>
        <p><a href="/metrics">/metrics</a> (Prometheus text 0.0.4; OpenMetrics with
        <code>Accept: application/openmetrics-text</code>) &middot; <a href="/healthz">/healthz</a></p>
        </body></html>

        """
}

/// Why `serve` could not run.
public enum ServeError: Error, Sendable, CustomStringConvertible {
    case cannotBind(address: String, reason: String)

    public var description: String {
        switch self {
        case .cannotBind(let address, let reason): return "cannot listen on \(address): \(reason)"
        }
    }
}

/// The last exposition and when its snapshot was taken. Requests within
/// `minInterval` of it get the same bytes; the first one after takes a new snapshot
/// while the others queue on the actor, so reads never overlap.
actor ExpositionCache {
    let collector: Collector
    let events: EventMetrics
    let minInterval: Duration
    var taken: ContinuousClock.Instant?
    var rendered: [ExpositionFormat: [UInt8]] = [:]
    var current: Exposition?
    var errors = 0
    /// When each lock was first seen (for `lockscope_lock_holder_seconds`); pruned every snapshot.
    var firstSeen: [LockKey: ContinuousClock.Instant] = [:]

    init(collector: Collector, events: EventMetrics, minInterval: Double) {
        self.collector = collector
        self.events = events
        self.minInterval = .milliseconds(Int64(max(0, minInterval) * 1000))
    }

    func exposition(_ format: ExpositionFormat) -> [UInt8] {
        let now = ContinuousClock.now
        let fresh = taken.map { now - $0 < minInterval } ?? false
        if fresh, let cached = rendered[format] { return cached }
        let exposition: Exposition
        if fresh, let current {
            exposition = current
        } else {
            exposition = snapshot(now)
            current = exposition
            taken = now
            rendered = [:]
        }
        let bytes = exposition.render(format)
        rendered[format] = bytes
        return bytes
    }

    func snapshot(_ now: ContinuousClock.Instant) -> Exposition {
        let start = ContinuousClock.now
        do {
            let result = try collector.collect { report in
                var seen: [LockKey: ContinuousClock.Instant] = [:]
                var held: [LockKey: LockMetrics.Held] = [:]
                let monotonic = UInt64(MonotonicClock.nanoseconds)
                for l in report.locks {
                    let key = LockKey(l)
                    let first = self.firstSeen[key] ?? now
                    seen[key] = first
                    if let granted = events.grantTime(of: l), granted <= monotonic {
                        held[key] = .init(seconds: Double(monotonic - granted) / 1e9, source: .event)
                    } else {
                        held[key] = .init(seconds: Self.seconds(now - first), source: .snapshot)
                    }
                }
                self.firstSeen = seen
                return held
            }
            events.learnPaths(result.report)
            let status = ExporterStatus(scrapeDurationSeconds: Self.seconds(ContinuousClock.now - start), scrapeErrors: errors,
                                        eventsAvailable: events.available)
            return Exposition(metrics: result.metrics, findings: result.findings, status: status, events: events)
        } catch {
            errors += 1
            let status = ExporterStatus(scrapeDurationSeconds: Self.seconds(ContinuousClock.now - start), scrapeErrors: errors,
                                        eventsAvailable: events.available)
            return Exposition(metrics: nil, findings: nil, status: status, events: events)
        }
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
