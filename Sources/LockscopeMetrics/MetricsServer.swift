#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import LockscopeCore
import NIOCore
import NIOHTTP1
import NIOPosix

/// `lockscope serve`: /metrics, / and /healthz over HTTP/1.1 (SwiftNIO's HTTP1 server).
///
/// Each exposition is rendered from one `Collector` snapshot; snapshots are at least
/// `minInterval` apart whatever the scrape rate, so any number of scrapers costs at
/// most one /proc/locks read per interval. Connections are capped, idle ones are
/// closed, request bodies are never read: memory stays bounded under garbage, slow
/// clients and bursts of scrapes.
///
/// SwiftNIO directly rather than a framework on top of it: every protocol conformance
/// linked into the static binary is scanned by the Swift runtime on each
/// conformance-cache miss of *every* command (docs/performance.md, "Start-up with the
/// exporter linked in"); three routes do not need a router.
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
        /// Seconds a stop waits for in-flight requests before it gives up on them.
        public var stopTimeout: Double = 10
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
        let stop = TerminationSignals.stream()
        // One event-loop thread: the work per request is a lookup; snapshots run on the
        // cache's actor, off the loop.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let max = options.maxConnections
        // Made on the loop: NIOLoopBound checks that it is created and used there.
        guard let connections = try? await loop.submit({ NIOLoopBound(Connections(max: max), eventLoop: loop) }).get() else {
            throw ServeError.cannotBind(address: "\(options.host):\(options.port)", reason: "the event loop did not start")
        }
        let idle = TimeAmount.milliseconds(Int64(options.idleTimeout * 1000))
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                do {
                    let sync = channel.pipeline.syncOperations
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(IdleStateHandler(allTimeout: idle))
                    try sync.addHandler(HTTPHandler(cache: cache, connections: connections))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        let server: any Channel
        do {
            server = try await bootstrap.bind(host: options.host, port: options.port).get()
        } catch {
            throw ServeError.cannotBind(address: "\(options.host):\(options.port)", reason: Self.reason(error))
        }
        loop.execute { connections.value.server = server }
        onListening(server.localAddress.map(Self.describe) ?? "\(options.host):\(options.port)")

        for await _ in stop { break }
        // Stop accepting, then let in-flight requests finish (idle connections close now).
        try? await server.close()
        let drained = loop.makePromise(of: Void.self)
        loop.execute { connections.value.quiesce(drained) }
        loop.scheduleTask(in: .milliseconds(Int64(options.stopTimeout * 1000))) { drained.succeed() }
        try? await drained.futureResult.get()
        // The event loop is left to the process's exit: shutting it down races the
        // connections' own close-out.
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

/// SIGTERM and SIGINT as an async sequence: the default actions are replaced
/// (`SIG_IGN`) while dispatch sources deliver them, so the server can stop cleanly.
enum TerminationSignals {
    static func stream() -> AsyncStream<Int32> {
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        let sources = [SIGTERM, SIGINT].map { sig -> any DispatchSourceSignal in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { continuation.yield(sig) }
            source.resume()
            return source
        }
        // The sources live as long as anyone iterates the stream.
        continuation.onTermination = { _ in sources.forEach { $0.cancel() } }
        return stream
    }
}

/// The open connections, on the event loop only (`NIOLoopBound`): at `max` the
/// listening socket stops accepting (the rest wait in the backlog) until one closes;
/// on stop, idle connections close at once and busy ones after their response.
final class Connections {
    let max: Int
    var server: (any Channel)?
    var open: [ObjectIdentifier: HTTPHandler] = [:]
    var paused = false
    var drained: EventLoopPromise<Void>?

    init(max: Int) { self.max = max }

    func opened(_ h: HTTPHandler) {
        open[ObjectIdentifier(h)] = h
        if drained != nil { h.closeWhenIdle() }
        if open.count >= max, !paused, let server {
            paused = true
            server.setOption(.autoRead, value: false).whenFailure { _ in }
        }
    }

    func closed(_ h: HTTPHandler) {
        open[ObjectIdentifier(h)] = nil
        if paused, open.count < max, let server {
            paused = false
            server.setOption(.autoRead, value: true).whenFailure { _ in }
            server.read()
        }
        if open.isEmpty { drained?.succeed() }
    }

    func quiesce(_ promise: EventLoopPromise<Void>) {
        drained = promise
        if open.isEmpty { promise.succeed(); return }
        for h in open.values { h.closeWhenIdle() }
    }
}

/// One connection: GET (or HEAD) of /metrics, /healthz and /; 404 for other paths,
/// 405 for other methods (answered at the request head, the body is never read).
/// Malformed requests get SwiftNIO's 400 and a close (`HTTPServerProtocolErrorHandler`).
final class HTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let cache: ExpositionCache
    let connections: NIOLoopBound<Connections>
    var context: ChannelHandlerContext?
    var head: HTTPRequestHead?
    /// A response is being produced (the exposition may take a snapshot).
    var busy = false
    var closing = false

    init(cache: ExpositionCache, connections: NIOLoopBound<Connections>) {
        self.cache = cache
        self.connections = connections
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        connections.value.opened(self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        connections.value.closed(self)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            guard h.method == .GET || h.method == .HEAD else {
                closing = true
                respond(h, status: .methodNotAllowed, type: "text/plain; charset=utf-8", body: Array("method not allowed\n".utf8))
                return
            }
            head = h
        case .body:
            break
        case .end:
            guard let h = head, !closing else { return }
            head = nil
            route(h)
        }
    }

    func route(_ h: HTTPRequestHead) {
        let path = h.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? h.uri
        switch path {
        case "/metrics":
            let format = ExpositionFormat.negotiate(accept: h.headers.first(name: "accept"))
            busy = true
            let cache = self.cache
            let me = NIOLoopBound(self, eventLoop: connections.eventLoop)
            Task {
                let body = await cache.exposition(format)
                me.eventLoop.execute { me.value.respond(h, status: .ok, type: format.contentType, body: body) }
            }
        case "/healthz":
            respond(h, status: .ok, type: "text/plain; charset=utf-8", body: Array("ok\n".utf8))
        case "/":
            respond(h, status: .ok, type: "text/html; charset=utf-8", body: Array(MetricsServer.indexPage.utf8))
        default:
            respond(h, status: .notFound, type: "text/plain; charset=utf-8", body: Array("not found\n".utf8))
        }
    }

    func respond(_ h: HTTPRequestHead, status: HTTPResponseStatus, type: String, body: [UInt8]) {
        busy = false
        guard let context else { return }
        let keepAlive = h.isKeepAlive && !closing
        var headers = HTTPHeaders([("content-type", type), ("content-length", String(body.count)), ("server", "lockscope")])
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: status, headers: headers))), promise: nil)
        if h.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { done.whenComplete { _ in context.close(promise: nil) } }
    }

    /// On stop: close now if no response is under way, else after it.
    func closeWhenIdle() {
        closing = true
        if !busy { context?.close(promise: nil) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent, !busy {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
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
