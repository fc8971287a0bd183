#include "CLockscope.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
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

enum { MAX_CHILDREN = 1024 };
static volatile sig_atomic_t stop_signal = 0;
static pthread_t wake_thread;
static volatile sig_atomic_t wake_thread_set = 0;
// pid, signal pairs; written outside the handler before `child_count` is bumped.
static volatile pid_t child_pid[MAX_CHILDREN];
static volatile int child_sig[MAX_CHILDREN];
static volatile sig_atomic_t child_count = 0;

static void stop_handler(int sig) {
    int saved = errno;
    if (stop_signal == 0) stop_signal = sig;
    for (int i = 0; i < child_count; i++) {
        if (child_pid[i] > 0) kill(child_pid[i], child_sig[i]);
    }
    // A process-directed signal may land on any thread; make sure the thread
    // blocked in waitpid()/nanosleep() sees EINTR too.
    if (wake_thread_set && !pthread_equal(pthread_self(), wake_thread)) pthread_kill(wake_thread, sig);
    errno = saved;
}

void cls_install_stop_handlers(int catch_sigpipe) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = stop_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: blocking waits return EINTR
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (catch_sigpipe) sigaction(SIGPIPE, &sa, NULL);
}

int cls_stop_signal(void) { return stop_signal; }
void cls_reset_stop_signal(void) { stop_signal = 0; }

void cls_set_wake_thread(void) {
    wake_thread = pthread_self();
    wake_thread_set = 1;
}

int cls_stop_register_child(pid_t pid, int sig) {
    if (pid <= 0 || child_count >= MAX_CHILDREN) return -1;
    child_pid[child_count] = pid;
    child_sig[child_count] = sig;
    child_count = child_count + 1;
    return 0;
}

void cls_stop_unregister_child(pid_t pid) {
    for (int i = 0; i < child_count; i++) {
        if (child_pid[i] == pid) child_pid[i] = 0;
    }
}
