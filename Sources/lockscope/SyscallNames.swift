import LockscopeRender
import LockscopeTrace

/// Host syscall names for the renderers, from the tracer's table.
let hostSyscallName: SyscallNamer = { SyscallTable.host.name(of: $0) }
