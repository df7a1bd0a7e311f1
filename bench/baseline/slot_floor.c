/* slot_floor: the least a slot can cost on this machine. Creates N slots
 * in DIR with only the system calls their content needs (no reads of a
 * home, no checks, no fsync, umask 0, one thread): a staging directory,
 * type, run, finish, down, log/run, event/ + supervise/ + supervise/control
 * in the slot and in log/, then the rename. Prints microseconds per slot.
 * With WORKERS (default 1), that many processes share the N slots, in the
 * same DIR, as hermes-reconcile's threads do; the time is the wall time of
 * all of them. Used by `bench/run reconcile` to put hermes-reconcile's
 * numbers in context.
 *   cc -O2 -o slot_floor slot_floor.c && ./slot_floor DIR N [WORKERS] */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static char text[600];

static void put(int dir, const char *name, mode_t mode, size_t len) {
    int fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0 || (len && write(fd, text, len) != (ssize_t)len)) { perror(name); exit(111); }
    close(fd);
}

static void skeleton(int dir) {
    mkdirat(dir, "event", 0730);
    fchmodat(dir, "event", 03730, 0);
    mkdirat(dir, "supervise", 0755);
    int sup = openat(dir, "supervise", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    mkfifoat(sup, "control", 0660);
    close(sup);
}

/* Builds slots first, first + step, ... below n. */
static int build(int scan, int first, int step, int n) {
    for (int i = first; i < n; i += step) {
        char tmp[64], real[64];
        snprintf(tmp, sizeof tmp, ".gateway-p%d.tmp", i);
        snprintf(real, sizeof real, "gateway-p%d", i);
        mkdirat(scan, tmp, 0755);
        int slot = openat(scan, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        mkdirat(slot, "log", 0755);
        int log = openat(slot, "log", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        put(slot, "type", 0644, 8);
        put(slot, "run", 0755, 520);
        put(slot, "finish", 0755, 375);
        put(slot, "down", 0644, 0);
        put(log, "run", 0755, 590);
        skeleton(slot);
        skeleton(log);
        close(log);
        close(slot);
        if (renameat2(scan, tmp, scan, real, RENAME_NOREPLACE) != 0) { perror(real); return 111; }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) { fprintf(stderr, "usage: slot_floor DIR N [WORKERS]\n"); return 100; }
    int n = atoi(argv[2]), workers = argc == 4 ? atoi(argv[3]) : 1;
    if (n < 1 || workers < 1) { fprintf(stderr, "slot_floor: N and WORKERS must be positive\n"); return 100; }
    int scan = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (scan < 0) { perror(argv[1]); return 111; }
    umask(0);
    memset(text, 'x', sizeof text);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int w = 1; w < workers; w++) {
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 111; }
        if (pid == 0) _exit(build(scan, w, workers, n));
    }
    int failed = build(scan, 0, workers, n), status;
    while (wait(&status) > 0) failed |= !WIFEXITED(status) || WEXITSTATUS(status);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (failed) return 111;
    printf("%.1f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / n);
    return 0;
}
