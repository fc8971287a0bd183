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
static volatile sig_atomic_t timer_fired = 0;
static pthread_t wake_thread;
static volatile sig_atomic_t wake_thread_set = 0;
static timer_t duration_timer;
static int duration_timer_set = 0;

static void stop_handler(int sig) {
    int saved = errno;
    if (stop_signal == 0) stop_signal = sig;
    // A process-directed signal may land on any thread; make sure the thread
    // blocked in waitpid()/nanosleep() sees EINTR too.
    if (wake_thread_set && !pthread_equal(pthread_self(), wake_thread)) pthread_kill(wake_thread, sig);
    errno = saved;
}

static void timer_handler(int sig) {
    (void)sig;
    timer_fired = 1;
}

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

int cls_trace_arm_timer(int64_t nanoseconds) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = timer_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    if (sigaction(SIGALRM, &sa, NULL) != 0) return -1;
    timer_fired = 0;
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGALRM;
    sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    if (duration_timer_set) { timer_delete(duration_timer); duration_timer_set = 0; }
    if (timer_create(CLOCK_MONOTONIC, &sev, &duration_timer) != 0) return -1;
    duration_timer_set = 1;
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (nanoseconds <= 0) nanoseconds = 1;
    its.it_value.tv_sec = nanoseconds / 1000000000LL;
    its.it_value.tv_nsec = nanoseconds % 1000000000LL;
    return timer_settime(duration_timer, 0, &its, NULL);
}

void cls_trace_disarm_timer(void) {
    if (duration_timer_set) {
        timer_delete(duration_timer);
        duration_timer_set = 0;
    }
}

int cls_trace_timer_fired(void) { return timer_fired; }

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
