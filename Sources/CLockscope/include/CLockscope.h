// CLockscope: only what Swift cannot call directly. No logic lives here.
// Every shim says why it exists.
#ifndef CLOCKSCOPE_H
#define CLOCKSCOPE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

// getdents64(2): glibc's wrapper is recent and not exported by every Swift
// Glibc module map; the scan's hot path needs the raw call with our own buffer.
long cls_getdents64(int fd, void *_Nonnull buffer, size_t count);

// process_vm_readv(2) is declared only under _GNU_SOURCE, which the Swift
// Glibc module does not define. Reads one remote range into a local buffer.
long cls_process_vm_read(pid_t pid, void *_Nonnull local, size_t length,
                         uint64_t remote_address);

// ptrace(2) is variadic in glibc; Swift cannot call variadic C functions.
long cls_ptrace(long request, pid_t pid, uint64_t addr, uint64_t data);

// The wait-status macros (WIFSTOPPED & co.) are macros, invisible to Swift.
int cls_wifexited(int status);
int cls_wexitstatus(int status);
int cls_wifsignaled(int status);
int cls_wtermsig(int status);
int cls_wifstopped(int status);
int cls_wstopsig(int status);
// The PTRACE_EVENT_* number packed in bits 16..23 of a stop status.
int cls_wptrace_event(int status);

// errno is a thread-local macro in glibc; Swift's Glibc import exposes it, but
// resetting it before a call whose -1 is ambiguous (PTRACE_PEEK*) is clearer here.
int cls_errno(void);
void cls_set_errno(int value);

#ifdef __cplusplus
}
#endif

// Shims used only by the tracer live in their own header.
#include "CLockscopeTrace.h"
#endif
