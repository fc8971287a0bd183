import LockscopeCore
import LockscopeTrace

/// Activity from the tracer's sampler (the default for `diagnose`): nothing is
/// stopped; every thread's current call is decoded from /proc and
/// `process_vm_readv`. A process whose calls cannot be read (another user's) is
/// still sampled for its state, CPU time and wchan. On a recorded tree it takes
/// one sample, without memory (the `snapshot` source).
public struct SamplerActivity: ActivityProvider {
    public var proc: ProcRoot

    public init(proc: ProcRoot = ProcRoot()) { self.proc = proc }

    public func activity(pids: [Int32], window: Double, hz: Int, shouldStop: @escaping () -> Bool) -> ActivityResult {
        guard !pids.isEmpty else { return ActivityResult() }
        let sampler = Sampler(proc: proc, bestEffort: true)
        let ms = Int64((max(0, window) * 1000).rounded())
        do {
            let report = try sampler.sample(pids: pids, duration: .milliseconds(ms), hz: max(1, hz), shouldStop: shouldStop)
            var result = ActivityAdapter.result(report, source: proc.isLive ? .sampler : .snapshot)
            // A thread in D state: its kernel stack says what it waits for (root only).
            for (pid, act) in result.activity {
                var a = act
                for i in a.threads.indices where a.threads[i].state == "D" {
                    a.threads[i].kernelStack = Self.kernelStack(proc: proc, pid: pid, tid: a.threads[i].tid)
                }
                result.activity[pid] = a
            }
            return result
        } catch {
            // Only a pid that vanished is skipped in best effort: nothing to report.
            return ActivityResult()
        }
    }

    /// /proc/PID/task/TID/stack (root only): `[<0>] percpu_rwsem_wait+0x…` → `percpu_rwsem_wait+0x…`.
    static func kernelStack(proc: ProcRoot, pid: Int32, tid: Int32) -> [String]? {
        (try? proc.readText("\(pid)/task/\(tid)/stack")).flatMap(KernelStack.parse)
    }
}

/// The opt-in ptrace tracer (`diagnose --ptrace`): seizes every thread of the
/// processes for the window, then detaches. The call each thread is in at the end
/// (or was in at attach, if it never returned) is its current call; the time
/// spent per call name makes the histogram.
public struct PtraceActivity: ActivityProvider {
    public var proc: ProcRoot

    public init(proc: ProcRoot = ProcRoot()) { self.proc = proc }

    public func activity(pids: [Int32], window: Double, hz: Int, shouldStop: @escaping () -> Bool) -> ActivityResult {
        var out = ActivityResult()
        let tracer = PtraceTracer(proc: proc)
        var traceable: [Int32] = []
        for pid in pids {
            do { try tracer.check(pid: pid); traceable.append(pid) } catch { out.uninspectable.insert(pid) }
        }
        guard !traceable.isEmpty else { return out }
        let builder = EventActivityBuilder()
        let ms = Int64((max(0.05, window) * 1000).rounded())
        var options = TraceOptions()
        options.duration = .milliseconds(ms)
        options.followChildren = false
        do {
            let summary = try tracer.trace(pids: traceable, options: options, shouldStop: shouldStop, onEvent: builder.take)
            if case .interrupted = summary.endedBy { out.interrupted = true }
            let reader = ProcessReader(proc: proc)
            for pid in traceable {
                out.activity[pid] = builder.process(pid, wall: summary.wallSeconds, source: .ptrace,
                                                    facts: reader.facts(of: pid, withThreads: true))
            }
        } catch {
            for pid in traceable { out.uninspectable.insert(pid) }
        }
        return out
    }
}

/// The tracer first; any process it could not report is sampled by the fallback
/// (a holder the tracer may not attach to can often still be read through /proc). Only what neither could read is uninspectable.
public struct FallbackActivity: ActivityProvider {
    public var primary: ActivityProvider
    public var fallback: ActivityProvider

    public init(primary: ActivityProvider, fallback: ActivityProvider) {
        self.primary = primary
        self.fallback = fallback
    }

    public func activity(pids: [Int32], window: Double, hz: Int, shouldStop: @escaping () -> Bool) -> ActivityResult {
        var r = primary.activity(pids: pids, window: window, hz: hz, shouldStop: shouldStop)
        let missing = pids.filter { r.activity[$0] == nil }
        guard !missing.isEmpty, !r.interrupted else { return r }
        let more = fallback.activity(pids: missing, window: window, hz: hz, shouldStop: shouldStop)
        for (k, v) in more.activity {
            r.activity[k] = v
            r.uninspectable.remove(k)
        }
        r.uninspectable.formUnion(more.uninspectable)
        r.interrupted = r.interrupted || more.interrupted
        return r
    }
}

/// Turns the sampler's report into the view the rules read.
public enum ActivityAdapter {
    public static func result(_ r: SamplerReport, source: ActivitySource = .sampler) -> ActivityResult {
        var out = ActivityResult(interrupted: r.interrupted)
        for p in r.processes {
            out.activity[p.pid] = process(p, window: r.observedSeconds, source: source)
        }
        for e in r.skipped {
            switch e {
            case .permissionDenied(let pid, _): out.uninspectable.insert(pid)
            case .alreadyTraced(let pid, _): out.uninspectable.insert(pid)
            case .ptraceRestricted(let pid, _): out.uninspectable.insert(pid)
            default: break
            }
        }
        return out
    }

    /// `snapshot`: one sample of a recorded tree, so no window (not the wall time the
    /// sample took), no CPU time and no time in the call.
    public static func process(_ p: SampledProcess, window: Double, source: ActivitySource) -> ProcessActivity {
        let tids = Set(p.threads.map(\.tid))
        var threads = p.threads.filter { !$0.exited }.map { thread($0, processTids: tids, snapshot: source == .snapshot) }
        // The main thread first: verdicts and trees show it when nothing else stands out.
        threads.sort { ($0.tid == p.pid ? 0 : 1, $0.tid) < ($1.tid == p.pid ? 0 : 1, $1.tid) }
        return ProcessActivity(pid: p.pid, threads: threads, cpuSeconds: source == .snapshot ? nil : p.cpuSeconds,
                               windowSeconds: source == .snapshot ? 0 : window, source: source)
    }

    public static func thread(_ t: SampledThread, processTids: Set<Int32>, snapshot: Bool = false) -> ThreadActivity {
        let running = t.histogram.first { $0.bucket == .running }?.fraction ?? 0
        return ThreadActivity(
            tid: t.tid, state: t.state, current: t.current,
            call: t.current.map { BlockingCall($0, processTids: processTids) },
            inCallSeconds: snapshot ? nil : t.inCallSeconds, wchan: t.wchan, kernelStack: nil,
            cpuSeconds: snapshot ? nil : t.cpuSeconds, runningFraction: t.samples > 1 ? running : nil,
            histogram: t.histogram.map { HistogramBin(label: $0.bucket.label, fraction: $0.fraction) })
    }
}
