// libFuzzer driver for Tests/LockscopeTraceTests/FuzzCases.swift (scripts/fuzz builds the two
// together; not a SwiftPM target because it links libFuzzer's main). The target is chosen by
// $LOCKSCOPE_FUZZ_TARGET; each input is one file's contents.
#if canImport(Glibc)
import Glibc
#endif

let target: FuzzTarget = {
    guard let name = getenv("LOCKSCOPE_FUZZ_TARGET").map({ String(cString: $0) }), let t = FuzzTarget(rawValue: name) else {
        let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: " ")
        fputs("LOCKSCOPE_FUZZ_TARGET must be one of: \(names)\n", stderr)
        exit(64)
    }
    return t
}()

/// Keeps results alive so the optimiser cannot drop the parse.
nonisolated(unsafe) var sink = 0

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    sink &+= fuzzParse(target, UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
