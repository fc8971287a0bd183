import LockscopeRender

/// Host syscall names for the renderers (replaced by the tracer's table when it lands).
let hostSyscallName: SyscallNamer = { _ in nil }
