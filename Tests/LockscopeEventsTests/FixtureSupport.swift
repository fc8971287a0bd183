import Foundation
import LockscopeCore
@testable import LockscopeEvents

/// Fixtures are read from the source tree.
func fixtureDirectory(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name)").path
}

/// Every `SYSTEM-EVENT.format` file of a fixture directory, parsed.
func fixtureFormats(_ name: String) throws -> [TracepointName: TracepointFormat] {
    let dir = fixtureDirectory(name)
    var out: [TracepointName: TracepointFormat] = [:]
    for file in try FileManager.default.contentsOfDirectory(atPath: dir) where file.hasSuffix(".format") {
        let parts = file.dropLast(7).split(separator: "-", maxSplits: 1)
        let text = try String(contentsOfFile: dir + "/" + file, encoding: .utf8)
        out[TracepointName(String(parts[0]), String(parts[1]))] = try TracepointFormat.parse(text)
    }
    return out
}

/// `records.txt`: `TIME CPU PID TID RAWHEX` per line.
func fixtureRecords(_ name: String) throws -> [(SampleHeader, [UInt8])] {
    let text = try String(contentsOfFile: fixtureDirectory(name) + "/records.txt", encoding: .utf8)
    return text.split(separator: "\n").map { line in
        let f = line.split(separator: " ")
        let hex = Array(f[4].utf8)
        var bytes: [UInt8] = []
        var i = 0
        while i + 1 < hex.count {
            bytes.append(UInt8(String(decoding: hex[i...(i + 1)], as: UTF8.self), radix: 16)!)
            i += 2
        }
        return (SampleHeader(time: UInt64(f[0])!, cpu: UInt32(f[1])!, pid: Int32(f[2])!, tid: Int32(f[3])!), bytes)
    }
}

/// The fixture's records decoded with its own formats.
func fixtureEvents(_ name: String) throws -> [KernelEvent] {
    let decoder = try EventDecoder(formats: try fixtureFormats(name))
    return try fixtureRecords(name).compactMap { h, bytes in
        bytes.withUnsafeBytes { decoder.decode(h, raw: $0) }
    }
}
