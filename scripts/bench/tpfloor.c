// tpfloor: the cheapest possible tracepoint tracer, the floor for any tracer
// built on raw_syscalls:sys_enter/sys_exit through perf_event_open (lockscope
// trace --kernel, perf trace). It opens both tracepoints for one pid on every
// CPU with the attributes lockscope uses (sample TID|TIME|CPU|RAW,
// CLOCK_MONOTONIC, inherit, one ring per CPU shared by the two events through
// PERF_EVENT_IOC_SET_OUTPUT, woken at a quarter full), then only drains
// the rings: no decoding, no output. Nothing is ever stopped or attached; the
// events vanish with this process.
//
//   tpfloor [-p PAGES] ENTER_ID EXIT_ID PID   prints "records <N> lost <M>" on stderr at the end
//
// PAGES: ring size per CPU in pages, a power of two (default 1024, 4 MiB; the
// runner passes lockscope's default so both read the same rings).
//
// The tracepoint ids are tracefs events/raw_syscalls/sys_{enter,exit}/id (the
// runner reads them through a private tracefs mount). Exits when PID is gone
// (or a zombie), or on SIGINT/SIGTERM.
#define _GNU_SOURCE
#include <errno.h>
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
#define MAXCPU 256

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static int alive(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *close = strrchr(buf, ')');
    return close && close[1] == ' ' && close[2] != 'Z' && close[2] != 'X';
}

static int open_tp(uint64_t id, pid_t pid, int cpu) {
    struct perf_event_attr a;
    memset(&a, 0, sizeof a);
    a.type = PERF_TYPE_TRACEPOINT;
    a.size = sizeof a;
    a.config = id;
    a.sample_period = 1;
    a.sample_type = PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_CPU | PERF_SAMPLE_RAW;
    a.disabled = 1;
    a.inherit = 1;
    a.use_clockid = 1;
    a.clockid = CLOCK_MONOTONIC;
    a.watermark = 1;
    a.wakeup_watermark = PAGES * 4096 / 4;
    return (int)syscall(SYS_perf_event_open, &a, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
}

int main(int argc, char **argv) {
    if (argc == 6 && strcmp(argv[1], "-p") == 0) {
        PAGES = atol(argv[2]);
        argv += 2;
        argc -= 2;
    }
    if (argc != 4 || PAGES <= 0 || (PAGES & (PAGES - 1))) {
        fprintf(stderr, "usage: tpfloor [-p PAGES] ENTER_ID EXIT_ID PID\n");
        return 2;
    }
    uint64_t ids[2] = { strtoull(argv[1], 0, 10), strtoull(argv[2], 0, 10) };
    pid_t pid = atoi(argv[3]);
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu > MAXCPU) ncpu = MAXCPU;
    long page = sysconf(_SC_PAGESIZE);
    struct pollfd pfd[MAXCPU];
    struct perf_event_mmap_page *ring[MAXCPU];
    int fds[2 * MAXCPU], nfds = 0;
    for (int c = 0; c < ncpu; c++) {
        int owner = -1;
        for (int i = 0; i < 2; i++) {
            int fd = open_tp(ids[i], pid, c);
            if (fd < 0) { perror("perf_event_open"); return 1; }
            fds[nfds++] = fd;
            if (owner < 0) {
                owner = fd;
                void *m = mmap(NULL, (size_t)page * (1 + PAGES), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                if (m == MAP_FAILED) { perror("mmap"); return 1; }
                ring[c] = m;
                pfd[c].fd = fd;
                pfd[c].events = POLLIN;
            } else if (ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, owner) != 0) {
                perror("PERF_EVENT_IOC_SET_OUTPUT");
                return 1;
            }
        }
    }
    for (int i = 0; i < nfds; i++) ioctl(fds[i], PERF_EVENT_IOC_ENABLE, 0);
    unsigned long long records = 0, lost = 0;
    struct timespec last = {0};
    for (;;) {
        int done = stop;
        if (!done) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec * 1000000000LL + now.tv_nsec - (last.tv_sec * 1000000000LL + last.tv_nsec) > 100000000LL) {
                last = now;
                if (!alive(pid)) done = 1;
            }
            if (!done) poll(pfd, (nfds_t)ncpu, 100);
        }
        for (int c = 0; c < ncpu; c++) {
            struct perf_event_mmap_page *p = ring[c];
            uint64_t head = __atomic_load_n(&p->data_head, __ATOMIC_ACQUIRE);
            uint64_t tail = p->data_tail;
            char *data = (char *)p + p->data_offset;
            uint64_t mask = p->data_size - 1;
            while (tail < head) {
                struct perf_event_header *h = (void *)(data + (tail & mask));
                if (h->type == PERF_RECORD_SAMPLE) records++;
                else if (h->type == PERF_RECORD_LOST) lost += *(uint64_t *)(data + ((tail + 16) & mask));
                tail += h->size;
            }
            __atomic_store_n(&p->data_tail, tail, __ATOMIC_RELEASE);
        }
        if (done) break;
    }
    fprintf(stderr, "records %llu lost %llu\n", records, lost);
    return 0;
}
