// tracefloor: the cheapest possible syscall-stop tracer, the floor for any
// PTRACE_SYSCALL tracer (strace, lockscope trace --ptrace). It attaches to one
// thread, then only loops PTRACE_SYSCALL: no register reads, no decoding, no
// output. Exits when the tracee exits; on SIGINT/SIGTERM it interrupts the tracee
// and detaches, never leaving it stopped.
//
//   tracefloor [-i|-r] PID   prints "stops <N>" on stderr at the end
//
// -i also reads PTRACE_GET_SYSCALL_INFO at every syscall stop (and nothing
// else): the least any tracer that wants to know *which* call it stopped in must
// add to the floor.
// -r reads all general registers once per call, at its exit stop (PTRACE_GETREGSET
// NT_PRSTATUS): on x86_64 they still hold the call's number (orig_rax), its six
// arguments and its result (rax), so this is the least a tracer that prints every
// call with its arguments and result must read: the floor for decoding.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <elf.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv) {
    int info = argc == 3 && strcmp(argv[1], "-i") == 0;
    int regs = argc == 3 && strcmp(argv[1], "-r") == 0;
    if (argc != 2 && !info && !regs) { fprintf(stderr, "usage: tracefloor [-i|-r] PID\n"); return 2; }
    struct user_regs_struct r;
    struct iovec rv = { .iov_base = &r, .iov_len = sizeof r };
    int in_call = 0;  // entry and exit stops alternate; the first after the interrupt is an entry
    pid_t pid = atoi(argv[argc - 1]);
    struct __ptrace_syscall_info si;
    unsigned long long sum = 0;
    struct sigaction sa = { .sa_handler = on_signal };  // no SA_RESTART: waitpid returns EINTR
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (ptrace(PTRACE_SEIZE, pid, 0, PTRACE_O_TRACESYSGOOD) != 0) { perror("PTRACE_SEIZE"); return 1; }
    if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) != 0) { perror("PTRACE_INTERRUPT"); return 1; }
    long stops = 0;
    int interrupted = 0;
    for (;;) {
        int status;
        pid_t w = waitpid(pid, &status, __WALL);
        if (w < 0) {
            if (errno == EINTR) {
                if (stop && !interrupted) { ptrace(PTRACE_INTERRUPT, pid, 0, 0); interrupted = 1; }
                continue;
            }
            perror("waitpid");
            return 1;
        }
        if (WIFEXITED(status) || WIFSIGNALED(status)) break;
        if (!WIFSTOPPED(status)) continue;
        int sig = WSTOPSIG(status), inject = 0;
        if (sig == (SIGTRAP | 0x80)) {                               // syscall entry/exit
            stops++;
            if (info && ptrace(PTRACE_GET_SYSCALL_INFO, pid, sizeof si, &si) > 0)
                sum += si.op == PTRACE_SYSCALL_INFO_ENTRY ? si.entry.nr : 0;
            if (regs && in_call && ptrace(PTRACE_GETREGSET, pid, NT_PRSTATUS, &rv) == 0)
                sum += rv.iov_len;
            in_call = !in_call;
        }
        else if ((status >> 16) == PTRACE_EVENT_STOP) inject = 0;   // group-stop or interrupt
        else inject = sig;                                           // signal-delivery stop
        if (stop) {
            ptrace(PTRACE_DETACH, pid, 0, inject);
            break;
        }
        if (ptrace(PTRACE_SYSCALL, pid, 0, inject) != 0 && errno != ESRCH) { perror("PTRACE_SYSCALL"); return 1; }
    }
    fprintf(stderr, "stops %ld%s\n", stops, (info || regs) && sum == 0 ? " (nothing read)" : "");
    return 0;
}
