import Glibc
import LockscopeCore
@testable import LockscopeEvents
import Testing

/// The fast paths `watch` takes (flat decoding, records straight into the
/// aggregator, the run-by-run ring merge) give exactly what the general paths give.
@Suite struct HotPathTests {
    @Test(arguments: ["linux-6.18", "linux-6.8"])
    func flatDecodingEqualsFieldByFieldAtEveryLength(_ fixture: String) throws {
        let decoder = try EventDecoder(formats: try fixtureFormats(fixture))
        #expect(!decoder.flatLocks.isEmpty)
        var flat = 0
        for (h, bytes) in try fixtureRecords(fixture) {
            for length in 0...bytes.count {
                let prefix = Array(bytes.prefix(length))
                prefix.withUnsafeBytes { raw in
                    if decoder.flatLock(raw) >= 0 { flat += 1 }
                    #expect(decoder.decode(h, raw: raw) == decoder.decodeByField(h, raw: raw), "\(fixture) length \(length)")
                }
            }
        }
        #expect(flat >= 7, "the 7 full-length lock records of the fixture are read flat")
    }

    @Test(arguments: ["linux-6.18", "linux-6.8"])
    func recordsStraightIntoTheAggregatorCountAsDecodedEvents(_ fixture: String) throws {
        let decoder = try EventDecoder(formats: try fixtureFormats(fixture))
        let file = FileIdentity(major: 0xfe, minor: 0, inode: 16222403)
        var general = LockAggregator(paths: [file: "/tmp/lock"]), direct = general
        var scratch = LockOperation.blank
        for (h, bytes) in try fixtureRecords(fixture) {
            bytes.withUnsafeBytes { raw in
                if let e = decoder.decode(h, raw: raw) { general.apply(e) }
                let known = direct.apply(h, raw: raw, decoder: decoder, scratch: &scratch)
                #expect(known)
            }
        }
        let end = general.lastEventTime + 1_000_000
        #expect(direct.summary(now: end, durationSeconds: 1, lostEvents: 0) == general.summary(now: end, durationSeconds: 1, lostEvents: 0))
        #expect(direct.processes == general.processes)
        #expect((direct.firstEventTime, direct.lastEventTime) == (general.firstEventTime, general.lastEventTime))
        #expect(direct.summary(now: end, durationSeconds: 1, lostEvents: 0).locks.first?.acquisitions == 2)
    }

    /// Two rings written as the kernel writes them (perf_event_mmap_page, then
    /// PERF_RECORD_SAMPLE and PERF_RECORD_LOST records; include/uapi/linux/perf_event.h),
    /// one starting just before the end of its data area so records wrap.
    @Test func ringsMergeInTimeOrderWithTiesToTheFirstRing() throws {
        let now = UInt64(MonotonicClock.nanoseconds)
        let base = now - 10_000_000_000
        let a = try FakeRing(cpu: 0, start: 0)
        let b = try FakeRing(cpu: 1, start: UInt64(a.page) - 32)  // its first sample wraps
        defer { a.close(); b.close() }
        a.sample(time: base + 10, tag: 1); a.sample(time: base + 20, tag: 3); a.sample(time: base + 20, tag: 4)
        a.sample(time: base + 40, tag: 7); a.sample(time: base + 60, tag: 9)
        a.sample(time: now + 5_000_000_000, tag: 10)  // younger than the reorder window: waits
        b.lost(3)
        b.sample(time: base + 15, tag: 2); b.sample(time: base + 20, tag: 5); b.sample(time: base + 30, tag: 6)
        b.sample(time: base + 50, tag: 8)
        let session = PerfSession(rings: [a.ring!, b.ring!])
        var seen: [(UInt32, UInt64, UInt32)] = []
        let record = { (s: PerfSample) in
            seen.append((s.raw.loadUnaligned(as: UInt32.self), s.header.time - base, s.header.cpu))
        }
        let first = session.drain(record)
        #expect(first == 9)
        #expect(seen.map { $0.0 } == [1, 2, 3, 4, 5, 6, 7, 8, 9])
        #expect(seen.map { $0.1 } == [10, 15, 20, 20, 20, 30, 40, 50, 60])
        #expect(seen.map { $0.2 } == [0, 1, 0, 0, 1, 1, 0, 1, 0])
        #expect(session.lostRecords == 3)
        #expect(b.tail == b.head, "every record of b read and freed")
        #expect(a.tail < a.head, "the young sample stays in the ring")
        seen = []
        let rest = session.drain(everything: true, record)
        #expect(rest == 1)
        #expect(seen.map { $0.0 } == [10])
        #expect(a.tail == a.head && session.samples == 10)
    }
}

/// A perf ring over an unlinked temporary file: the metadata page, then one data page.
final class FakeRing {
    let fd: Int32
    let cpu: Int
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let mapping: UnsafeMutableRawPointer
    var position: UInt64
    /// The reader, made before any record is written (it starts at the head, as
    /// on a fresh ring).
    var ring: PerfRing!

    struct SetupFailed: Error { var errno: Int32 }

    init(cpu: Int, start: UInt64) throws {
        self.cpu = cpu
        var template = Array("/tmp/lockscope-test-ring.XXXXXX".utf8CString)
        fd = mkstemp(&template)
        if fd >= 0 { unlink(template) }
        guard fd >= 0, ftruncate(fd, off_t(2 * page)) == 0,
              let p = mmap(nil, 2 * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED
        else { throw SetupFailed(errno: errno) }
        mapping = p
        position = start
        head = start
        tail = start
        ring = try PerfRing(fd: fd, cpu: cpu, pages: 1)
    }

    // perf_event_mmap_page: data_head at 1024, data_tail at 1032 (data_offset and
    // data_size stay 0: the reader then assumes the data area is the next page).
    var head: UInt64 {
        get { mapping.load(fromByteOffset: 1024, as: UInt64.self) }
        set { mapping.storeBytes(of: newValue, toByteOffset: 1024, as: UInt64.self) }
    }
    var tail: UInt64 {
        get { mapping.load(fromByteOffset: 1032, as: UInt64.self) }
        set { mapping.storeBytes(of: newValue, toByteOffset: 1032, as: UInt64.self) }
    }

    func write(_ bytes: [UInt8]) {
        for b in bytes {
            mapping.storeBytes(of: b, toByteOffset: page + Int(position % UInt64(page)), as: UInt8.self)
            position += 1
        }
        head = position
    }

    func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    /// PERF_RECORD_SAMPLE with TID|TIME|CPU|RAW, a 4-byte raw record holding `tag`.
    func sample(time: UInt64, tag: UInt32) {
        var r = le(UInt32(9)) + le(UInt16(0)) + le(UInt16(40))
        r += le(Int32(100)) + le(Int32(101)) + le(time) + le(UInt32(cpu)) + le(UInt32(0)) + le(UInt32(4)) + le(tag)
        write(r)
    }

    /// PERF_RECORD_LOST: u64 id, u64 lost.
    func lost(_ n: UInt64) { write(le(UInt32(2)) + le(UInt16(0)) + le(UInt16(24)) + le(UInt64(0)) + le(n)) }

    func close() {
        ring = nil
        munmap(mapping, 2 * page)
        _ = Glibc.close(fd)
    }
}
