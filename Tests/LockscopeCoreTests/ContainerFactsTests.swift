import XCTest
@testable import LockscopeCore

/// Cgroup lines as the runtimes write them (cgroup v2 `0::` and v1 hierarchies).
final class ContainerFactsTests: XCTestCase {
    let id = "3f2a91c0e4b1d5c6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4"
    let pod = "6f1c2b7e-0d4a-4c1e-9b7a-2f3e4d5c6b7a"
    var podSystemd: String { pod.replacingOccurrences(of: "-", with: "_") }

    func testDockerSystemdAndCgroupfs() {
        XCTAssertEqual(CgroupParser.container(fromCgroup: "0::/system.slice/docker-\(id).scope\n"),
                       ContainerInfo(runtime: "docker", id: id))
        XCTAssertEqual(CgroupParser.container(fromCgroup: "12:pids:/docker/\(id)\n11:memory:/docker/\(id)\n0::/docker/\(id)\n"),
                       ContainerInfo(runtime: "docker", id: id))
        XCTAssertEqual(CgroupParser.container(fromCgroup: "0::/system.slice/docker-\(id).scope\n")?.shortID, "3f2a91c0e4b1")
    }

    func testKubernetesContainerdCrioDockershim() {
        let burstable = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(podSystemd).slice"
        XCTAssertEqual(CgroupParser.container(fromCgroup: "0::\(burstable)/cri-containerd-\(id).scope\n"),
                       ContainerInfo(runtime: "containerd", id: id, podUID: pod))
        XCTAssertEqual(CgroupParser.container(fromCgroup: "0::/kubepods.slice/kubepods-pod\(podSystemd).slice/crio-\(id).scope\n"),
                       ContainerInfo(runtime: "cri-o", id: id, podUID: pod))
        XCTAssertEqual(CgroupParser.container(fromCgroup: "0::\(burstable)/docker-\(id).scope\n"),
                       ContainerInfo(runtime: "docker", id: id, podUID: pod))
        XCTAssertEqual(CgroupParser.container(fromCgroup: "0::/kubepods/besteffort/pod\(pod)/\(id)\n"),
                       ContainerInfo(runtime: "cri", id: id, podUID: pod))
        XCTAssertEqual(CgroupParser.container(fromCgroup: "4:cpu,cpuacct:/kubepods/pod\(pod)/\(id)\n"),
                       ContainerInfo(runtime: "cri", id: id, podUID: pod))
    }

    func testPodman() {
        XCTAssertEqual(CgroupParser.container(fromCgroup: "0::/machine.slice/libpod-\(id).scope/container\n"),
                       ContainerInfo(runtime: "podman", id: id))
        XCTAssertEqual(CgroupParser.container(fromCgroup: "0::/libpod_parent/libpod-\(id)\n"),
                       ContainerInfo(runtime: "podman", id: id))
    }

    func testNotContainers() {
        for text in ["0::/user.slice/user-0.slice/session-1.scope\n", "0::/\n", "",
                     "0::/system.slice/crio-conmon-\(id).scope\n", "0::/system.slice/libpod-conmon-\(id).scope\n",
                     "0::/\(id)\n",  // a bare id with no runtime or pod above it
                     "0::/system.slice/docker-\(id.dropLast()).scope\n",
                     "0::/system.slice/docker-\(id.uppercased()).scope\n",
                     "garbage without colons"] {
            XCTAssertNil(CgroupParser.container(fromCgroup: text), text)
        }
        // A pod slice without a container below it is no container.
        XCTAssertNil(CgroupParser.container(fromCgroup: "0::/kubepods.slice/kubepods-pod\(podSystemd).slice\n"))
    }

    func testV2LineWins() {
        let other = String(repeating: "a", count: 64)
        XCTAssertEqual(CgroupParser.container(fromCgroup: "1:name=systemd:/docker/\(other)\n0::/system.slice/docker-\(id).scope\n")?.id, id)
    }

    func testNSpid() {
        XCTAssertEqual(StatusFields.parse("Name:\tsleep\nNSpid:\t81234\t7\n").nsPids, [81234, 7])
        XCTAssertEqual(CgroupParser.innermostPid([81234, 7]), 7)
        XCTAssertEqual(CgroupParser.innermostPid([81234, 40, 7]), 7)
        XCTAssertNil(CgroupParser.innermostPid([81234]))
        XCTAssertNil(CgroupParser.innermostPid([]))
    }
}

/// The path a process in another mount namespace sees, from mountinfo lines as
/// the kernel prints them (a container's overlay root, a bind mount, an escaped space).
final class MountViewTests: XCTestCase {
    let host = MountView.parse("""
    22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
    31 22 0:26 / /run rw,nosuid shared:5 - tmpfs tmpfs rw
    40 22 0:45 / /var/lib/docker/overlay2/abc/merged rw - overlay overlay rw
    41 22 254:0 /srv/data\\040dir /mnt/bound rw - ext4 /dev/vda1 rw
    """)

    func testContainerRootOverlay() {
        // In the container, the overlay is its root (/); /run is the container's own tmpfs.
        let container = MountView.parse("""
        600 500 0:45 / / rw,relatime - overlay overlay rw
        601 600 254:0 /srv/data\\040dir /data rw - ext4 /dev/vda1 rw
        """)
        XCTAssertEqual(MountView.path(ours: "/var/lib/docker/overlay2/abc/merged/run/xtables.lock", ourMounts: host,
                                      theirMounts: container, theirMountId: 600), "/run/xtables.lock")
        // A bind mount of a host directory with a space in its name.
        XCTAssertEqual(MountView.path(ours: "/srv/data dir/app.db", ourMounts: host, theirMounts: container, theirMountId: 601),
                       "/data/app.db")
        XCTAssertEqual(MountView.path(ours: "/mnt/bound/app.db", ourMounts: host, theirMounts: container, theirMountId: 601),
                       "/data/app.db")
    }

    /// From the holder's link back to our path (what `list` needs: it has no target path).
    func testOurPathFromTheirs() {
        let container = MountView.parse("""
        600 500 0:45 / / rw,relatime - overlay overlay rw
        601 600 254:0 /srv/data\\040dir /data rw - ext4 /dev/vda1 rw
        """)
        XCTAssertEqual(MountView.ourPath(theirs: "/run/xtables.lock", theirMounts: container, theirMountId: 600, ourMounts: host),
                       "/var/lib/docker/overlay2/abc/merged/run/xtables.lock")
        // Two of our mounts show the directory (/ and the bind at /mnt/bound): the one at the shorter path.
        XCTAssertEqual(MountView.ourPath(theirs: "/data/app.db", theirMounts: container, theirMountId: 601, ourMounts: host),
                       "/srv/data dir/app.db")
        XCTAssertNil(MountView.ourPath(theirs: "/run/x.lock", theirMounts: host, theirMountId: 31, ourMounts: host))
        XCTAssertNil(MountView.ourPath(theirs: "/elsewhere/x", theirMounts: container, theirMountId: 601, ourMounts: host))
        XCTAssertNil(MountView.ourPath(theirs: "/run/x.lock", theirMounts: [:], theirMountId: 31, ourMounts: host))
    }

    func testSameViewAndUnknowns() {
        XCTAssertNil(MountView.path(ours: "/run/x.lock", ourMounts: host, theirMounts: host, theirMountId: 31))
        XCTAssertNil(MountView.path(ours: "/run/x.lock", ourMounts: host, theirMounts: [:], theirMountId: 31))
        // The file lies outside what their mount shows.
        let narrow = MountView.parse("700 1 254:0 /home /home rw - ext4 /dev/vda1 rw\n")
        XCTAssertNil(MountView.path(ours: "/etc/passwd", ourMounts: host, theirMounts: narrow, theirMountId: 700))
        XCTAssertEqual(MountInfo.unescape("a\\040b\\134c\\012"), "a b\\c\n")
        XCTAssertEqual(MountInfo.unescape("trail\\04"), "trail\\04")
    }
}
