/* berth test helper for CVE-2019-5736: installed in an image as its dynamic loader
 * (/lib64/ld-linux-x86-64.so.2, /lib/ld-linux-aarch64.so.1). When a container makes the
 * runtime re-execute itself (an entrypoint or exec'd script starting with #!/proc/self/exe),
 * the kernel runs this program as the runtime's ELF interpreter, so /proc/self/exe is the
 * runtime's own binary: deterministic, no race. It tries every way of opening that binary for
 * writing and records the outcome; it never writes anything.
 *
 *   self-wronly, self-rdwr     open("/proc/self/exe", O_WRONLY / O_RDWR)
 *   fd-reopen                  open("/proc/self/fd/N", O_WRONLY), N an O_PATH fd of the exe
 *   child-parent-exe           a child opens /proc/PARENT/exe for writing while the parent runs
 *   child-after-exit           the child reopens the inherited O_PATH fd for writing after the
 *                              runtime process exited (the published exploit's order)
 *
 * Each is "NAME=ok" or "NAME=ERRNO" (a number). The process's own lines go to stdout and to
 * /result-self, the child's to /result-child (when the parent is not the container's pid 1).
 * Freestanding (no libc: a static libc would set itself up from the runtime's auxv), built as a
 * static PIE without relocations (the kernel maps an ET_DYN interpreter anywhere). */

#if defined(__x86_64__)
#define SYS_read 0
#define SYS_write 1
#define SYS_close 3
#define SYS_pipe2 293
#define SYS_openat 257
#define SYS_getpid 39
#define SYS_getppid 110
#define SYS_fork 57
#define SYS_exit_group 231
#define SYS_nanosleep 35
static long sys6(long n, long a, long b, long c, long d) {
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return r;
}
#elif defined(__aarch64__)
#define SYS_read 63
#define SYS_write 64
#define SYS_close 57
#define SYS_pipe2 59
#define SYS_openat 56
#define SYS_getpid 172
#define SYS_getppid 173
#define SYS_clone 220
#define SYS_exit_group 94
#define SYS_nanosleep 101
static long sys6(long n, long a, long b, long c, long d) {
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
    return x0;
}
#else
#error "unsupported architecture"
#endif

#define AT_FDCWD -100
#define O_WRONLY 01
#define O_RDWR 02
#define O_CREAT 0100
#define O_TRUNC 01000
#define O_PATH 010000000

static long sys(long n, long a, long b, long c) { return sys6(n, a, b, c, 0); }

static long do_fork(void) {
#if defined(__x86_64__)
    return sys(SYS_fork, 0, 0, 0);
#else
    return sys6(SYS_clone, 17 /* SIGCHLD */, 0, 0, 0);
#endif
}

static unsigned long len(const char *s) {
    unsigned long n = 0;
    while (s[n]) n++;
    return n;
}

static char *put(char *p, const char *s) {
    while (*s) *p++ = *s++;
    return p;
}

static char *num(char *p, long v) {
    char tmp[24];
    int i = 0;
    if (v < 0) {
        *p++ = '-';
        v = -v;
    }
    do {
        tmp[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i) *p++ = tmp[--i];
    return p;
}

/* Append "name=ok\n" or "name=ERRNO\n" to buf at *at. */
static void rec(char *buf, unsigned long *at, const char *name, long r) {
    char *p = buf + *at;
    p = put(p, name);
    *p++ = '=';
    if (r >= 0) {
        p = put(p, "ok");
        sys(SYS_close, r, 0, 0);
    } else {
        p = num(p, -r);
    }
    *p++ = '\n';
    *at = (unsigned long)(p - buf);
}

static long open_path(const char *path, long flags) {
    return sys6(SYS_openat, AT_FDCWD, (long)path, flags, 0);
}

static void save(const char *file, const char *buf, unsigned long n) {
    long fd = sys6(SYS_openat, AT_FDCWD, (long)file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        sys(SYS_write, fd, (long)buf, (long)n);
        sys(SYS_close, fd, 0, 0);
    }
}

static void nap(void) {
    long ts[2] = {0, 20 * 1000 * 1000};
    sys(SYS_nanosleep, (long)ts, 0, 0);
}

void __attribute__((noreturn, used)) ldso_main(void) {
    char buf[1024];
    unsigned long at = 0;
    rec(buf, &at, "self-wronly", open_path("/proc/self/exe", O_WRONLY));
    rec(buf, &at, "self-rdwr", open_path("/proc/self/exe", O_RDWR));
    long pathfd = open_path("/proc/self/exe", O_PATH);
    char fdpath[64];
    char *p = put(fdpath, "/proc/self/fd/");
    p = num(p, pathfd);
    *p = 0;
    if (pathfd >= 0) {
        long r = open_path(fdpath, O_WRONLY);
        rec(buf, &at, "fd-reopen", r);
    }
    sys(SYS_write, 1, (long)buf, (long)at);
    save("/result-self", buf, at);

    long me = sys(SYS_getpid, 0, 0, 0);
    if (me != 1 && pathfd >= 0) {
        long fds[2];
        int pfd[2];
        if (sys(SYS_pipe2, (long)pfd, 0, 0) == 0) {
            fds[0] = pfd[0];
            fds[1] = pfd[1];
            long child = do_fork();
            if (child == 0) {
                char cbuf[512];
                unsigned long cat = 0;
                char pexe[64];
                char *q = put(pexe, "/proc/");
                q = num(q, me);
                q = put(q, "/exe");
                *q = 0;
                rec(cbuf, &cat, "child-parent-exe", open_path(pexe, O_WRONLY));
                /* Let the parent exit, wait (bounded) until it is gone, reopen. */
                sys(SYS_write, fds[1], (long)"x", 1);
                for (int i = 0; i < 500 && sys(SYS_getppid, 0, 0, 0) == me; i++) nap();
                rec(cbuf, &cat, "child-after-exit", open_path(fdpath, O_WRONLY));
                save("/result-child", cbuf, cat);
                sys(SYS_exit_group, 0, 0, 0);
            }
            if (child > 0) {
                char c;
                sys(SYS_read, fds[0], (long)&c, 1);
            }
        }
    }
    sys(SYS_exit_group, 0, 0, 0);
    for (;;) {
    }
}

/* The entry point: align the stack and call ldso_main. */
#if defined(__x86_64__)
__asm__(".globl _start\n_start:\n xor %rbp,%rbp\n and $-16,%rsp\n call ldso_main\n hlt\n");
#else
__asm__(".globl _start\n_start:\n mov x29, #0\n mov x30, #0\n bl ldso_main\n");
#endif
