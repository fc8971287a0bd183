import XCTest
import LockscopeTestSupport
@testable import LockscopeCore

/// The tables against the kernel headers of the build machine.
final class SyscallTableTests: XCTestCase {
    /// Every `#define __NR_name N` in <asm/unistd_64.h> is in the x86_64 table with that number.
    func testX86_64NumbersMatchSystemHeader() throws {
        let path = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            try skip("\(path) not installed (linux-libc-dev)")
        }
        var checked = 0
        for line in text.split(separator: "\n") where line.hasPrefix("#define __NR_") {
            let f = line.split(separator: " ")
            guard f.count == 3, let n = Int(f[2]) else { continue }
            let name = String(f[1].dropFirst(5))
            XCTAssertEqual(SyscallTable.x86_64.number(of: name), n, name)
            XCTAssertEqual(SyscallTable.x86_64.name(of: n), name, "number \(n)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 300, "too few definitions parsed from \(path)")
        // Spot checks the incident depends on, independent of the header.
        XCTAssertEqual(SyscallTable.x86_64.number(of: "poll"), 7)
        XCTAssertEqual(SyscallTable.x86_64.number(of: "flock"), 73)
        XCTAssertEqual(SyscallTable.x86_64.number(of: "wait4"), 61)
        XCTAssertEqual(SyscallTable.x86_64.number(of: "restart_syscall"), 219)
    }

    /// The aarch64 table against <asm-generic/unistd.h> as arm64 configures it,
    /// evaluated by the C compiler (the header is full of conditionals and aliases).
    func testAArch64NumbersMatchGenericHeader() throws {
        guard let cc = which("cc") ?? which("gcc") ?? which("clang") else { try skip("no C compiler to evaluate <asm-generic/unistd.h>") }
        guard FileManager.default.fileExists(atPath: "/usr/include/asm-generic/unistd.h") else {
            try skip("<asm-generic/unistd.h> not installed")
        }
        let dir = try TempDir()
        let defs = ["-D__ARCH_WANT_RENAMEAT", "-D__ARCH_WANT_NEW_STAT", "-D__ARCH_WANT_SET_GET_RLIMIT",
                    "-D__ARCH_WANT_TIME32_SYSCALLS", "-D__ARCH_WANT_SYS_CLONE3", "-D__ARCH_WANT_MEMFD_SECRET"]
        let names = SyscallTable.aarch64.all.map(\.name)
        var src = "#include <asm-generic/unistd.h>\n#include <stdio.h>\nint main(void){\n"
        for n in names {
            src += "#ifdef __NR_\(n)\nprintf(\"%s %d\\n\", \"\(n)\", (int)(__NR_\(n)));\n#endif\n"
        }
        src += "return 0;}\n"
        try src.write(toFile: dir.file("t.c"), atomically: true, encoding: .utf8)
        let build = try runCommand([cc] + defs + ["-o", dir.file("t"), dir.file("t.c")], timeout: 60)
        XCTAssertEqual(build.exitCode, 0, build.stderr)
        let run = try runCommand([dir.file("t")])
        var checked = 0
        for line in run.stdout.split(separator: "\n") {
            let f = line.split(separator: " ")
            XCTAssertEqual(SyscallTable.aarch64.number(of: String(f[0])), Int(f[1]), String(f[0]))
            checked += 1
        }
        XCTAssertGreaterThan(checked, 280)
        XCTAssertNil(SyscallTable.aarch64.number(of: "poll"), "aarch64 has only ppoll")
        XCTAssertEqual(SyscallTable.aarch64.number(of: "flock"), 32)
    }

    /// A signature written for a name no table has is a typo.
    func testEverySignatureNamesARealSyscall() {
        for (name, _, _) in SyscallSignatures.specs {
            XCTAssertTrue(SyscallTable.x86_64.number(of: name) != nil || SyscallTable.aarch64.number(of: name) != nil,
                          "signature for unknown syscall \(name)")
        }
        XCTAssertEqual(Set(SyscallSignatures.specs.map(\.0)).count, SyscallSignatures.specs.count, "duplicate signature")
    }

    /// `SyscallTable` finds a number by binary search, and parses a signature only
    /// when a call is decoded: an unsorted list or a malformed spec would otherwise
    /// show only on the one call it concerns.
    func testNumbersAreSortedAndEverySignatureParses() {
        for (arch, calls) in [("x86_64", SyscallNumbers.x86_64), ("aarch64", SyscallNumbers.aarch64)] {
            XCTAssertTrue(zip(calls, calls.dropFirst()).allSatisfy { $0.0 < $1.0 }, "\(arch) numbers not strictly increasing")
        }
        for (name, spec, _) in SyscallSignatures.specs {
            XCTAssertNotNil(SyscallSignatures.parse(spec), "bad signature for \(name): \(spec)")
        }
        XCTAssertNil(SyscallSignatures.parse("fd"), "one word is not an argument")
        XCTAssertNil(SyscallSignatures.parse("fd fd, pointer buf"), "unknown kind")
        XCTAssertEqual(SyscallSignatures.parse("")?.count, 0)
        XCTAssertEqual(SyscallTable.x86_64.name(of: 450), "set_mempolicy_home_node")
        XCTAssertNil(SyscallTable.x86_64.name(of: 335), "gap before 424")
        XCTAssertNil(SyscallTable.x86_64.name(of: -1))
        XCTAssertEqual(SyscallTable.x86_64.all.map(\.number), SyscallNumbers.x86_64.map(\.0))
    }

    func testSignaturesAndClasses() throws {
        let poll = try XCTUnwrap(SyscallTable.x86_64[7])
        XCTAssertEqual(poll.name, "poll")
        XCTAssertEqual(poll.argumentCount, 3)
        XCTAssertEqual(poll.args?.map(\.kind), [.pollfds, .uint, .pollTimeoutMs])
        XCTAssertTrue(poll.classes.contains(.poll))
        XCTAssertTrue(poll.classes.contains(.blocking))
        XCTAssertTrue(try XCTUnwrap(SyscallTable.aarch64[32]).classes.contains(.lock))
        XCTAssertNil(SyscallTable.x86_64[100_000])
    }

    func testNames() {
        XCTAssertEqual(errnoName(4), "EINTR")
        XCTAssertEqual(errnoName(11), "EAGAIN")
        XCTAssertEqual(errnoName(512), "ERESTARTSYS")
        XCTAssertEqual(errnoName(9999), "E9999")
        XCTAssertEqual(signalName(19), "SIGSTOP")
        XCTAssertEqual(signalName(36), "SIGRTMIN+2")
    }
}
