/* berth test probe: tries system calls a container must (or must not) be allowed and prints
 * NAME=ok or NAME=ERRNO for each argument. Built statically by the security tests. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>
#include <time.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif

static const char *res(long r) { return r >= 0 ? "ok" : strerrorname_np(errno); }

/* Watch for foreign executables (processes whose /proc/PID/exe is not this program) for up to
 * `secs` seconds; for each one caught, report whether it could be opened for writing through
 * the magic link (the CVE-2019-5736 attack). Never writes anything. */
static void watch_exes(int secs) {
    char self[4096] = {0};
    if (readlink("/proc/self/exe", self, sizeof self - 1) < 0) return;
    time_t end = time(NULL) + secs;
    int caught = 0;
    while (time(NULL) < end && caught < 20) {
        DIR *d = opendir("/proc");
        if (!d) return;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
            char p[300], tgt[4096] = {0};
            snprintf(p, sizeof p, "/proc/%s/exe", e->d_name);
            int fd = open(p, O_PATH | O_CLOEXEC);
            if (fd < 0) continue;
            char fdp[64];
            snprintf(fdp, sizeof fdp, "/proc/self/fd/%d", fd);
            if (readlink(fdp, tgt, sizeof tgt - 1) < 0 || !strcmp(tgt, self) || strstr(tgt, "busybox")) {
                close(fd);
                continue;
            }
            int w = open(fdp, O_WRONLY | O_CLOEXEC);
            printf("caught %s writable=%s\n", tgt, w >= 0 ? "ok" : strerrorname_np(errno));
            fflush(stdout);
            if (w >= 0) close(w);
            close(fd);
            caught++;
        }
        closedir(d);
    }
    printf("watch done caught=%d\n", caught);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *t = argv[i];
        long r = -1;
        errno = 0;
        if (!strcmp(t, "euid")) {
            printf("euid=%d\n", (int)geteuid());
            continue;
        } else if (!strcmp(t, "watch")) {
            watch_exes(i + 1 < argc ? atoi(argv[++i]) : 10);
            continue;
        } else if (!strcmp(t, "keyctl")) {
            r = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0);
        } else if (!strcmp(t, "add_key")) {
            r = syscall(SYS_add_key, "user", "berth-probe", "x", 1, -3);
        } else if (!strcmp(t, "unshare_user")) {
            r = unshare(CLONE_NEWUSER);
        } else if (!strcmp(t, "clone_newuser")) {
            r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
            if (r == 0) _exit(0);
            if (r > 0) waitpid(r, NULL, 0);
        } else if (!strcmp(t, "clone3_newuser")) {
            /* struct clone_args, version 0: flags, pidfd, child_tid, parent_tid, exit_signal,
             * stack, stack_size, tls. */
            unsigned long long args[8] = {CLONE_NEWUSER, 0, 0, 0, SIGCHLD, 0, 0, 0};
            r = syscall(SYS_clone3, args, sizeof args);
            if (r == 0) _exit(0);
            if (r > 0) waitpid(r, NULL, 0);
        } else if (!strcmp(t, "fork")) {
            pid_t p = fork();
            if (p == 0) _exit(0);
            if (p > 0) waitpid(p, NULL, 0);
            r = p;
        } else if (!strcmp(t, "mount")) {
            r = mount("none", "/mnt", "tmpfs", 0, NULL);
        } else if (!strcmp(t, "bpf")) {
            r = syscall(SYS_bpf, 0, NULL, 0);
        } else if (!strcmp(t, "perf_event_open")) {
            r = syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
        } else if (!strcmp(t, "kexec_load")) {
            r = syscall(SYS_kexec_load, 0, 0, NULL, 0);
        } else if (!strcmp(t, "open_by_handle_at")) {
            r = syscall(SYS_open_by_handle_at, -1, NULL, 0);
        } else if (!strcmp(t, "io_uring_setup")) {
            r = syscall(SYS_io_uring_setup, 1, NULL);
        } else {
            printf("%s=unknown\n", t);
            continue;
        }
        printf("%s=%s\n", t, res(r));
    }
    return 0;
}
