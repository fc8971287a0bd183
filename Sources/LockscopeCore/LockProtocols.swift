/// What a lock means to the program that took it: one table of lock protocols,
/// recognised from the file's path and the byte ranges of every lock on it.
///
/// It lives in Core (not Diagnosis) because every consumer needs it: `who`,
/// `waiters` and `list` render a `LockReport` without running a diagnosis, and the
/// metrics exporter labels locks by protocol. It is pure: path, kind and ranges in,
/// a `ProtocolReading` out.
///
/// To add a protocol, add one `LockProtocol` to `LockProtocols.table` (with the
/// source its facts come from) and a test with the ranges a real program takes.

/// One lock on the file, as the recogniser needs it.
public struct ProtocolLock: Sendable, Hashable {
    /// The process that holds or wants the range (/proc/locks pid; a co-holder's pid also works).
    public var pid: Int32
    public var kind: LockKind
    public var access: LockAccess
    public var start: Int64
    /// nil = to EOF.
    public var end: Int64?
    /// A queued request (`->` in /proc/locks, or a blocked lock call), not a granted lock.
    public var waiting: Bool

    public init(pid: Int32, kind: LockKind, access: LockAccess, start: Int64, end: Int64?, waiting: Bool = false) {
        self.pid = pid
        self.kind = kind
        self.access = access
        self.start = start
        self.end = end
        self.waiting = waiting
    }

    func covers(_ a: Int64, _ b: Int64) -> Bool { start <= a && (end.map { $0 >= b } ?? true) }
    func overlaps(_ a: Int64, _ b: Int64) -> Bool { start <= b && (end.map { $0 >= a } ?? true) }
}

/// What one process holds (or wants) in the protocol's own terms.
public struct ProtocolParticipant: Sendable, Hashable {
    public var pid: Int32
    /// `EXCLUSIVE`, `RESERVED`, `WAL_WRITE_LOCK`, `LOCKED` …
    public var state: String
    /// True when this is what the process is waiting for rather than what it holds.
    public var wanted: Bool
    /// What that state means for the program, in a few words: `writing`, `reading`.
    public var meaning: String

    public init(pid: Int32, state: String, wanted: Bool, meaning: String) {
        self.pid = pid
        self.state = state
        self.wanted = wanted
        self.meaning = meaning
    }
}

/// The recogniser's answer for one file.
public struct ProtocolReading: Sendable, Hashable {
    /// Stable id: `sqlite`, `sqlite-wal`, `dpkg`, `apt`, `xtables`, `leveldb`, `rpm`.
    public var name: String
    /// For people: `SQLite database`, `dpkg package database` …
    public var title: String
    /// The resource the lock protects, when it is not the locked file itself
    /// (`app.db` for `app.db-shm`, the database directory for LevelDB's `LOCK`).
    public var resource: String?
    /// The strongest state held, or nil when nobody holds anything this protocol names.
    public var state: String?
    /// Everyone holding or wanting a range, strongest first, one entry per pid and role.
    public var participants: [ProtocolParticipant]
    /// What the held state means for the program and for everyone else.
    public var meaning: String
    /// Advice that is safe for this program (never "delete the lock file").
    public var advice: String
    /// How processes that do not block in the kernel retry (`SQLite's busy handler`), if known.
    public var retryMechanism: String?
    /// Where the facts come from.
    public var source: String

    public func participant(_ pid: Int32, wanted: Bool = false) -> ProtocolParticipant? {
        participants.first { $0.pid == pid && $0.wanted == wanted }
    }
}

/// One entry of the table.
public struct LockProtocol: Sendable {
    public var name: String
    public var source: String
    /// Returns a reading when the path and ranges are this protocol's, else nil.
    public var recognise: @Sendable (_ path: String?, _ kind: LockKind, _ locks: [ProtocolLock]) -> ProtocolReading?
}

public enum LockProtocols {
    /// Tried in order; the first that recognises the file wins.
    public static let table: [LockProtocol] = [sqliteRollback, sqliteWAL, dpkg, apt, xtables, leveldb, rpm]

    /// The protocol of a locked file, or nil (then callers say what they said before).
    /// `path` is the file's path as any process shows it; `locks` are every lock on
    /// the file (granted and waiting); `kind` the kind of the lock being described.
    public static func recognise(path: String?, kind: LockKind, locks: [ProtocolLock]) -> ProtocolReading? {
        for entry in table {
            if let r = entry.recognise(path, kind, locks) { return r }
        }
        return nil
    }

    /// One participant per process and role (holding, then wanting), each with the
    /// state its own ranges amount to, strongest first in `order`.
    static func byProcess(_ locks: [ProtocolLock], order: [String], state: ([ProtocolLock]) -> String?,
                          meaning: (String) -> String) -> [ProtocolParticipant] {
        var out: [ProtocolParticipant] = []
        for wanted in [false, true] {
            let group = locks.filter { $0.waiting == wanted }
            var pids: [Int32] = []
            for l in group where !pids.contains(l.pid) { pids.append(l.pid) }
            for pid in pids {
                guard let s = state(group.filter { $0.pid == pid }) else { continue }
                out.append(ProtocolParticipant(pid: pid, state: s, wanted: wanted, meaning: meaning(s)))
            }
        }
        return out.sorted { a, b in
            if a.wanted != b.wanted { return !a.wanted }
            return (order.firstIndex(of: a.state) ?? order.count) < (order.firstIndex(of: b.state) ?? order.count)
        }
    }

    // MARK: SQLite, rollback journal

    /// sqlite.org/lockingv3.html and src/os_unix.c `unixLock()`: the lock bytes sit
    /// at the 1 GiB offset of the database file. SHARED = read lock on the 510-byte
    /// SHARED range; RESERVED = write lock on RESERVED_BYTE (while SHARED); PENDING =
    /// write lock on PENDING_BYTE; EXCLUSIVE = write lock on the SHARED range (and
    /// PENDING, RESERVED: POSIX merges them into one WRITE 0x40000000–0x400001ff).
    /// A reader briefly read-locks PENDING_BYTE while it takes SHARED.
    public static let pendingByte: Int64 = 0x4000_0000
    public static let reservedByte: Int64 = 0x4000_0001
    public static let sharedFirst: Int64 = 0x4000_0002
    public static let sharedSize: Int64 = 510
    static var sharedLast: Int64 { sharedFirst + sharedSize - 1 }

    static let sqliteMeaning: [String: String] = [
        "EXCLUSIVE": "writing to the database file (committing, or BEGIN EXCLUSIVE): every other connection gets SQLITE_BUSY",
        "PENDING": "waiting for readers to finish so it can commit: new readers get SQLITE_BUSY",
        "RESERVED": "in a write transaction (BEGIN IMMEDIATE or a first write): others may still read; other writers get SQLITE_BUSY",
        "SHARED": "reading: writers cannot commit until it finishes",
    ]
    static let sqliteShort: [String: String] = [
        "EXCLUSIVE": "writing", "PENDING": "about to write", "RESERVED": "write transaction open", "SHARED": "reading",
    ]

    /// The SQLite state a set of one process's ranges amounts to.
    static func sqliteState(_ mine: [ProtocolLock]) -> String? {
        let writes = mine.filter { $0.access == .write }
        let reads = mine.filter { $0.access == .read }
        if writes.contains(where: { $0.overlaps(sharedFirst, sharedLast) }) { return "EXCLUSIVE" }
        if writes.contains(where: { $0.covers(pendingByte, pendingByte) }) { return "PENDING" }
        if writes.contains(where: { $0.covers(reservedByte, reservedByte) }) { return "RESERVED" }
        if reads.contains(where: { $0.overlaps(sharedFirst, sharedLast) || $0.covers(pendingByte, pendingByte) }) {
            return "SHARED"
        }
        return nil
    }

    static let sqliteOrder = ["EXCLUSIVE", "PENDING", "RESERVED", "SHARED"]

    static let sqliteRollback = LockProtocol(
        name: "sqlite",
        source: "sqlite.org/lockingv3.html; SQLite src/os_unix.c unixLock(): PENDING_BYTE 0x40000000, RESERVED_BYTE 0x40000001, SHARED_FIRST 0x40000002, SHARED_SIZE 510"
    ) { path, _, locks in
        let inRange = locks.filter { ($0.kind == .posix || $0.kind == .ofd) && $0.overlaps(pendingByte, sharedLast)
            && $0.start >= pendingByte }
        guard !inRange.isEmpty else { return nil }
        let participants = byProcess(inRange, order: sqliteOrder, state: sqliteState) { sqliteShort[$0] ?? "" }
        let top = participants.first { !$0.wanted }?.state
        return ProtocolReading(
            name: "sqlite", title: "SQLite database", resource: nil, state: top, participants: participants,
            meaning: top.flatMap { sqliteMeaning[$0] } ?? "a connection is taking a lock on the database",
            advice: "End the holding transaction in that program (COMMIT or ROLLBACK), or stop it cleanly; never delete the database's -journal file (it is how SQLite rolls back an interrupted write). Give other connections a busy timeout (sqlite3_busy_timeout, PRAGMA busy_timeout) or use WAL mode so readers do not wait for writers.",
            retryMechanism: "SQLite's busy handler: F_SETLK attempts between sleeps",
            source: "sqlite.org/lockingv3.html; SQLite src/os_unix.c unixLock()")
    }

    // MARK: SQLite, WAL mode

    /// src/os_unix.c: the `-shm` file's lock bytes start at UNIX_SHM_BASE
    /// = (22 + SQLITE_SHM_NLOCK) * 4 = 120; slot i is byte 120 + i; the dead-man
    /// switch UNIX_SHM_DMS is byte 128. src/wal.c: WAL_WRITE_LOCK 0,
    /// WAL_CKPT_LOCK 1, WAL_RECOVER_LOCK 2, WAL_READ_LOCK(I) 3 + I (I = 0 … 4).
    public static let shmBase: Int64 = 120
    static let walSlots = ["WAL_WRITE_LOCK", "WAL_CKPT_LOCK", "WAL_RECOVER_LOCK",
                           "WAL_READ_LOCK(0)", "WAL_READ_LOCK(1)", "WAL_READ_LOCK(2)", "WAL_READ_LOCK(3)", "WAL_READ_LOCK(4)"]
    static let walShort = ["WAL_WRITE_LOCK": "writing", "WAL_CKPT_LOCK": "checkpointing", "WAL_RECOVER_LOCK": "recovering the WAL index"]

    static func walState(_ mine: [ProtocolLock]) -> String? {
        // Strongest first: the writer, then checkpoint, recovery, readers.
        for (i, slot) in walSlots.enumerated() {
            let byte = shmBase + Int64(i)
            let wantAccess: LockAccess? = i < 3 ? .write : nil
            if mine.contains(where: { $0.covers(byte, byte) && (wantAccess == nil || $0.access == wantAccess) }) {
                return slot
            }
        }
        if mine.contains(where: { $0.covers(shmBase + 8, shmBase + 8) }) { return "DMS" }
        return nil
    }

    static let sqliteWAL = LockProtocol(
        name: "sqlite-wal",
        source: "SQLite src/os_unix.c UNIX_SHM_BASE 120, UNIX_SHM_DMS 128; src/wal.c WAL_WRITE_LOCK 0, WAL_CKPT_LOCK 1, WAL_RECOVER_LOCK 2, WAL_READ_LOCK(I) 3+I"
    ) { path, _, locks in
        guard let path, path.hasSuffix("-shm") else { return nil }
        let shm = locks.filter { ($0.kind == .posix || $0.kind == .ofd) && $0.start >= shmBase && $0.start <= shmBase + 8 }
        guard !shm.isEmpty else { return nil }
        let participants = byProcess(shm, order: walSlots, state: walState) { s in
            walShort[s] ?? (s == "DMS" ? "has the WAL index open" : "reading a snapshot")
        }
        let top = participants.first { !$0.wanted }?.state
        let meaning: String
        switch top {
        case "WAL_WRITE_LOCK": meaning = "a write transaction is open: readers go on reading, other writers get SQLITE_BUSY"
        case "WAL_CKPT_LOCK": meaning = "a checkpoint is copying the WAL into the database"
        case "WAL_RECOVER_LOCK": meaning = "a connection is rebuilding the WAL index after a crash"
        case .some(let s) where s.hasPrefix("WAL_READ_LOCK"): meaning = "reading a snapshot: a checkpoint cannot reset the WAL past it"
        default: meaning = "connections have the database open in WAL mode"
        }
        return ProtocolReading(
            name: "sqlite-wal", title: "SQLite database (WAL mode)", resource: String(path.dropLast(4)), state: top,
            participants: participants, meaning: meaning,
            advice: "End the holding transaction in that program (COMMIT or ROLLBACK), or stop it cleanly; never delete the -wal or -shm file while the database is open (committed data may live only in the -wal). Give other connections a busy timeout.",
            retryMechanism: "SQLite's busy handler: F_SETLK attempts between sleeps",
            source: "SQLite src/os_unix.c UNIX_SHM_BASE; src/wal.c")
    }

    /// A WAL-mode writer waiting for another's write transaction is not a kernel
    /// waiter: SQLite's busy handler retries F_SETLK on WAL_WRITE_LOCK (src/wal.c
    /// `walLockExclusive()` → os_unix.c `unixShmLock()`, byte UNIX_SHM_BASE + 0 = 120)
    /// between sleeps, and between attempts the connection keeps only its read lock
    /// on the dead-man switch (UNIX_SHM_DMS, byte 128) and perhaps a read mark. So
    /// /proc/locks shows it as one more holder. Given the pids seen retrying (the
    /// sampler: asleep between lock attempts), a connection that holds nothing but
    /// DMS or a read mark while another holds WAL_WRITE_LOCK becomes a waiter for
    /// it (an inference from the lock layout and its activity, said as such in
    /// `meaning`). Returns the reading with them as wanting WAL_WRITE_LOCK, and their
    /// pids; other readings come back unchanged.
    public static func walWritersWaiting(_ r: ProtocolReading, retrying: Set<Int32>) -> (ProtocolReading, waiting: [Int32]) {
        guard r.name == "sqlite-wal",
              let writer = r.participants.first(where: { !$0.wanted && $0.state == "WAL_WRITE_LOCK" })?.pid else { return (r, []) }
        var out = r
        var waiting: [Int32] = []
        let strong: Set<String> = ["WAL_WRITE_LOCK", "WAL_CKPT_LOCK", "WAL_RECOVER_LOCK"]
        for p in r.participants where !p.wanted && p.pid != writer && retrying.contains(p.pid) && !strong.contains(p.state)
            && out.participant(p.pid, wanted: true) == nil {
            out.participants.append(ProtocolParticipant(
                pid: p.pid, state: "WAL_WRITE_LOCK", wanted: true,
                meaning: "waiting to write: retrying in SQLite's busy handler (holds only \(p.state))"))
            waiting.append(p.pid)
        }
        return (out, waiting)
    }

    // MARK: path-named locks

    static func basename(_ path: String) -> Substring {
        path.split(separator: "/", omittingEmptySubsequences: true).last ?? Substring(path)
    }

    /// One exclusive whole-file lock whose path names the program.
    static func pathLock(name: String, title: String, resource: String?, path: String, locks: [ProtocolLock],
                         meaning: String, advice: String, retry: String?, source: String) -> ProtocolReading {
        var participants: [ProtocolParticipant] = []
        for l in locks where !participants.contains(where: { $0.pid == l.pid && $0.wanted == l.waiting }) {
            participants.append(ProtocolParticipant(pid: l.pid, state: "LOCKED", wanted: l.waiting, meaning: ""))
        }
        participants.sort { !$0.wanted && $1.wanted }
        return ProtocolReading(name: name, title: title, resource: resource,
                               state: participants.contains { !$0.wanted } ? "LOCKED" : nil,
                               participants: participants, meaning: meaning, advice: advice,
                               retryMechanism: retry, source: source)
    }

    /// dpkg lib/dpkg/dbmodify.c `modstatdb_lock()`: fcntl write lock (F_SETLK, or
    /// F_SETLKW with --lock-wait) on /var/lib/dpkg/lock-frontend (taken first, by
    /// frontends like apt) and /var/lib/dpkg/lock (dpkg's own); a different admin
    /// directory (`--admindir`, `--root`) has the same names under it.
    static let dpkg = LockProtocol(
        name: "dpkg",
        source: "dpkg lib/dpkg/dbmodify.c modstatdb_lock(), lib/dpkg/file.c file_lock(); dpkg(1) --admindir"
    ) { path, _, locks in
        guard let path else { return nil }
        let base = basename(path)
        guard path.hasSuffix("/dpkg/lock") || path.hasSuffix("/dpkg/lock-frontend") else { return nil }
        let frontend = base == "lock-frontend"
        return pathLock(
            name: "dpkg", title: frontend ? "dpkg frontend lock" : "dpkg package database lock", resource: nil,
            path: path, locks: locks,
            meaning: frontend
                ? "a package manager frontend (apt, unattended-upgrades, packagekit) is installing or removing packages"
                : "dpkg is changing the package database (unpacking, configuring or removing packages)",
            advice: "Wait for it to finish (apt-get -o DPkg::Lock::Timeout=600 waits instead of failing). Do not kill dpkg or delete the lock file: interrupting dpkg mid-run can leave packages half-installed and the package database broken; if that already happened, run dpkg --configure -a.",
            retry: "apt's DPkg::Lock::Timeout: F_SETLK attempts between sleeps",
            source: "dpkg lib/dpkg/dbmodify.c modstatdb_lock()")
    }

    /// apt apt-pkg/contrib/fileutl.cc `GetLock()` (fcntl F_SETLK write lock on the
    /// whole file): Dir::State::Lists `lists/lock` (apt update) and
    /// Dir::Cache::Archives `archives/lock` (downloading .debs).
    static let apt = LockProtocol(
        name: "apt",
        source: "apt apt-pkg/contrib/fileutl.cc GetLock(); apt-pkg/acquire.cc (lists/lock, archives/lock)"
    ) { path, _, locks in
        guard let path, path.hasSuffix("/apt/lists/lock") || path.hasSuffix("/apt/archives/lock") else { return nil }
        let lists = path.hasSuffix("/lists/lock")
        return pathLock(
            name: "apt", title: lists ? "apt package lists lock" : "apt download cache lock", resource: nil,
            path: path, locks: locks,
            meaning: lists ? "apt is updating the package lists (apt update)" : "apt is downloading packages into its cache",
            advice: "Wait for it to finish (apt-get -o DPkg::Lock::Timeout=600 waits instead of failing); do not delete the lock file. A download stuck on the network is safe to stop with Ctrl-C or SIGTERM; the package database is not touched at this stage.",
            retry: nil, source: "apt apt-pkg/contrib/fileutl.cc GetLock()")
    }

    /// iptables iptables/xshared.c `xtables_lock()`: flock(LOCK_EX) on XT_LOCK_NAME
    /// `/run/xtables.lock` (or $XTABLES_LOCKFILE); `-w [SECONDS]` waits (blocking
    /// flock with a timer), without `-w` it fails at once.
    static let xtables = LockProtocol(
        name: "xtables",
        source: "iptables iptables/xshared.c xtables_lock(): XT_LOCK_NAME /run/xtables.lock, XTABLES_LOCKFILE"
    ) { path, kind, locks in
        guard let path, basename(path) == "xtables.lock" else { return nil }
        return pathLock(
            name: "xtables", title: "iptables (xtables) lock", resource: nil, path: path, locks: locks,
            meaning: "an iptables/ip6tables/ebtables command is reading or changing the firewall rules; every other one waits (-w) or fails",
            advice: "Find what the holder waits for (it should take milliseconds). Callers should use iptables -w so they wait instead of failing, and -n when listing so no DNS lookup happens under the lock. Killing the holder is safe for the lock (rules are committed atomically) but its own change is lost.",
            retry: "iptables -w with a wait interval: flock LOCK_NB attempts between sleeps",
            source: "iptables iptables/xshared.c xtables_lock()")
    }

    /// LevelDB util/env_posix.cc `LockOrUnlock()` (fcntl F_SETLK, F_WRLCK, whole file)
    /// and RocksDB env/io_posix.cc `LockOrUnlock()`: the file `LOCK` in the database
    /// directory; one process per database, a second open fails at once.
    static let leveldb = LockProtocol(
        name: "leveldb",
        source: "LevelDB util/env_posix.cc LockOrUnlock(); RocksDB env/io_posix.cc LockOrUnlock()"
    ) { path, kind, locks in
        guard let path, basename(path) == "LOCK", kind == .posix || kind == .ofd || kind == .flock else { return nil }
        let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return pathLock(
            name: "leveldb", title: "LevelDB/RocksDB database", resource: dir.isEmpty ? nil : dir, path: path, locks: locks,
            meaning: "this process has the database open; LevelDB and RocksDB allow one process per database, a second open fails with \"IO error: lock … Resource temporarily unavailable\"",
            advice: "Close the database in the holder (or stop it cleanly) before opening it elsewhere; use one process that serves the others, or a read-only/secondary instance (RocksDB). Never delete LOCK while the holder runs.",
            retry: nil, source: "LevelDB util/env_posix.cc; RocksDB env/io_posix.cc")
    }

    /// rpm lib/rpmlock.c `rpmlockAcquire()`: fcntl write lock on
    /// `%{_dbpath}/.rpm.lock`, waiting with F_SETLKW ("waiting for transaction lock").
    static let rpm = LockProtocol(
        name: "rpm",
        source: "rpm lib/rpmlock.c rpmlockAcquire(): %{_dbpath}/.rpm.lock"
    ) { path, _, locks in
        guard let path, basename(path) == ".rpm.lock" else { return nil }
        return pathLock(
            name: "rpm", title: "rpm transaction lock", resource: nil, path: path, locks: locks,
            meaning: "an rpm transaction (rpm, dnf, yum, zypper) is installing or removing packages",
            advice: "Wait for the transaction to finish. Do not kill rpm mid-transaction or delete the lock: that can leave the rpm database inconsistent (rpm --rebuilddb afterwards).",
            retry: nil, source: "rpm lib/rpmlock.c")
    }
}

// MARK: - Readings for a report

/// One reading per locked file, computed once from every lock on it (granted and
/// queued), so each renderer and rule asks the same question the same way.
public struct ProtocolIndex: Sendable {
    public var byFile: [FileIdentity: ProtocolReading]

    public init(_ locks: [LockEntry]) {
        var perFile: [FileIdentity: [LockEntry]] = [:]
        var order: [FileIdentity] = []
        for l in locks {
            guard let f = l.file else { continue }
            if perFile[f] == nil { order.append(f) }
            perFile[f, default: []].append(l)
        }
        var out: [FileIdentity: ProtocolReading] = [:]
        for f in order {
            let entries = perFile[f] ?? []
            var ranges: [ProtocolLock] = []
            for l in entries {
                let pids = l.kernelPid > 0 ? [l.kernelPid] : l.holders.map(\.pid)
                for pid in pids {
                    ranges.append(ProtocolLock(pid: pid, kind: l.kind, access: l.access, start: l.start, end: l.end))
                }
                for w in l.waiters where w.pid > 0 {
                    ranges.append(ProtocolLock(pid: w.pid, kind: w.kind, access: w.access, start: w.start, end: w.end,
                                               waiting: true))
                }
            }
            let path = entries.lazy.compactMap(\.path).first
            if let r = LockProtocols.recognise(path: path, kind: entries[0].kind, locks: ranges) { out[f] = r }
        }
        byFile = out
    }

    public subscript(_ file: FileIdentity?) -> ProtocolReading? { file.flatMap { byFile[$0] } }

    /// What this one lock entry is in the protocol: its owner's state (or the file's strongest).
    public func state(of lock: LockEntry) -> String? {
        guard let r = self[lock.file] else { return nil }
        let owner = lock.kernelPid > 0 ? lock.kernelPid : lock.holders.first?.pid
        return owner.flatMap { r.participant($0)?.state } ?? r.state
    }
}
