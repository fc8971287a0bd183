import Foundation
import XCTest
import Glibc
import LockscopeTestSupport

/// What ships besides the binary: the man page (lint-clean, naming every flag the
/// commands define), the completion scripts (valid for bash, zsh and fish; files,
/// kinds and pids completed), the version string, and the .deb round trip.
final class ShippingTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static var manPage: String { root + "/docs/man/lockscope.1" }

    // MARK: man page

    func testManPageLintsWithoutWarnings() throws {
        try requireExecutable("groff")
        let groff = try runCommand([try XCTUnwrap(which("groff")), "-ww", "-mandoc", "-z", Self.manPage])
        XCTAssertEqual(groff.exitCode, 0)
        XCTAssertEqual(groff.stderr, "", "groff -ww")
        if let man = which("man") {
            let r = try runCommand([man, "--warnings", "-l", Self.manPage], environment: ["MANWIDTH": "80", "PATH": "/usr/bin:/bin", "MANPAGER": "cat"])
            XCTAssertEqual(r.exitCode, 0, r.stderr)
            XCTAssertEqual(r.stderr, "", "man --warnings")
            XCTAssertTrue(r.stdout.contains("EXIT STATUS"))
            XCTAssertTrue(r.stdout.contains("EXAMPLES"))
        }
        if let mandoc = which("mandoc") {
            let r = try runCommand([mandoc, "-T", "lint", "-W", "warning", Self.manPage])
            // Only the man database's freshness is outside the page's control.
            let complaints = (r.stdout + r.stderr).split(separator: "\n").filter { !$0.contains("mandoc.db") }
            XCTAssertEqual(complaints, [], "mandoc -T lint")
        }
    }

    /// The committed page is generated from the command definitions (scripts/man): it
    /// must name every subcommand and every flag their --help shows.
    func testManPageIsCurrentWithTheCommands() throws {
        let page = try String(contentsOfFile: Self.manPage, encoding: .utf8)
        for section in [".Sh \"EXIT STATUS\"", ".Sh EXAMPLES", ".Sh SEE ALSO", ".Sh DESCRIPTION"] {
            XCTAssertTrue(page.contains(section), section)
        }
        let subcommands = try CLI.run(["--help"]).stdout.split(separator: "\n")
            .drop { !$0.hasPrefix("SUBCOMMANDS:") }.dropFirst()
            .prefix { !$0.isEmpty }.filter { $0.hasPrefix("  ") && !$0.hasPrefix("   ") && !$0.hasPrefix("  See") }  // not wrapped text
            .compactMap { $0.split(separator: " ").first.map(String.init) }
        XCTAssertTrue(subcommands.contains("list"), "\(subcommands)")
        for sub in subcommands where sub != "help" {
            XCTAssertTrue(page.contains(".It Em \(sub)"), "subcommand \(sub) missing: run scripts/man")
            let help = try CLI.run([sub, "--help"])
            let flags = Set(help.stdout.split(whereSeparator: { " ,\n[]()=".contains($0) })
                .filter { $0.hasPrefix("--") && $0.count > 2 && $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" } }
                .map(String.init))
            XCTAssertFalse(flags.isEmpty, sub)
            for flag in flags where flag != "--help" {
                let mdoc = String(flag.dropFirst())  // `.It Fl -json`, `.It Fl p , -pid`
                XCTAssertTrue(page.contains("Fl " + mdoc + "\n") || page.contains("Fl " + mdoc + " ") || page.contains(" , " + mdoc),
                              "\(sub) \(flag) is not in docs/man/lockscope.1: run scripts/man")
            }
        }
    }

    // MARK: completions

    func testCompletionScriptsParseAndCompleteFilesKindsAndPids() throws {
        for (shell, check) in [("bash", ["-n"]), ("zsh", ["-n"]), ("fish", ["-n"])] {
            let script = try CLI.run(["--generate-completion-script", shell])
            XCTAssertEqual(script.exitCode, 0, script.stderr)
            let dir = try TempDir(prefix: "lockscope-comp.")
            let file = dir.file("lockscope.\(shell)")
            try script.stdout.write(toFile: file, atomically: true, encoding: .utf8)
            guard let exe = which(shell) else {
                if shell == "bash" { XCTFail("bash missing") }
                print("skip: \(shell) is not installed (scripts/setup installs it)")
                continue
            }
            let r = try runCommand([exe] + check + [file])
            XCTAssertEqual(r.exitCode, 0, "\(shell) -n: \(r.stderr)")
            // --kind values, pid completion from /proc, and list's column names.
            XCTAssertTrue(script.stdout.contains("ofdlck") && script.stdout.contains("access"), "\(shell): --kind values")
            XCTAssertTrue(script.stdout.contains("ls /proc"), "\(shell): pids for trace and --pid")
            XCTAssertTrue(script.stdout.contains("MAJ:MIN"), "\(shell): -o column names")
        }
        let bash = try CLI.run(["--generate-completion-script", "bash"]).stdout
        XCTAssertTrue(bash.contains("-f"), "files for FILE arguments")
        let zsh = try CLI.run(["--generate-completion-script", "zsh"]).stdout
        XCTAssertTrue(zsh.contains("_files"), "files for FILE arguments")
    }

    // MARK: version

    /// `-V` is `--version`; both name the release and the commit built from.
    func testVersionNamesReleaseAndRevision() throws {
        let long = try CLI.run(["--version"])
        let short = try CLI.run(["-V"])
        XCTAssertEqual(long.exitCode, 0)
        XCTAssertEqual(short.exitCode, 0, short.stderr)
        XCTAssertEqual(long.stdout, short.stdout)
        let git = try runCommand(["/usr/bin/git", "-C", Self.root, "rev-parse", "HEAD"])
        guard git.exitCode == 0 else { try skip("not a git checkout: \(git.stderr)") }
        XCTAssertTrue(long.stdout.hasPrefix("0."), long.stdout)
        // The revision is the one the binary was built from: HEAD in CI's fresh clone, an
        // ancestor of HEAD when something was committed after the last build.
        let rev = try XCTUnwrap(long.stdout.split(separator: " ").dropFirst(2).first.map {
            String($0.prefix { $0.isHexDigit })
        }, long.stdout)
        XCTAssertEqual(rev.count, 12, long.stdout)
        let ancestor = try runCommand(["/usr/bin/git", "-C", Self.root, "merge-base", "--is-ancestor", rev, "HEAD"])
        XCTAssertEqual(ancestor.exitCode, 0, "\(long.stdout) names no commit of this checkout's history")
    }

    // MARK: .deb

    /// scripts/package-deb, then dpkg -i, the installed tool works and has its man
    /// page, then dpkg -r leaves nothing behind. The package holds the release binary of
    /// this very tree: package-deb brings .build/ship up to date (`swift test` holds the
    /// lock of .build; the static build is kept there for the next run, so only changed
    /// sources recompile), and the packaged `--version` must name this tree's revision.
    func testDebInstallsWorksAndRemovesCleanly() throws {
        try requireRoot("dpkg -i installs into /usr")
        try requireExecutable("dpkg-deb")
        guard !FileManager.default.fileExists(atPath: "/var/lib/dpkg/info/lockscope.list") else {
            try skip("a lockscope package is already installed on this machine; not touching it")
        }
        let out = try TempDir(prefix: "lockscope-deb.")
        var env = ProcessInfo.processInfo.environment
        env["LOCKSCOPE_SCRATCH"] = Self.root + "/.build/ship"
        env["LOCKSCOPE_BINARY"] = nil
        let built = try runCommand([Self.root + "/scripts/package-deb", out.path], timeout: 1800, environment: env)
        XCTAssertEqual(built.exitCode, 0, built.stderr)
        let deb = built.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(deb.hasSuffix(".deb"), built.stdout)
        let fields = try runCommand(["/usr/bin/dpkg-deb", "--field", deb]).stdout
        XCTAssertTrue(fields.contains("Package: lockscope"), fields)
        XCTAssertFalse(fields.contains("Depends:"), "a static binary depends on nothing: \(fields)")
        let contents = try runCommand(["/usr/bin/dpkg-deb", "--contents", deb]).stdout
        for path in ["./usr/bin/lockscope", "./usr/share/man/man1/lockscope.1.gz",
                     "./usr/share/bash-completion/completions/lockscope", "./usr/share/zsh/site-functions/_lockscope",
                     "./usr/share/fish/vendor_completions.d/lockscope.fish", "./usr/share/doc/lockscope/README.md"] {
            XCTAssertTrue(contents.contains(path), "\(path) not in the package")
        }

        let path = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        let install = try runCommand(["/usr/bin/dpkg", "-i", deb], timeout: 120, environment: path)
        defer { _ = try? runCommand(["/usr/bin/dpkg", "-r", "lockscope"], timeout: 120, environment: path) }
        XCTAssertEqual(install.exitCode, 0, install.stderr)
        let version = try runCommand(["/usr/bin/lockscope", "--version"])
        XCTAssertEqual(version.exitCode, 0, version.stderr)
        XCTAssertTrue(version.stdout.contains("(git "), version.stdout)
        // Plugins/GitRevision's own question, asked of this tree now: a stale binary
        // (built before the last commit or edit) names another revision.
        let tree = try runCommand(["/usr/bin/git", "-C", Self.root, "describe", "--always", "--dirty", "--abbrev=12", "--exclude", "*"])
        if tree.exitCode == 0 {
            XCTAssertTrue(version.stdout.contains("(git " + tree.stdout.trimmingCharacters(in: .whitespacesAndNewlines) + ")"),
                          "packaged \(version.stdout) is not this tree's build")
        }
        let man = try runCommand(["/usr/bin/man", "-w", "lockscope"], environment: path)
        XCTAssertEqual(man.exitCode, 0, man.stderr)
        XCTAssertTrue(man.stdout.hasPrefix("/usr/share/man/man1/lockscope.1"), man.stdout)
        let files = try runCommand(["/usr/bin/dpkg-query", "-L", "lockscope"]).stdout
            .split(separator: "\n").map(String.init).filter { $0.contains("lockscope") }

        let remove = try runCommand(["/usr/bin/dpkg", "-r", "lockscope"], timeout: 120, environment: path)
        XCTAssertEqual(remove.exitCode, 0, remove.stderr)
        XCTAssertFalse(files.isEmpty)
        for f in files { XCTAssertFalse(FileManager.default.fileExists(atPath: f), "\(f) left behind by dpkg -r") }
        let status = try runCommand(["/usr/bin/dpkg-query", "-W", "-f", "${Status}", "lockscope"])
        XCTAssertFalse(status.stdout.contains("installed") && !status.stdout.contains("not-installed")
                       && !status.stdout.contains("config-files"), status.stdout)
    }
}
