import Foundation
import XCTest
@testable import LockscopeCore

/// The /proc/locks parser reads bytes; it must give what the `Character`-based parser
/// it replaced gave, line for line. `CharacterReference` is that parser, kept here as
/// the oracle, with one deliberate difference: the device and inode fields take digits
/// only, where Swift's integer parsing also took a sign ("+f", "-0"), which the kernel's
/// `"%02x:%02x:%lu"` never prints.
final class ProcLocksByteParserTests: XCTestCase {
    static let fuzzDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz")

    func testAgreesWithTheCharacterParserOnSeedsAndMutations() throws {
        continueAfterFailure = false  // the first disagreement says it all
        var seeds: [String] = [
            "1: FLOCK  ADVISORY  WRITE 3855 fe:00:16220393 0 EOF\n1: -> FLOCK  ADVISORY  WRITE 3859 fe:00:16220393 0 EOF\n1:  -> FLOCK  ADVISORY  WRITE 3861 fe:00:16220393 0 EOF\n",
            "3: OFDLCK ADVISORY  READ -1 fe:00:16015361 100 199\n4: POSIX  *NOINODE* WRITE 12 <none>:0 0 EOF\n",
            "7: LEASE  BREAKER   WRITE 3002 103:02:79 0 EOF\n11: UNKNOWN UNKNOWN  WRITE 46 fd:00:3 0 EOF\n",
            "9223372036854775807: POSIX ADVISORY READ 2147483647 FF:0A:18446744073709551615 -9223372036854775808 9223372036854775807\n",
        ]
        for dir in ["locks", "identity"] {
            let d = Self.fuzzDir.appendingPathComponent("corpus/\(dir)")
            for name in try FileManager.default.contentsOfDirectory(atPath: d.path).sorted() {
                seeds.append(String(decoding: try Data(contentsOf: d.appendingPathComponent(name)), as: UTF8.self))
            }
        }
        XCTAssertGreaterThan(seeds.count, 10)
        // ASCII only, no CR: a CR LF pair is one `Character`, which the reference cannot split at LF.
        let alphabet = Array(" \t:->\n0123456789abcdefxEOFLCKPSIXWRTEADUN<none>-9".utf8)
        var rng = SplitMix(seed: 0x10c5c0de)
        var compared = 0
        for seed in seeds {
            var bytes = Array(seed.utf8.filter { $0 != 13 && $0 < 128 })
            for _ in 0..<400 {
                check(String(decoding: bytes, as: UTF8.self))
                compared += 1
                guard !bytes.isEmpty else { bytes = Array(seed.utf8.prefix(40)); continue }
                let at = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 4 {
                case 0: bytes.remove(at: at)
                case 1: bytes.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: at)
                case 2: bytes[at] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                default: bytes = Array(seed.utf8.filter { $0 != 13 && $0 < 128 })  // start again from the seed
                }
            }
        }
        XCTAssertGreaterThan(compared, 4000)
    }

    private func check(_ text: String, file: StaticString = #filePath, line: UInt = #line) {
        let got = ProcLocksParser.parse(text), want = CharacterReference.parse(text)
        XCTAssertEqual(got.locks, want.locks, text, file: file, line: line)
        XCTAssertEqual(got.rejected, want.rejected, text, file: file, line: line)
        for l in text.split(separator: "\n") {
            XCTAssertEqual(ProcLocksParser.parseLine(l), CharacterReference.parseLine(l), String(l), file: file, line: line)
            XCTAssertEqual(FileIdentity(parsing: l), CharacterReference.identity(l), String(l), file: file, line: line)
        }
    }
}

/// A deterministic generator, so a disagreement reproduces.
private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The parser as it was before it read bytes (the oracle above).
private enum CharacterReference {
    static func parse(_ text: String) -> (locks: [KernelLock], rejected: [String]) {
        var locks: [KernelLock] = []
        var rejected: [String] = []
        var stack: [Int] = []
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let line = parseLine(raw) else {
                rejected.append(String(raw))
                continue
            }
            if line.depth == 0 {
                locks.append(KernelLock(lock: line, waiters: [], waiterParents: []))
                stack.removeAll(keepingCapacity: true)
                continue
            }
            guard !locks.isEmpty else {
                rejected.append(String(raw))
                continue
            }
            let li = locks.count - 1
            let depth = min(line.depth, stack.count + 1)
            stack.removeSubrange((depth - 1)...)
            let parent: Int? = depth == 1 ? nil : stack[depth - 2]
            var normalized = line
            normalized.depth = depth
            locks[li].waiters.append(normalized)
            locks[li].waiterParents.append(parent)
            stack.append(locks[li].waiters.count - 1)
        }
        return (locks, rejected)
    }

    static func parseLine(_ raw: Substring) -> LockLine? {
        var rest = raw[...]
        guard let colon = rest.firstIndex(of: ":"), let id = Int(rest[rest.startIndex..<colon]) else { return nil }
        rest = rest[rest.index(after: colon)...]
        var spaces = 0
        while let c = rest.first, c == " " {
            spaces += 1
            rest = rest.dropFirst()
        }
        var depth = 0
        if rest.hasPrefix("->") {
            depth = max(1, spaces)
            rest = rest.dropFirst(2)
        }
        let tokens = rest.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard tokens.count >= 7 else { return nil }
        guard let kind = LockKind(rawValue: String(tokens[0])) else { return nil }
        let mode = String(tokens[1])
        guard let access = LockAccess(rawValue: String(tokens[2])), let pid = Int32(tokens[3]) else { return nil }
        var file: FileIdentity? = nil
        if tokens[4] != "<none>:0" {
            guard let f = identity(tokens[4]) else { return nil }
            file = f
        }
        guard let start = Int64(tokens[5]) else { return nil }
        let end: Int64?
        if tokens[6] == "EOF" {
            end = nil
        } else if let e = Int64(tokens[6]) {
            end = e
        } else {
            return nil
        }
        return LockLine(id: id, depth: depth, kind: kind, mode: mode, access: access, pid: pid, file: file, start: start, end: end)
    }

    static func identity(_ text: Substring) -> FileIdentity? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isHexDigit) }),
              let maj = UInt32(parts[0], radix: 16), let min = UInt32(parts[1], radix: 16),
              parts[2].allSatisfy(\.isASCII), let ino = UInt64(parts[2], radix: 10)
        else { return nil }
        return FileIdentity(major: maj, minor: min, inode: ino)
    }
}
