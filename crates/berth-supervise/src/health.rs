//! The health check schedule and the forked probe and compressor children.

use crate::*;

/// When to start `berth __healthcheck ID` (all times CLOCK_MONOTONIC ms).
pub(crate) struct Health {
    pub(crate) interval: i64,
    pub(crate) start_interval: i64,
    pub(crate) start_period: i64,
    pub(crate) started: i64,
    pub(crate) next: i64,
    /// The running probe, or 0.
    pub(crate) probe: i32,
    /// A probe has reported healthy (exit 0): the start interval no longer applies.
    pub(crate) healthy_seen: bool,
}

impl Health {
    /// Parses `INTERVAL_MS:START_INTERVAL_MS:START_PERIOD_MS`.
    pub(crate) fn parse(v: &[u8], now: i64) -> Option<Health> {
        let mut it = v.split(|&c| c == b':');
        let mut num = || parse_int(it.next()?).filter(|&x| x >= 0);
        let (interval, start_interval, start_period) = (num()?, num()?, num()?);
        if interval == 0 {
            return None;
        }
        let mut h = Health {
            interval,
            start_interval: if start_interval == 0 {
                interval
            } else {
                start_interval
            },
            start_period,
            started: now,
            next: 0,
            probe: 0,
            healthy_seen: false,
        };
        h.next = now + h.gap(now);
        Some(h)
    }

    pub(crate) fn gap(&self, now: i64) -> i64 {
        if !self.healthy_seen && now - self.started < self.start_period {
            self.start_interval
        } else {
            self.interval
        }
    }

    /// The probe `pid` exited with wait status `status`.
    pub(crate) fn done(&mut self, status: i32) {
        if exit_status_code(status) == 0 {
            self.healthy_seen = true;
        }
        self.probe = 0;
        let now = now_ms();
        self.next = now + self.gap(now);
    }
}

/// The value of the environment variable `KEY` (given with its `=`), if set.
pub(crate) fn env_value(envp: *const *const u8, key: &[u8]) -> Option<&'static [u8]> {
    let mut i = 0;
    loop {
        // SAFETY: envp is the NULL-terminated environment vector from the initial stack.
        let p = unsafe { *envp.add(i) };
        if p.is_null() {
            return None;
        }
        let e = cstr(p);
        if e.len() >= key.len() && &e[..key.len()] == key {
            return Some(&e[key.len()..]);
        }
        i += 1;
    }
}

/// In a forked child before execve: /dev/null on 0-2, no other descriptors, the default
/// signal mask and SIGPIPE disposition.
pub(crate) fn child_setup() {
    // SAFETY: the path is a NUL-terminated literal.
    let null = unsafe { sys_open(c"/dev/null".as_ptr().cast(), O_RDWR, 0) };
    if null >= 0 {
        for fd in 0..3 {
            sys_dup2(null as usize, fd);
        }
    }
    // SAFETY: close_range only closes descriptors of this (child) process.
    let r = unsafe { syscall(nr::CLOSE_RANGE, 3, u32::MAX as usize, 0, 0) };
    if r < 0 {
        for fd in 3..1024 {
            close(fd);
        }
    }
    let empty: u64 = 0;
    // SAFETY: `empty` is a valid 8-byte sigset; the old-set pointer is NULL.
    unsafe {
        syscall(
            nr::RT_SIGPROCMASK,
            SIG_SETMASK,
            &empty as *const u64 as usize,
            0,
            8,
        );
    }
    let dfl = KSigaction {
        handler: SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: `dfl` is a valid kernel sigaction; the old-action pointer is NULL.
    unsafe {
        syscall(
            nr::RT_SIGACTION,
            SIGPIPE as usize,
            &dfl as *const KSigaction as usize,
            0,
            8,
        );
    }
}

/// fork + exec `EXE --root ROOT __healthcheck ID`; returns the child's pid (or <= 0).
pub(crate) fn spawn_probe(argv: *mut *const u8, envp: *const *const u8) -> i32 {
    // SAFETY: this process is single-threaded.
    let pid = unsafe { sys_fork() };
    if pid != 0 {
        return pid as i32;
    }
    child_setup();
    // SAFETY: argv has at least 10 entries (checked in main): 1 = EXE, 2 = ROOT, 3 = ID.
    let (exe, root, id) = unsafe { (*argv.add(1), *argv.add(2), *argv.add(3)) };
    let args: [*const u8; 6] = [
        exe,
        c"--root".as_ptr().cast(),
        root,
        c"__healthcheck".as_ptr().cast(),
        id,
        core::ptr::null(),
    ];
    // SAFETY: NUL-terminated strings in NULL-terminated vectors.
    unsafe {
        syscall(
            nr::EXECVE,
            exe as usize,
            args.as_ptr() as usize,
            envp as usize,
            0,
        );
    }
    exit(127)
}
