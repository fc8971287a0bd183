// Shims only the kernel-event module (LockscopeEvents) uses. Every shim says why it exists.
#ifndef CLOCKSCOPE_EVENTS_H
#define CLOCKSCOPE_EVENTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

// perf_event_open(2) has no glibc wrapper, and `struct perf_event_attr` is a
// bitfield-laden struct Swift cannot fill portably. Opens one tracepoint
// (PERF_TYPE_TRACEPOINT, config = the tracepoint's tracefs `id`) on one CPU for
// every process (pid -1), sampling every hit (sample_period 1) with
// PERF_SAMPLE_TID | TIME | CPU | RAW, timestamps on CLOCK_MONOTONIC (use_clockid),
// created disabled. `wakeup_bytes` > 0 wakes a poller when that many bytes are
// pending (watermark); 0 wakes on every record. `group_fd` is -1 or a leader.
// Returns the fd (O_CLOEXEC) or -1 with errno.
int cls_perf_tracepoint_open(uint64_t tracepoint_id, int cpu, int group_fd, uint32_t wakeup_bytes);

// The same, bound to one task (pid/tid >= 0) on one CPU: for engines that trace
// one process (raw_syscalls for `trace --kernel`). `inherit` follows threads and
// children created after the open (an inherited event cannot be mmap'd with
// cpu -1, so these are per CPU too).
int cls_perf_tracepoint_open_task_cpu(uint64_t tracepoint_id, pid_t pid, int cpu, int inherit,
                                      uint32_t wakeup_bytes);

// read(2) of a perf fd: how often the tracepoint fired for this fd (`hits`) and,
// with PERF_FORMAT_LOST (Linux 6.0; requested at open when the kernel has it),
// how many of its samples were dropped because the ring was full (`lost`). A
// dropped sample otherwise shows only as a PERF_RECORD_LOST written the next
// time the ring has room. Returns 0, 1 when the kernel gave no lost count,
// -1 with errno.
int cls_perf_read_counts(int fd, uint64_t *_Nonnull hits, uint64_t *_Nonnull lost);

// The perf ioctls are macros built with _IO/_IOW, invisible to Swift.
int cls_perf_enable(int fd);
int cls_perf_disable(int fd);
// PERF_EVENT_IOC_SET_OUTPUT: `fd` writes its records into `target_fd`'s ring
// (same CPU), so every tracepoint of one CPU shares one buffer.
int cls_perf_set_output(int fd, int target_fd);
// PERF_EVENT_IOC_SET_FILTER: an in-kernel tracepoint filter ("i_ino == 42").
int cls_perf_set_filter(int fd, const char *_Nonnull filter);

// The ring's head is written by the kernel and must be read with acquire
// ordering; the tail we write back needs release ordering (see the comment on
// `data_head` in include/uapi/linux/perf_event.h). Swift has no portable atomics
// on a raw mapped address without a package, so these two live here.
uint64_t cls_perf_ring_head(const void *_Nonnull mapping);
void cls_perf_ring_set_tail(void *_Nonnull mapping, uint64_t tail);
// `data_offset`/`data_size` of the control page (Linux 4.1+); 0 when unset.
uint64_t cls_perf_ring_data_offset(const void *_Nonnull mapping);
uint64_t cls_perf_ring_data_size(const void *_Nonnull mapping);

// Reads files of a tracefs that is mounted nowhere on the host. A process with
// threads cannot reliably move itself into a new mount namespace (unshare
// CLONE_NEWNS fails with EINVAL when the fs struct is shared), so this forks one
// short-lived child that unshares its mount namespace, makes / private
// (MS_REC|MS_PRIVATE, so nothing propagates to the host), mounts tracefs on
// /sys/kernel/tracing in that namespace only, and writes each requested file
// through a pipe. The mount dies with the child. The child calls only
// async-signal-safe syscalls.
// `paths` is a sequence of NUL-terminated paths relative to the tracefs root,
// ended by an empty string. The output holds one frame per path:
// int32 status (0, or -errno), uint32 length, then the bytes (little endian,
// host order). Returns the number of bytes written to `out`, or -errno
// (-E2BIG if `out` is too small).
long cls_tracefs_private_read(const char *_Nonnull paths, void *_Nonnull out, size_t capacity);

#ifdef __cplusplus
}
#endif
#endif
