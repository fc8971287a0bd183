// measure: runs one command and reports its wall time, CPU time and peak RSS.
//
//   measure [-t SECONDS] [-q] -r RESULT_FILE -- PROGRAM ARGS...
//
// Why not measure from the Python runner: a child spawned with vfork/posix_spawn
// shares the parent's address space until exec, and the kernel folds that
// address space's high-water RSS into the child's ru_maxrss at exec: every
// command would show Python's ~17 MiB. This tiny program fork()s (the child's
// pre-exec image is this program, ~1 MiB) and execs, then reads wait4()'s rusage.
// -q sends the command's stdout to /dev/null. SIGINT and SIGTERM are forwarded
// to the command. On timeout the command's process group is SIGKILLed.
// RESULT_FILE gets one line: "wall_ns=N user_us=N sys_us=N maxrss_kb=N exit=N".
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t child;
static void forward(int sig) { if (child > 0) kill(child, sig); }
static void timeout(int sig) { (void)sig; if (child > 0) { kill(-child, SIGKILL); kill(child, SIGKILL); } }

int main(int argc, char **argv) {
    const char *result = NULL;
    int secs = 0, quiet = 0, opt;
    while ((opt = getopt(argc, argv, "+t:r:q")) != -1) {
        if (opt == 't') secs = atoi(optarg);
        else if (opt == 'r') result = optarg;
        else if (opt == 'q') quiet = 1;
        else { fprintf(stderr, "usage: measure [-t S] [-q] -r FILE -- PROGRAM ARGS...\n"); return 2; }
    }
    if (!result || optind >= argc) { fprintf(stderr, "usage: measure [-t S] [-q] -r FILE -- PROGRAM ARGS...\n"); return 2; }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    child = fork();
    if (child < 0) { perror("fork"); return 1; }
    if (child == 0) {
        setpgid(0, 0);
        if (quiet) {
            int fd = open("/dev/null", O_WRONLY);
            if (fd >= 0) { dup2(fd, 1); close(fd); }
        }
        execvp(argv[optind], argv + optind);
        fprintf(stderr, "measure: %s: %s\n", argv[optind], strerror(errno));
        _exit(127);
    }
    setpgid(child, child);
    struct sigaction sa = { .sa_handler = forward, .sa_flags = SA_RESTART };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (secs > 0) {
        struct sigaction st = { .sa_handler = timeout, .sa_flags = SA_RESTART };
        sigaction(SIGALRM, &st, NULL);
        alarm(secs);
    }
    int status;
    struct rusage ru;
    while (wait4(child, &status, 0, &ru) < 0) {
        if (errno != EINTR) { perror("wait4"); return 1; }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    FILE *f = fopen(result, "w");
    if (!f) { perror(result); return 1; }
    fprintf(f, "wall_ns=%lld user_us=%lld sys_us=%lld maxrss_kb=%ld exit=%d\n",
            (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec),
            (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
            (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec, ru.ru_maxrss, code);
    fclose(f);
    return 0;
}
