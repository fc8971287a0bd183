/// One byte range a lock owner holds, with inclusive ends as fs/locks.c keeps
/// them (`fl_start`, `fl_end`; `OFFSET_MAX` = `Int64.max` for "to the end of
/// the file, however long it grows"). flock locks and leases are one range
/// covering the whole file.
public struct HeldRange: Sendable, Hashable {
    public var start: Int64
    public var end: Int64
    public var type: LockType

    public init(start: Int64, end: Int64, type: LockType) {
        self.start = start; self.end = end; self.type = type
    }

    public static func whole(_ type: LockType) -> HeldRange { HeldRange(start: 0, end: .max, type: type) }

    public var isWholeFile: Bool { start == 0 && end == .max }

    /// `locks_overlap()` in fs/locks.c.
    @inline(__always)
    public func overlaps(_ o: HeldRange) -> Bool { end >= o.start && o.end >= start }

    /// Two owners' ranges conflict when they overlap and one of them is a write
    /// lock (`posix_locks_conflict()` → `locks_conflict()`; flock the same on the
    /// whole file).
    @inline(__always)
    public func conflicts(with o: HeldRange) -> Bool {
        overlaps(o) && (type == .write || o.type == .write)
    }
}

/// What `posix_lock_inode()` (fs/locks.c) does to one owner's POSIX (or OFD)
/// locks when a request is granted. Pure, so it is tested on sequences.
///
/// - F_UNLCK removes the range from every lock of the owner; a lock that
///   straddles it is split in two ("left" and "right" in the kernel), one that
///   lies inside it is deleted. Unlocking bytes that are not locked is no error.
/// - F_RDLCK / F_WRLCK: locks of the same type that overlap the request or
///   touch it (`fl_end == request->fl_start - 1`, or the other way) are merged
///   into it; locks of the other type lose the overlapping part (split when
///   the request lies inside them). Then the request is inserted.
///
/// The result is sorted by start and never has two overlapping ranges.
public enum ByteRanges {
    public static func apply(_ ranges: [HeldRange], _ request: HeldRange) -> [HeldRange] {
        var lo = request.start, hi = request.end
        if request.type != .unlock {
            // Merging can widen the request onto a further lock: repeat until stable.
            var widened = true
            while widened {
                widened = false
                for r in ranges where r.type == request.type && r.end >= lo &- 1 && (hi == .max || r.start <= hi + 1) {
                    if r.start < lo || r.end > hi {
                        lo = min(lo, r.start)
                        hi = max(hi, r.end)
                        widened = true
                    }
                }
            }
        }
        var out: [HeldRange] = []
        out.reserveCapacity(ranges.count + 2)
        for r in ranges {
            guard r.end >= lo && hi >= r.start else { out.append(r); continue }
            if r.start < lo { out.append(HeldRange(start: r.start, end: lo - 1, type: r.type)) }
            if r.end > hi { out.append(HeldRange(start: hi + 1, end: r.end, type: r.type)) }
        }
        if request.type != .unlock { out.append(HeldRange(start: lo, end: hi, type: request.type)) }
        out.sort { $0.start < $1.start }
        return out
    }
}
