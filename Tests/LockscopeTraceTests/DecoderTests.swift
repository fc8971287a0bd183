import XCTest
import LockscopeCore
@testable import LockscopeTrace

/// Decoding on fake memory: every argument kind the incident needs.
final class DecoderTests: XCTestCase {
    /// Fake tracee memory: address → bytes.
    final class FakeMemory {
        var regions: [(UInt64, [UInt8])] = []
        func put(_ address: UInt64, _ bytes: [UInt8]) { regions.append((address, bytes)) }
        func read(_ address: UInt64, _ count: Int) -> Result<[UInt8], RemoteReadError> {
            for (base, bytes) in regions where address >= base && address + UInt64(count) <= base + UInt64(bytes.count) {
                let off = Int(address - base)
                return .success(Array(bytes[off..<off + count]))
            }
            return .failure(RemoteReadError(errno: .badAddress))
        }
    }

    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
        (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }
    }

    let udp = NetSocket(proto: .udp, inode: 77, local: NetEndpoint(address: "127.0.0.1", port: 56750),
                        remote: NetEndpoint(address: "127.0.0.53", port: 53), state: "ESTABLISHED")

    func decoder(_ mem: FakeMemory, arch: SyscallArch = .x86_64) -> SyscallDecoder {
        let udp = self.udp
        return SyscallDecoder(table: .forArch(arch), readMemory: { mem.read($0, $1) }, describeFd: { fd in
            switch fd {
            case 3: return .path("/run/xtables.lock")
            case 4: return .socket(udp)
            default: return nil
            }
        })
    }

    /// `/proc/PID/syscall` of the DNS-stuck child: `7 0x7fff… 0x1 0xbb8`.
    func testPollOnUDPSocketWithTimeout() throws {
        let mem = FakeMemory()
        mem.put(0x7fff_0000, Self.le(Int32(4)) + Self.le(UInt16(1)) + Self.le(UInt16(0)))
        let c = decoder(mem).decode(number: 7, args: [0x7fff_0000, 1, 0xbb8, 0, 0, 0])
        XCTAssertEqual(c.name, "poll")
        XCTAssertEqual(c.timeout, .relative(nanoseconds: 3_000_000_000))
        XCTAssertEqual(c.timeout?.milliseconds, 3000)
        XCTAssertEqual(c.fds.map(\.fd), [4])
        XCTAssertEqual(c.fds.first?.what?.socket?.remote, NetEndpoint(address: "127.0.0.53", port: 53))
        guard case .pollFds(let p)? = c.argument("fds") else { return XCTFail("fds: \(c.args)") }
        XCTAssertEqual(p.first?.events, 1)
        XCTAssertEqual(pollEventNames(p[0].events), ["POLLIN"])
        XCTAssertEqual(c.argument("nfds"), .uint(1))
    }

    func testPollInfiniteAndUnreadable() {
        let c = decoder(FakeMemory()).decode(number: 7, args: [0x1000, 2, UInt64(bitPattern: -1), 0, 0, 0])
        XCTAssertEqual(c.timeout, .infinite)
        XCTAssertEqual(c.argument("fds"), .unreadable(address: 0x1000, errno: 14))
    }

    /// A waiter: `73 0x3 0x2` = flock(fd 3, LOCK_EX).
    func testFlock() throws {
        let c = decoder(FakeMemory()).decode(number: 73, args: [3, 2, 0, 0, 0, 0])
        XCTAssertEqual(c.name, "flock")
        XCTAssertEqual(c.flockOperation?.kind, .exclusive)
        XCTAssertEqual(c.flockOperation?.nonBlocking, false)
        XCTAssertEqual(c.fds, [ResolvedFd(fd: 3, what: .path("/run/xtables.lock"))])
        XCTAssertTrue(c.classes.contains(.lock))
        XCTAssertEqual(FlockOperation(raw: 6).kind, .exclusive)
        XCTAssertTrue(FlockOperation(raw: 6).nonBlocking)
        XCTAssertEqual(FlockOperation(raw: 8).kind, .unlock)
    }

    func testFcntlSetLockWait() throws {
        let mem = FakeMemory()
        // struct flock { short l_type=F_WRLCK; short l_whence=SEEK_SET; pad; off_t start=100; off_t len=10; pid_t pid=0 }
        mem.put(0x5000, Self.le(Int16(1)) + Self.le(Int16(0)) + [0, 0, 0, 0] + Self.le(Int64(100)) + Self.le(Int64(10)) + Self.le(Int32(0)) + [0, 0, 0, 0])
        let c = decoder(mem).decode(number: 72, args: [3, 7, 0x5000, 0, 0, 0])
        let f = try XCTUnwrap(c.fcntl)
        XCTAssertEqual(f.command.name, "F_SETLKW")
        XCTAssertTrue(f.command.waitsForLock)
        XCTAssertEqual(f.lock, FlockRecord(type: 1, whence: 0, start: 100, length: 10, pid: 0))
        XCTAssertEqual(f.lock?.typeName, "F_WRLCK")
        let ofd = decoder(mem).decode(number: 72, args: [3, 38, 0x5000, 0, 0, 0])
        XCTAssertEqual(ofd.fcntl?.command.name, "F_OFD_SETLKW")
        let getfl = decoder(mem).decode(number: 72, args: [3, 3, 0, 0, 0, 0])
        XCTAssertEqual(getfl.fcntl?.command.name, "F_GETFL")
        XCTAssertNil(getfl.fcntl?.lock)
    }

    func testWait4() {
        XCTAssertEqual(decoder(FakeMemory()).decode(number: 61, args: [4242, 0x10, 0, 0, 0, 0]).waitTarget, .child(4242))
        XCTAssertEqual(decoder(FakeMemory()).decode(number: 61, args: [UInt64(bitPattern: -1), 0, 0, 0, 0, 0]).waitTarget, .anyChild)
        XCTAssertEqual(decoder(FakeMemory()).decode(number: 61, args: [UInt64(bitPattern: -77), 0, 0, 0, 0, 0]).waitTarget, .processGroup(77))
        // waitid(P_PID, 99, …, WEXITED)
        let w = decoder(FakeMemory()).decode(number: 247, args: [1, 99, 0, 4, 0, 0])
        XCTAssertEqual(w.waitTarget, .child(99))
        XCTAssertEqual(w.argument("options"), .flags(FlagSet(raw: 4, names: ["WEXITED"], unknown: 0)))
    }

    func testNanosleepAndClockNanosleep() {
        let mem = FakeMemory()
        mem.put(0x6000, Self.le(Int64(5)) + Self.le(Int64(0)))
        mem.put(0x7000, Self.le(Int64(1000)) + Self.le(Int64(500)))
        let n = decoder(mem).decode(number: 35, args: [0x6000, 0, 0, 0, 0, 0])
        XCTAssertEqual(n.name, "nanosleep")
        XCTAssertEqual(n.timeout?.seconds, 5)
        XCTAssertTrue(n.classes.contains(.sleep))
        // glibc's nanosleep() is clock_nanosleep(CLOCK_REALTIME, 0, req, rem).
        let c = decoder(mem).decode(number: 230, args: [0, 0, 0x6000, 0, 0, 0])
        XCTAssertEqual(c.timeout, .relative(nanoseconds: 5_000_000_000))
        XCTAssertEqual(c.argument("clockid"), .clock(0))
        let abs = decoder(mem).decode(number: 230, args: [1, 1, 0x7000, 0, 0, 0])
        XCTAssertEqual(abs.timeout, .absolute(clock: 1, nanoseconds: 1_000_000_000_500))
    }

    func testFutex() throws {
        let mem = FakeMemory()
        mem.put(0x8000, Self.le(UInt32(2)))
        // FUTEX_WAIT_PRIVATE, NULL timeout
        let c = decoder(mem).decode(number: 202, args: [0x8000, 128, 2, 0, 0, 0])
        let f = try XCTUnwrap(c.futex)
        XCTAssertEqual(f.operation.command, "FUTEX_WAIT")
        XCTAssertTrue(f.operation.isPrivate)
        XCTAssertTrue(f.operation.isWait)
        XCTAssertEqual(f.address, 0x8000)
        XCTAssertEqual(f.value, 2)
        XCTAssertEqual(c.timeout, .infinite)
        // FUTEX_WAIT_BITSET|PRIVATE|CLOCK_REALTIME with an absolute deadline.
        mem.put(0x9000, Self.le(Int64(7)) + Self.le(Int64(0)))
        let b = decoder(mem).decode(number: 202, args: [0x8000, 9 | 128 | 256, 2, 0x9000, 0, 0xffff_ffff])
        XCTAssertEqual(b.timeout, .absolute(clock: 0, nanoseconds: 7_000_000_000))
        // FUTEX_WAKE: the fourth argument is a count, not a pointer.
        let w = decoder(mem).decode(number: 202, args: [0x8000, 1 | 128, 1, 0, 0, 0])
        XCTAssertEqual(w.argument("timeout"), .uint(0))
        XCTAssertNil(w.timeout)
    }

    func testSockaddrs() {
        // sockaddr_in 127.0.0.53:53
        let in4: [UInt8] = [2, 0, 0, 53, 127, 0, 0, 53] + [UInt8](repeating: 0, count: 8)
        XCTAssertEqual(SyscallDecoder.sockaddr(in4), .inet(NetEndpoint(address: "127.0.0.53", port: 53)))
        var in6: [UInt8] = [10, 0, 0x1f, 0x90, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 16) + [0, 0, 0, 0]
        in6[23] = 1
        XCTAssertEqual(SyscallDecoder.sockaddr(in6), .inet6(NetEndpoint(address: "::1", port: 8080), scopeID: 0))
        XCTAssertEqual(SyscallDecoder.sockaddr([1, 0] + Array("/run/x.sock".utf8) + [0]), .unix("/run/x.sock"))
        XCTAssertEqual(SyscallDecoder.sockaddr([1, 0, 0] + Array("abstract".utf8)), .unix("@abstract"))
        // connect(fd 4, {AF_INET 10.0.0.1:53}, 16)
        let mem = FakeMemory()
        mem.put(0xa000, [2, 0, 0, 53, 10, 0, 0, 1] + [UInt8](repeating: 0, count: 8))
        let c = decoder(mem).decode(number: 42, args: [4, 0xa000, 16, 0, 0, 0])
        XCTAssertEqual(c.socketAddress?.endpoint, NetEndpoint(address: "10.0.0.1", port: 53))
        XCTAssertEqual(c.fds.first?.what?.socket?.proto, .udp)
    }

    func testSelectFdSetAndTimeval() {
        let mem = FakeMemory()
        var set = [UInt8](repeating: 0, count: 8)
        set[0] = 0b0001_1000  // fds 3 and 4
        mem.put(0xb000, set)
        mem.put(0xc000, Self.le(Int64(2)) + Self.le(Int64(500_000)))
        let c = decoder(mem).decode(number: 23, args: [5, 0xb000, 0, 0, 0xc000, 0])
        XCTAssertEqual(c.fds.map(\.fd), [3, 4])
        XCTAssertEqual(c.timeout?.milliseconds, 2500)
        XCTAssertEqual(c.argument("writefds"), .pointer(0))
    }

    func testPathsFlagsAndUnknownCalls() {
        let mem = FakeMemory()
        mem.put(0xd000, Array("/etc/resolv.conf".utf8) + [UInt8](repeating: 0, count: 256))
        let c = decoder(mem).decode(number: 257, args: [UInt64(bitPattern: -100), 0xd000, 0o2000000, 0, 0, 0])
        XCTAssertEqual(c.argument("dirfd"), .atFdcwd)
        XCTAssertEqual(c.argument("pathname"), .string("/etc/resolv.conf", truncated: false))
        XCTAssertEqual(c.argument("flags"), .flags(FlagSet(raw: 0o2000000, names: ["O_RDONLY", "O_CLOEXEC"], unknown: 0)))
        // aarch64 bit layout differs: 0o40000 is O_DIRECTORY there, O_DIRECT on x86_64.
        XCTAssertEqual(SyscallDecoder.openFlags(0o40000, arch: .aarch64).names, ["O_RDONLY", "O_DIRECTORY"])
        XCTAssertEqual(SyscallDecoder.openFlags(0o40000, arch: .x86_64).names, ["O_RDONLY", "O_DIRECT"])
        let u = decoder(mem).decode(number: 9999, args: [1, 2])
        XCTAssertEqual(u.name, "syscall_9999")
        XCTAssertEqual(u.args.count, 6)
        XCTAssertEqual(u.raw, [1, 2, 0, 0, 0, 0])
    }

    func testAArch64Decoding() {
        // aarch64: ppoll = 73, flock = 32.
        let mem = FakeMemory()
        mem.put(0x1000, Self.le(Int32(4)) + Self.le(UInt16(1)) + Self.le(UInt16(0)))
        mem.put(0x2000, Self.le(Int64(3)) + Self.le(Int64(0)))
        let c = decoder(mem, arch: .aarch64).decode(number: 73, args: [0x1000, 1, 0x2000, 0, 8, 0])
        XCTAssertEqual(c.name, "ppoll")
        XCTAssertEqual(c.timeout?.seconds, 3)
        XCTAssertEqual(c.fds.map(\.fd), [4])
        XCTAssertEqual(decoder(mem, arch: .aarch64).decode(number: 32, args: [3, 2, 0, 0, 0, 0]).flockOperation?.kind, .exclusive)
    }
}
