// Shims for LockscopeEvents; see CLockscopeEvents.h for why each exists.
#include "CLockscopeEvents.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PERF_FORMAT_LOST
#define PERF_FORMAT_LOST (1U << 4)
#endif

// Asks for PERF_FORMAT_LOST (Linux 6.0) so read() reports the samples the
// kernel dropped for this event; retried without it on older kernels (EINVAL).
static int open_attr(struct perf_event_attr *attr, pid_t pid, int cpu, int group_fd) {
    attr->read_format = PERF_FORMAT_LOST;
    long fd = syscall(SYS_perf_event_open, attr, pid, cpu, group_fd, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0 && errno == EINVAL) {
        attr->read_format = 0;
        fd = syscall(SYS_perf_event_open, attr, pid, cpu, group_fd, PERF_FLAG_FD_CLOEXEC);
    }
    return (int)fd;
}

int cls_perf_read_counts(int fd, uint64_t *hits, uint64_t *lost) {
    uint64_t v[2] = {0, 0};
    ssize_t n;
    do { n = read(fd, v, sizeof v); } while (n < 0 && errno == EINTR);
    if (n < (ssize_t)sizeof v[0]) return -1;
    *hits = v[0];
    if (n < (ssize_t)sizeof v) return 1;
    *lost = v[1];
    return 0;
}

static void fill_attr(struct perf_event_attr *attr, uint64_t id, uint32_t wakeup_bytes) {
    memset(attr, 0, sizeof *attr);
    attr->type = PERF_TYPE_TRACEPOINT;
    attr->size = sizeof *attr;
    attr->config = id;
    attr->sample_period = 1;
    attr->sample_type = PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_CPU | PERF_SAMPLE_RAW;
    attr->disabled = 1;
    attr->use_clockid = 1;
    attr->clockid = CLOCK_MONOTONIC;
    if (wakeup_bytes > 0) {
        attr->watermark = 1;
        attr->wakeup_watermark = wakeup_bytes;
    } else {
        attr->wakeup_events = 1;
    }
}

int cls_perf_tracepoint_open(uint64_t tracepoint_id, int cpu, int group_fd, uint32_t wakeup_bytes) {
    struct perf_event_attr attr;
    fill_attr(&attr, tracepoint_id, wakeup_bytes);
    return open_attr(&attr, -1, cpu, group_fd);
}

int cls_perf_tracepoint_open_task_cpu(uint64_t tracepoint_id, pid_t pid, int cpu, int inherit,
                                      uint32_t wakeup_bytes) {
    struct perf_event_attr attr;
    fill_attr(&attr, tracepoint_id, wakeup_bytes);
    attr.inherit = inherit ? 1 : 0;
    return open_attr(&attr, pid, cpu, -1);
}

int cls_perf_enable(int fd) { return ioctl(fd, PERF_EVENT_IOC_ENABLE, 0); }
int cls_perf_disable(int fd) { return ioctl(fd, PERF_EVENT_IOC_DISABLE, 0); }
int cls_perf_set_output(int fd, int target_fd) { return ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, target_fd); }
int cls_perf_set_filter(int fd, const char *filter) { return ioctl(fd, PERF_EVENT_IOC_SET_FILTER, filter); }

uint64_t cls_perf_ring_head(const void *mapping) {
    const struct perf_event_mmap_page *page = mapping;
    return __atomic_load_n(&page->data_head, __ATOMIC_ACQUIRE);
}

void cls_perf_ring_set_tail(void *mapping, uint64_t tail) {
    struct perf_event_mmap_page *page = mapping;
    __atomic_store_n(&page->data_tail, tail, __ATOMIC_RELEASE);
}

uint64_t cls_perf_ring_data_offset(const void *mapping) {
    return ((const struct perf_event_mmap_page *)mapping)->data_offset;
}

uint64_t cls_perf_ring_data_size(const void *mapping) {
    return ((const struct perf_event_mmap_page *)mapping)->data_size;
}

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

// Runs in the forked child: only syscalls, no allocation, no locks.
static void private_read_child(const char *paths, int out) {
    static char buf[1 << 16];
    if (unshare(CLONE_NEWNS) != 0) _exit(10);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) _exit(11);
    if (mount("nodev", "/sys/kernel/tracing", "tracefs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) _exit(12);
    char full[4096];
    const char prefix[] = "/sys/kernel/tracing/";
    for (const char *p = paths; *p; p += strlen(p) + 1) {
        size_t len = strlen(p);
        int32_t status = 0;
        uint32_t total = 0;
        if (len + sizeof prefix > sizeof full) {
            status = -ENAMETOOLONG;
        } else {
            memcpy(full, prefix, sizeof prefix - 1);
            memcpy(full + sizeof prefix - 1, p, len + 1);
            int fd = open(full, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                status = -errno;
            } else {
                for (;;) {
                    ssize_t r = read(fd, buf + total, sizeof buf - total);
                    if (r < 0 && errno == EINTR) continue;
                    if (r < 0) { status = -errno; total = 0; break; }
                    if (r == 0) break;
                    total += (uint32_t)r;
                    if (total == sizeof buf) { status = -EFBIG; total = 0; break; }
                }
                close(fd);
            }
        }
        if (write_all(out, &status, sizeof status) || write_all(out, &total, sizeof total) ||
            write_all(out, buf, total)) _exit(13);
    }
    _exit(0);
}

long cls_tracefs_private_read(const char *paths, void *out, size_t capacity) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return -errno;
    pid_t child = fork();
    if (child < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return -e;
    }
    if (child == 0) {
        close(fds[0]);
        private_read_child(paths, fds[1]);
    }
    close(fds[1]);
    size_t used = 0;
    long result = 0;
    char sink[4096];
    for (;;) {
        char *dst = used < capacity ? (char *)out + used : sink;
        size_t room = used < capacity ? capacity - used : sizeof sink;
        ssize_t r = read(fds[0], dst, room);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (used < capacity) used += (size_t)r; else result = -E2BIG;
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    if (result < 0) return result;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        // 10 unshare, 11 make-private, 12 mount: the namespace or mount was refused.
        if (WIFEXITED(status) && WEXITSTATUS(status) >= 10 && WEXITSTATUS(status) <= 12) return -EPERM;
        return -EIO;
    }
    return (long)used;
}
