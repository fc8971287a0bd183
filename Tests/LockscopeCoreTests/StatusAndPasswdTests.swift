import XCTest
@testable import LockscopeCore

/// The byte-scanning parsers of /proc/PID/status and /etc/passwd on the edges the
/// recorded fixtures do not reach: missing keys, names that are not UTF-8, CRs.
final class StatusAndPasswdTests: XCTestCase {
    /// The shape of a real status file (fs/proc/array.c order), keys lockscope reads among others.
    let status = "Name:\tflock\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t5689\nPid:\t5689\nPPid:\t5648\n"
        + "TracerPid:\t812\nUid:\t1000\t1001\t1002\t1003\nGid:\t0\t0\t0\t0\nNStgid:\t5689\t12\nNSpid:\t5689\t12\n"
        + "SigQ:\t0/96365\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\nSigBlk:\t0000000000010000\n"
        + "SigIgn:\t0000000001001000\nSigCgt:\t0000000010000002\nCapInh:\t0000000000000000\n"

    func testOneParseGivesEveryField() throws {
        let s = StatusFields.parse(status)
        XCTAssertEqual(s.uid, 1000)   // the real uid, first of four
        XCTAssertEqual(s.tracerPid, 812)
        XCTAssertEqual(s.nsPids, [5689, 12])   // not NStgid's
        let m = try XCTUnwrap(s.signalMasks)
        XCTAssertEqual(m, SignalMasks(blocked: 0x10000, ignored: 0x1001000, caught: 0x10000002))
        XCTAssertEqual(SignalMasks.parse(status: status), m)
    }

    func testMissingKeys() {
        for text in ["", "\n\n", "Name:\tx\n", "Name:\tx", "SigQ:\t0/1\nSigPnd:\t0\n"] {
            let s = StatusFields.parse(text)
            XCTAssertNil(s.uid, text)
            XCTAssertEqual(s.tracerPid, 0, text)
            XCTAssertEqual(s.nsPids, [], text)
            XCTAssertNil(s.signalMasks, text)
        }
        // Masks without SigBlk/SigIgn default to 0; an unreadable SigCgt means no masks at all.
        XCTAssertEqual(StatusFields.parse("SigCgt:\t4\n").signalMasks, SignalMasks(caught: 4))
        XCTAssertNil(StatusFields.parse("SigBlk:\t1\nSigCgt:\tzz\n").signalMasks)
        XCTAssertEqual(StatusFields.parse("SigBlk:\tzz\nSigCgt:\t1\n").signalMasks, SignalMasks(caught: 1))
        // Malformed values: no uid, tracer 0, only the numeric pids.
        let bad = StatusFields.parse("Uid:\t\nTracerPid:\t-\nNSpid:\t7 x\t9\n")
        XCTAssertNil(bad.uid)
        XCTAssertEqual(bad.tracerPid, 0)
        XCTAssertEqual(bad.nsPids, [7, 9])
    }

    func testKeysMatchOnlyAtTheStartOfALine() {
        let s = StatusFields.parse(" Uid:\t5\nXTracerPid:\t9\nUidx:\t6\nNSpidx:\t3\nSigCgtx:\t1\nsigCgt:\t1\n")
        XCTAssertNil(s.uid)
        XCTAssertEqual(s.tracerPid, 0)
        XCTAssertEqual(s.nsPids, [])
        XCTAssertNil(s.signalMasks)
    }

    func testLastLineNeedsNoNewlineAndALaterLineWins() {
        XCTAssertEqual(StatusFields.parse("Uid:\t4\t4\t4\t4\nUid:\t7\t7\t7\t7").uid, 7)
        XCTAssertEqual(StatusFields.parse("SigCgt:\t2\nSigCgt:\t3").signalMasks, SignalMasks(caught: 3))
    }

    func testNamesThatAreNotUTF8() {
        // readText repairs invalid UTF-8 (U+FFFD); the Name: line is read by nobody, and
        // its bytes must not hide the lines after it.
        let raw: [UInt8] = Array("Name:\t".utf8) + [0xFF, 0xFE, 0xC3] + Array("\nUid:\t33\t33\t33\t33\nSigCgt:\t1\n".utf8)
        let s = StatusFields.parse(String(decoding: raw, as: UTF8.self))
        XCTAssertEqual(s.uid, 33)
        XCTAssertEqual(s.signalMasks, SignalMasks(caught: 1))
        XCTAssertEqual(StatusFields.parse("Name:\tnaïve✓ Uid:\t1\nTracerPid:\t5\n").tracerPid, 5)
        XCTAssertNil(StatusFields.parse("Name:\tnaïve✓ Uid:\t1\nTracerPid:\t5\n").uid)
    }

    func testACarriageReturnInTheNameEndsNoLine() {
        // The comm is escaped only for LF and backslash (proc_task_name()), so a name may
        // end in a raw CR; the line still ends at the LF and the next key is read.
        let s = StatusFields.parse("Name:\tx\r\nUid:\t9\t9\t9\t9\r\nTracerPid:\t3\n")
        XCTAssertEqual(s.uid, 9)
        XCTAssertEqual(s.tracerPid, 3)
    }

    func testPasswd() {
        let text = "root:x:0:0:root:/root:/bin/bash\n# a comment\n\nbad line\nhalf:x\ndaemon:x:1:1::/:/sbin/nologin\n"
            + "alias:x:0:0::/:/bin/sh\nnum:x:notanumber:0::/:\nempty::2:2::/:\n:x:3:3::/:\nshort:x:4\nlast:x:1000:1000::/home/last:/bin/sh"
        XCTAssertEqual(ProcessReader.parsePasswd(text), [0: "root", 1: "daemon", 2: "empty", 3: "", 4: "short", 1000: "last"])
        XCTAssertEqual(ProcessReader.parsePasswd(""), [:])
        XCTAssertEqual(ProcessReader.parsePasswd("a:x:+5:0::/:\nb:x:5 :0::/:\nc:x:4294967296:0::/:\n"), [5: "a"])
    }

    func testPasswdNamesAndLineEnds() {
        let raw: [UInt8] = [0xFF, 0x61] + Array(":x:77:77::/:/bin/sh\n".utf8)
        XCTAssertEqual(ProcessReader.parsePasswd(String(decoding: raw, as: UTF8.self)), [77: "\u{FFFD}a"])
        XCTAssertEqual(ProcessReader.parsePasswd("josé:x:1001:1001::/:\n"), [1001: "josé"])
        // A file with CRLF line ends still has every user (the uid is the third of seven fields).
        XCTAssertEqual(ProcessReader.parsePasswd("a:x:1:1::/:/bin/sh\r\nb:x:2:2::/:/bin/sh\r\n"), [1: "a", 2: "b"])
    }
}
