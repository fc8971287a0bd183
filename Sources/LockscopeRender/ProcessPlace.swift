import LockscopeCore

/// Where a process lives when that is not where lockscope runs: its pid inside its
/// own pid namespace and its container, for every renderer that names a process
/// (`iptables[81234] (pid 7 in docker container 3f2a91c0e4b1)`).
enum ProcessPlace {
    /// `pid 7 in docker container 3f2a91c0e4b1 of pod 6f1c…`, `in pid ns pid:[4026532179]`,
    /// or nil when the process shares lockscope's pid namespace and is in no container.
    static func text(_ p: ProcessFacts?, observer: String?) -> String? {
        guard let p else { return nil }
        var where_: String?
        if let c = p.container {
            where_ = "in " + terminalSafe(c.runtime) + " container " + c.shortID
                + (c.podUID.map { " of pod " + terminalSafe($0) } ?? "")
        } else if let ns = p.pidNamespace, let mine = observer, ns != mine {
            where_ = "in pid ns " + terminalSafe(ns)
        }
        switch (p.nsPid, where_) {
        case let (n?, w?): return "pid \(n) " + w
        case let (n?, nil): return "pid \(n) in its own pid namespace"
        case let (nil, w?): return w
        case (nil, nil): return nil
        }
    }

    /// `"nspid"` and `"container"` for a process object in every JSON document.
    static func jsonFields(_ p: ProcessFacts) -> [(String, JSONValue)] {
        [
            ("nspid", .int(p.nsPid)),
            ("container", p.container.map { c in
                .object([("runtime", .string(c.runtime)), ("id", .string(c.id)), ("pod_uid", .string(c.podUID))])
            } ?? .null),
        ]
    }
}
