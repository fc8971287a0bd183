// The floor for `lockscope watch`: opens the same tracepoints the same way
// (perf_event_open(PERF_TYPE_TRACEPOINT), every CPU, system-wide, one ring per
// CPU shared through PERF_EVENT_IOC_SET_OUTPUT, SAMPLE_TID|TIME|CPU|RAW,
// CLOCK_MONOTONIC, wakeup at a quarter of the ring) and only drains the rings:
// no decoding, no aggregation. Runs until SIGINT/SIGTERM, then prints
// "samples N lost N". Usage: lockfloor ID [ID...]  (tracefs event ids)
#define _GNU_SOURCE
#include <linux/perf_event.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long PAGES = 1024;
static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: lockfloor ID...\n"); return 2; }
    if (getenv("LOCKFLOOR_PAGES")) PAGES = atol(getenv("LOCKFLOOR_PAGES"));
    int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
    long page = sysconf(_SC_PAGESIZE);
    struct pollfd *pfd = calloc((size_t)ncpu, sizeof *pfd);
    void **maps = calloc((size_t)ncpu, sizeof *maps);
    uint64_t *tails = calloc((size_t)ncpu, sizeof *tails);
    uint64_t samples = 0, lost = 0;
    for (int cpu = 0; cpu < ncpu; cpu++) {
        int leader = -1;
        for (int i = 1; i < argc; i++) {
            struct perf_event_attr a;
            memset(&a, 0, sizeof a);
            a.type = PERF_TYPE_TRACEPOINT;
            a.size = sizeof a;
            a.config = strtoull(argv[i], NULL, 10);
            a.sample_period = 1;
            a.sample_type = PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_CPU | PERF_SAMPLE_RAW;
            a.disabled = 1;
            a.use_clockid = 1;
            a.clockid = CLOCK_MONOTONIC;
            a.watermark = 1;
            a.wakeup_watermark = (uint32_t)(PAGES * page / 4);
            int fd = (int)syscall(SYS_perf_event_open, &a, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
            if (fd < 0) { perror("perf_event_open"); return 1; }
            if (leader < 0) {
                leader = fd;
                maps[cpu] = mmap(NULL, (size_t)(page * (PAGES + 1)), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                if (maps[cpu] == MAP_FAILED) { perror("mmap"); return 1; }
                pfd[cpu].fd = fd;
                pfd[cpu].events = POLLIN;
            } else if (ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, leader) != 0) { perror("SET_OUTPUT"); return 1; }
            ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
        }
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("ready\n");
    fflush(stdout);
    while (!stop) {
        poll(pfd, (nfds_t)ncpu, 100);
        for (int cpu = 0; cpu < ncpu; cpu++) {
            struct perf_event_mmap_page *m = maps[cpu];
            uint64_t head = __atomic_load_n(&m->data_head, __ATOMIC_ACQUIRE);
            char *data = (char *)m + m->data_offset;
            uint64_t size = m->data_size, t = tails[cpu];
            while (t < head) {
                struct perf_event_header *h = (void *)(data + (t & (size - 1)));
                if (h->type == PERF_RECORD_SAMPLE) samples++;
                else if (h->type == PERF_RECORD_LOST) lost += ((uint64_t *)(h + 1))[1];
                t += h->size;
            }
            tails[cpu] = t;
            __atomic_store_n(&m->data_tail, t, __ATOMIC_RELEASE);
        }
    }
    printf("samples %llu lost %llu\n", (unsigned long long)samples, (unsigned long long)lost);
    return 0;
}
