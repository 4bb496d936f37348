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

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
compile_error!("berth-supervise supports only Linux on x86_64 (raw syscall numbers and _start)");

use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;

// ---------------------------------------------------------------------------------------
// Process entry, runtime support symbols
// ---------------------------------------------------------------------------------------

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

/// `memcpy` for the compiler; `rep movsb` so it cannot be turned into a call to itself.
///
/// # Safety
/// `src` and `dst` must be valid for `n` bytes and must not overlap.
#[no_mangle]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges are valid; the direction flag is clear per ABI.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dst
}

/// `memmove` for the compiler.
///
/// # Safety
/// `src` and `dst` must be valid for `n` bytes; they may overlap.
#[no_mangle]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // dst is below src or the ranges are disjoint: copying forwards is safe.
        // SAFETY: as for memcpy; a forward copy never reads a byte it already overwrote.
        unsafe {
            asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
                 options(nostack, preserves_flags));
        }
    } else {
        // SAFETY: backwards copy from the last byte; the direction flag is restored (cld).
        unsafe {
            asm!("std", "rep movsb", "cld", inout("rcx") n => _,
                 inout("rdi") dst.add(n - 1) => _, inout("rsi") src.add(n - 1) => _,
                 options(nostack));
        }
    }
    dst
}

/// `memset` for the compiler.
///
/// # Safety
/// `dst` must be valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees the range is valid.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dst
}

/// `memcmp` for the compiler.
///
/// # Safety
/// `a` and `b` must be valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: i < n and the caller guarantees both ranges are valid; volatile reads keep
        // the loop from being recognised as a memcmp idiom.
        let (x, y) = unsafe {
            (
                core::ptr::read_volatile(a.add(i)),
                core::ptr::read_volatile(b.add(i)),
            )
        };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// `bcmp` for the compiler.
///
/// # Safety
/// `a` and `b` must be valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract.
    unsafe { memcmp(a, b, n) }
}

// ---------------------------------------------------------------------------------------
// Raw syscalls (x86_64)
// ---------------------------------------------------------------------------------------

mod nr {
    pub const READ: usize = 0;
    pub const WRITE: usize = 1;
    pub const CLOSE: usize = 3;
    pub const POLL: usize = 7;
    pub const RT_SIGACTION: usize = 13;
    pub const RT_SIGPROCMASK: usize = 14;
    pub const IOCTL: usize = 16;
    pub const EXECVE: usize = 59;
    pub const WAIT4: usize = 61;
    pub const KILL: usize = 62;
    pub const FCNTL: usize = 72;
    pub const OPEN: usize = 2;
    pub const DUP2: usize = 33;
    pub const FORK: usize = 57;
    pub const CLOSE_RANGE: usize = 436;
    pub const LSEEK: usize = 8;
    pub const FTRUNCATE: usize = 77;
    pub const RENAME: usize = 82;
    pub const UNLINK: usize = 87;
    pub const CLOCK_GETTIME: usize = 228;
    pub const EXIT_GROUP: usize = 231;
    pub const SIGNALFD4: usize = 289;
}

const EINTR: isize = 4;
const ECHILD: isize = 10;
const EAGAIN: isize = 11;

const O_NONBLOCK: usize = 0o4000;
const O_CLOEXEC: usize = 0o2000000;
const F_SETFD: usize = 2;
const F_GETFL: usize = 3;
const F_SETFL: usize = 4;
const FD_CLOEXEC: usize = 1;
const WNOHANG: usize = 1;
const SIG_BLOCK: usize = 0;
const SIG_SETMASK: usize = 2;
const SIG_DFL: usize = 0;
const O_RDWR: usize = 2;
const O_WRONLY: usize = 1;
const O_CREAT: usize = 0o100;
const O_APPEND: usize = 0o2000;
const SEEK_END: usize = 2;
const PATH_MAX: usize = 4096;
const SIG_IGN: usize = 1;
const TIOCGWINSZ: usize = 0x5413;
const TIOCSWINSZ: usize = 0x5414;
const CLOCK_REALTIME: usize = 0;
const CLOCK_MONOTONIC: usize = 1;
const POLLIN: i16 = 1;
const POLLOUT: i16 = 4;

const SIGHUP: u32 = 1;
const SIGINT: u32 = 2;
const SIGPIPE: u32 = 13;
const SIGTERM: u32 = 15;
const SIGCHLD: u32 = 17;
const SIGWINCH: u32 = 28;

/// Raw system call with up to six arguments; returns the kernel's result (`-errno` on error).
///
/// # Safety
/// The arguments must satisfy the kernel contract of syscall `n` (valid pointers etc.).
#[inline(always)]
unsafe fn syscall(n: usize, a1: usize, a2: usize, a3: usize, a4: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller upholds the syscall's contract; `syscall` clobbers rcx and r11 only.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a1, in("rsi") a2,
             in("rdx") a3, in("r10") a4, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

fn exit(code: i32) -> ! {
    // SAFETY: exit_group takes no pointers and never returns.
    unsafe {
        asm!("syscall", in("rax") nr::EXIT_GROUP, in("rdi") code as isize as usize,
             options(noreturn, nostack));
    }
}

fn read(fd: i32, buf: &mut [u8]) -> isize {
    // SAFETY: `buf` is valid for writes of its length.
    unsafe {
        syscall(
            nr::READ,
            fd as usize,
            buf.as_mut_ptr() as usize,
            buf.len(),
            0,
        )
    }
}

fn write(fd: i32, buf: &[u8]) -> isize {
    // SAFETY: `buf` is valid for reads of its length.
    unsafe { syscall(nr::WRITE, fd as usize, buf.as_ptr() as usize, buf.len(), 0) }
}

fn close(fd: i32) {
    // SAFETY: closing a descriptor involves no memory; we only close fds we own.
    unsafe {
        syscall(nr::CLOSE, fd as usize, 0, 0, 0);
    }
}

fn fcntl(fd: i32, cmd: usize, arg: usize) -> isize {
    // SAFETY: only integer-argument fcntl commands are used.
    unsafe { syscall(nr::FCNTL, fd as usize, cmd, arg, 0) }
}

fn set_nonblock(fd: i32) {
    let fl = fcntl(fd, F_GETFL, 0);
    if fl >= 0 {
        fcntl(fd, F_SETFL, fl as usize | O_NONBLOCK);
    }
}

fn kill(pid: i32, sig: u32) {
    // SAFETY: no memory involved.
    unsafe {
        syscall(nr::KILL, pid as usize, sig as usize, 0, 0);
    }
}

/// `wait4(pid, &status, WNOHANG, NULL)`: returns the pid (or 0 / -errno) and the status.
/// Waits for child `pid` to exit (retrying on EINTR); an error (already reaped) ends the wait.
fn wait_blocking(pid: i32) {
    loop {
        let mut status: i32 = 0;
        // SAFETY: `status` is a valid, writable i32; the rusage pointer is NULL.
        let r = unsafe {
            syscall(
                nr::WAIT4,
                pid as usize,
                &mut status as *mut i32 as usize,
                0,
                0,
            )
        };
        if r != -EINTR {
            return;
        }
    }
}

fn wait_nohang(pid: i32) -> (isize, i32) {
    let mut status: i32 = 0;
    // SAFETY: `status` is a valid, writable i32; the rusage pointer is NULL.
    let r = unsafe {
        syscall(
            nr::WAIT4,
            pid as usize,
            &mut status as *mut i32 as usize,
            WNOHANG,
            0,
        )
    };
    (r, status)
}

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

fn poll(fds: &mut [PollFd], timeout_ms: i32) -> isize {
    // SAFETY: `fds` is a valid array of `struct pollfd` of the given length.
    unsafe {
        syscall(
            nr::POLL,
            fds.as_mut_ptr() as usize,
            fds.len(),
            timeout_ms as isize as usize,
            0,
        )
    }
}

#[repr(C)]
#[derive(Default)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

fn clock(id: usize) -> Timespec {
    let mut ts = Timespec::default();
    // SAFETY: `ts` is a valid, writable `struct timespec`.
    unsafe {
        syscall(
            nr::CLOCK_GETTIME,
            id,
            &mut ts as *mut Timespec as usize,
            0,
            0,
        );
    }
    ts
}

/// CLOCK_MONOTONIC in milliseconds.
fn now_ms() -> i64 {
    let ts = clock(CLOCK_MONOTONIC);
    ts.sec * 1000 + ts.nsec / 1_000_000
}

#[repr(C)]
#[derive(Default)]
struct Winsize {
    row: u16,
    col: u16,
    xpixel: u16,
    ypixel: u16,
}

/// Copies the window size of fd 0 to `master`.
fn copy_winsize(master: i32) {
    let mut ws = Winsize::default();
    // SAFETY: TIOCGWINSZ writes a `struct winsize` to the valid pointer.
    let r = unsafe {
        syscall(
            nr::IOCTL,
            0,
            TIOCGWINSZ,
            &mut ws as *mut Winsize as usize,
            0,
        )
    };
    if r == 0 {
        // SAFETY: TIOCSWINSZ reads a `struct winsize` from the valid pointer.
        unsafe {
            syscall(
                nr::IOCTL,
                master as usize,
                TIOCSWINSZ,
                &ws as *const Winsize as usize,
                0,
            );
        }
    }
}

fn sigbit(sig: u32) -> u64 {
    1u64 << (sig - 1)
}

/// The kernel's `struct sigaction` on x86_64.
#[repr(C)]
struct KSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Sets SIGPIPE to SIG_IGN, blocks the supervised signals (they should already be) and
/// returns a signalfd for them.
fn setup_signals() -> isize {
    let act = KSigaction {
        handler: SIG_IGN,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: `act` is a valid kernel sigaction; the old-action pointer is NULL. SIG_IGN
    // needs no restorer.
    unsafe {
        syscall(
            nr::RT_SIGACTION,
            SIGPIPE as usize,
            &act as *const KSigaction as usize,
            0,
            8,
        );
    }
    let mask: u64 =
        sigbit(SIGCHLD) | sigbit(SIGWINCH) | sigbit(SIGTERM) | sigbit(SIGINT) | sigbit(SIGHUP);
    // SAFETY: `mask` is a valid 8-byte sigset; the old-set pointer is NULL.
    unsafe {
        syscall(
            nr::RT_SIGPROCMASK,
            SIG_BLOCK,
            &mask as *const u64 as usize,
            0,
            8,
        );
    }
    // SAFETY: `mask` is a valid 8-byte sigset.
    unsafe {
        syscall(
            nr::SIGNALFD4,
            usize::MAX, // -1: create a new signalfd
            &mask as *const u64 as usize,
            8,
            O_NONBLOCK | O_CLOEXEC,
        )
    }
}

/// Writes all of `buf` to `fd`, waiting for POLLOUT on EAGAIN. Returns false on error.
fn write_all(fd: i32, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        let r = write(fd, buf);
        if r > 0 {
            buf = &buf[r as usize..];
        } else if r == -EINTR {
            continue;
        } else if r == -EAGAIN {
            let mut p = [PollFd {
                fd,
                events: POLLOUT,
                revents: 0,
            }];
            poll(&mut p, -1);
        } else {
            return false;
        }
    }
    true
}

// ---------------------------------------------------------------------------------------
// Small helpers: C strings, numbers
// ---------------------------------------------------------------------------------------

/// The bytes of a NUL-terminated string (without the NUL).
fn cstr(p: *const u8) -> &'static [u8] {
    let mut n = 0;
    // SAFETY: `p` comes from argv and points to a NUL-terminated string that lives for the
    // whole process. The volatile read keeps LLVM from turning the loop into `strlen`.
    unsafe {
        while core::ptr::read_volatile(p.add(n)) != 0 {
            n += 1;
        }
        core::slice::from_raw_parts(p, n)
    }
}

fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(if neg { -v } else { v })
}

/// Formats `v` in decimal into `buf`, NUL-terminated; returns the digits (without the NUL).
fn fmt_u64(mut v: u64, buf: &mut [u8; 24]) -> &[u8] {
    let mut tmp = [0u8; 20];
    let mut n = 0;
    loop {
        tmp[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        buf[i] = tmp[n - 1 - i];
    }
    buf[n] = 0;
    &buf[..n]
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// CLOCK_REALTIME as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (30 bytes).
fn rfc3339_now(out: &mut [u8; 30]) {
    let ts = clock(CLOCK_REALTIME);
    let days = ts.sec.div_euclid(86_400);
    let secs = ts.sec.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    let y = y.clamp(0, 9999) as u64;
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (0..width).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, u64::from(mo));
    put(8, 2, u64::from(d));
    put(11, 2, (secs / 3600) as u64);
    put(14, 2, (secs / 60 % 60) as u64);
    put(17, 2, (secs % 60) as u64);
    put(20, 9, ts.nsec.clamp(0, 999_999_999) as u64);
    out[4] = b'-';
    out[7] = b'-';
    out[10] = b'T';
    out[13] = b':';
    out[16] = b':';
    out[19] = b'.';
    out[29] = b'Z';
}

// ---------------------------------------------------------------------------------------
// UTF-8 and the json-file log
// ---------------------------------------------------------------------------------------

// The encoding itself is `berth-jsonlog`, shared with the in-process monitor.
use berth_jsonlog::utf8_incomplete_tail;

const LOG_BUF: usize = 64 * 1024;

/// Size-based rotation of the log file (see the crate documentation).
struct Rotate {
    max_size: u64,
    max_file: u64,
    compress: bool,
    path: &'static [u8],
    /// Bytes in the current file.
    written: u64,
    /// BERTH_EXE and the environment, for the compressor.
    exe: *const u8,
    envp: *const *const u8,
    /// The compressor started by the last rotation while it runs (0: none). The next rotation
    /// waits for it: renaming `PATH` over a `PATH.1` it is still reading would let it unlink
    /// the newer file and keep the older contents.
    compressor: i32,
}

/// `PATH` or `PATH.N` or `PATH.N.gz`, NUL-terminated, in `buf`; false if too long.
fn log_name(buf: &mut [u8; PATH_MAX], path: &[u8], n: u64, gz: bool) -> bool {
    let mut num = [0u8; 24];
    let digits = fmt_u64(n, &mut num);
    let need = path.len() + 1 + digits.len() + 3 + 1;
    if need > PATH_MAX {
        return false;
    }
    buf[..path.len()].copy_from_slice(path);
    let mut at = path.len();
    if n > 0 {
        buf[at] = b'.';
        at += 1;
        buf[at..at + digits.len()].copy_from_slice(digits);
        at += digits.len();
        if gz {
            buf[at..at + 3].copy_from_slice(b".gz");
            at += 3;
        }
    }
    buf[at] = 0;
    true
}

impl Rotate {
    /// Rotates the file behind `fd` (see the crate documentation).
    fn rotate(&mut self, fd: i32) {
        self.written = 0;
        if self.compressor > 0 {
            wait_blocking(self.compressor);
            self.compressor = 0;
        }
        if self.max_file < 2 {
            // SAFETY: ftruncate on our own descriptor; O_APPEND writes continue at the new end.
            unsafe {
                syscall(nr::FTRUNCATE, fd as usize, 0, 0, 0);
            }
            return;
        }
        let mut a = [0u8; PATH_MAX];
        let mut b = [0u8; PATH_MAX];
        // PATH.1 … PATH.(MAX_FILE-1) are kept: shift them up by one, the oldest is replaced.
        let mut i = self.max_file - 2;
        while i >= 1 {
            for gz in [false, true] {
                if log_name(&mut a, self.path, i, gz) && log_name(&mut b, self.path, i + 1, gz) {
                    // SAFETY: both are NUL-terminated paths in local buffers.
                    unsafe {
                        syscall(nr::RENAME, a.as_ptr() as usize, b.as_ptr() as usize, 0, 0);
                    }
                }
            }
            i -= 1;
        }
        // With one rotated file kept, an earlier PATH.1.gz would shadow the new PATH.1.
        if log_name(&mut a, self.path, 1, true) {
            // SAFETY: NUL-terminated path in a local buffer.
            unsafe {
                syscall(nr::UNLINK, a.as_ptr() as usize, 0, 0, 0);
            }
        }
        if !(log_name(&mut a, self.path, 0, false) && log_name(&mut b, self.path, 1, false)) {
            return;
        }
        // SAFETY: NUL-terminated paths in local buffers.
        unsafe {
            syscall(nr::RENAME, a.as_ptr() as usize, b.as_ptr() as usize, 0, 0);
        }
        // SAFETY: NUL-terminated path; integer flags and mode.
        let nfd = unsafe {
            syscall(
                nr::OPEN,
                a.as_ptr() as usize,
                O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                0o640,
                0,
            )
        };
        if nfd >= 0 {
            // SAFETY: dup2 over our own log descriptor (dup2 leaves it without FD_CLOEXEC).
            unsafe {
                syscall(nr::DUP2, nfd as usize, fd as usize, 0, 0);
            }
            close(nfd as i32);
        }
        if self.compress {
            self.spawn_compressor();
        }
    }

    fn spawn_compressor(&mut self) {
        // SAFETY: fork takes no arguments; this process is single-threaded.
        let pid = unsafe { syscall(nr::FORK, 0, 0, 0, 0) };
        if pid != 0 {
            // Reaped in Sup::reap, or waited for by the next rotation.
            self.compressor = if pid > 0 { pid as i32 } else { 0 };
            return;
        }
        child_setup();
        let mut p = [0u8; PATH_MAX];
        if !log_name(&mut p, self.path, 0, false) {
            exit(125);
        }
        let args: [*const u8; 4] = [
            self.exe,
            c"__compress-log".as_ptr().cast(),
            p.as_ptr(),
            core::ptr::null(),
        ];
        // SAFETY: NUL-terminated strings in NULL-terminated vectors.
        unsafe {
            syscall(
                nr::EXECVE,
                self.exe as usize,
                args.as_ptr() as usize,
                self.envp as usize,
                0,
            );
        }
        exit(127)
    }
}

/// Parses `MAX_SIZE:MAX_FILE:COMPRESS:PATH`; the current size comes from the file.
fn parse_rotate(
    v: &'static [u8],
    fd: i32,
    exe: *const u8,
    envp: *const *const u8,
) -> Option<Rotate> {
    let mut it = v.splitn(4, |&c| c == b':');
    let max_size = parse_int(it.next()?).filter(|&x| x > 0)? as u64;
    let max_file = parse_int(it.next()?).filter(|&x| x > 0)? as u64;
    let compress = it.next()? == b"1";
    let path = it.next()?;
    if path.first() != Some(&b'/') {
        return None;
    }
    // SAFETY: lseek on our own descriptor; no memory involved.
    let size = unsafe { syscall(nr::LSEEK, fd as usize, 0, SEEK_END, 0) };
    Some(Rotate {
        max_size,
        max_file,
        compress,
        path,
        written: size.max(0) as u64,
        exe,
        envp,
        compressor: 0,
    })
}

/// Buffered writer of json-file log lines.
struct Log {
    fd: i32,
    len: usize,
    buf: &'static mut [u8; LOG_BUF],
    rotate: Option<Rotate>,
}

impl Log {
    fn flush(&mut self) {
        if self.len > 0 {
            if let Some(r) = self.rotate.as_mut() {
                if r.written >= r.max_size {
                    r.rotate(self.fd);
                }
                r.written += self.len as u64;
            }
            // A failing log write (disk full, …) loses log data but must not stop us.
            write_all(self.fd, &self.buf[..self.len]);
            self.len = 0;
        }
    }

    fn byte(&mut self, b: u8) {
        if self.len == LOG_BUF {
            self.flush();
        }
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn bytes(&mut self, s: &[u8]) {
        for &b in s {
            self.byte(b);
        }
    }

    /// Logs a chunk of one stream: one entry per line, a trailing partial line is its own.
    fn chunk(&mut self, data: &[u8], stream: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut time = [0u8; 30];
        rfc3339_now(&mut time);
        for line in data.split_inclusive(|&b| b == b'\n') {
            // Keep entries whole in one write() where possible.
            if self.len > 0 && LOG_BUF - self.len < berth_jsonlog::entry_size_bound(line.len()) {
                self.flush();
            }
            berth_jsonlog::entry(self, line, stream, &time);
        }
        self.flush();
    }
}

impl berth_jsonlog::Sink for Log {
    fn put(&mut self, bytes: &[u8]) {
        self.bytes(bytes);
    }
}

// ---------------------------------------------------------------------------------------
// Health check schedule
// ---------------------------------------------------------------------------------------

/// When to start `berth __healthcheck ID` (all times CLOCK_MONOTONIC ms).
struct Health {
    interval: i64,
    start_interval: i64,
    start_period: i64,
    started: i64,
    next: i64,
    /// The running probe, or 0.
    probe: i32,
    /// A probe has reported healthy (exit 0): the start interval no longer applies.
    healthy_seen: bool,
}

impl Health {
    /// Parses `INTERVAL_MS:START_INTERVAL_MS:START_PERIOD_MS`.
    fn parse(v: &[u8], now: i64) -> Option<Health> {
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

    fn gap(&self, now: i64) -> i64 {
        if !self.healthy_seen && now - self.started < self.start_period {
            self.start_interval
        } else {
            self.interval
        }
    }

    /// The probe `pid` exited with wait status `status`.
    fn done(&mut self, status: i32) {
        if exit_status_code(status) == 0 {
            self.healthy_seen = true;
        }
        self.probe = 0;
        let now = now_ms();
        self.next = now + self.gap(now);
    }
}

/// The value of the environment variable `KEY` (given with its `=`), if set.
fn env_value(envp: *const *const u8, key: &[u8]) -> Option<&'static [u8]> {
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
fn child_setup() {
    // SAFETY: the path is a NUL-terminated literal.
    let null = unsafe { syscall(nr::OPEN, c"/dev/null".as_ptr() as usize, O_RDWR, 0, 0) };
    if null >= 0 {
        for fd in 0..3 {
            // SAFETY: dup2 on descriptors only.
            unsafe {
                syscall(nr::DUP2, null as usize, fd, 0, 0);
            }
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
fn spawn_probe(argv: *mut *const u8, envp: *const *const u8) -> i32 {
    // SAFETY: fork takes no arguments; this process is single-threaded.
    let pid = unsafe { syscall(nr::FORK, 0, 0, 0, 0) };
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

// ---------------------------------------------------------------------------------------
// Supervision
// ---------------------------------------------------------------------------------------

const FLAG_ATTACHED: u64 = 1;
const FLAG_STDIN: u64 = 2;
const FLAG_TTY: u64 = 4;

/// How long to keep draining output after the init exited with no data arriving.
const DRAIN_IDLE_MS: i64 = 200;
/// Hard bound on the drain, in case something outside a pid namespace keeps writing.
const DRAIN_MAX_MS: i64 = 5000;
const READ_BUF: usize = 32 * 1024;
const IN_BUF: usize = 16 * 1024;

/// A zero-initialised buffer in .bss: unlike a zeroed stack array, its pages only become
/// resident once data is actually written to them.
struct Bss<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: the process is single-threaded, and `main` (run once) takes the only reference.
unsafe impl<const N: usize> Sync for Bss<N> {}

static READ_MEM: Bss<READ_BUF> = Bss(UnsafeCell::new([0; READ_BUF]));
static IN_MEM: Bss<IN_BUF> = Bss(UnsafeCell::new([0; IN_BUF]));
static LOG_MEM: Bss<LOG_BUF> = Bss(UnsafeCell::new([0; LOG_BUF]));

/// One container output stream (stdout, stderr, or the pty master).
struct Stream {
    fd: i32,
    name: &'static [u8],
    /// Attached CLI fd to copy to (1 or 2).
    copy_to: i32,
    /// Bytes of an incomplete UTF-8 sequence at the end of the previous read.
    carry: [u8; 4],
    carry_len: usize,
}

struct Sup {
    pid: i32,
    flags: u64,
    tty: bool,
    /// PID's exit code once reaped.
    code: Option<i32>,
    log: Log,
    out: Stream,
    err: Stream,
    /// Where stdin data goes: IN_FD, or the master with TTY; -1 when not forwarding.
    in_fd: i32,
    /// IN_FD while it is still open (we own it; closing it gives the container EOF).
    in_pipe: i32,
    /// Whether fd 0 is still polled.
    stdin_open: bool,
    /// fd 0 reached EOF/error but buffered data is still to be written.
    stdin_eof: bool,
    in_off: usize,
    in_len: usize,
    /// Whether copying to the attached fds 1/2 still works.
    attached: bool,
    last_data: i64,
    health: Option<Health>,
}

impl Sup {
    /// Reads `which` (0 = out, 1 = err) until EAGAIN (bounded), logging and copying.
    fn drain(&mut self, which: usize, rbuf: &mut [u8; READ_BUF]) {
        for _ in 0..16 {
            let s = if which == 0 {
                &mut self.out
            } else {
                &mut self.err
            };
            if s.fd < 0 {
                return;
            }
            let c = s.carry_len;
            rbuf[..c].copy_from_slice(&s.carry[..c]);
            let r = read(s.fd, &mut rbuf[c..]);
            if r == -EINTR {
                continue;
            }
            if r == -EAGAIN {
                return;
            }
            if r <= 0 {
                // EOF, EIO (pty master without slave) or any other error: stream is done.
                close(s.fd);
                s.fd = -1;
                s.carry_len = 0;
                let name = s.name;
                self.log.chunk(&rbuf[..c], name);
                return;
            }
            let n = r as usize;
            let (name, copy_to) = (s.name, s.copy_to);
            let total = c + n;
            let tail = utf8_incomplete_tail(&rbuf[..total]);
            s.carry[..tail].copy_from_slice(&rbuf[total - tail..total]);
            s.carry_len = tail;
            self.last_data = now_ms();
            if self.attached && !write_all(copy_to, &rbuf[c..total]) {
                self.attached = false;
            }
            self.log.chunk(&rbuf[..total - tail], name);
        }
    }

    /// Flushes pending stdin data to the target; closes it once fd 0 hit EOF (no TTY).
    fn push_stdin(&mut self, ibuf: &[u8; IN_BUF]) {
        while self.in_off < self.in_len {
            let r = write(self.in_fd, &ibuf[self.in_off..self.in_len]);
            if r > 0 {
                self.in_off += r as usize;
            } else if r == -EINTR {
                continue;
            } else if r == -EAGAIN {
                return;
            } else {
                // The container closed its stdin: stop forwarding (fd 0 is left unread).
                self.stop_stdin_target();
                self.stdin_open = false;
                return;
            }
        }
        self.in_off = 0;
        self.in_len = 0;
        if self.stdin_eof {
            self.stop_stdin_target();
        }
    }

    fn stop_stdin_target(&mut self) {
        if !self.tty && self.in_pipe >= 0 {
            close(self.in_pipe);
            self.in_pipe = -1;
        }
        self.in_fd = -1;
        self.in_off = 0;
        self.in_len = 0;
    }

    fn read_stdin(&mut self, ibuf: &mut [u8; IN_BUF]) {
        let r = loop {
            let r = read(0, ibuf);
            if r != -EINTR {
                break r;
            }
        };
        if r == -EAGAIN {
            return;
        }
        if r <= 0 {
            self.stdin_open = false;
            self.stdin_eof = true;
            self.flags &= !FLAG_STDIN;
            if self.in_len == 0 {
                self.stop_stdin_target();
            }
            return;
        }
        self.in_off = 0;
        self.in_len = r as usize;
        self.push_stdin(ibuf);
    }

    fn reap(&mut self) {
        loop {
            let (r, status) = wait_nohang(-1);
            if r <= 0 {
                return;
            }
            if r as i32 == self.pid && self.code.is_none() {
                self.code = Some(exit_status_code(status));
            }
            if let Some(h) = self.health.as_mut() {
                if h.probe != 0 && r as i32 == h.probe {
                    h.done(status);
                }
            }
            if let Some(rot) = self.log.rotate.as_mut() {
                if rot.compressor == r as i32 {
                    rot.compressor = 0;
                }
            }
        }
    }

    fn signals(&mut self, sfd: i32) {
        // struct signalfd_siginfo is 128 bytes; ssi_signo is its first u32.
        let mut buf = [0u8; 128 * 8];
        loop {
            let r = read(sfd, &mut buf);
            if r == -EINTR {
                continue;
            }
            if r <= 0 {
                return;
            }
            for info in buf[..r as usize].chunks_exact(128) {
                let signo = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
                match signo {
                    SIGCHLD => self.reap(),
                    SIGWINCH if self.tty && self.out.fd >= 0 => copy_winsize(self.out.fd),
                    // Never signal a reaped pid: it may have been reused.
                    SIGTERM | SIGINT | SIGHUP if self.code.is_none() => kill(self.pid, signo),
                    _ => {}
                }
            }
        }
    }
}

/// Docker's exit code for a wait status: the exit status, or 128 + the signal number.
fn exit_status_code(status: i32) -> i32 {
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
