// The sampler's answer: per process, per thread, where the samples fell.

/// Where one sample of a thread fell.
public enum SampleBucket: Sendable, Hashable {
    /// Blocked or sleeping in this system call (by name).
    case syscall(String)
    /// On CPU (state R, or /proc/…/syscall said `running`).
    case running
    /// Uninterruptible sleep (state D) outside a known system call, e.g. page-fault I/O.
    case ioWait
    /// Stopped by a signal or a tracer (state T or t).
    case stopped
    /// Sleeping in the kernel but not in a system call (`-1` in /proc/…/syscall).
    case kernel
    /// Zombie, or nothing could be read for this sample.
    case unknown

    /// A stable label for text and JSON: the syscall name, or `running`, `io-wait`, `stopped`, `kernel`, `unknown`.
    public var label: String {
        switch self {
        case .syscall(let n): return n
        case .running: return "running"
        case .ioWait: return "io-wait"
        case .stopped: return "stopped"
        case .kernel: return "kernel"
        case .unknown: return "unknown"
        }
    }
}

/// One histogram bar: how many samples fell in `bucket`.
public struct SampleCount: Sendable, Hashable {
    public var bucket: SampleBucket
    public var count: Int
    /// count / samples of the thread (0…1).
    public var fraction: Double
    public init(bucket: SampleBucket, count: Int, fraction: Double) {
        self.bucket = bucket
        self.count = count
        self.fraction = fraction
    }
}

/// What one thread did during the sampling window.
public struct SampledThread: Sendable, Hashable {
    public var tid: Int32
    /// The thread's own comm (threads can name themselves).
    public var name: String
    /// State at the last sample (R, S, D, T, t, Z …).
    public var state: Character
    /// Samples taken of this thread (threads born or dead mid-window have fewer).
    public var samples: Int
    /// Where the samples fell, largest first.
    public var histogram: [SampleCount]
    /// The bucket most samples fell in.
    public var dominant: SampleBucket? { histogram.first?.bucket }
    /// The system call the thread was in at the last sample, decoded; nil when
    /// running, not in a syscall, or gone.
    public var current: DecodedSyscall?
    /// How long the thread has been seen continuously in `current` (same number,
    /// arguments, stack and program counter) up to the last sample: a lower bound.
    public var currentObservedSeconds: Double?
    /// Time since the scheduler last ran the thread (/proc/…/sched `se.exec_start`),
    /// when it was asleep at the last sample. Also a lower bound on the time in
    /// `current`, often much longer than the window (a thread in `poll` since
    /// before sampling began). Nil when unavailable.
    public var sinceLastRanSeconds: Double?
    /// `/proc/…/wchan` at the last sample (the kernel function it sleeps in), if any.
    public var wchan: String?
    /// CPU time (user + system) used during the window, seconds.
    public var cpuSeconds: Double
    /// The thread exited during the window.
    public var exited: Bool

    public init(tid: Int32, name: String, state: Character, samples: Int, histogram: [SampleCount],
                current: DecodedSyscall?, currentObservedSeconds: Double?, sinceLastRanSeconds: Double?,
                wchan: String?, cpuSeconds: Double, exited: Bool) {
        self.tid = tid
        self.name = name
        self.state = state
        self.samples = samples
        self.histogram = histogram
        self.current = current
        self.currentObservedSeconds = currentObservedSeconds
        self.sinceLastRanSeconds = sinceLastRanSeconds
        self.wchan = wchan
        self.cpuSeconds = cpuSeconds
        self.exited = exited
    }

    /// The best lower bound on how long the thread has been in `current`:
    /// the larger of the observed streak and the time since it last ran.
    public var inCallSeconds: Double? {
        guard current != nil else { return nil }
        switch (currentObservedSeconds, sinceLastRanSeconds) {
        case let (a?, b?): return max(a, b)
        case let (a?, nil): return a
        case let (nil, b?): return b
        default: return nil
        }
    }
}

/// What one process did during the sampling window.
public struct SampledProcess: Sendable, Hashable {
    public var pid: Int32
    public var comm: String
    public var cmdline: [String]
    /// State of the main thread at the last sample.
    public var state: Character
    /// Non-zero when another process ptraces it (read from status at the start).
    public var tracerPid: Int32
    /// CPU time of the whole process during the window, seconds.
    public var cpuSeconds: Double
    public var threads: [SampledThread]
    /// The process exited during the window (threads keep what was seen).
    public var exited: Bool

    public init(pid: Int32, comm: String, cmdline: [String], state: Character, tracerPid: Int32, cpuSeconds: Double,
                threads: [SampledThread], exited: Bool) {
        self.pid = pid
        self.comm = comm
        self.cmdline = cmdline
        self.state = state
        self.tracerPid = tracerPid
        self.cpuSeconds = cpuSeconds
        self.threads = threads
        self.exited = exited
    }
}

/// The sampler's answer: per process, per thread, where time went and the call it is in now.
public struct SamplerReport: Sendable, Hashable {
    /// Sampling rate asked for.
    public var hz: Int
    public var requestedSeconds: Double
    /// Wall time actually covered (shorter when interrupted or when every target exited).
    public var observedSeconds: Double
    /// Sampling rounds taken (each round reads every thread once).
    public var rounds: Int
    /// Ended early by SIGINT/SIGTERM/SIGHUP/SIGPIPE (or the caller's stop check).
    public var interrupted: Bool
    public var processes: [SampledProcess]
    /// Targets that could not be sampled at all, with why.
    public var skipped: [TraceError]

    public init(hz: Int, requestedSeconds: Double, observedSeconds: Double, rounds: Int, interrupted: Bool,
                processes: [SampledProcess], skipped: [TraceError]) {
        self.hz = hz
        self.requestedSeconds = requestedSeconds
        self.observedSeconds = observedSeconds
        self.rounds = rounds
        self.interrupted = interrupted
        self.processes = processes
        self.skipped = skipped
    }
}
