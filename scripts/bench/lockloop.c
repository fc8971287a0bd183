// The lock-heavy workload: N flock(LOCK_EX) + flock(LOCK_UN) pairs on a private
// file (2 filelock events per pair), optionally paced to RATE pairs per second.
// Prints "ns_per_pair X" (wall, CLOCK_MONOTONIC) and "cpu_ns_per_pair X".
// Usage: lockloop FILE N [RATE]
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static int64_t now(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: lockloop FILE N [RATE]\n"); return 2; }
    int fd = open(argv[1], O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) { perror(argv[1]); return 1; }
    long n = atol(argv[2]);
    double rate = argc > 3 ? atof(argv[3]) : 0;
    int64_t t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    for (long i = 0; i < n; i++) {
        flock(fd, LOCK_EX);
        flock(fd, LOCK_UN);
        if (rate > 0) {
            int64_t due = t0 + (int64_t)((double)(i + 1) * 1e9 / rate);
            int64_t left = due - now(CLOCK_MONOTONIC);
            if (left > 0) {
                struct timespec ts = {left / 1000000000, left % 1000000000};
                nanosleep(&ts, NULL);
            }
        }
    }
    int64_t t1 = now(CLOCK_MONOTONIC), c1 = now(CLOCK_PROCESS_CPUTIME_ID);
    printf("ns_per_pair %.1f\ncpu_ns_per_pair %.1f\n", (double)(t1 - t0) / (double)n, (double)(c1 - c0) / (double)n);
    return 0;
}
