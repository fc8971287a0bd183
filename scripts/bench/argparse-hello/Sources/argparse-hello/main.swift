import ArgumentParser

struct Hello: ParsableCommand {
    static let configuration = CommandConfiguration(subcommands: [Who.self])
}

struct Who: ParsableCommand {
    @Flag(help: "JSON output.") var json = false
    @Argument(help: "Files.") var paths: [String]
    func run() { print("hello", paths, json) }
}

Hello.main()
