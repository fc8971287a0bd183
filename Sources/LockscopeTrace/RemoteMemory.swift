import CLockscopeTrace
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Reads another process's memory with `process_vm_readv` (no stop, no ptrace
/// attach; needs the same ptrace access as /proc/PID/mem). One reusable buffer.
public struct RemoteMemory {
    public let pid: Int32
    private var buffer: [UInt8]

    public init(pid: Int32) {
        self.pid = pid
        buffer = [UInt8](repeating: 0, count: 4096)
    }

    /// Reads exactly `count` bytes at `address`, or returns the errno.
    public mutating func read(_ address: UInt64, count: Int) -> Result<[UInt8], RemoteReadError> {
        if address == 0 { return .failure(RemoteReadError(errno: .badAddress)) }
        if buffer.count < count { buffer = [UInt8](repeating: 0, count: count) }
        let pid = self.pid
        let got = buffer.withUnsafeMutableBytes { cls_process_vm_read(pid, $0.baseAddress!, count, address) }
        if got < 0 { return .failure(RemoteReadError(errno: Errno(rawValue: errno))) }
        if got < count { return .failure(RemoteReadError(errno: .badAddress)) }
        return .success(Array(buffer[0..<count]))
    }
}

public struct RemoteReadError: Error, Sendable, Hashable {
    public var errno: Errno
}

extension Array where Element == UInt8 {
    @inline(__always) func le<T: FixedWidthInteger>(_ offset: Int, as: T.Type) -> T {
        var v: T = 0
        for i in 0..<MemoryLayout<T>.size { v |= T(truncatingIfNeeded: self[offset + i]) << (8 * i) }
        return v
    }
}
