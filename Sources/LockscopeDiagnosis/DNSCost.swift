import LockscopeCore

/// How long a DNS lookup that gets no answer keeps the caller blocked, computed
/// from its resolver configuration the way glibc's stub resolver spends time.
///
/// The model (glibc `resolv/res_send.c`, `__res_context_send()` + `send_dg()`;
/// measured on glibc 2.36 against loopback nameservers that never answer, see
/// docs/diagnose.md):
///
/// - One **query** goes to every nameserver in turn, for `attempts` rounds.
///   Nameserver *i* (0-based, in file order) is given
///   `max(1, (timeout << i) / (i > 0 ? N : 1))` seconds, where N is the number
///   of nameservers in use (at most 3). With `timeout:2` and 3 nameservers that
///   is 2 s, 1 s and 2 s: 5 s per round, 10 s for `attempts:2` — not the
///   `timeout × attempts × N` = 12 s often quoted, which is the bound when every
///   server gets the full `timeout`.
/// - `rotate` changes which server is asked first, not the sum: no effect on the
///   worst case.
/// - A and AAAA go out together on one socket (`getaddrinfo` with AF_UNSPEC)
///   and share the per-server deadline. With `single-request` (or
///   `single-request-reopen`) they are sent one after the other; when a server
///   never answers the first, the second is never sent to it, so the worst case
///   is the same. Those options help only against servers that answer one
///   family and drop the other.
/// - **Names**: a name with fewer than `ndots` dots is tried with the first
///   search domain appended, and after a timeout glibc stops walking the search
///   list but still tries the name as-is: 2 queries. A name with at least
///   `ndots` dots is tried as-is first, then with the first search domain: also 2.
///   With no search list, or a trailing dot, 1.
/// - `use-vc` (TCP): one try per server, no rounds; connect timeouts are the
///   kernel's, not resolv.conf's — the model does not cover it and says so.
public struct DNSCost: Sendable, Hashable {
    /// Seconds glibc waits for nameserver i before moving on.
    public var perServerSeconds: [Int]
    /// One round over all nameservers.
    public var perRoundSeconds: Int
    public var attempts: Int
    /// One query name, every server, every round.
    public var perQuerySeconds: Int
    /// How many names are queried before the lookup fails (search-list expansion).
    public var namesTried: Int
    /// The whole lookup (`perQuerySeconds × namesTried`).
    public var worstCaseSeconds: Int
    /// `timeout × attempts × N`: the naive bound, for comparison in the docs.
    public var naiveSeconds: Int
    /// True when A and AAAA are sent one after the other (single-request*).
    public var sequentialFamilies: Bool
    /// The configuration it was computed from.
    public var conf: ResolvConf

    public init(conf: ResolvConf, searchApplies: Bool? = nil) {
        self.conf = conf
        let servers = conf.effectiveNameservers.count
        perServerSeconds = (0..<servers).map { DNSCost.serverTimeout(index: $0, timeout: conf.timeout, servers: servers) }
        perRoundSeconds = perServerSeconds.reduce(0, +)
        attempts = conf.useVC ? min(1, conf.attempts) : conf.attempts
        perQuerySeconds = perRoundSeconds * attempts
        let expands = searchApplies ?? !conf.search.isEmpty
        namesTried = expands ? 2 : 1
        worstCaseSeconds = perQuerySeconds * namesTried
        naiveSeconds = conf.timeout * conf.attempts * servers
        sequentialFamilies = conf.singleRequest || conf.singleRequestReopen
    }

    /// `send_dg()`: `seconds = retrans << ns; if (ns > 0) seconds /= nscount; if (seconds <= 0) seconds = 1;`
    public static func serverTimeout(index: Int, timeout: Int, servers: Int) -> Int {
        var s = timeout << index
        if index > 0 { s /= max(1, servers) }
        return max(1, s)
    }

    /// A change to resolv.conf and what the worst case would become with it.
    public struct Shortening: Sendable, Hashable {
        /// e.g. `options timeout:1`, `keep 1 nameserver`.
        public var change: String
        public var worstCaseSeconds: Int
        public init(change: String, worstCaseSeconds: Int) {
            self.change = change
            self.worstCaseSeconds = worstCaseSeconds
        }
    }

    /// The single changes that would shorten the worst case, best first, then
    /// the combination of all of them. Options that would not help (rotate,
    /// single-request) are never suggested.
    public var shortenings: [Shortening] {
        var out: [Shortening] = []
        var base = conf
        func cost(_ c: ResolvConf) -> Int { DNSCost(conf: c, searchApplies: namesTried > 1 && !c.search.isEmpty).worstCaseSeconds }
        var all = conf
        if conf.timeout > 1 {
            var c = conf; c.timeout = 1
            out.append(Shortening(change: "options timeout:1", worstCaseSeconds: cost(c)))
            all.timeout = 1
        }
        if conf.attempts > 1 {
            var c = conf; c.attempts = 1
            out.append(Shortening(change: "options attempts:1", worstCaseSeconds: cost(c)))
            all.attempts = 1
        }
        if conf.effectiveNameservers.count > 1 {
            var c = conf; c.nameservers = Array(conf.effectiveNameservers.prefix(1))
            out.append(Shortening(change: "one nameserver (a local caching resolver)", worstCaseSeconds: cost(c)))
            all.nameservers = Array(conf.effectiveNameservers.prefix(1))
        }
        if namesTried > 1 {
            var c = conf; c.search = []
            out.append(Shortening(change: "no search list (or fully qualified names with a trailing dot)", worstCaseSeconds: cost(c)))
            all.search = []
        }
        base = all
        out.sort { $0.worstCaseSeconds < $1.worstCaseSeconds }
        let combined = cost(base)
        if out.count > 1 && combined < (out.first?.worstCaseSeconds ?? Int.max) {
            out.append(Shortening(change: "all of the above", worstCaseSeconds: combined))
        }
        return out.filter { $0.worstCaseSeconds < worstCaseSeconds }
    }

    /// `2 s + 1 s + 2 s = 5 s per round × 2 attempts = 10 s` — the arithmetic, for the report.
    public var formula: String {
        let parts = perServerSeconds.map { "\($0) s" }.joined(separator: " + ")
        var s = perServerSeconds.count > 1 ? "\(parts) = \(perRoundSeconds) s per round" : "\(perRoundSeconds) s per round"
        s += " × \(attempts) attempt\(attempts == 1 ? "" : "s") = \(perQuerySeconds) s per query"
        if namesTried > 1 { s += " × \(namesTried) names (search list) = \(worstCaseSeconds) s" }
        return s
    }
}
