// swift-tools-version:6.1
import PackageDescription

// Release builds on Linux link one fully static binary (see the lockscope target).
let staticRelease = BuildSettingCondition.when(platforms: [.linux], configuration: .release)
// The static release's linker script fragment (see CLockscopeImage).
let deferredConformances = Context.packageDirectory + "/Sources/CLockscopeImage/deferred-conformances.ld"

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
        // `lockscope serve` / `metrics` (docs/metrics.md): SwiftNIO's HTTP1 server directly,
        // not a framework on it: every conformance record linked in slows the start-up of
        // every command (docs/performance.md, "Start-up with the exporter linked in").
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
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
        // The static release's deferred protocol-conformance records: the linker script
        // that sets them apart and the call that hands them to the Swift runtime when a
        // command other than list/who/waiters/metrics runs (docs/performance.md, "Start-up, fourth
        // pass").
        .target(
            name: "CLockscopeImage",
            exclude: ["deferred-conformances.ld"]
        ),
        .target(
            name: "LockscopeCore",
            dependencies: [
                "CLockscope",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // The kernel-event module's C shims (perf_event_open, the perf ioctls, the
        // ring's head/tail barriers, the private tracefs read), kept out of every other
        // target's view.
        .target(
            name: "CLockscopeEvents",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        // Kernel lock events: tracepoint formats, perf ring buffers, the watch aggregator.
        .target(
            name: "LockscopeEvents",
            dependencies: [
                "LockscopeCore", "CLockscopeEvents",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .testTarget(
            name: "LockscopeEventsTests",
            dependencies: ["LockscopeEvents", "LockscopeCore", "LockscopeTestSupport", "lockscope", "lockscope-testbed"],
            exclude: ["Fixtures"]
        ),
        .target(
            name: "LockscopeTrace",
            dependencies: ["LockscopeCore", "LockscopeEvents", "CLockscopeTrace", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .target(
            name: "LockscopeDiagnosis",
            dependencies: ["LockscopeCore", "LockscopeTrace", "LockscopeEvents"]
        ),
        .target(
            name: "LockscopeRender",
            dependencies: ["LockscopeCore", "LockscopeTrace", "LockscopeDiagnosis", "LockscopeEvents"]
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
        // The Prometheus exposition and the HTTP exporter (`metrics`, `serve`).
        .target(
            name: "LockscopeMetrics",
            dependencies: [
                "LockscopeCore", "LockscopeTrace", "LockscopeDiagnosis",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "lockscope",
            dependencies: [
                "LockscopeCore", "LockscopeTrace", "LockscopeDiagnosis", "LockscopeRender", "LockscopeDemo",
                "LockscopeMetrics",
                "LockscopeEvents", "LockscopeTestbed", "CLockscopeImage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // The release binary is fully static (libc included): one file to copy onto a
            // machine in trouble, no dynamic loading at start, and half the peak RSS of a
            // shared-stdlib build, because only the pages it runs are mapped
            // (docs/performance.md, "RSS").
            // FoundationEssentials (through ArgumentParser) names its static dependencies
            // only when the importing module is itself compiled for a static link.
            // The linker script keeps the conformance records of the exporter and of
            // Foundation out of the set the Swift runtime scans at start-up
            // (Sources/CLockscopeImage/deferred-conformances.ld).
            linkerSettings: [
                .unsafeFlags(["-static-executable", "-use-ld=lld", "-Xlinker", "-T", "-Xlinker", deferredConformances], staticRelease),
                .linkedLibrary("_FoundationCollections", staticRelease),
                .linkedLibrary("_FoundationCShims", staticRelease),
            ],
            // `--version` names the git revision (Plugins/GitRevision writes it at build time).
            plugins: ["GitRevision"]
        ),
        // The testbed's steps, run by `lockscope-testbed` (tests) and by the hidden
        // `lockscope __testbed` (the demo, so the release binary is the only file needed).
        .target(
            name: "LockscopeTestbed"
        ),
        .executableTarget(
            name: "lockscope-testbed",
            dependencies: ["LockscopeTestbed"]
        ),
        .plugin(name: "GitRevision", capability: .buildTool()),
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
            dependencies: ["LockscopeDiagnosis", "LockscopeDemo", "LockscopeRender", "LockscopeCore", "LockscopeTrace", "LockscopeEvents", "LockscopeTestSupport", "lockscope-testbed"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "LockscopeMetricsTests",
            dependencies: ["LockscopeMetrics", "LockscopeCore", "LockscopeTestSupport", "lockscope", "lockscope-testbed"]
        ),
        .testTarget(
            name: "LockscopeCLITests",
            dependencies: ["LockscopeCore", "LockscopeRender", "LockscopeTestSupport", "lockscope", "lockscope-testbed"],
            exclude: ["Golden"]   // read from the source tree (#filePath), rewritten in place
        ),
    ],
    swiftLanguageModes: [.v5]
)
