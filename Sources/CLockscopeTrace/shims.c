// Shims for the tracer; see CLockscopeTrace.h for why each exists.
#include "CLockscopeTrace.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static timer_t ticker;
static int ticker_set = 0;
static struct sigaction saved_alrm;

static void ticker_handler(int sig) { (void)sig; }

int cls_trace_start_ticker(int64_t interval_ns) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ticker_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: the point is to interrupt waitpid()
    if (sigaction(SIGALRM, &sa, &saved_alrm) != 0) return -1;
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGALRM;
    sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    if (ticker_set) { timer_delete(ticker); ticker_set = 0; }
    if (timer_create(CLOCK_MONOTONIC, &sev, &ticker) != 0) return -1;
    ticker_set = 1;
    if (interval_ns <= 0) interval_ns = 100000000;
    struct itimerspec its;
    its.it_value.tv_sec = interval_ns / 1000000000LL;
    its.it_value.tv_nsec = interval_ns % 1000000000LL;
    its.it_interval = its.it_value;
    return timer_settime(ticker, 0, &its, NULL);
}

void cls_trace_stop_ticker(void) {
    if (ticker_set) {
        timer_delete(ticker);
        ticker_set = 0;
        sigaction(SIGALRM, &saved_alrm, NULL);
    }
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

long cls_ptrace_get_syscall_info(pid_t tid, struct cls_syscall_info *info) {
    return ptrace((enum __ptrace_request)0x420e, tid, (void *)sizeof(*info), info);
}

int cls_ptrace_peek_user(pid_t tid, long offset, uint64_t *value) {
    errno = 0;
    long v = ptrace(PTRACE_PEEKUSER, tid, (void *)offset, NULL);
    if (v == -1 && errno != 0) return errno;
    *value = (uint64_t)v;
    return 0;
}
