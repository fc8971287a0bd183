/// A resolver configuration as glibc reads it (resolv.conf(5), glibc
/// `resolv/res_init.c`): the nameservers it will ask, in order, the options that
/// decide how long a failing lookup takes, and the search list.
///
/// Pure: `parse(_:)` takes the file's text. Diagnosis reads the holder's own
/// file through `/proc/PID/root/etc/resolv.conf`, so containers and private
/// mount namespaces are respected.
public struct ResolvConf: Sendable, Hashable {
    /// `MAXNS`: glibc uses at most three nameservers; further lines are ignored.
    public static let maxNameservers = 3
    /// `RES_TIMEOUT`: seconds, when `timeout:` is not given.
    public static let defaultTimeout = 5
    /// `RES_MAXRETRANS`: `timeout:` values above this are clamped.
    public static let maxTimeout = 30
    /// `RES_DFLRETRY`: rounds over all nameservers, when `attempts:` is not given.
    public static let defaultAttempts = 2
    /// `RES_MAXRETRY`: `attempts:` values above this are clamped.
    public static let maxAttempts = 5
    /// `ndots:` default and `RES_MAXNDOTS` clamp.
    public static let defaultNdots = 1
    public static let maxNdots = 15

    /// The nameservers glibc will use (at most three), as written (`10.0.0.1`, `fe80::1%eth0`).
    public var nameservers: [String] = []
    /// `nameserver` lines beyond the third: listed in the file, never asked.
    public var ignoredNameservers: [String] = []
    /// The search list (`search`, or `domain` — the last of the two wins).
    public var search: [String] = []
    public var timeout: Int = ResolvConf.defaultTimeout
    public var attempts: Int = ResolvConf.defaultAttempts
    public var ndots: Int = ResolvConf.defaultNdots
    /// `rotate`: start at a different nameserver for each query (round robin).
    public var rotate = false
    /// `single-request`: send the A and AAAA queries one after the other, not in parallel.
    public var singleRequest = false
    /// `single-request-reopen`: like `single-request`, with a new socket for the second query.
    public var singleRequestReopen = false
    /// `use-vc`: TCP instead of UDP.
    public var useVC = false
    /// `no-aaaa` (glibc 2.36+): only A queries.
    public var noAAAA = false
    /// `no-tld-query`: never query a single-label name as-is.
    public var noTLDQuery = false
    /// Whether `timeout:` / `attempts:` / `ndots:` were set explicitly (the verdict quotes them).
    public var timeoutSet = false
    public var attemptsSet = false
    public var ndotsSet = false
    /// Every option word as written, in order (`timeout:2`, `attempts:2`, `rotate`).
    public var options: [String] = []
    /// Option words glibc does not know (ignored by it, kept for the report).
    public var unknownOptions: [String] = []

    public init() {}

    /// The servers actually queried: with no `nameserver` line glibc asks the
    /// local host (`127.0.0.1`).
    public var effectiveNameservers: [String] { nameservers.isEmpty ? ["127.0.0.1"] : nameservers }

    /// Parses resolv.conf text the way glibc does: a keyword must start the line
    /// and be followed by a space or tab; `#` or `;` at the start of a line is a
    /// comment; unknown keywords are ignored.
    public static func parse(_ text: String) -> ResolvConf {
        var conf = ResolvConf()
        // Split on any newline: "\r\n" is one Character in Swift.
        for line in text.split(omittingEmptySubsequences: true, whereSeparator: \.isNewline) {
            guard let first = line.first, first != "#", first != ";" else { continue }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count >= 1 else { continue }
            // glibc's MATCH(): the keyword is at column 0 and followed by blank.
            guard !line.hasPrefix(" "), !line.hasPrefix("\t") else { continue }
            let key = words[0]
            let rest = words.dropFirst()
            switch key {
            case "nameserver":
                guard let address = rest.first.map(String.init), isAddress(address) else { continue }
                if conf.nameservers.count < maxNameservers {
                    conf.nameservers.append(address)
                } else {
                    conf.ignoredNameservers.append(address)
                }
            case "domain":
                // `domain` sets a one-entry search list; the later of domain/search wins.
                if let d = rest.first { conf.search = [String(d)] }
            case "search":
                conf.search = rest.map(String.init)
            case "options":
                conf.apply(options: rest.map(String.init))
            default:
                continue  // sortlist and anything unknown: irrelevant to timing
            }
        }
        return conf
    }

    /// Applies option words (`timeout:2`, `rotate` …) as glibc's `res_setoptions()`
    /// does; also used for the `RES_OPTIONS` environment variable.
    public mutating func apply(options words: [String]) {
        for word in words {
            options.append(word)
            if let n = Self.value(of: word, key: "ndots:") {
                ndots = min(n, Self.maxNdots)
                ndotsSet = true
            } else if let n = Self.value(of: word, key: "timeout:") {
                timeout = min(n, Self.maxTimeout)
                timeoutSet = true
            } else if let n = Self.value(of: word, key: "attempts:") {
                attempts = min(n, Self.maxAttempts)
                attemptsSet = true
            } else {
                switch word {
                case "rotate": rotate = true
                case "single-request-reopen": singleRequestReopen = true
                case "single-request": singleRequest = true
                case "use-vc": useVC = true
                case "no-aaaa": noAAAA = true
                case "no-tld-query", "no_tld_query": noTLDQuery = true
                case "debug", "inet6", "ip6-bytestring", "ip6-dotint", "no-ip6-dotint", "no-check-names", "edns0",
                     "no-reload", "trust-ad", "insecure1", "insecure2":
                    break  // known, no effect on how long a failing lookup takes
                default:
                    unknownOptions.append(word)
                }
            }
        }
    }

    /// Applies the process environment the way glibc does after reading the
    /// file: `LOCALDOMAIN` replaces the search list, `RES_OPTIONS` adds options.
    public mutating func apply(environment: [String: String]) {
        if let local = environment["LOCALDOMAIN"] {
            search = local.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        }
        if let opts = environment["RES_OPTIONS"] {
            apply(options: opts.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init))
        }
    }

    /// `timeout:2 attempts:2 rotate` — the options as written, for quoting in a report.
    public var optionsText: String { options.joined(separator: " ") }

    /// The index (0-based) of `address` among the nameservers in use, if listed.
    public func nameserverIndex(of address: String) -> Int? {
        let bare = Self.stripScope(address)
        return effectiveNameservers.firstIndex { Self.stripScope($0) == bare || Self.sameAddress($0, address) }
    }

    // MARK: - Helpers

    /// glibc's `atoi()` after the key: leading digits, anything else ends the number.
    static func value(of word: String, key: String) -> Int? {
        guard word.hasPrefix(key) else { return nil }
        var n = 0
        for c in word.dropFirst(key.count) {
            guard let d = c.wholeNumberValue, c.isASCII else { break }
            n = n * 10 + d
            if n > 1_000_000 { break }
        }
        return n
    }

    /// glibc ignores nameserver lines whose address does not parse.
    static func isAddress(_ s: String) -> Bool {
        if isIPv4(s) { return true }
        let bare = stripScope(s)
        return bare.contains(":") && bare.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
    }

    static func isIPv4(_ s: String) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isNumber) && (Int(p) ?? 256) <= 255 }
    }

    static func stripScope(_ s: String) -> String {
        if let i = s.firstIndex(of: "%") { return String(s[..<i]) }
        return s
    }

    /// IPv4-mapped IPv6 (`::ffff:10.0.0.1`, as /proc/net/udp6 shows a v4 peer) equals the v4 form.
    static func sameAddress(_ a: String, _ b: String) -> Bool {
        func norm(_ s: String) -> String {
            let x = stripScope(s).lowercased()
            return x.hasPrefix("::ffff:") && isIPv4(String(x.dropFirst(7))) ? String(x.dropFirst(7)) : x
        }
        return norm(a) == norm(b)
    }
}
