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
