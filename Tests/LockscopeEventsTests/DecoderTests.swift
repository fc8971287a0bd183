import LockscopeCore
@testable import LockscopeEvents
import Testing

/// Decoding recorded raw records by field name (Fixtures/README.md).
@Suite struct EventDecoderTests {
    let file = FileIdentity(major: 0xfe, minor: 0, inode: 16222403)

    func locks(_ events: [KernelEvent]) -> [LockEvent] {
        events.compactMap { if case .lock(let l) = $0 { return l } else { return nil } }
    }

    @Test func flockHolderWaiterAndFailedAttempt() throws {
        let l = locks(try fixtureEvents("linux-6.18"))
        #expect(l.count == 7)
        #expect(l.allSatisfy { $0.file == file && $0.tracepoint == .flockLockInode && $0.start == 0 && $0.end == Int64.max })
        #expect(l.allSatisfy { $0.lockPid == UInt32($0.header.pid) && $0.owner != 0 })
        // pid, flags, type, ret, in time order
        let summary = l.map { "\($0.header.pid) \($0.flags.symbolic) \($0.type) \($0.ret)" }
        #expect(summary == [
            "27889 FL_FLOCK|FL_SLEEP F_WRLCK 0",    // holder granted at once
            "27893 FL_FLOCK F_WRLCK -11",           // flock -n: -EAGAIN
            "27892 FL_FLOCK|FL_SLEEP F_WRLCK 1",    // waiter queued (FILE_LOCK_DEFERRED)
            "27893 FL_FLOCK|FL_CLOSE F_UNLCK 0",    // close of the failed attempt's fd
            "27889 FL_FLOCK|FL_CLOSE F_UNLCK 0",    // holder's last fd closed
            "27892 FL_FLOCK|FL_SLEEP F_WRLCK 0",    // waiter granted
            "27892 FL_FLOCK|FL_CLOSE F_UNLCK 0",
        ])
        // Only the queued waiter has a blocker.
        #expect(l.map { $0.blocker != 0 } == [false, false, true, false, false, false, false])
        #expect(l[0].file.device == "fe:00")
    }

    @Test func schedAncestry() throws {
        let events = try fixtureEvents("linux-6.18")
        let forks = events.compactMap { if case .fork(let f) = $0 { return f } else { return nil } }
        let execs = events.compactMap { if case .exec(let x) = $0 { return x } else { return nil } }
        let exits = events.compactMap { if case .exit(let x) = $0 { return x } else { return nil } }
        #expect(forks.contains { $0.parentPid == 27889 && $0.childPid == 27890 && $0.parentComm.description == "flock" })
        #expect(execs.contains { $0.pid == 27890 && $0.name.description == "sleep" })
        #expect(execs.contains { $0.pid == 27894 && $0.name.description == "lockscope-testb" })  // 15 bytes kept
        #expect(exits.contains { $0.pid == 27893 && $0.comm.description == "flock" && $0.groupDead })
    }

    @Test func bothKernelLayoutsDecodeToTheSameEvents() throws {
        let new = try fixtureEvents("linux-6.18")
        let old = try fixtureEvents("linux-6.8")
        #expect(new.count == 32)
        #expect(old == new)
    }

    @Test func truncatedRecordDecodesMissingFieldsAsZero() throws {
        let decoder = try EventDecoder(formats: try fixtureFormats("linux-6.18"))
        let (h, bytes) = try fixtureRecords("linux-6.18").first { $0.1.first == 0x65 }!
        let short = Array(bytes.prefix(24))
        let e = short.withUnsafeBytes { decoder.decode(h, raw: $0) }
        guard case .lock(let l)? = e else { Issue.record("not decoded"); return }
        #expect(l.file.inode == 16222403)
        #expect(l.ret == 0 && l.lockPid == 0)
        // An id the decoder was not built for is not decoded.
        var other = bytes
        other[0] = 0x01; other[1] = 0x00
        #expect(other.withUnsafeBytes { decoder.decode(h, raw: $0) } == nil)
    }

    @Test func devTDecoding() throws {
        // s_dev 0x0fe00001 is MKDEV(0xfe, 1): major = dev >> 20, minor = dev & 0xfffff.
        let decoder = try EventDecoder(formats: try fixtureFormats("linux-6.18"))
        let record = try fixtureRecords("linux-6.18").first { $0.1.first == 0x65 }!
        let h = record.0
        var bytes = record.1
        bytes[24] = 0x01; bytes[25] = 0x00; bytes[26] = 0xe0; bytes[27] = 0x0f
        guard case .lock(let l)? = bytes.withUnsafeBytes({ decoder.decode(h, raw: $0) }) else { Issue.record("x"); return }
        #expect(l.file.device == "fe:01")
    }
}
