// CLockscope: only what Swift cannot call directly, for every target (the scanner,
// the demo, the stop signals). No logic lives here. Every shim says why it exists.
// The tracer's shims (ptrace, wait-status macros, the ticker) are in CLockscopeTrace.
#ifndef CLOCKSCOPE_H
#define CLOCKSCOPE_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

// O_PATH is hidden without _GNU_SOURCE, which the Swift Glibc module does not define.
static const int CLS_O_PATH = 010000000;

// getdents64(2): glibc's wrapper is recent and not exported by every Swift
// Glibc module map; the scan's hot path needs the raw call with our own buffer.
long cls_getdents64(int fd, void *_Nonnull buffer, size_t count);

// kcmp(2) with KCMP_FILE: 0 when fd1 of pid1 and fd2 of pid2 are the same open
// file description. Glibc has no wrapper. One call per fd, no path lookup and no
// d_path, which makes the co-holder scan about 1.6x cheaper than readlinkat.
// Returns -1 with errno (ENOSYS without CONFIG_KCMP, EPERM, EBADF, ESRCH).
long cls_kcmp_file(pid_t pid1, pid_t pid2, int fd1, int fd2);

// unshare(2) is declared only under _GNU_SOURCE (the demo's namespaces). A
// lookup by name (dlsym) would find nothing in the static release binary.
int cls_unshare(int flags);

// sched_getaffinity/sched_setaffinity(2) for the calling thread, with the CPU_* macros
// (both hidden without _GNU_SOURCE). cls_pin_to_cpu moves the thread onto `cpu` only,
// saving its mask in `saved` (at least cls_cpu_mask_bytes() bytes); cls_restore_cpus
// puts it back. 0 or -1 with errno (EINVAL: the CPU is not allowed, e.g. a cpuset).
size_t cls_cpu_mask_bytes(void);
int cls_pin_to_cpu(int cpu, void *_Nonnull saved);
int cls_restore_cpus(const void *_Nonnull saved);

// Signal handlers must be C: Swift closures cannot be async-signal-safe handlers.
// One handler for SIGINT, SIGTERM, SIGHUP (and SIGPIPE when `catch_sigpipe`),
// without SA_RESTART, so a blocking wait in progress returns EINTR. It records the
// first signal, sends each registered child its stop signal (kill(2) is
// async-signal-safe), and, when it runs on another thread than the one registered
// with cls_set_wake_thread(), re-sends the signal to that thread to interrupt its wait.
void cls_install_stop_handlers(int catch_sigpipe);
// The first stop signal received, or 0.
int cls_stop_signal(void);
void cls_reset_stop_signal(void);
// Registers the calling thread as the one blocked in waitpid()/nanosleep().
void cls_set_wake_thread(void);
// A child the handler sends `sig` on a stop signal; 0, or -1 when the table is full.
int cls_stop_register_child(pid_t pid, int sig);
// Forgets a child once it is reaped (its pid may be reused from then on).
void cls_stop_unregister_child(pid_t pid);

// A path walk on a dead FUSE/NFS mount blocks uninterruptibly (D state) and no signal
// ends it, so lockscope makes such calls in a disposable child process and abandons the
// child if it does not answer in time. This must be C: the child of a multithreaded
// Swift process may make only async-signal-safe system calls (the runtime may hold locks
// or allocate), so the whole child side is these few calls.
//
// cls_child_open: the child opens PATH with FLAGS (O_CLOEXEC added), fstat()s it and
// passes the descriptor back over a socketpair (SCM_RIGHTS). With READ_LIMIT > 0 it
// instead reads up to READ_LIMIT bytes and sends them (no descriptor crosses), for files
// whose reads may block too (a resolv.conf inside another process's root).
// Returns 0 and fills the outputs, a positive errno from the child's open/read, or -1
// if the child did not answer within TIMEOUT_MS (it is SIGKILLed and left to the kernel;
// *child_out says which pid). *data_out is malloc'ed (free it) when READ_LIMIT > 0.
struct cls_child_result {
    int fd;                 // the descriptor, or -1 (READ_LIMIT > 0)
    unsigned int mode;      // st_mode
    unsigned long long ino; // st_ino
    unsigned char *_Nullable data;  // READ_LIMIT > 0: the bytes read
    size_t length;
    pid_t child;
};
int cls_child_open(const char *_Nonnull path, int flags, size_t read_limit, int timeout_ms,
                   struct cls_child_result *_Nonnull out);

#ifdef __cplusplus
}
#endif
#endif
