import ArgumentParser

extension Lockscope {
    /// Every command, in the order `--help` lists them.
    static var allSubcommands: [ParsableCommand.Type] {
        [Who.self, Waiters.self, List.self, Diagnose.self, Demo.self, Trace.self, Watch.self, Metrics.self, Serve.self]
    }
}
