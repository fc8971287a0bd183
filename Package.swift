// swift-tools-version:6.0
import PackageDescription

// Release builds on Linux link one fully static binary (see the lockscope target).
let staticRelease = BuildSettingCondition.when(platforms: [.linux], configuration: .release)

// One responsibility per target; see docs/architecture.md.
let package = Package(
    name: "lockscope",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "lockscope", targets: ["lockscope"]),
        .executable(name: "lockscope-testbed", targets: ["lockscope-testbed"]),
        .library(name: "LockscopeCore", targets: ["LockscopeCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // Only what Swift cannot call directly (getdents64, kcmp, unshare, the stop-signal
        // handler, missing constants). No logic.
        .target(
            name: "CLockscope",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        // The tracer's C shims (variadic ptrace, wait-status macros, the ticker), kept
        // out of every other target's view.
        .target(
            name: "CLockscopeTrace",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .target(
            name: "LockscopeCore",
            dependencies: [
                "CLockscope",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .target(
            name: "LockscopeTrace",
            dependencies: ["LockscopeCore", "CLockscopeTrace", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .target(
            name: "LockscopeDiagnosis",
            dependencies: ["LockscopeCore", "LockscopeTrace"]
        ),
        .target(
            name: "LockscopeRender",
            dependencies: ["LockscopeCore", "LockscopeTrace", "LockscopeDiagnosis"]
        ),
        // The incident reproduction behind `lockscope demo` (namespaces, blackhole DNS,
        // holder and waiters), with its narration.
        .target(
            name: "LockscopeDemo",
            dependencies: [
                "LockscopeCore", "LockscopeDiagnosis", "LockscopeRender", "CLockscope",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .executableTarget(
            name: "lockscope",
            dependencies: [
                "LockscopeCore", "LockscopeTrace", "LockscopeDiagnosis", "LockscopeRender", "LockscopeDemo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // The release binary is fully static (libc included): one file to copy onto a
            // machine in trouble, no dynamic loading at start, and half the peak RSS of a
            // shared-stdlib build, because only the pages it runs are mapped
            // (docs/performance.md, "RSS").
            // FoundationEssentials (through ArgumentParser) names its static dependencies
            // only when the importing module is itself compiled for a static link.
            linkerSettings: [
                .unsafeFlags(["-static-executable", "-use-ld=lld"], staticRelease),
                .linkedLibrary("_FoundationCollections", staticRelease),
                .linkedLibrary("_FoundationCShims", staticRelease),
            ]
        ),
        .executableTarget(
            name: "lockscope-testbed"
        ),
        // Spawning and cleaning up testbed processes for live tests (not shipped).
        .target(
            name: "LockscopeTestSupport",
            dependencies: ["LockscopeCore", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .testTarget(
            name: "LockscopeCoreTests",
            dependencies: ["LockscopeCore", "LockscopeTestSupport", "lockscope-testbed"],
            // Fixtures are read from the source tree (#filePath): they hold dangling
            // symlinks (recorded fd links) that resource copying would follow.
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "LockscopeTraceTests",
            dependencies: ["LockscopeTrace", "LockscopeCore", "LockscopeRender", "LockscopeTestSupport", "lockscope-testbed"]
        ),
        .testTarget(
            name: "LockscopeDiagnosisTests",
            dependencies: ["LockscopeDiagnosis", "LockscopeDemo", "LockscopeRender", "LockscopeCore", "LockscopeTrace", "LockscopeTestSupport", "lockscope-testbed"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "LockscopeCLITests",
            dependencies: ["LockscopeCore", "LockscopeRender", "LockscopeTestSupport", "lockscope", "lockscope-testbed"],
            exclude: ["Golden"]   // read from the source tree (#filePath), rewritten in place
        ),
    ],
    swiftLanguageModes: [.v5]
)
