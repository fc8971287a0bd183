// deadfs: a FUSE filesystem that a test can tell to stop answering, and the
// processes that hold locks on it. Built by the dead-filesystem tests
// (Tests/LockscopeCLITests/DeadFilesystemTests.swift) with
//   cc -O1 -o deadfs deadfs.c $(pkg-config --cflags --libs fuse3)
// It is not part of the package: libfuse3 is a test-only dependency
// (scripts/setup installs fuse3 and libfuse3-dev).
//
//   deadfs serve MOUNTPOINT
//     Mounts a filesystem with /lock, /other.lock (empty files) and /dir/etc/resolv.conf.
//     Prints "ready" once the kernel has sent FUSE_INIT. Reads commands on stdin:
//       die   every request from now on blocks in the daemon, unanswered, so callers
//             wait in request_wait_answer (fs/fuse/dev.c) — uninterruptible once the
//             daemon has read the request: D state, the sick machine's dead mount.
//       live  answer again (wakes the blocked requests).
//     On EOF it answers again and unmounts. Entry and attribute timeouts are 0 so that
//     every path walk revalidates through the daemon (fuse_dentry_revalidate).
//
//   deadfs hold FILE [--wait] [--cwd DIR] [--chroot DIR] [--exit-from-thread]
//     Opens FILE, takes flock(LOCK_EX) (blocking with --wait: a waiter), then moves its
//     working directory or root into DIR, prints "held PID" (or "waiting PID" before a
//     blocking flock) and sleeps until stdin closes.
//     --exit-from-thread: when stdin closes, the main thread calls pthread_exit() (the
//     group leader becomes a zombie) and a second thread then exits the process: its
//     do_exit() closes FILE, which sends FUSE_FLUSH. While the daemon is dead that
//     close never returns, and the flock stays held (it goes at the final fput, after
//     the flush): an exiting holder, leader a zombie, one thread in D.
//
// The kernel handles flock on FUSE locally when the filesystem implements no lock
// operations (fuse_file_flock, fs/fuse/file.c), so the locks show in /proc/locks with
// the FUSE superblock's device (00:NN), exactly as on a real FUSE mount.
#define FUSE_USE_VERSION 31
#include <errno.h>
#include <fuse.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t gate_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int dead;

static const char resolv[] = "nameserver 127.0.0.1\n";

// Every operation passes the gate first: while dead it never returns.
static void gate(void) {
    pthread_mutex_lock(&gate_mutex);
    while (dead) pthread_cond_wait(&gate_cond, &gate_mutex);
    pthread_mutex_unlock(&gate_mutex);
}

static void set_dead(int value) {
    pthread_mutex_lock(&gate_mutex);
    dead = value;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_mutex);
}

static int is_dir(const char *p) { return !strcmp(p, "/") || !strcmp(p, "/dir") || !strcmp(p, "/dir/etc"); }
static int is_file(const char *p) {
    return !strcmp(p, "/lock") || !strcmp(p, "/other.lock") || !strcmp(p, "/dir/etc/resolv.conf");
}
static ino_t ino_of(const char *p) {
    static const char *names[] = {"/", "/lock", "/other.lock", "/dir", "/dir/etc", "/dir/etc/resolv.conf"};
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(p, names[i])) return 1 + i;
    return 0;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
    (void)conn;
    cfg->entry_timeout = 0;
    cfg->attr_timeout = 0;
    cfg->negative_timeout = 0;
    cfg->use_ino = 1;
    printf("ready\n");
    fflush(stdout);
    return NULL;
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
    (void)fi;
    gate();
    memset(st, 0, sizeof *st);
    st->st_ino = ino_of(path);
    if (is_dir(path)) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
    } else if (is_file(path)) {
        st->st_mode = S_IFREG | 0666;
        st->st_nlink = 1;
        st->st_size = strcmp(path, "/dir/etc/resolv.conf") ? 0 : (off_t)strlen(resolv);
    } else {
        return -ENOENT;
    }
    return 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
                      enum fuse_readdir_flags flags) {
    (void)off; (void)fi; (void)flags;
    gate();
    fill(buf, ".", NULL, 0, 0);
    fill(buf, "..", NULL, 0, 0);
    if (!strcmp(path, "/")) {
        fill(buf, "lock", NULL, 0, 0);
        fill(buf, "other.lock", NULL, 0, 0);
        fill(buf, "dir", NULL, 0, 0);
    } else if (!strcmp(path, "/dir")) {
        fill(buf, "etc", NULL, 0, 0);
    } else if (!strcmp(path, "/dir/etc")) {
        fill(buf, "resolv.conf", NULL, 0, 0);
    } else {
        return -ENOENT;
    }
    return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi) {
    (void)fi;
    gate();
    return is_file(path) ? 0 : -ENOENT;
}

static int fs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
    (void)fi;
    gate();
    const char *text = strcmp(path, "/dir/etc/resolv.conf") ? "" : resolv;
    size_t len = strlen(text);
    if ((size_t)off >= len) return 0;
    if (size > len - (size_t)off) size = len - (size_t)off;
    memcpy(buf, text + off, size);
    return (int)size;
}

static int fs_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
    (void)path; (void)buf; (void)off; (void)fi;
    gate();
    return (int)size;
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi) {
    (void)path; (void)size; (void)fi;
    gate();
    return 0;
}

static int fs_flush(const char *path, struct fuse_file_info *fi) {
    (void)path; (void)fi;
    gate();
    return 0;
}

static const struct fuse_operations ops = {
    .init = fs_init,
    .getattr = fs_getattr,
    .readdir = fs_readdir,
    .open = fs_open,
    .read = fs_read,
    .write = fs_write,
    .truncate = fs_truncate,
    .flush = fs_flush,
};

// Reads "die"/"live" on stdin; on EOF answers again and ends the loop (which unmounts).
static void *control(void *arg) {
    (void)arg;
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (!strncmp(line, "die", 3)) {
            set_dead(1);
            printf("dead\n");
        } else if (!strncmp(line, "live", 4)) {
            set_dead(0);
            printf("live\n");
        }
        fflush(stdout);
    }
    set_dead(0);
    kill(getpid(), SIGTERM);  // fuse_main's handler ends the session loop
    return NULL;
}

static int serve(const char *mountpoint, const char *self) {
    pthread_t t;
    if (pthread_create(&t, NULL, control, NULL) != 0) return 1;
    // -f: foreground; -s: one thread, so a dead daemon holds the first request and
    // the rest queue in the kernel, unread (both kinds of waiting are then exercised).
    char *argv[] = {(char *)self, (char *)mountpoint, "-f", "-s", "-o", "fsname=deadfs", NULL};
    return fuse_main(6, argv, &ops, NULL);
}

// The second thread of --exit-from-thread: once the leader is a zombie, end the process.
static void *exit_after_leader(void *arg) {
    (void)arg;
    char path[64], text[256];
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)getpid(), (int)getpid());
    for (int i = 0; i < 2000; i++) {
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
        if (f) fclose(f);
        text[n] = 0;
        const char *close_paren = strrchr(text, ')');
        if (close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z') break;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    _exit(0);
}

static int hold(int argc, char **argv) {
    const char *file = argv[2], *cwd = NULL, *root = NULL;
    int wait = 0, exit_from_thread = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--wait")) wait = 1;
        else if (!strcmp(argv[i], "--exit-from-thread")) exit_from_thread = 1;
        else if (!strcmp(argv[i], "--cwd") && i + 1 < argc) cwd = argv[++i];
        else if (!strcmp(argv[i], "--chroot") && i + 1 < argc) root = argv[++i];
        else { fprintf(stderr, "deadfs hold: bad argument %s\n", argv[i]); return 64; }
    }
    int fd = open(file, O_RDWR);
    if (fd < 0) { perror(file); return 66; }
    if (wait) { printf("waiting %d\n", (int)getpid()); fflush(stdout); }
    if (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) { perror("flock"); return 75; }
    if (cwd && chdir(cwd) != 0) { perror(cwd); return 66; }
    if (root && (chroot(root) != 0 || chdir("/") != 0)) { perror(root); return 66; }
    if (!wait) printf("held %d\n", (int)getpid());
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {}
    if (exit_from_thread) {
        pthread_t t;
        if (pthread_create(&t, NULL, exit_after_leader, NULL) != 0) return 71;
        pthread_exit(NULL);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "serve")) return serve(argv[2], argv[0]);
    if (argc >= 3 && !strcmp(argv[1], "hold")) return hold(argc, argv);
    fprintf(stderr, "usage: deadfs serve MOUNTPOINT | deadfs hold FILE [--wait] [--cwd DIR] [--chroot DIR] [--exit-from-thread]\n");
    return 64;
}
