#include "CLockscope.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
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

size_t cls_cpu_mask_bytes(void) { return sizeof(cpu_set_t); }

int cls_pin_to_cpu(int cpu, void *saved) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) { errno = EINVAL; return -1; }
    if (sched_getaffinity(0, sizeof(cpu_set_t), (cpu_set_t *)saved) != 0) return -1;
    cpu_set_t only;
    CPU_ZERO(&only);
    CPU_SET(cpu, &only);
    return sched_setaffinity(0, sizeof(cpu_set_t), &only);
}

int cls_restore_cpus(const void *saved) {
    return sched_setaffinity(0, sizeof(cpu_set_t), (const cpu_set_t *)saved);
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

struct cls_child_header {
    int err;
    unsigned int mode;
    unsigned long long ino;
    unsigned long long length;
};

// The child side: system calls only, then _exit.
static void child_open(int sock, const char *path, int flags, size_t read_limit) {
    struct cls_child_header h = {0, 0, 0, 0};
    int fd = open(path, flags | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0) {
        h.err = errno;
    } else if (fstat(fd, &st) != 0) {
        h.err = errno;
    } else {
        h.mode = st.st_mode;
        h.ino = st.st_ino;
    }
    if (h.err != 0 || read_limit == 0) {
        struct iovec iov = { .iov_base = &h, .iov_len = sizeof h };
        union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (h.err == 0) {
            msg.msg_control = control.buf;
            msg.msg_controllen = sizeof control.buf;
            struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &fd, sizeof fd);
        }
        while (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR) {}
        _exit(0);
    }
    // Read mode: the bytes go after the header; the length is known only at the end, so
    // the header is sent last, in its own message, and the parent reads until EOF.
    char buf[4096];
    size_t total = 0;
    while (total < read_limit) {
        size_t want = read_limit - total < sizeof buf ? read_limit - total : sizeof buf;
        ssize_t n = read(fd, buf, want);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { h.err = errno; break; }
        if (n == 0) break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = send(sock, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) _exit(1);
            off += w;
        }
        total += (size_t)n;
    }
    h.length = total;
    (void)send(sock, &h, sizeof h, MSG_NOSIGNAL);
    _exit(0);
}

static long long monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cls_child_open(const char *path, int flags, size_t read_limit, int timeout_ms,
                   struct cls_child_result *out) {
    out->fd = -1;
    out->mode = 0;
    out->ino = 0;
    out->data = NULL;
    out->length = 0;
    out->child = 0;
    int sv[2];
    // SOCK_SEQPACKET keeps the descriptor's message whole; stream for bytes.
    if (socketpair(AF_UNIX, (read_limit ? SOCK_STREAM : SOCK_SEQPACKET) | SOCK_CLOEXEC, 0, sv) != 0) return errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(sv[0]); close(sv[1]);
        return e;
    }
    if (pid == 0) {
        close(sv[0]);
        child_open(sv[1], path, flags, read_limit);
    }
    close(sv[1]);
    out->child = pid;
    long long deadline = monotonic_ms() + timeout_ms;
    int result = -1;
    unsigned char *data = NULL;
    size_t used = 0, capacity = 0;
    for (;;) {
        long long left = deadline - monotonic_ms();
        if (left <= 0) break;
        struct pollfd p = { .fd = sv[0], .events = POLLIN };
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (read_limit == 0) {
            struct cls_child_header h;
            struct iovec iov = { .iov_base = &h, .iov_len = sizeof h };
            union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
            struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                                  .msg_controllen = sizeof control.buf };
            ssize_t n = recvmsg(sv[0], &msg, MSG_CMSG_CLOEXEC);
            if (n < 0 && errno == EINTR) continue;
            if (n != (ssize_t)sizeof h) { result = EIO; break; }
            if (h.err != 0) { result = h.err; break; }
            struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
            if (!c || c->cmsg_type != SCM_RIGHTS) { result = EIO; break; }
            memcpy(&out->fd, CMSG_DATA(c), sizeof(int));
            out->mode = h.mode;
            out->ino = h.ino;
            result = 0;
            break;
        }
        if (used + 4096 > capacity) {
            size_t grown = capacity ? capacity * 2 : 8192;
            unsigned char *bigger = realloc(data, grown);
            if (!bigger) { result = ENOMEM; break; }
            data = bigger;
            capacity = grown;
        }
        ssize_t n = recv(sv[0], data + used, capacity - used, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { result = errno; break; }
        if (n > 0) { used += (size_t)n; continue; }
        // EOF: the header is the last sizeof header bytes.
        struct cls_child_header h;
        if (used < sizeof h) { result = EIO; break; }
        used -= sizeof h;
        memcpy(&h, data + used, sizeof h);
        if (h.err != 0) { result = h.err; break; }
        if (h.length != used) { result = EIO; break; }
        out->mode = h.mode;
        out->ino = h.ino;
        out->data = data;
        out->length = used;
        data = NULL;
        result = 0;
        break;
    }
    free(data);
    close(sv[0]);
    // The child has answered (or given up); it exits at once unless its close() is stuck
    // too. Reap it if it is gone by the deadline, else kill it and leave it to the kernel.
    int status;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR)) break;
        if (monotonic_ms() >= deadline) { kill(pid, SIGKILL); break; }
        struct timespec pause = { 0, 1000000 };
        nanosleep(&pause, NULL);
    }
    return result;
}
