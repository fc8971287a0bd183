#if canImport(Glibc)
import Glibc
#endif

/// Writing an exposition where node_exporter's textfile collector reads it: into a
/// temporary file in the same directory, then `rename()` over the target, so a reader
/// sees the old file or the new one, never half of one. The temporary name starts
/// with a dot and does not end in `.prom`, so the collector's `*.prom` glob skips it.
public enum AtomicFile {
    /// Why the file could not be written (path and errno of the failing step).
    public struct WriteError: Error, Sendable, CustomStringConvertible {
        public var path: String
        public var step: String
        public var errno: Int32
        public var description: String { "cannot write \(path): \(step): \(String(cString: strerror(errno)))" }
    }

    public static func write(_ bytes: [UInt8], to path: String) throws(WriteError) {
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[..<$0]) } ?? "."
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard !base.isEmpty else { throw WriteError(path: path, step: "not a file name", errno: EISDIR) }
        let temp = (dir.isEmpty ? "" : dir + "/") + "." + base + ".tmp-\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        if fd < 0 { throw WriteError(path: path, step: "create \(temp)", errno: Glibc.errno) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { b in b.baseAddress.map { Glibc.write(fd, $0 + offset, b.count - offset) } ?? 0 }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                let e = Glibc.errno
                close(fd)
                unlink(temp)
                throw WriteError(path: path, step: "write", errno: e)
            }
            offset += n
        }
        if close(fd) != 0 {
            let e = Glibc.errno
            unlink(temp)
            throw WriteError(path: path, step: "close", errno: e)
        }
        if rename(temp, path) != 0 {
            let e = Glibc.errno
            unlink(temp)
            throw WriteError(path: path, step: "rename", errno: e)
        }
    }
}

/// `--listen ADDR:PORT`: `127.0.0.1:9743`, `[::1]:9743`, `0.0.0.0:9743`, `localhost:0`.
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    /// The default: loopback only; binding elsewhere is the user's explicit choice.
    public static let defaultValue = ListenAddress(host: "127.0.0.1", port: 9743)

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Nil for anything but HOST:PORT with a port in 0…65535 (0: any free port).
    public init?(parsing text: String) {
        var host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return nil }  // bare IPv6 needs brackets
        }
        guard !host.isEmpty, host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == ":" || $0 == "_" }),
              !portText.isEmpty, portText.allSatisfy(\.isASCII), portText.allSatisfy(\.isNumber), portText.count <= 5,
              let port = Int(portText), port <= 65535 else { return nil }
        self.host = String(host)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
