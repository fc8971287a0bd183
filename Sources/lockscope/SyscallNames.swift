import LockscopeRender
import LockscopeCore

/// Host syscall names for the renderers, from the syscall table.
let hostSyscallName: SyscallNamer = { SyscallTable.host.name(of: $0) }
