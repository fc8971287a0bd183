import Foundation
import Glibc
import LockscopeTestSupport
import SystemPackage
import XCTest

/// A long-running process the test started (lockscope serve, prometheus, flock),
/// with stdout+stderr in a file; stopped by its pid only.
final class Background {
    let process = Process()
    let log: String

    init(_ argv: [String], log: String) throws {
        self.log = log
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? handle.close()
    }

    var pid: pid_t { process.processIdentifier }
    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// SIGTERM, then SIGKILL after `grace` seconds; returns the exit status (128+n if killed).
    @discardableResult
    func stop(grace: Double = 5) -> Int32 {
        if process.isRunning { kill(pid, SIGTERM) }
        if !waitUntil(timeout: grace, interval: 0.02, { !process.isRunning }) { kill(pid, SIGKILL) }
        process.waitUntilExit()
        return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    }

    deinit { if process.isRunning { stop(grace: 1) } }
}

struct HTTPResponse {
    var status: Int
    var headers: [String: String]
    var body: String
}

enum HTTP {
    static func connect(port: Int, timeout: Double = 10) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError.system(call: "socket", errno: Errno(rawValue: errno), context: "http") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard r == 0 else {
            let e = errno
            close(fd)
            throw TestSupportError.system(call: "connect", errno: Errno(rawValue: e), context: "127.0.0.1:\(port)")
        }
        return fd
    }

    static func send(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    static func readAll(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return out
    }

    static func parse(_ raw: [UInt8]) -> HTTPResponse? {
        let text = String(decoding: raw, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { return nil }
        let head = text[..<split.lowerBound].components(separatedBy: "\r\n")
        guard let statusLine = head.first, statusLine.hasPrefix("HTTP/1."),
              let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") else { return nil }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            if let c = line.firstIndex(of: ":") {
                headers[line[..<c].lowercased()] = line[line.index(after: c)...].trimmingCharacters(in: .whitespaces)
            }
        }
        var body = String(text[split.upperBound...])
        // Go's net/http (node_exporter, Prometheus) chunks a body larger than its 2 KiB
        // buffer: the sizes must come out, or a line split by one no longer matches.
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true,
           let headEnd = raw.indices.first(where: { raw[$0...].starts(with: [13, 10, 13, 10]) }),
           let decoded = dechunked(Array(raw[(headEnd + 4)...])) {
            body = String(decoding: decoded, as: UTF8.self)
        }
        return HTTPResponse(status: status, headers: headers, body: body)
    }

    /// RFC 9112 §7.1: `SIZE(hex)[;ext] CRLF DATA CRLF`…, ending with a zero size. Bytes,
    /// not characters: CR LF is one `Character`.
    static func dechunked(_ b: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        var i = 0
        while i < b.count {
            guard let lineEnd = b[i...].indices.first(where: { b[$0...].starts(with: [13, 10]) }) else { return nil }
            let field = String(decoding: b[i..<lineEnd].prefix { $0 != UInt8(ascii: ";") }, as: UTF8.self)
            guard let size = Int(field.trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
            if size == 0 { return out }
            let start = lineEnd + 2
            guard start + size + 2 <= b.count else { return nil }
            out += b[start..<(start + size)]
            i = start + size + 2
        }
        return nil
    }

    /// GET with `Connection: close`, read to EOF.
    static func get(port: Int, _ path: String, headers: [String: String] = [:]) throws -> HTTPResponse {
        let fd = try connect(port: port)
        defer { close(fd) }
        var req = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (k, v) in headers { req += "\(k): \(v)\r\n" }
        send(fd, req + "\r\n")
        guard let r = parse(readAll(fd)) else { throw TestSupportError.unexpected(what: "GET", detail: "unparseable response to \(path)") }
        return r
    }

    /// A port nothing listens on right now (bound and released; the tests run on loopback).
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

/// `lockscope serve --listen 127.0.0.1:0` and the port it printed.
func startServe(_ extra: [String] = [], dir: TempDir) throws -> (Background, Int) {
    let server = try Background([TestBinaries.lockscope, "serve", "--listen", "127.0.0.1:0"] + extra, log: dir.file("serve.log"))
    var port: Int?
    _ = waitUntil(timeout: 15, interval: 0.05) {
        if let line = server.output.split(separator: "\n").first(where: { $0.contains("serving http://127.0.0.1:") }),
           let p = line.split(separator: ":").last.flatMap({ Int($0.split(separator: "/").first ?? "") }) {
            port = p
        }
        return port != nil || !server.process.isRunning
    }
    guard let port else {
        server.stop()
        throw TestSupportError.unexpected(what: "serve", detail: "no listening line: \(server.output)")
    }
    return (server, port)
}

/// The text of `promtool check metrics` on `exposition` and its exit status.
func promtoolCheckMetrics(_ exposition: [UInt8], dir: TempDir) throws -> CommandResult {
    let path = dir.file("exposition-\(UInt32.random(in: 0...UInt32.max)).txt")
    _ = FileManager.default.createFile(atPath: path, contents: Data(exposition))
    return try runCommand(["/bin/sh", "-c", "exec promtool check metrics < \"$0\"", path], timeout: 30)
}

/// A process's resident set, from /proc/PID/status (kB).
func residentKB(_ pid: pid_t) -> Int? {
    guard let text = readProcText("/proc/\(pid)/status"),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
    return Int(line.split(separator: " ").dropFirst().first ?? "")
}
