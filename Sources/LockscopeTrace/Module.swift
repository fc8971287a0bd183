// Placeholder until the tracer lands; replaced by the syscall tables, sampler and ptrace session.
import LockscopeCore
