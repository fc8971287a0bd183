import LockscopeCore

/// The stable rule ids. Scripts and docs key on these strings; never rename one.
public enum RuleID: String, Sendable, Hashable, CaseIterable {
    case deadlock = "deadlock"
    case waitChain = "wait-chain"
    case dnsTimeout = "dns-timeout"
    case holderStopped = "holder-stopped"
    case holderExiting = "holder-exiting"
    case leaseBreak = "lease-break"
    case holderIO = "holder-io"
    case holderNetwork = "holder-network"
    case holderPipe = "holder-pipe"
    case holderWaitsChild = "holder-waits-child"
    case holderFutex = "holder-futex"
    case holderSleeping = "holder-sleeping"
    case holderBusy = "holder-busy"
    case leakedFd = "leaked-fd"
    case sqliteBusy = "sqlite-busy"
    case lockProtocol = "lock-protocol"

    /// Order in reports: the most decisive explanation first.
    public var rank: Int { RuleID.allCases.firstIndex(of: self)! }
}

public enum Severity: String, Sendable, Hashable {
    /// Nothing can make progress until someone acts (deadlock, stopped holder).
    case critical
    /// Waiters are stuck behind something that will end, slowly or eventually.
    case warning
    /// Context: how the holder spends its time, not a fault in itself.
    case info
}

/// One piece of evidence: a named value, kept typed so JSON carries numbers as
/// numbers and renderers format them.
public enum EvidenceValue: Sendable, Hashable {
    case int(Int64)
    case double(Double)
    case string(String)
    case bool(Bool)
    case pid(Int32)
    case pids([Int32])
    case strings([String])
    case ints([Int64])
}

public struct EvidenceItem: Sendable, Hashable {
    /// snake_case key, stable (documented per rule in docs/diagnose.md).
    public var key: String
    public var value: EvidenceValue
    public init(_ key: String, _ value: EvidenceValue) {
        self.key = key
        self.value = value
    }
}

/// A conclusion about one process (or a cycle of them), with its evidence and
/// what to do about it.
public struct Finding: Sendable, Hashable {
    public var rule: RuleID
    public var severity: Severity
    /// The lock whose waiters this explains, when it is about one.
    public var lock: FileIdentity?
    /// The process the finding is about (for a deadlock, the first member).
    public var pid: Int32
    /// One sentence, no trailing period: `iptables[36057] is stuck in a DNS lookup …`.
    public var summary: String
    public var evidence: [EvidenceItem]
    public var suggestion: String

    public init(rule: RuleID, severity: Severity, lock: FileIdentity?, pid: Int32, summary: String,
                evidence: [EvidenceItem], suggestion: String) {
        self.rule = rule
        self.severity = severity
        self.lock = lock
        self.pid = pid
        self.summary = summary
        self.evidence = evidence
        self.suggestion = suggestion
    }

    /// Every pid named in the evidence, in order of first mention.
    public var pids: [Int32] {
        var seen = Set<Int32>()
        var out: [Int32] = []
        func add(_ p: Int32) { if seen.insert(p).inserted { out.append(p) } }
        add(pid)
        for e in evidence {
            switch e.value {
            case .pid(let p): add(p)
            case .pids(let ps): ps.forEach(add)
            default: break
            }
        }
        return out
    }

    public subscript(key: String) -> EvidenceValue? { evidence.first { $0.key == key }?.value }
}
