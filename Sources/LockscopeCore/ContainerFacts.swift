/// Which container a process runs in, from its /proc/PID/cgroup (cgroups(7):
/// `hierarchy-ID:controller-list:cgroup-path`, `0::/path` on cgroup v2), and the
/// pid it has in its own pid namespace (`NSpid:` of /proc/PID/status).
///
/// The names are the ones the runtimes give their cgroups:
/// - systemd cgroup driver: `docker-<id>.scope` (dockerd), `cri-containerd-<id>.scope`
///   (containerd's CRI plugin), `crio-<id>.scope` (CRI-O), `libpod-<id>.scope`
///   (podman), inside `kubepods[-<qos>]-pod<uid>.slice` for Kubernetes pods, where
///   systemd cannot have `-` in a unit name and kubelet writes the pod uid with `_`
///   (kubelet pkg/kubelet/cm/cgroup_manager_linux.go `escapeSystemdCgroupName`).
/// - cgroupfs driver: `/docker/<id>`, `/libpod_parent/libpod-<id>`, and
///   `/kubepods[/<qos>]/pod<uid>/<id>` (the runtime is not named there: `cri`).
/// `crio-conmon-`/`libpod-conmon-` scopes hold the runtime's monitor, not the
/// container, and are not reported as one.
public struct ContainerInfo: Sendable, Hashable {
    /// `docker`, `containerd`, `cri-o`, `podman`, or `cri` (a Kubernetes container whose runtime the path does not name).
    public var runtime: String
    /// The full 64-hex-digit container id.
    public var id: String
    /// The Kubernetes pod uid (with `-`), when the path carries one.
    public var podUID: String?

    public init(runtime: String, id: String, podUID: String? = nil) {
        self.runtime = runtime
        self.id = id
        self.podUID = podUID
    }

    /// The id as `docker ps` shows it.
    public var shortID: String { String(id.prefix(12)) }
}

public enum CgroupParser {
    /// The container of a process from the text of /proc/PID/cgroup, or nil.
    /// The cgroup v2 line (`0::`) is preferred; otherwise the first v1 line that names one.
    public static func container(fromCgroup text: String) -> ContainerInfo? {
        var lines = text.split(separator: "\n")
        if let v2 = lines.firstIndex(where: { $0.hasPrefix("0::") }) {
            let line = lines.remove(at: v2)
            lines.insert(line, at: 0)
        }
        for line in lines {
            guard let path = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).last else { continue }
            if let c = container(fromPath: path) { return c }
        }
        return nil
    }

    static let scopePrefixes: [(String, String)] = [
        ("docker-", "docker"), ("cri-containerd-", "containerd"), ("crio-", "cri-o"), ("libpod-", "podman"),
    ]

    /// The container named by one cgroup path (`/kubepods.slice/…/cri-containerd-<id>.scope`).
    public static func container(fromPath path: Substring) -> ContainerInfo? {
        let parts = path.split(separator: "/")
        var pod: String?
        var found: ContainerInfo?
        for (i, component) in parts.enumerated() {
            if let uid = podUID(component) { pod = uid; continue }
            var name = Substring(component)
            if name.hasSuffix(".scope") { name = name.dropLast(6) }
            var runtime: String?
            for (prefix, rt) in scopePrefixes where name.hasPrefix(prefix) {
                name = name.dropFirst(prefix.count)
                runtime = rt
                break
            }
            guard isContainerID(name) else { continue }
            if runtime == nil {
                // cgroupfs forms: the parent names the runtime (or the pod, for kubelet).
                let parent = i > 0 ? parts[i - 1] : ""
                switch parent {
                case "docker": runtime = "docker"
                case "libpod_parent": runtime = "podman"
                default: runtime = pod != nil ? "cri" : nil
                }
            }
            guard let runtime else { continue }
            found = ContainerInfo(runtime: runtime, id: String(name), podUID: pod)
        }
        return found
    }

    static func isContainerID(_ s: Substring) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    /// `pod<uid>` (cgroupfs) or `kubepods-<qos>-pod<uid_with_underscores>.slice` (systemd).
    static func podUID(_ component: Substring) -> String? {
        var c = component
        if c.hasSuffix(".slice") { c = c.dropLast(6) }
        let raw: Substring
        if c.hasPrefix("pod") {
            raw = c.dropFirst(3)
        } else if let r = c.firstRange(of: "-pod") {
            raw = c[r.upperBound...]
        } else {
            return nil
        }
        let uid = String(raw).replacingUnderscores
        // A pod uid is a UUID: 8-4-4-4-12 hex digits.
        let groups = uid.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.map(\.count) == [8, 4, 4, 4, 12],
              groups.allSatisfy({ $0.allSatisfy(\.isHexDigit) }) else { return nil }
        return uid
    }

    /// The pid in the process's own (innermost) pid namespace, from `NSpid:`
    /// (fs/proc/array.c `task_state()`: outermost first, as many as the levels
    /// visible from the reader's namespace); nil when it has only one level.
    public static func innermostPid(_ nsPids: [Int32]) -> Int32? {
        nsPids.count > 1 ? nsPids.last : nil
    }
}

extension String {
    var replacingUnderscores: String { String(map { $0 == "_" ? "-" : $0 }) }
}
