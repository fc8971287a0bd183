// swift-tools-version:6.0
// The smallest command line built the way lockscope is (ArgumentParser, a
// subcommand, a flag, an argument; linked fully static with lld): its peak RSS is
// the floor for lockscope's own stack, shown next to fuser's in the bench report.
import PackageDescription

// Release builds on Linux link one fully static binary, as lockscope's Package.swift does.
let staticRelease = BuildSettingCondition.when(platforms: [.linux], configuration: .release)

let package = Package(
    name: "argparse-hello",
    dependencies: [.package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2")],
    targets: [
        .executableTarget(
            name: "argparse-hello",
            dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")],
            linkerSettings: [
                .unsafeFlags(["-static-executable", "-use-ld=lld"], staticRelease),
                .linkedLibrary("_FoundationCollections", staticRelease),
                .linkedLibrary("_FoundationCShims", staticRelease),
                .linkedLibrary("swiftSynchronization", staticRelease),
            ]
        ),
    ]
)
