#include "CLockscope.h"

#include <errno.h>
#include <sched.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

long cls_getdents64(int fd, void *buffer, size_t count) {
    return syscall(SYS_getdents64, fd, buffer, count);
}

long cls_kcmp_file(pid_t pid1, pid_t pid2, int fd1, int fd2) {
    return syscall(SYS_kcmp, pid1, pid2, 0 /* KCMP_FILE */, fd1, fd2);
}

int cls_unshare(int flags) {
    return unshare(flags);
}

long cls_process_vm_read(pid_t pid, void *local, size_t length, uint64_t remote_address) {
    struct iovec l = { .iov_base = local, .iov_len = length };
    struct iovec r = { .iov_base = (void *)(uintptr_t)remote_address, .iov_len = length };
    return process_vm_readv(pid, &l, 1, &r, 1, 0);
}

long cls_ptrace(long request, pid_t pid, uint64_t addr, uint64_t data) {
    return ptrace((enum __ptrace_request)request, pid, (void *)(uintptr_t)addr, (void *)(uintptr_t)data);
}

int cls_wifexited(int status) { return WIFEXITED(status); }
int cls_wexitstatus(int status) { return WEXITSTATUS(status); }
int cls_wifsignaled(int status) { return WIFSIGNALED(status); }
int cls_wtermsig(int status) { return WTERMSIG(status); }
int cls_wifstopped(int status) { return WIFSTOPPED(status); }
int cls_wstopsig(int status) { return WSTOPSIG(status); }
int cls_wptrace_event(int status) { return (status >> 16) & 0xff; }

int cls_errno(void) { return errno; }
void cls_set_errno(int value) { errno = value; }
