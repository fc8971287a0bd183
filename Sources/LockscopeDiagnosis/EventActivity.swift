#if canImport(Glibc)
import Glibc
#endif
import LockscopeCore
import LockscopeEvents
import LockscopeTrace

/// Turns an event engine's stream (ptrace or kernel) into the view the rules
/// read: per thread, the call it is in at the end (or was in at attach, if it
/// never returned), the time spent per call name (the histogram), and the calls
/// it made with their exact durations.
final class EventActivityBuilder {
    struct Track {
        var pid: Int32
        var current: DecodedSyscall?
        /// Entry of the current call, seconds since the start; nil when it began before.
        var since: Double?
        var spent: [String: Double] = [:]
        var calls: [ObservedCall] = []
    }
    private(set) var tracks: [Int32: Track] = [:]

    /// Takes one event; always true (the stream goes on).
    func take(_ event: TraceEvent) -> Bool {
        switch event {
        case .attached(_, let pid, let tid, let call):
            tracks[tid] = Track(pid: pid, current: call, since: nil)
        case .syscall(let s):
            var t = tracks[s.tid] ?? Track(pid: s.pid, current: nil, since: s.time)
            let duration = s.durationSeconds ?? 0
            if s.result == nil {
                t.current = s.call
                t.since = s.inProgressAtAttach ? nil : s.time
            } else {
                t.current = nil
                t.spent[s.call.name, default: 0] += duration
            }
            if ObservedCall.worthKeeping(s.call, durationSeconds: duration) {
                if t.calls.count == ObservedCall.keep { t.calls.removeFirst() }
                t.calls.append(ObservedCall(startSeconds: s.inProgressAtAttach ? 0 : s.time, durationSeconds: duration,
                                            call: s.call, result: s.result, startedBefore: s.inProgressAtAttach))
            }
            tracks[s.tid] = t
        case .exited(_, let tid, _, _):
            tracks[tid] = nil
        default:
            break
        }
        return true
    }

    /// The activity of `pid` over a window of `wall` seconds; `state` of each
    /// thread at the end (from /proc). `outsideCalls`: the running fraction is
    /// the share of the window spent outside system calls (on CPU or waiting
    /// for one, as the sampler's `R` samples count it) — exact from the kernel
    /// engine, inflated by ptrace's stops.
    func process(_ pid: Int32, wall: Double, source: ActivitySource, facts: ProcessFacts?,
                 outsideCalls: Bool = false) -> ProcessActivity {
        let threads = tracks.filter { $0.value.pid == pid }
        let tids = Set(threads.keys)
        var acts: [ThreadActivity] = []
        let total = max(wall, 0.001)
        for (tid, t) in threads {
            let state = facts?.threads.first { $0.tid == tid }?.state ?? facts?.state ?? "?"
            var a = ThreadActivity(tid: tid, state: state, current: t.current,
                                   call: t.current.map { BlockingCall($0, processTids: tids) },
                                   inCallSeconds: t.current == nil ? nil : wall - (t.since ?? 0))
            a.inCallExact = t.current != nil && t.since != nil
            a.histogram = t.spent.sorted { $0.value > $1.value }.map { HistogramBin(label: $0.key, fraction: min(1, $0.value / total)) }
            a.calls = t.calls
            if outsideCalls {
                let inCalls = t.spent.values.reduce(0, +) + (t.current == nil ? 0 : wall - (t.since ?? 0))
                a.runningFraction = max(0, min(1, 1 - inCalls / total))
            }
            acts.append(a)
        }
        // The main thread first: verdicts and trees show it when nothing else stands out.
        acts.sort { ($0.tid == pid ? 0 : 1, $0.tid) < ($1.tid == pid ? 0 : 1, $1.tid) }
        return ProcessActivity(pid: pid, threads: acts, windowSeconds: wall, source: source)
    }
}

/// Activity from the kernel engine (`diagnose` by default when it can run:
/// root and the raw_syscalls tracepoints): every system call of the holders for
/// the window, with exact durations, and nothing stopped. Where the engine
/// cannot run, the sampler does the work and the result says why
/// (`ActivityResult.fallback`); a process the engine cannot trace (it vanished,
/// or is refused) is sampled too.
public struct KernelActivity: ActivityProvider {
    public var proc: ProcRoot
    public var tracer: KernelTracer
    public var fallback: ActivityProvider

    public init(proc: ProcRoot = ProcRoot(), tracer: KernelTracer? = nil, fallback: ActivityProvider? = nil) {
        self.proc = proc
        self.tracer = tracer ?? KernelTracer(proc: proc)
        self.fallback = fallback ?? SamplerActivity(proc: proc)
    }

    public func activity(pids: [Int32], window: Double, hz: Int, shouldStop: @escaping () -> Bool) -> ActivityResult {
        guard !pids.isEmpty else { return ActivityResult() }
        // A window of 0 asks for one snapshot: the sampler's.
        guard window > 0 else { return fallback.activity(pids: pids, window: window, hz: hz, shouldStop: shouldStop) }
        let decoder: RawSyscallDecoder
        switch tracer.probe() {
        case .failure(let why):
            return sampled(pids, window: window, hz: hz, shouldStop: shouldStop, why: why.description)
        case .success(let d):
            decoder = d
        }
        var traceable: [Int32] = []
        var refused: [Int32] = []
        for pid in pids {
            do { try tracer.check(pid: pid); traceable.append(pid) } catch { refused.append(pid) }
        }
        var out = ActivityResult()
        if !traceable.isEmpty {
            let builder = EventActivityBuilder()
            var options = TraceOptions()
            options.duration = .milliseconds(Int64((max(0.05, window) * 1000).rounded()))
            options.followChildren = false
            let before = cpuTicks(traceable)
            do {
                let summary = try tracer.trace(pids: traceable, decoder: decoder, options: options,
                                               shouldStop: { StopSignals.requested != 0 || shouldStop() }, onEvent: builder.take)
                if case .interrupted = summary.endedBy { out.interrupted = true }
                let after = cpuTicks(traceable)
                let ticks = Double(max(1, sysconf(Int32(_SC_CLK_TCK))))
                let reader = ProcessReader(proc: proc)
                for pid in traceable {
                    let facts = reader.facts(of: pid, withThreads: true)
                    guard facts != nil else { continue }   // gone: nothing to report
                    var a = builder.process(pid, wall: summary.wallSeconds, source: .kernel, facts: facts, outsideCalls: true)
                    var total: UInt64 = 0
                    for i in a.threads.indices {
                        let tid = a.threads[i].tid
                        if let b = before[tid], let e = after[tid], e >= b {
                            a.threads[i].cpuSeconds = Double(e - b) / ticks
                            total += e - b
                        }
                        if a.threads[i].state != "R" {
                            a.threads[i].wchan = (try? proc.readText("\(pid)/task/\(tid)/wchan")).flatMap { $0.isEmpty || $0 == "0" ? nil : $0 }
                        }
                        if a.threads[i].state == "D" { a.threads[i].kernelStack = SamplerActivity.kernelStack(proc: proc, pid: pid, tid: tid) }
                    }
                    a.cpuSeconds = Double(total) / ticks
                    out.activity[pid] = a
                }
            } catch {
                if case .unavailable(let why) = error {
                    return sampled(pids, window: window, hz: hz, shouldStop: shouldStop, why: why.description)
                }
                refused = pids
            }
        }
        let missing = refused + traceable.filter { out.activity[$0] == nil }
        guard !missing.isEmpty, !out.interrupted else { return out }
        let more = fallback.activity(pids: missing, window: window, hz: hz, shouldStop: shouldStop)
        out.activity.merge(more.activity) { k, _ in k }
        out.uninspectable.formUnion(more.uninspectable)
        out.interrupted = out.interrupted || more.interrupted
        return out
    }

    func sampled(_ pids: [Int32], window: Double, hz: Int, shouldStop: @escaping () -> Bool, why: String) -> ActivityResult {
        var r = fallback.activity(pids: pids, window: window, hz: hz, shouldStop: shouldStop)
        r.fallback = "kernel engine unavailable: " + why
        return r
    }

    /// utime + stime of every thread of `pids`, in clock ticks.
    func cpuTicks(_ pids: [Int32]) -> [Int32: UInt64] {
        var out: [Int32: UInt64] = [:]
        for pid in pids {
            for name in (try? proc.listDirectory("\(pid)/task")) ?? [] {
                guard let tid = Int32(name), let text = try? proc.readText("\(pid)/task/\(tid)/stat"),
                      let f = StatFields.parse(text) else { continue }
                out[tid] = f.utime + f.stime
            }
        }
        return out
    }
}
