// Shims for the tracer; see CLockscopeTrace.h for why each exists.
#include "CLockscopeTrace.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal = 0;
static pthread_t wake_thread;
static volatile sig_atomic_t wake_thread_set = 0;
static timer_t ticker;
static int ticker_set = 0;
static struct sigaction saved_alrm;

static void stop_handler(int sig) {
    int saved = errno;
    if (stop_signal == 0) stop_signal = sig;
    // A process-directed signal may land on any thread; make sure the thread
    // blocked in waitpid()/nanosleep() sees EINTR too.
    if (wake_thread_set && !pthread_equal(pthread_self(), wake_thread)) pthread_kill(wake_thread, sig);
    errno = saved;
}

static void ticker_handler(int sig) { (void)sig; }

void cls_trace_install_stop_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = stop_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: blocking waits return EINTR
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
}

int cls_trace_stop_signal(void) { return stop_signal; }
void cls_trace_reset_stop_signal(void) { stop_signal = 0; }

void cls_trace_set_wake_thread(void) {
    wake_thread = pthread_self();
    wake_thread_set = 1;
}

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

pid_t cls_gettid(void) { return (pid_t)syscall(SYS_gettid); }

int64_t cls_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

long cls_pread0(int fd, void *buf, size_t count) {
    long r;
    do { r = pread(fd, buf, count, 0); } while (r < 0 && errno == EINTR);
    return r;
}

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
