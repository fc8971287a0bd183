// floor: the least work any tool can do to find every process that has a file
// open: one thread, readdir(/proc), readdir(/proc/PID/fd), readlinkat() per fd,
// compare with the target's path. No locks, no fdinfo, no output formatting.
// It is the yardstick for lockscope's full fd scan (docs/performance.md).
//
//   floor PATH      prints "<pid> <fd>" per match, then a summary on stderr
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: floor PATH\n"); return 2; }
    char *target = realpath(argv[1], NULL);
    if (!target) { perror(argv[1]); return 1; }
    size_t tlen = strlen(target);
    DIR *proc = opendir("/proc");
    if (!proc) { perror("/proc"); return 1; }
    char link[4097], path[300];
    long procs = 0, fds = 0, matches = 0;
    struct dirent *d;
    while ((d = readdir(proc))) {
        if (!isdigit((unsigned char)d->d_name[0])) continue;
        snprintf(path, sizeof path, "/proc/%s/fd", d->d_name);
        int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) continue;  // gone, or a kernel thread without permission
        DIR *fdd = fdopendir(dfd);
        if (!fdd) { close(dfd); continue; }
        procs++;
        struct dirent *f;
        while ((f = readdir(fdd))) {
            if (f->d_name[0] == '.') continue;
            fds++;
            ssize_t n = readlinkat(dfd, f->d_name, link, sizeof link - 1);
            if (n == (ssize_t)tlen && memcmp(link, target, tlen) == 0) {
                printf("%s %s\n", d->d_name, f->d_name);
                matches++;
            }
        }
        closedir(fdd);
    }
    closedir(proc);
    fprintf(stderr, "floor: %ld processes, %ld fds, %ld matches\n", procs, fds, matches);
    return matches ? 0 : 1;
}
