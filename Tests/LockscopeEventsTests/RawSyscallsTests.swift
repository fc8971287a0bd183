import XCTest
@testable import LockscopeEvents

/// raw_syscalls records decoded by field name from the recorded format files.
final class RawSyscallsTests: XCTestCase {
    func decoder() throws -> RawSyscallDecoder {
        try XCTUnwrap(try RawSyscallDecoder(formats: try fixtureFormats("raw_syscalls-6.18")))
    }

    /// A record as the kernel writes it: common header (type at 0), then the fields.
    func record(type: UInt16, words: [UInt64]) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 8)
        b[0] = UInt8(type & 0xff); b[1] = UInt8(type >> 8)
        for w in words { for i in 0..<8 { b.append(UInt8(truncatingIfNeeded: w >> (8 * UInt64(i)))) } }
        return b
    }

    func testEnterAndExitDecode() throws {
        let d = try decoder()
        XCTAssertEqual(d.enterId, 443)
        XCTAssertEqual(d.exitId, 442)
        // poll(fds=0x7ffd0000, nfds=1, timeout=3000)
        let enter = record(type: 443, words: [7, 0x7ffd0000, 1, 3000, 0, 0, 0xdead])
        XCTAssertEqual(enter.withUnsafeBytes { d.decode($0) },
                       .enter(number: 7, args: SyscallRegisters(0x7ffd0000, 1, 3000, 0, 0, 0xdead)))
        let exit = record(type: 442, words: [7, UInt64(bitPattern: -4)])
        XCTAssertEqual(exit.withUnsafeBytes { d.decode($0) }, .exit(number: 7, result: -4))
        // Another tracepoint, and a truncated enter record: nothing.
        XCTAssertNil(record(type: 12, words: [1, 2]).withUnsafeBytes { d.decode($0) })
        XCTAssertNil(Array(enter.prefix(40)).withUnsafeBytes { d.decode($0) })
    }

    func testMissingFieldIsAnError() throws {
        let formats = try fixtureFormats("raw_syscalls-6.18")
        var exit = try XCTUnwrap(formats[RawSyscallTracepoint.exit.tracepoint])
        exit.fields.removeAll { $0.name == "ret" }
        XCTAssertThrowsError(try RawSyscallDecoder(enter: formats[RawSyscallTracepoint.enter.tracepoint]!, exit: exit)) {
            XCTAssertEqual($0 as? EventsError, .missingField(tracepoint: "sys_exit", field: "ret"))
        }
        XCTAssertNil(try RawSyscallDecoder(formats: [:]))
    }

    func testFilterExpression() {
        XCTAssertEqual(RawSyscallDecoder.filter(numbers: [73, 7, 56]), "id == 7 || id == 56 || id == 73")
    }
}

/// signal_deliver and sched_process_exec decoded by field name, and what a delivered signal does.
final class TaskEventsTests: XCTestCase {
    func testSignalAndExecDecode() throws {
        let d = try XCTUnwrap(try TaskEventDecoder(formats: try fixtureFormats("task-6.18")))
        XCTAssertEqual(d.deliverId, 260)
        XCTAssertEqual(d.execId, 365)
        // signal_deliver: sig at 8 (int), errno 12, code 16, sa_handler at 24 (unsigned long), sa_flags 32.
        var deliver = [UInt8](repeating: 0, count: 40)
        deliver[0] = 0x04; deliver[1] = 0x01   // common_type 260
        deliver[8] = 15
        deliver[24] = 0x40; deliver[25] = 0x11
        XCTAssertEqual(deliver.withUnsafeBytes { d.decode(type: 260, $0) }, .signal(number: 15, handler: 0x1140))
        // sched_process_exec: __data_loc filename at 8, pid at 12, old_pid at 16.
        var exec = [UInt8](repeating: 0, count: 20)
        exec[12] = 0x39; exec[13] = 0x30      // 12345
        exec[16] = 0x3a; exec[17] = 0x30      // 12346
        XCTAssertEqual(exec.withUnsafeBytes { d.decode(type: 365, $0) }, .exec(pid: 12345, oldPid: 12346))
        XCTAssertNil(exec.withUnsafeBytes { d.decode(type: 442, $0) })
        XCTAssertNil(try TaskEventDecoder(formats: [:]))
    }

    func testSignalActions() {
        XCTAssertEqual(SignalAction(signal: 19, handler: 0), .groupStop)   // SIGSTOP
        XCTAssertEqual(SignalAction(signal: 20, handler: 0), .groupStop)   // SIGTSTP
        XCTAssertEqual(SignalAction(signal: 17, handler: 0), .ignored)     // SIGCHLD
        XCTAssertEqual(SignalAction(signal: 18, handler: 0), .ignored)     // SIGCONT (it resumed the group already)
        XCTAssertEqual(SignalAction(signal: 15, handler: 0), .fatal)       // SIGTERM
        XCTAssertEqual(SignalAction(signal: 9, handler: 0), .fatal)
        XCTAssertEqual(SignalAction(signal: 34, handler: 0), .fatal)       // SIGRTMIN
        XCTAssertEqual(SignalAction(signal: 15, handler: 1), .ignored)     // SIG_IGN
        XCTAssertEqual(SignalAction(signal: 20, handler: 0x401000), .handled)
    }
}
