import CLockscope
import LockscopeCore

/// One sampling window (filled in below).
struct SamplingRun {
    let sampler: Sampler
    let pids: [Int32]
    let duration: Duration
    let hz: Int

    func run(shouldStop: () -> Bool) throws(TraceError) -> SamplerReport {
        SamplerReport(hz: hz, requestedSeconds: 0, observedSeconds: 0, rounds: 0, interrupted: false, processes: [], skipped: [])
    }
}
