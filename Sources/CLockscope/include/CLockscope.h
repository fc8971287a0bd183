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

// Host syscall numbers the scanner needs to recognise a thread blocked on a
// lock or sleeping between attempts; Swift's Glibc module does not export SYS_*.
// (The tracer has full per-architecture tables; these are only for the host.)
#include <sys/syscall.h>
#include <fcntl.h>
static const long CLS_SYS_FLOCK = SYS_flock;
static const long CLS_SYS_FCNTL = SYS_fcntl;
static const long CLS_SYS_NANOSLEEP = SYS_nanosleep;
static const long CLS_SYS_CLOCK_NANOSLEEP = SYS_clock_nanosleep;
static const long CLS_SYS_PSELECT6 = SYS_pselect6;
static const long CLS_SYS_PPOLL = SYS_ppoll;
#ifdef SYS_select
static const long CLS_SYS_SELECT = SYS_select;
#else
static const long CLS_SYS_SELECT = -1;
#endif
#ifdef SYS_poll
static const long CLS_SYS_POLL = SYS_poll;
#else
static const long CLS_SYS_POLL = -1;
#endif
static const int CLS_F_SETLKW = F_SETLKW;
static const int CLS_F_OFD_SETLKW = 38;  // F_OFD_SETLKW, needs _GNU_SOURCE in <fcntl.h>
static const int CLS_O_PATH = 010000000;  // O_PATH, likewise hidden without _GNU_SOURCE

// getdents64(2): glibc's wrapper is recent and not exported by every Swift
// Glibc module map; the scan's hot path needs the raw call with our own buffer.
long cls_getdents64(int fd, void *_Nonnull buffer, size_t count);

// kcmp(2) with KCMP_FILE: 0 when fd1 of pid1 and fd2 of pid2 are the same open
// file description. Glibc has no wrapper. One call per fd, no path lookup and no
// d_path, which makes the co-holder scan about 1.6x cheaper than readlinkat.
// Returns -1 with errno (ENOSYS without CONFIG_KCMP, EPERM, EBADF, ESRCH).
long cls_kcmp_file(pid_t pid1, pid_t pid2, int fd1, int fd2);

// process_vm_readv(2) is declared only under _GNU_SOURCE, which the Swift
// Glibc module does not define. Reads one remote range into a local buffer.
long cls_process_vm_read(pid_t pid, void *_Nonnull local, size_t length,
                         uint64_t remote_address);

// unshare(2) is declared only under _GNU_SOURCE (the demo's namespaces). A
// lookup by name (dlsym) would find nothing in the static release binary.
int cls_unshare(int flags);

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
