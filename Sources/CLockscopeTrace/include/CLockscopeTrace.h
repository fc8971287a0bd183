// CLockscopeTrace: the C shims only the tracer and sampler (LockscopeTrace) use, so
// the ptrace header stays out of every other target. Every shim says why it exists.
#ifndef CLOCKSCOPE_TRACE_H
#define CLOCKSCOPE_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

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

// A periodic CLOCK_MONOTONIC timer that sends SIGALRM to the calling thread
// only (SIGEV_THREAD_ID, which glibc exposes only as a macro on a union member),
// so the ptrace loop's blocking waitpid() returns EINTR at least every
// `interval_ns` to check --duration and the stop flag, even when every tracee
// sleeps. The SIGALRM handler does nothing else. Returns 0 or -1 with errno.
int cls_trace_start_ticker(int64_t interval_ns);
void cls_trace_stop_ticker(void);

// PTRACE_GET_SYSCALL_INFO (Linux 5.3). glibc's struct is new and its layout
// differs between versions; this one mirrors include/uapi/linux/ptrace.h.
struct cls_syscall_info {
    uint8_t op;          // 0 none, 1 entry, 2 exit, 3 seccomp
    uint8_t pad[3];
    uint32_t arch;       // AUDIT_ARCH_*
    uint64_t instruction_pointer;
    uint64_t stack_pointer;
    union {
        struct { uint64_t nr; uint64_t args[6]; } entry;
        struct { int64_t rval; uint8_t is_error; } exit;
        struct { uint64_t nr; uint64_t args[6]; uint32_t ret_data; } seccomp;
    } u;
};
// Fills *info for a thread in a syscall-stop; returns the number of bytes the
// kernel wrote (> 0), or -1 with errno.
long cls_ptrace_get_syscall_info(pid_t tid, struct cls_syscall_info *_Nonnull info);

// PTRACE_PEEKUSER of one register, with errno telling -1 from a failure (a word
// read through variadic ptrace cannot be told apart otherwise). About half the
// kernel work of PTRACE_GET_SYSCALL_INFO, which the tracer needs only at syscall
// entry: at exit the return value is all it wants. Returns 0, or errno.
int cls_ptrace_peek_user(pid_t tid, long offset, uint64_t *_Nonnull value);
// Offsets in x86_64 `struct user_regs_struct` (sys/user.h).
static const long CLS_X86_64_RAX_OFFSET = 10 * 8;
static const long CLS_X86_64_ORIG_RAX_OFFSET = 15 * 8;

// ptrace constants glibc hides behind _GNU_SOURCE or an enum Swift cannot see.
static const long CLS_PTRACE_SYSCALL = 24;
static const long CLS_PTRACE_DETACH = 17;
static const long CLS_PTRACE_CONT = 7;
static const long CLS_PTRACE_GETEVENTMSG = 0x4201;
static const long CLS_PTRACE_SEIZE = 0x4206;
static const long CLS_PTRACE_INTERRUPT = 0x4207;
static const long CLS_PTRACE_LISTEN = 0x4208;
static const long CLS_PTRACE_GET_SYSCALL_INFO = 0x420e;
static const long CLS_PTRACE_O_TRACESYSGOOD = 1;
static const long CLS_PTRACE_O_TRACEFORK = 2;
static const long CLS_PTRACE_O_TRACEVFORK = 4;
static const long CLS_PTRACE_O_TRACECLONE = 8;
static const long CLS_PTRACE_O_TRACEEXEC = 0x10;
static const long CLS_PTRACE_O_TRACEEXIT = 0x40;
static const int CLS_PTRACE_EVENT_FORK = 1;
static const int CLS_PTRACE_EVENT_VFORK = 2;
static const int CLS_PTRACE_EVENT_CLONE = 3;
static const int CLS_PTRACE_EVENT_EXEC = 4;
static const int CLS_PTRACE_EVENT_EXIT = 6;
static const int CLS_PTRACE_EVENT_STOP = 128;
static const int CLS_WALL = 0x40000000;  // __WALL: wait for threads too

#ifdef __cplusplus
}
#endif
#endif
