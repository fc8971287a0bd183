import XCTest
@testable import LockscopeCore

/// The net-table parsers on text recorded from Linux 6.x.
final class NetTablesTests: XCTestCase {
    func testUDPConnectedToResolver() {
        let text = """
           sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
          497: 0100007F:DDAE 3500007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 3021877 2 0000000000000000 0
          801: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 20871 2 0000000000000000 0
        """
        let s = NetTableParser.parseInet(text, proto: .udp)
        XCTAssertEqual(s.count, 2)
        XCTAssertEqual(s[0].inode, 3021877)
        XCTAssertEqual(s[0].local, NetEndpoint(address: "127.0.0.1", port: 56750))
        XCTAssertEqual(s[0].remote, NetEndpoint(address: "127.0.0.53", port: 53))
        XCTAssertEqual(s[0].state, "ESTABLISHED")
        XCTAssertNil(s[1].remote, "unconnected UDP has no peer")
        XCTAssertEqual(s[1].local?.description, "127.0.0.53:53")
        XCTAssertEqual(NetTables(s)[20871]?.proto, .udp)
    }

    func testTCP6() {
        let text = """
          sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 44211 1 0000000000000000 100 0 0 10 0
           1: 0000000000000000FFFF00000100007F:9C40 0000000000000000FFFF00000100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 44299 1 0000000000000000 20 4 30 10 -1
        """
        let s = NetTableParser.parseInet(text, proto: .tcp6)
        XCTAssertEqual(s.count, 2)
        XCTAssertEqual(s[0].local, NetEndpoint(address: "::1", port: 8080))
        XCTAssertEqual(s[0].state, "LISTEN")
        XCTAssertEqual(s[1].remote, NetEndpoint(address: "::ffff:127.0.0.1", port: 8080))
        XCTAssertEqual(s[1].state, "ESTABLISHED")
        XCTAssertEqual(s[1].remote?.description, "[::ffff:127.0.0.1]:8080")
    }

    func testUnix() {
        let text = """
        Num       RefCount Protocol Flags    Type St Inode Path
        000000006b6e92fc: 00000002 00000000 00010000 0001 01 20511 /run/systemd/private
        0000000030664dcc: 00000003 00000000 00000000 0001 03 2944731
        000000004108cd97: 00000002 00000000 00000000 0002 01 2944726 @/tmp/.X11 with space
        """
        let s = NetTableParser.parseUnix(text)
        XCTAssertEqual(s.count, 3)
        XCTAssertEqual(s[0].path, "/run/systemd/private")
        XCTAssertEqual(s[0].state, "LISTEN")
        XCTAssertEqual(s[0].unixType, "STREAM")
        XCTAssertNil(s[1].path)
        XCTAssertEqual(s[1].state, "CONNECTED")
        XCTAssertEqual(s[2].path, "@/tmp/.X11 with space")
        XCTAssertEqual(s[2].unixType, "DGRAM")
    }

    func testIPv6Formatting() {
        func b(_ groups: [UInt16]) -> [UInt8] { groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] } }
        XCTAssertEqual(formatIPv6(b([0, 0, 0, 0, 0, 0, 0, 0])), "::")
        XCTAssertEqual(formatIPv6(b([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1])), "2001:db8::1:0:0:1")
        XCTAssertEqual(formatIPv6(b([0xfe80, 0, 0, 0, 0x1, 0x2, 0x3, 0x4])), "fe80::1:2:3:4")
        XCTAssertEqual(formatIPv6(b([1, 0, 2, 3, 4, 5, 6, 7])), "1:0:2:3:4:5:6:7")
    }

    /// Found by scripts/fuzz: a signed field crashed the state lookup. The kernel prints
    /// state and port as unsigned hex, so a sign or an over-wide port makes the line invalid.
    func testSignedStateAndOverWidePortAreSkipped() {
        let text = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 0100007F:0035 00000000:0000 -1 00000000:00000000 00:00000000 00000000     0        0 12345 1
           1: 0100007F:10035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12346 1
           2: 0100007F:0035 00000000:0000 FF 00000000:00000000 00:00000000 00000000     0        0 12347 1
        """
        let s = NetTableParser.parseInet(text, proto: .tcp)
        XCTAssertEqual(s.map(\.inode), [12347])
        XCTAssertEqual(s.first?.state, "255", "an unknown state is shown by number")
    }
}
