import Foundation
import Glibc
import XCTest
@testable import LockscopeCore

/// The never-hang building blocks without FUSE (DeadFilesystemTests has the real thing):
/// a FIFO with no writer blocks open() the way a dead mount blocks a path walk.
final class CarefulTests: XCTestCase {
    func fifo() throws -> (dir: String, path: String) {
        var template = Array("/tmp/lockscope-careful.XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else { throw XCTSkip("mkdtemp") }
        let dir = String(cString: template)
        let path = dir + "/fifo"
        XCTAssertEqual(mkfifo(path, 0o600), 0)
        return (dir, path)
    }

    func testReadOfABlockingFileGivesUpAtTheDeadline() throws {
        let (dir, path) = try fifo()
        defer { unlink(path); rmdir(dir) }
        let start = Date()
        let r = Careful.read(path, timeout: 0.3)
        let took = Date().timeIntervalSince(start)
        XCTAssertEqual(r, .failure(.timedOut))
        XCTAssertLessThan(took, 1.0, "the deadline is 0.3 s")
    }

    func testOpenOfABlockingFileGivesUpAtTheDeadline() throws {
        let (dir, path) = try fifo()
        defer { unlink(path); rmdir(dir) }
        guard case .failure(.timedOut) = Careful.open(Array(path.utf8), flags: O_RDONLY, timeout: 0.3) else {
            return XCTFail("open of a FIFO without a writer must time out")
        }
    }

    func testOpenHandsBackTheDescriptorAndItsInode() throws {
        guard case .success(let r) = Careful.open(Array("/etc/hostname".utf8), flags: O_RDONLY) else {
            return XCTFail("open /etc/hostname")
        }
        defer { close(r.fd) }
        var st = stat()
        XCTAssertEqual(fstat(r.fd, &st), 0)
        XCTAssertEqual(UInt64(st.st_ino), r.inode)
        XCTAssertEqual(UInt32(st.st_mode), r.mode)
    }

    func testErrorsComeBackAsErrno() {
        XCTAssertEqual(Careful.read("/nonexistent/lockscope"), .failure(.failed(.noSuchFileOrDirectory)))
        guard case .failure(.failed(.noSuchFileOrDirectory)) = Careful.open(Array("/nonexistent/x".utf8), flags: O_RDONLY) else {
            return XCTFail("ENOENT expected")
        }
    }

    func testReadReturnsTheBytes() throws {
        let text = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        guard case .success(let bytes) = Careful.read("/proc/version") else { return XCTFail("read /proc/version") }
        XCTAssertTrue(String(decoding: bytes, as: UTF8.self).hasPrefix("Linux version"))
        XCTAssertFalse(text.isEmpty)
    }

    // MARK: mountinfo and lexical paths

    let mountinfo = """
    22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
    45 22 0:40 / /tmp/dead\\040mount rw,nosuid,nodev,relatime shared:30 - fuse.sshfs host:/x rw,user_id=0
    46 22 0:41 / /mnt/nfs rw - nfs4 srv:/export rw
    47 46 0:42 / /mnt/nfs/local rw - tmpfs tmpfs rw
    bogus line
    """

    func testMountInfoEntries() {
        let m = MountInfo.parse(mountinfo)
        XCTAssertEqual(m.count, 4)
        XCTAssertEqual(m[1].mountPoint, "/tmp/dead mount")
        XCTAssertEqual(m[1].fstype, "fuse.sshfs")
        XCTAssertEqual(m[1].device, "00:28")
        XCTAssertEqual(m.map(\.mayNotAnswer), [false, true, true, false])
    }

    func testMountContainingAPath() {
        let m = MountInfo.parse(mountinfo)
        XCTAssertEqual(MountInfo.mount(containing: "/tmp/dead mount/lock", in: m)?.id, 45)
        XCTAssertEqual(MountInfo.mount(containing: "/tmp/dead mountain", in: m)?.id, 22)
        XCTAssertEqual(MountInfo.mount(containing: "/mnt/nfs/local/x", in: m)?.id, 47)
        XCTAssertEqual(MountInfo.mount(containing: "/mnt/nfs", in: m)?.id, 46)
    }

    func testLexicalAbsolutePath() {
        XCTAssertEqual(lexicalAbsolutePath("a/./b/../c", cwd: "/work"), "/work/a/c")
        XCTAssertEqual(lexicalAbsolutePath("/x//y/", cwd: "/work"), "/x/y")
        XCTAssertEqual(lexicalAbsolutePath("../../..", cwd: "/a"), "/")
    }
}
