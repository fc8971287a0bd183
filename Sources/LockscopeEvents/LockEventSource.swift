import Dispatch
import LockscopeCore
import Synchronization

/// The kernel lock-event feed `watch` (and later `diagnose`/`waiters`) read:
/// the filelock tracepoints plus sched fork/exec/exit for ancestry, opened on
/// every CPU with perf, decoded into `KernelEvent` values.
public final class LockEventSource {
    public let session: PerfSession
    public let decoder: EventDecoder
    /// Where the formats were read from (a mounted tracefs, or a private mount).
    public let tracefs: TracefsSource
    /// The tracepoints actually opened (a kernel may lack some lease events).
    public let tracepoints: [TracepointName]
    /// Raw samples no decoder entry matched (should stay 0).
    public private(set) var undecoded: UInt64 = 0

    /// The lock tracepoints watch needs; without the first two there is nothing to watch.
    public static let requiredLock: [LockTracepoint] = [.flockLockInode, .posixLockInode]
    public static let optionalLock: [LockTracepoint] = [
        .fcntlSetlk, .locksRemovePosix, .breakLeaseBlock, .breakLeaseNoblock, .breakLeaseUnblock,
        .genericAddLease, .genericDeleteLease, .timeOutLeases, .leasesConflict,
    ]

    /// Opens the events. `files`: when not empty, an in-kernel filter keeps
    /// only lock events on these files (sched events are never filtered: the
    /// ancestry of a per-attempt process is needed before its first lock).
    public init(files: [FileIdentity] = [], ancestry: Bool = true, tracefs: TracefsSource = .current(),
                pages: Int = PerfSession.defaultPages) throws(EventsError) {
        self.tracefs = tracefs
        var wanted = (Self.requiredLock + Self.optionalLock).map(\.tracepoint)
        if ancestry { wanted += SchedTracepoint.allCases.map(\.tracepoint) }
        let formats = try tracefs.formats(wanted)
        for tp in Self.requiredLock where formats[tp.tracepoint] == nil {
            throw .noSuchTracepoint(tp.tracepoint.description)
        }
        decoder = try EventDecoder(formats: formats)
        let opened = wanted.filter { formats[$0] != nil }
        tracepoints = opened
        var filters: [UInt64: String] = [:]
        if let filter = Self.filter(for: files) {
            for name in opened where name.system == "filelock" {
                if let f = formats[name], f.field("i_ino") != nil, f.field("s_dev") != nil { filters[f.id] = filter }
                // leases_conflict names no file: it is kept unfiltered (a break on a
                // watched file is matched to it by the lease's address).
            }
        }
        var names: [UInt64: String] = [:]
        for n in opened { if let f = formats[n] { names[f.id] = n.description } }
        session = try PerfSession(tracepointIds: opened.compactMap { formats[$0]?.id }, filters: filters,
                                  pages: pages, names: names)
    }

    /// `(i_ino == 12 && s_dev == 265289728) || ...`: the kernel's `dev_t`
    /// encoding is `major << 20 | minor` (include/linux/kdev_t.h `MKDEV`). Pure.
    public static func filter(for files: [FileIdentity]) -> String? {
        guard !files.isEmpty else { return nil }
        return files.map { "(i_ino == \($0.inode) && s_dev == \(UInt64($0.major) << 20 | UInt64($0.minor)))" }
            .joined(separator: " || ")
    }

    public func enable() throws(EventsError) { try session.enable() }
    public func wait(timeoutMilliseconds: Int32) -> Bool { session.wait(timeoutMilliseconds: timeoutMilliseconds) }
    public var lostEvents: UInt64 { session.lostEvents }

    /// Decodes and delivers every pending event in time order (see `PerfSession.drain`).
    @discardableResult
    public func drain(everything: Bool = false, _ body: (KernelEvent) -> Void) -> Int {
        withoutActuallyEscaping(body) { body in
            var consumer = DecodingConsumer(decoder: decoder, body: body)
            let n = session.drainSamples(everything: everything, into: &consumer)
            undecoded += consumer.missed
            return n
        }
    }

    /// Decodes every pending event straight into `aggregator`, in time order: the
    /// aggregator ends exactly as `drain { aggregator.apply($0) }` leaves it, for a
    /// fraction of the cost (no `KernelEvent`, no `LockOperation`, no closure call
    /// per event; docs/performance.md, "watch"). For a consumer that needs only the
    /// counters (watch without `--events`). Returns the number of samples delivered.
    @discardableResult
    public func drain(everything: Bool = false, into aggregator: inout LockAggregator) -> Int {
        let decoder = self.decoder
        return withUnsafeMutablePointer(to: &aggregator) { target in
            var consumer = AggregatingConsumer(aggregator: target, decoder: decoder)
            let n = session.drainSamples(everything: everything, into: &consumer)
            undecoded += consumer.missed
            return n
        }
    }

    public func close() { session.close() }
}

/// Decodes samples for the closure-taking `drain` (one closure call per event).
struct DecodingConsumer: SampleConsumer {
    let decoder: EventDecoder
    let body: (KernelEvent) -> Void
    var missed: UInt64 = 0

    @inline(__always)
    mutating func consume(_ header: SampleHeader, raw: UnsafeRawBufferPointer) {
        if let e = decoder.decode(header, raw: raw) { body(e) } else { missed += 1 }
    }
}

/// Feeds samples to an aggregator the caller holds `inout` for the whole drain
/// (a pointer: no copy of the aggregator, no access check per sample).
struct AggregatingConsumer: SampleConsumer {
    let aggregator: UnsafeMutablePointer<LockAggregator>
    let decoder: EventDecoder
    var missed: UInt64 = 0
    /// Where the aggregator writes the operations nobody reads.
    var scratch = LockOperation.blank

    @inline(__always)
    mutating func consume(_ header: SampleHeader, raw: UnsafeRawBufferPointer) {
        if !aggregator.pointee.apply(header, raw: raw, decoder: decoder, scratch: &scratch) { missed += 1 }
    }
}

extension LockEventSource {
    /// Opens and enables a source on a thread of its own, then runs `body` there: a
    /// source is created, used and closed on one thread only (its rings are drained in
    /// place). Returns once the source runs (nil) or failed to open (the error), so the
    /// caller can say why before going on without events. `diagnose`'s window and
    /// `serve`'s feed start their events this way.
    public static func startOnItsOwnThread(label: String,
                                           opening open: @escaping @Sendable () throws(EventsError) -> LockEventSource,
                                           then body: @escaping @Sendable (LockEventSource) -> Void) -> EventsError? {
        let opened = Mutex<Result<Void, EventsError>?>(nil)
        let ready = DispatchSemaphore(value: 0)
        DispatchQueue(label: label).async {
            let source: LockEventSource
            do throws(EventsError) {
                source = try open()
                try source.enable()
            } catch {
                opened.withLock { $0 = .failure(error) }
                ready.signal()
                return
            }
            opened.withLock { $0 = .success(()) }
            ready.signal()
            body(source)
        }
        ready.wait()
        if case .failure(let error)? = opened.withLock({ $0 }) { return error }
        return nil
    }
}
