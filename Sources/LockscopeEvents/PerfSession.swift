#if canImport(Glibc)
import Glibc
#endif
import CLockscopeEvents
import LockscopeCore
import SystemPackage

/// One perf sample, viewed in place in the mapped ring (or in the ring's scratch
/// buffer when the record wraps). `raw` is the tracepoint record; it is valid
/// only during the callback that receives it: copy out what you keep (decode
/// it with `EventDecoder`, which returns values).
public struct PerfSample {
    public var header: SampleHeader
    public var raw: UnsafeRawBufferPointer
}

/// The perf ring of one CPU: an mmap'd `perf_event_mmap_page` followed by a
/// power-of-two data area the kernel writes records into
/// (include/uapi/linux/perf_event.h). We read between `data_tail` and
/// `data_head` and publish the new tail; nothing is allocated per record.
final class PerfRing {
    let fd: Int32
    let cpu: Int
    let base: UnsafeMutableRawPointer
    let mapLength: Int
    let data: UnsafeMutableRawPointer
    let dataSize: UInt64
    /// Where the next unread record starts (a free-running counter, like data_head).
    var cursor: UInt64
    var head: UInt64 = 0
    /// Records that wrap past the end of the data area are copied here
    /// (a record's size is a u16, so 64 KiB always suffices).
    let scratch: UnsafeMutableRawPointer

    init(fd: Int32, cpu: Int, pages: Int) throws(EventsError) {
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let length = pageSize * (1 + pages)
        guard let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            throw .perfSetup(call: "mmap(perf ring, cpu \(cpu), \(pages) pages)", errno: Errno(rawValue: errno))
        }
        self.fd = fd
        self.cpu = cpu
        base = p
        mapLength = length
        let off = cls_perf_ring_data_offset(p), size = cls_perf_ring_data_size(p)
        data = p + Int(off == 0 ? UInt64(pageSize) : off)
        dataSize = size == 0 ? UInt64(pageSize * pages) : size
        cursor = cls_perf_ring_head(p)  // a fresh ring: head == tail == 0
        scratch = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 8)
    }

    deinit {
        munmap(base, mapLength)
        scratch.deallocate()
    }

    /// The record at `cursor`, if one is complete before the head snapshot.
    @inline(__always)
    func peek() -> (type: UInt32, bytes: UnsafeRawBufferPointer)? {
        guard cursor < head else { return nil }
        let mask = dataSize - 1
        let start = Int(cursor & mask)
        // perf_event_header: u32 type, u16 misc, u16 size; records are 8-byte aligned
        // so the header itself never wraps.
        let type = data.load(fromByteOffset: start, as: UInt32.self)
        let size = Int(data.load(fromByteOffset: start + 6, as: UInt16.self))
        guard size >= 8, UInt64(size) <= head - cursor else { return nil }
        if start + size <= Int(dataSize) {
            return (type, UnsafeRawBufferPointer(start: data + start, count: size))
        }
        let first = Int(dataSize) - start
        scratch.copyMemory(from: data + start, byteCount: first)
        (scratch + first).copyMemory(from: data, byteCount: size - first)
        return (type, UnsafeRawBufferPointer(start: scratch, count: size))
    }

    func publishTail() { cls_perf_ring_set_tail(base, cursor) }

    /// The sample at `cursor` once `findSample` ran (valid until the cursor moves,
    /// or until the next `peek` when it was copied into `scratch`), and its time.
    var sample = UnsafeRawBufferPointer(start: nil, count: 0)
    var sampleTime: UInt64 = 0
    var hasSample = false

    /// Moves the cursor to the next complete sample before the head snapshot,
    /// consuming the other records on the way (PERF_RECORD_LOST adds to `lost`).
    @inline(__always)
    func findSample(lost: inout UInt64) {
        while let (type, rec) = peek() {
            if type == 9 /* PERF_RECORD_SAMPLE */ {
                // u64 header | u32 pid, u32 tid | u64 time | u32 cpu, u32 res | u32 size, raw
                if rec.count >= 36 {
                    sample = rec
                    sampleTime = rec.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
                    hasSample = true
                    return
                }
            } else if type == 2 /* PERF_RECORD_LOST: u64 id, u64 lost */, rec.count >= 24 {
                lost += rec.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
            }
            cursor += UInt64(rec.count)
        }
        hasSample = false
    }
}

/// Where `PerfSession.drainSamples` delivers: a protocol rather than a closure, so
/// a consumer in this module (watch's aggregator) is specialized into the loop
/// and costs no indirect call per sample.
protocol SampleConsumer {
    mutating func consume(_ header: SampleHeader, raw: UnsafeRawBufferPointer)
}

/// The closure-taking `drain`'s consumer.
struct ClosureConsumer: SampleConsumer {
    let body: (PerfSample) -> Void
    @inline(__always)
    mutating func consume(_ header: SampleHeader, raw: UnsafeRawBufferPointer) {
        body(PerfSample(header: header, raw: raw))
    }
}

/// What the events are bound to.
public enum PerfTarget: Sendable, Equatable {
    /// Every process on the machine (pid -1), one ring per CPU.
    case systemWide
    /// One task (a thread id), one ring per CPU; `inherit` also follows
    /// threads and children it creates after the open. (An inherited event
    /// cannot be mmap'd with cpu -1, so task-bound events are per CPU too.)
    case task(pid: Int32, inherit: Bool)
    /// Several tasks (e.g. every thread of a process), all sharing each CPU's
    /// ring; `inherit` as for `.task`.
    case tasks(pids: [Int32], inherit: Bool)
}

/// Tracepoints opened with perf_event_open(PERF_TYPE_TRACEPOINT) on every
/// online CPU, each CPU's tracepoints sharing one mmap'd ring through
/// PERF_EVENT_IOC_SET_OUTPUT, drained with poll(2) and merged by timestamp.
///
/// Nothing is written to tracefs: the events live exactly as long as these fds
/// (a killed lockscope leaves no tracing state behind: the kernel frees the
/// events when the last fd closes, perf_release() in kernel/events/core.c).
///
/// Usage (one consumer thread):
/// ```
/// let session = try PerfSession(tracepoints: formats.values.map(\.id), ...)
/// try session.enable()
/// while running {
///     _ = session.wait(timeoutMilliseconds: 200)
///     session.drain { sample in if let e = decoder.decode(sample.header, raw: sample.raw) { ... } }
/// }
/// session.drain(everything: true) { ... }   // after disable(): the rest
/// ```
public final class PerfSession {
    public let cpus: [Int]
    let rings: [PerfRing]
    /// Every fd, ring owners included, for enable/disable/close.
    var fds: [Int32]
    var pollFds: [pollfd]
    /// Samples the kernel dropped because a ring was full, summed over CPUs:
    /// the per-event PERF_FORMAT_LOST counters where the kernel has them (they
    /// are exact at any moment), else the PERF_RECORD_LOST records seen so far.
    public var lostEvents: UInt64 {
        var total: UInt64 = 0
        for fd in fds {
            var hits: UInt64 = 0, lost: UInt64 = 0
            if cls_perf_read_counts(fd, &hits, &lost) != 0 { return lostRecords }
            total += lost
        }
        return fds.isEmpty ? max(lostAtClose, lostRecords) : max(total, lostRecords)
    }
    var lostAtClose: UInt64 = 0
    /// PERF_RECORD_LOST totals seen in the rings.
    public private(set) var lostRecords: UInt64 = 0
    /// Samples handed to callbacks so far.
    public private(set) var samples: UInt64 = 0
    /// Records newer than `now - reorderWindow` stay in the ring until the next
    /// drain, so a record still being written on another CPU cannot be
    /// overtaken by a later one (CLOCK_MONOTONIC nanoseconds).
    public var reorderWindow: UInt64 = 2_000_000

    /// The default ring: 1024 pages (4 MiB) per CPU, woken when a quarter is full:
    /// about 35,000 lock events, 170 ms at 200,000 events/s, so a consumer
    /// descheduled on a busy machine does not lose events (docs/performance.md).
    public static let defaultPages = 1024

    /// Opens `tracepointIds` (tracefs `id`s) on every CPU in `cpus` (default:
    /// the online CPUs). `filters` maps a tracepoint id to an in-kernel filter
    /// expression (PERF_EVENT_IOC_SET_FILTER, e.g. `i_ino == 1234`); events
    /// start disabled, call `enable()`. `pages` must be a power of two.
    public init(tracepointIds: [UInt64], target: PerfTarget = .systemWide, cpus: [Int]? = nil,
                filters: [UInt64: String] = [:], pages: Int = PerfSession.defaultPages,
                names: [UInt64: String] = [:]) throws(EventsError) {
        let cpuList = cpus ?? PerfSession.onlineCPUs()
        self.cpus = cpuList
        var fds: [Int32] = []
        var rings: [PerfRing] = []
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let wakeup = UInt32(min(pageSize * pages / 4, Int(UInt32.max)))
        func cleanup() { for fd in fds { _ = Glibc.close(fd) } }
        for cpu in cpuList {
            var owner: Int32 = -1
            let tasks: [Int32?]
            switch target {
            case .systemWide: tasks = [nil]
            case .task(let pid, _): tasks = [pid]
            case .tasks(let pids, _): tasks = pids
            }
            taskLoop: for task in tasks { for id in tracepointIds {
                let fd: Int32
                switch target {
                case .systemWide: fd = cls_perf_tracepoint_open(id, Int32(cpu), -1, wakeup)
                case .task(_, let inherit), .tasks(_, let inherit):
                    fd = cls_perf_tracepoint_open_task_cpu(id, task ?? -1, Int32(cpu), inherit ? 1 : 0, wakeup)
                }
                if fd < 0 {
                    let e = Errno(rawValue: errno)
                    // A thread of the target exited between being listed and being opened:
                    // it has nothing left to trace (perf_event_open finds no task: ESRCH).
                    if case .tasks = target, e == .noSuchProcess { continue taskLoop }
                    cleanup()
                    let name = names[id] ?? "tracepoint \(id)"
                    if e == .permissionDenied || e == .notPermitted {
                        throw .notPermitted("perf_event_open(\(name)) refused: \(e) (needs root or CAP_PERFMON)")
                    }
                    throw .perfOpen(tracepoint: name, cpu: cpu, errno: e)
                }
                fds.append(fd)
                if let filter = filters[id], cls_perf_set_filter(fd, filter) != 0 {
                    let e = Errno(rawValue: errno)
                    cleanup()
                    throw .badFilter(filter, e)
                }
                if owner < 0 {
                    owner = fd
                    do { rings.append(try PerfRing(fd: fd, cpu: cpu, pages: pages)) } catch { cleanup(); throw error }
                } else if cls_perf_set_output(fd, owner) != 0 {
                    let e = Errno(rawValue: errno)
                    cleanup()
                    throw .perfSetup(call: "PERF_EVENT_IOC_SET_OUTPUT", errno: e)
                }
            } }
        }
        self.fds = fds
        self.rings = rings
        pollFds = rings.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
    }

    /// Rings mapped by the caller: tests drain rings laid out in a file as the
    /// kernel lays them out.
    init(rings: [PerfRing]) {
        cpus = rings.map(\.cpu)
        self.rings = rings
        fds = []
        pollFds = []
    }

    deinit { close() }

    public func enable() throws(EventsError) {
        for fd in fds where cls_perf_enable(fd) != 0 {
            throw .perfSetup(call: "PERF_EVENT_IOC_ENABLE", errno: Errno(rawValue: errno))
        }
    }

    public func disable() {
        for fd in fds { _ = cls_perf_disable(fd) }
    }

    /// Closes every fd (the kernel frees the events). Idempotent.
    public func close() {
        if !fds.isEmpty { lostAtClose = lostEvents }
        for fd in fds { _ = Glibc.close(fd) }
        fds = []
        pollFds = []
    }

    /// Blocks until a ring has passed its wakeup mark, the timeout passes, or a
    /// signal arrives. Returns true when some ring is readable.
    public func wait(timeoutMilliseconds: Int32) -> Bool {
        guard !pollFds.isEmpty else { return false }
        let n = pollFds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), timeoutMilliseconds) }
        return n > 0
    }

    /// Hands every complete sample to `body` in timestamp order across CPUs,
    /// counts PERF_RECORD_LOST, and frees the ring space read. Unless
    /// `everything`, samples younger than `reorderWindow` wait for the next call.
    /// Returns the number of samples delivered.
    @discardableResult
    public func drain(everything: Bool = false, _ body: (PerfSample) -> Void) -> Int {
        withoutActuallyEscaping(body) { body in
            var consumer = ClosureConsumer(body: body)
            return drainSamples(everything: everything, into: &consumer)
        }
    }

    /// `drain` for a consumer of this module. A k-way merge by timestamp that
    /// delivers a run of samples from the oldest ring until its next one is newer
    /// than the next of another ring (ties go to the ring listed first, as one
    /// sample at a time would): a workload on one CPU is drained in one run,
    /// without looking at the other rings per sample.
    @inline(__always)
    func drainSamples<Consumer: SampleConsumer>(everything: Bool, into consumer: inout Consumer) -> Int {
        let horizon: UInt64 = everything ? UInt64.max : UInt64(max(0, MonotonicClock.nanoseconds)) &- reorderWindow
        var lost: UInt64 = 0
        for ring in rings {
            ring.head = cls_perf_ring_head(ring.base)
            ring.findSample(lost: &lost)
        }
        var delivered = 0
        while true {
            // The ring whose next sample is oldest, and the runner-up.
            var best = -1, next = -1
            for i in rings.indices where rings[i].hasSample {
                let t = rings[i].sampleTime
                if best < 0 || t < rings[best].sampleTime { next = best; best = i }
                else if next < 0 || t < rings[next].sampleTime { next = i }
            }
            guard best >= 0 else { break }
            let ring = rings[best]
            guard ring.sampleTime <= horizon else { break }
            let limit = next >= 0 ? rings[next].sampleTime : UInt64.max
            let winsTies = next < 0 || best < next
            repeat {
                let rec = ring.sample
                let rawSize = Int(rec.loadUnaligned(fromByteOffset: 32, as: UInt32.self))
                let header = SampleHeader(time: ring.sampleTime, cpu: rec.loadUnaligned(fromByteOffset: 24, as: UInt32.self),
                                          pid: rec.loadUnaligned(fromByteOffset: 8, as: Int32.self),
                                          tid: rec.loadUnaligned(fromByteOffset: 12, as: Int32.self))
                consumer.consume(header, raw: UnsafeRawBufferPointer(rebasing: rec[36..<min(rec.count, 36 + rawSize)]))
                delivered += 1
                ring.cursor += UInt64(rec.count)
                ring.findSample(lost: &lost)
            } while ring.hasSample && ring.sampleTime <= horizon
                && (ring.sampleTime < limit || (ring.sampleTime == limit && winsTies))
        }
        for ring in rings { ring.publishTail() }
        lostRecords += lost
        samples += UInt64(delivered)
        return delivered
    }

    /// `/sys/devices/system/cpu/online`: `0-3,6`.
    public static func onlineCPUs() -> [Int] {
        guard case .success(let bytes) = TracefsSource.readFile("/sys/devices/system/cpu/online") else {
            return Array(0..<max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        }
        return parseCPUList(String(decoding: bytes, as: UTF8.self))
    }

    /// Parses a kernel CPU list (`0-3,6`). Pure.
    public static func parseCPUList(_ text: String) -> [Int] {
        var out: [Int] = []
        for part in text.split(whereSeparator: { $0 == "," || $0 == "\n" || $0 == " " }) {
            let r = part.split(separator: "-")
            if r.count == 1, let a = Int(r[0]) { out.append(a) }
            else if r.count == 2, let a = Int(r[0]), let b = Int(r[1]), a <= b { out.append(contentsOf: a...b) }
        }
        return out
    }
}
