// loadgen: builds a reproducible "box in trouble" for the benchmarks.
//
//   loadgen -d DIR [-n N] [-m M] [-w W] [-o OPENERS] [-f NFILES] [-L LOCKS]
//
// Starts, as its own children (fork only, no exec, so they cost a few pages each):
//   - N sleeping processes, each holding M open fds on DIR/files/f<k> (NFILES files),
//   - one process holding an exclusive flock on DIR/target,
//   - W processes blocked in flock(LOCK_EX) on DIR/target (kernel waiters),
//   - OPENERS processes that have DIR/target open without locking it,
//   - LOCKS POSIX locks (for the /proc/locks parser curve): up to 10 processes,
//     100 non-adjacent one-byte locks per file on DIR/locks/l<k>.
// When all of them are in place (every waiter seen in flock(2) via
// /proc/PID/syscall) it prints "ready <pids> <fds> <target>" and waits for EOF or a
// line on stdin, SIGINT or SIGTERM; then it SIGKILLs exactly the pids it started and
// reaps them. Children also die with it (PR_SET_PDEATHSIG), so nothing outlives it.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t *pids;
static int npids, cappids;
static volatile sig_atomic_t stop;
static int ready_pipe[2];

static void on_signal(int sig) { (void)sig; stop = 1; }

static void die(const char *what) {
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void cleanup(void) {
    for (int i = 0; i < npids; i++) kill(pids[i], SIGKILL);
    for (int i = 0; i < npids; i++) while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR) {}
    npids = 0;
}

// In a child: die with the parent, tell it we are set up, then sleep forever.
static void child_setup(pid_t parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    close(ready_pipe[0]);
}
static void child_ready(void) {
    char c = 1;
    if (write(ready_pipe[1], &c, 1) != 1) _exit(1);
    close(ready_pipe[1]);
}

typedef void (*child_fn)(void *);

static pid_t start(child_fn fn, void *arg) {
    pid_t parent = getpid();
    pid_t p = fork();
    if (p < 0) die("fork");
    if (p == 0) {
        child_setup(parent);
        fn(arg);
        for (;;) pause();
    }
    if (npids == cappids) {
        cappids = cappids ? cappids * 2 : 1024;
        pids = realloc(pids, sizeof(pid_t) * cappids);
        if (!pids) die("realloc");
    }
    pids[npids++] = p;
    return p;
}

static const char *dir;
static int M = 50, NFILES = 100;
static char target[4096];

struct sleeper_arg { int index; };
static void sleeper(void *a) {
    int idx = ((struct sleeper_arg *)a)->index;
    char path[4200];
    for (int j = 0; j < M; j++) {
        snprintf(path, sizeof path, "%s/files/f%d", dir, (idx + j) % NFILES);
        if (open(path, O_RDONLY) < 0) _exit(1);
    }
    child_ready();
}

static void holder(void *a) {
    (void)a;
    int fd = open(target, O_RDWR);
    if (fd < 0 || flock(fd, LOCK_EX) != 0) _exit(1);
    child_ready();
}

static void waiter(void *a) {
    (void)a;
    int fd = open(target, O_RDWR);
    if (fd < 0) _exit(1);
    child_ready();
    flock(fd, LOCK_EX);  // blocks: the holder never releases
}

static void opener(void *a) {
    (void)a;
    if (open(target, O_RDONLY) < 0) _exit(1);
    child_ready();
}

struct locker_arg { int first_file, nlocks; };
static void locker(void *a) {
    struct locker_arg *l = a;
    char path[4200];
    int fd = -1;
    for (int k = 0; k < l->nlocks; k++) {
        if (k % 100 == 0) {
            snprintf(path, sizeof path, "%s/locks/l%d", dir, l->first_file + k / 100);
            fd = open(path, O_RDWR | O_CREAT, 0644);
            if (fd < 0) _exit(1);
        }
        // One-byte locks two bytes apart never merge: one /proc/locks line each.
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 2 * (k % 100), .l_len = 1 };
        if (fcntl(fd, F_SETLK, &fl) != 0) _exit(1);
    }
    child_ready();
}

static int in_flock(pid_t p) {
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/%d/syscall", p);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    return atoi(buf) == SYS_flock;
}

static void touch(const char *path) {
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0) die(path);
    close(fd);
}

int main(int argc, char **argv) {
    int N = 2000, W = 60, OPENERS = 0, LOCKS = 0, opt;
    while ((opt = getopt(argc, argv, "d:n:m:w:o:f:L:h")) != -1) {
        switch (opt) {
        case 'd': dir = optarg; break;
        case 'n': N = atoi(optarg); break;
        case 'm': M = atoi(optarg); break;
        case 'w': W = atoi(optarg); break;
        case 'o': OPENERS = atoi(optarg); break;
        case 'f': NFILES = atoi(optarg); break;
        case 'L': LOCKS = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: loadgen -d DIR [-n N] [-m M] [-w W] [-o OPENERS] [-f NFILES] [-L LOCKS]\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    if (!dir || N < 0 || M < 0 || W < 0 || NFILES < 1 || LOCKS < 0) {
        fprintf(stderr, "loadgen: -d DIR is required; counts must be >= 0\n");
        return 2;
    }
    struct rlimit rl = { 1 << 20, 1 << 20 };
    if (M + 16 > 1024) setrlimit(RLIMIT_NOFILE, &rl);

    char path[4200];
    snprintf(path, sizeof path, "%s/files", dir); mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/locks", dir); mkdir(path, 0755);
    for (int k = 0; k < NFILES; k++) { snprintf(path, sizeof path, "%s/files/f%d", dir, k); touch(path); }
    snprintf(target, sizeof target, "%s/target", dir);
    touch(target);

    struct sigaction sa = { .sa_handler = on_signal };  // no SA_RESTART: wake up reads
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (pipe(ready_pipe) != 0) die("pipe");

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int expected = 0;
    static struct sleeper_arg sarg;
    for (int i = 0; i < N && !stop; i++) { sarg.index = i; start(sleeper, &sarg); expected++; }
    start(holder, NULL); expected++;
    // Let the holder take the lock before any waiter queues.
    char c;
    int got = 0;
    while (got < expected && !stop) {
        ssize_t n = read(ready_pipe[0], &c, 1);
        if (n == 1) got++; else if (n == 0) break; else if (errno != EINTR) die("read");
    }
    pid_t *waiters = calloc(W ? W : 1, sizeof(pid_t));
    for (int i = 0; i < W && !stop; i++) { waiters[i] = start(waiter, NULL); expected++; }
    for (int i = 0; i < OPENERS && !stop; i++) { start(opener, NULL); expected++; }
    static struct locker_arg largs[10];
    if (LOCKS > 0) {
        int procs = LOCKS < 1000 ? 1 : 10, per = (LOCKS + procs - 1) / procs, left = LOCKS, f = 0;
        for (int p = 0; p < procs && left > 0; p++) {
            int n = per < left ? per : left;
            largs[p] = (struct locker_arg){ f, n };
            f += (n + 99) / 100;
            left -= n;
            start(locker, &largs[p]); expected++;
        }
    }
    close(ready_pipe[1]);
    while (got < expected && !stop) {
        ssize_t n = read(ready_pipe[0], &c, 1);
        if (n == 1) got++;
        else if (n == 0) { fprintf(stderr, "loadgen: a child failed during set-up\n"); stop = 1; }
        else if (errno != EINTR) die("read");
    }
    // Wait until every waiter is really blocked in flock(2).
    for (int i = 0; i < W && !stop; i++) {
        int tries = 0;
        while (!in_flock(waiters[i]) && !stop) {
            struct timespec ts = { 0, 1000000 };
            nanosleep(&ts, NULL);
            if (++tries > 20000) { fprintf(stderr, "loadgen: waiter %d never blocked\n", waiters[i]); stop = 1; }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (stop) { cleanup(); return 1; }
    long fds = (long)N * M + 1 + W + OPENERS + (LOCKS + 99) / 100;
    printf("ready pids=%d fds=%ld target=%s holder=%d setup_ms=%ld\n", npids, fds, target, pids[N],
           (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
    fflush(stdout);
    while (!stop) {
        ssize_t n = read(0, &c, 1);
        if (n == 0 || (n == 1 && c == '\n')) break;
        if (n < 0 && errno != EINTR) break;
    }
    cleanup();
    return 0;
}
