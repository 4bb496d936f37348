//! `berth-supervise`: the steady-state half of a container's monitor.
//!
//! The big `berth __monitor ID` process sets a container up, starts it and then execve()s
//! this tiny program, which copies the container's output into its json-file log (and to an
//! attached CLI), forwards stdin, signals and window-size changes, reaps children, and when
//! the container's init has exited execve()s back into berth:
//!
//! ```text
//! berth-supervise BERTH_EXE ROOT ID PID LOG_FD OUT_FD ERR_FD IN_FD FLAGS [EXTRA...]
//!   -> BERTH_EXE --root ROOT __monitor ID --exited CODE --flags FLAGS [EXTRA...]
//! ```
//!
//! It must stay far below 1 MiB of resident memory, so with `panic = "abort"` (the release
//! profile) it is a `#![no_std]`, libc-free, statically linked executable using raw Linux
//! syscalls, with its own `_start`. Under `panic = "unwind"` (the dev/test profiles) stable
//! Rust refuses `no_std` executables (no `eh_personality`), so there `std` is merely *linked*
//! to provide that lang item; nothing in this file uses it, the same `_start` runs, and the
//! process never initialises libc or std (see `build.rs`). The only difference is that a
//! panic (a bug) ends in std's panic machinery, which crashes, instead of `exit(125)`.
//!
//! Details beyond the calling contract:
//! - After PID exits, output is drained until EOF, 200 ms without data, or 5 s in total.
//! - A PID that is not our child (wait4 says ECHILD) is reported as `--exited 255`, with a
//!   note in the log.
//! - If writing to IN_FD fails (the container closed its stdin), IN_FD is closed and fd 0 is
//!   no longer read, but `--flags` keeps STDIN: only EOF/error on fd 0 clears it.
//! - Unknown FLAGS bits are passed back unchanged.
//! - Health checks: with `BERTH_HEALTH=INTERVAL_MS:START_INTERVAL_MS:START_PERIOD_MS` in the
//!   environment, it forks and execs `BERTH_EXE --root ROOT __healthcheck ID` (stdio on
//!   /dev/null, no other descriptors, default signal mask) whenever a probe is due: the
//!   interval after the previous probe ended (the start interval while inside the start period
//!   and no probe has reported healthy, i.e. exited 0). Without it nothing extra ever runs.
//! - Log rotation: with `BERTH_LOG_ROTATE=MAX_SIZE:MAX_FILE:COMPRESS:PATH` (PATH = the file
//!   LOG_FD writes), once the file holds MAX_SIZE bytes the next write first rotates it:
//!   `PATH.N[.gz]` → `PATH.N+1[.gz]` (the oldest beyond MAX_FILE - 1 is replaced), `PATH` →
//!   `PATH.1`, and a fresh `PATH` takes LOG_FD's number; with MAX_FILE 1 the file is
//!   truncated instead. With COMPRESS 1, `BERTH_EXE __compress-log PATH` then gzips the rotated
//!   files in the background.
#![cfg_attr(panic = "abort", no_std)]
#![no_main]
// Every syscall wrapper deals in raw integers the kernel ABI defines; the casts are the ABI.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
compile_error!(
    "berth-supervise supports Linux on x86_64 and aarch64 (raw syscall numbers and _start); \
     elsewhere leave it out and the monitor supervises containers itself"
);

use core::arch::global_asm;

mod health;
mod log;
mod rt;
mod sup;
mod sys;
mod text;

use health::*;
use log::*;
use sup::*;
use sys::*;
use text::*;

// ---------------------------------------------------------------------------------------
// Process entry, runtime support symbols
// ---------------------------------------------------------------------------------------

#[cfg(target_arch = "x86_64")]
global_asm!(
    ".globl _start",
    ".type _start,@function",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    entry = sym entry,
);

#[cfg(target_arch = "aarch64")]
global_asm!(
    ".globl _start",
    ".type _start,@function",
    "_start:",
    "mov x29, #0",
    "mov x30, #0",
    "mov x0, sp",
    "bl {entry}",
    "brk #0",
    entry = sym entry,
);

/// Called from `_start` with the initial stack pointer: `argc`, `argv[]`, NULL, `envp[]`, NULL.
extern "C" fn entry(sp: *const usize) -> ! {
    // SAFETY: the kernel's initial stack layout: argc, then argc argv pointers and a NULL,
    // then the environment pointers terminated by NULL.
    let (argc, argv, envp) = unsafe {
        let argc = *sp;
        let argv = sp.add(1) as *mut *const u8;
        (argc, argv, argv.add(argc + 1) as *const *const u8)
    };
    let code = main(argc, argv, envp);
    exit(code)
}

#[cfg(panic = "abort")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(125)
}

/// Never called: with `panic = "abort"` nothing unwinds, but precompiled `core` may still
/// reference the personality routine from its unwind tables.
#[cfg(panic = "abort")]
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

/// Never called, see [`rust_eh_personality`].
#[cfg(panic = "abort")]
#[no_mangle]
pub extern "C" fn _Unwind_Resume() -> ! {
    exit(125)
}

/// Docker's exit code for a wait status: the exit status, or 128 + the signal number.
pub(crate) fn exit_status_code(status: i32) -> i32 {
    let sig = status & 0x7f;
    if sig == 0 {
        (status >> 8) & 0xff
    } else {
        128 + sig
    }
}

fn usage(why: &[u8]) -> i32 {
    write(2, b"berth-supervise: ");
    write(2, why);
    write(
        2,
        b"; usage: berth-supervise BERTH_EXE ROOT ID PID LOG_FD OUT_FD ERR_FD IN_FD FLAGS [EXTRA...]\n",
    );
    125
}

fn parse_fd(s: &[u8]) -> Option<i32> {
    match parse_int(s) {
        Some(v) if (-1..=i64::from(i32::MAX)).contains(&v) => Some(v as i32),
        _ => None,
    }
}

fn main(argc: usize, argv: *mut *const u8, envp: *const *const u8) -> i32 {
    if argc < 10 {
        return usage(b"missing arguments");
    }
    // SAFETY: argv has argc valid entries.
    let arg = |i: usize| cstr(unsafe { *argv.add(i) });
    if arg(1).first() != Some(&b'/') {
        return usage(b"BERTH_EXE must be an absolute path");
    }
    if arg(2).is_empty() || arg(3).is_empty() {
        return usage(b"empty ROOT or ID");
    }
    let pid = match parse_int(arg(4)) {
        Some(p) if p > 0 && p <= i64::from(i32::MAX) => p as i32,
        _ => return usage(b"invalid PID"),
    };
    let (Some(log_fd), Some(out_fd), Some(err_fd), Some(in_fd)) = (
        parse_fd(arg(5)),
        parse_fd(arg(6)),
        parse_fd(arg(7)),
        parse_fd(arg(8)),
    ) else {
        return usage(b"invalid file descriptor");
    };
    if log_fd < 0 {
        return usage(b"invalid LOG_FD");
    }
    let flags = match parse_int(arg(9)) {
        Some(f) if (0..=i64::from(u32::MAX)).contains(&f) => f as u64,
        _ => return usage(b"invalid FLAGS"),
    };
    let tty = flags & FLAG_TTY != 0;

    let sfd = setup_signals();
    if sfd < 0 {
        write(2, b"berth-supervise: cannot create signalfd\n");
        return 125;
    }
    let sfd = sfd as i32;

    for fd in [out_fd, err_fd] {
        if fd >= 0 {
            set_nonblock(fd);
        }
    }
    let stdin_target = if tty { out_fd } else { in_fd };
    let forward_stdin = flags & FLAG_STDIN != 0 && stdin_target >= 0;
    if forward_stdin {
        set_nonblock(stdin_target);
    }
    if tty && out_fd >= 0 && flags & FLAG_ATTACHED != 0 {
        copy_winsize(out_fd);
    }

    // SAFETY: `main` runs exactly once in this single-threaded process; these are the only
    // references ever taken to the buffers.
    let (rbuf, ibuf, logbuf) = unsafe {
        (
            &mut *READ_MEM.0.get(),
            &mut *IN_MEM.0.get(),
            &mut *LOG_MEM.0.get(),
        )
    };
    let mut sup = Sup {
        pid,
        flags,
        tty,
        code: None,
        log: Log {
            fd: log_fd,
            len: 0,
            buf: logbuf,
            rotate: env_value(envp, b"BERTH_LOG_ROTATE=")
                .and_then(|v| parse_rotate(v, log_fd, arg(1).as_ptr(), envp)),
        },
        out: Stream {
            fd: out_fd,
            name: b"stdout",
            copy_to: 1,
            carry: [0; 4],
            carry_len: 0,
        },
        err: Stream {
            fd: if tty { -1 } else { err_fd },
            name: b"stderr",
            copy_to: 2,
            carry: [0; 4],
            carry_len: 0,
        },
        in_fd: if forward_stdin { stdin_target } else { -1 },
        in_pipe: in_fd,
        stdin_open: forward_stdin,
        stdin_eof: false,
        in_off: 0,
        in_len: 0,
        attached: flags & FLAG_ATTACHED != 0,
        last_data: 0,
        health: env_value(envp, b"BERTH_HEALTH=").and_then(|v| Health::parse(v, now_ms())),
    };

    // PID may have exited before the signalfd existed; its SIGCHLD is still pending, but
    // reap once anyway. A PID that is not our child can never be waited for.
    sup.reap();
    if sup.code.is_none() {
        // Between the sweep above and this call PID may exit: then this call reaps it, and
        // its status must be kept (its SIGCHLD will find nothing left to reap).
        let (r, status) = wait_nohang(pid);
        if r == -ECHILD {
            sup.log.chunk(
                b"berth-supervise: container init is not our child\n",
                b"stderr",
            );
            sup.code = Some(255);
        } else if r as i32 == pid {
            sup.code = Some(exit_status_code(status));
        }
    }

    let mut drain_start: Option<i64> = None;
    loop {
        let mut timeout: i32 = -1;
        if let (Some(h), None) = (sup.health.as_mut(), sup.code) {
            if h.probe == 0 {
                let now = now_ms();
                if now >= h.next {
                    let pid = spawn_probe(argv, envp);
                    if pid > 0 {
                        h.probe = pid;
                    } else {
                        h.next = now + h.interval;
                    }
                }
                if h.probe == 0 {
                    timeout = (h.next - now).clamp(0, i64::from(i32::MAX)) as i32;
                }
            }
        }
        if sup.code.is_some() {
            if sup.out.fd < 0 && sup.err.fd < 0 {
                break;
            }
            let now = now_ms();
            let start = *drain_start.get_or_insert(now);
            let idle_end = if sup.last_data > start {
                sup.last_data
            } else {
                start
            } + DRAIN_IDLE_MS;
            let end = idle_end.min(start + DRAIN_MAX_MS);
            if now >= end {
                break;
            }
            timeout = (end - now) as i32;
            // Input is left for whoever comes next (a restarted container, berth).
            sup.stdin_open = false;
        }

        let mut fds = [
            PollFd {
                fd: sfd,
                events: POLLIN,
                revents: 0,
            },
            PollFd {
                fd: sup.out.fd,
                events: POLLIN,
                revents: 0,
            },
            PollFd {
                fd: sup.err.fd,
                events: POLLIN,
                revents: 0,
            },
            PollFd {
                fd: -1,
                events: POLLIN,
                revents: 0,
            },
            PollFd {
                fd: -1,
                events: POLLOUT,
                revents: 0,
            },
        ];
        let pending = sup.in_len > sup.in_off;
        if sup.code.is_none() && sup.in_fd >= 0 {
            if pending {
                fds[4].fd = sup.in_fd;
            } else if sup.stdin_open {
                fds[3].fd = 0;
            }
        }
        // poll ignores negative fds.
        let r = poll(&mut fds, timeout);
        if r == -EINTR || r == 0 {
            continue;
        }
        if r < 0 {
            // EFAULT/EINVAL/ENOMEM cannot be fixed by retrying: treat as a dead init.
            if sup.code.is_none() {
                sup.code = Some(255);
            }
            break;
        }
        if fds[0].revents != 0 {
            sup.signals(sfd);
        }
        if fds[1].revents != 0 {
            sup.drain(0, rbuf);
        }
        if fds[2].revents != 0 {
            sup.drain(1, rbuf);
        }
        if fds[4].revents != 0 && sup.in_fd >= 0 {
            sup.push_stdin(ibuf);
        }
        if fds[3].revents != 0 && sup.in_fd >= 0 {
            sup.read_stdin(ibuf);
        }
        if sup.tty && sup.out.fd < 0 {
            sup.in_fd = -1; // master closed
        }
    }

    // Flush half-finished UTF-8 sequences (they become U+FFFD).
    let (oc, ec) = (sup.out.carry_len, sup.err.carry_len);
    let (ocarry, ecarry) = (sup.out.carry, sup.err.carry);
    sup.log.chunk(&ocarry[..oc], b"stdout");
    sup.log.chunk(&ecarry[..ec], b"stderr");

    // (With TTY, ERR_FD and IN_FD are not expected, but close them if passed anyway.)
    let tty_err = if tty { err_fd } else { -1 };
    for fd in [sup.out.fd, sup.err.fd, sup.in_pipe, tty_err] {
        if fd > 3 && fd != out_fd {
            close(fd);
        }
    }
    if sup.out.fd > 3 {
        close(sup.out.fd);
    }
    close(sfd);
    if log_fd > 3 {
        fcntl(log_fd, F_SETFD, FD_CLOEXEC);
    }

    let mut flags = sup.flags;
    if !sup.attached {
        flags &= !FLAG_ATTACHED;
    }
    let code = sup.code.unwrap_or(255) as u64;
    exec_back(argc, argv, envp, code, flags, &mut sup.log)
}

/// execve()s `BERTH_EXE --root ROOT __monitor ID --exited CODE --flags FLAGS [EXTRA...]`,
/// rewriting argv in place (the new vector is one entry shorter than ours).
fn exec_back(
    argc: usize,
    argv: *mut *const u8,
    envp: *const *const u8,
    code: u64,
    flags: u64,
    log: &mut Log,
) -> i32 {
    let mut code_buf = [0u8; 24];
    let mut flags_buf = [0u8; 24];
    fmt_u64(code, &mut code_buf);
    fmt_u64(flags, &mut flags_buf);
    // SAFETY: argv has argc + 1 slots (the last is NULL). We read the three pointers we
    // need, move EXTRA (indices 10..argc) down by one, and fill indices 0..9; every index
    // written is < argc. All strings pointed to live on the initial stack or in this frame,
    // which outlives the execve call.
    let exe = unsafe {
        let exe = *argv.add(1);
        let root = *argv.add(2);
        let id = *argv.add(3);
        for i in 10..argc {
            *argv.add(i - 1) = *argv.add(i);
        }
        *argv.add(argc - 1) = core::ptr::null();
        let new: [*const u8; 9] = [
            exe,
            c"--root".as_ptr().cast(),
            root,
            c"__monitor".as_ptr().cast(),
            id,
            c"--exited".as_ptr().cast(),
            code_buf.as_ptr(),
            c"--flags".as_ptr().cast(),
            flags_buf.as_ptr(),
        ];
        for (i, p) in new.into_iter().enumerate() {
            *argv.add(i) = p;
        }
        exe
    };
    // SAFETY: `exe` is a NUL-terminated path; argv and envp are NULL-terminated vectors of
    // NUL-terminated strings.
    let r = unsafe { syscall(nr::EXECVE, exe as usize, argv as usize, envp as usize, 0) };
    let mut msg = [0u8; 512];
    let mut n = 0;
    let mut errno_buf = [0u8; 24];
    let path = cstr(exe);
    let path = &path[..path.len().min(400)];
    for part in [
        &b"berth-supervise: cannot exec "[..],
        path,
        b": errno ",
        fmt_u64(r.unsigned_abs() as u64, &mut errno_buf),
        b"\n",
    ] {
        msg[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    log.chunk(&msg[..n], b"stderr");
    125
}
