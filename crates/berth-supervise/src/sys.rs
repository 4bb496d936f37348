//! Raw Linux system calls and the kernel ABI constants the supervisor uses.

use core::arch::asm;

/// System call numbers (x86_64 has the legacy calls; aarch64 only the `*at` and `dup3`,
/// `ppoll`, `clone` forms, see the wrappers below).
#[cfg(target_arch = "x86_64")]
pub(crate) mod nr {
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

/// System call numbers of the generic table (`asm-generic/unistd.h`) that aarch64 uses.
#[cfg(target_arch = "aarch64")]
pub(crate) mod nr {
    pub const READ: usize = 63;
    pub const WRITE: usize = 64;
    pub const CLOSE: usize = 57;
    pub const PPOLL: usize = 73;
    pub const RT_SIGACTION: usize = 134;
    pub const RT_SIGPROCMASK: usize = 135;
    pub const IOCTL: usize = 29;
    pub const EXECVE: usize = 221;
    pub const WAIT4: usize = 260;
    pub const KILL: usize = 129;
    pub const FCNTL: usize = 25;
    pub const OPENAT: usize = 56;
    pub const DUP3: usize = 24;
    pub const CLONE: usize = 220;
    pub const CLOSE_RANGE: usize = 436;
    pub const LSEEK: usize = 62;
    pub const FTRUNCATE: usize = 46;
    pub const RENAMEAT: usize = 38;
    pub const UNLINKAT: usize = 35;
    pub const CLOCK_GETTIME: usize = 113;
    pub const EXIT_GROUP: usize = 94;
    pub const SIGNALFD4: usize = 74;
}

pub(crate) const EINTR: isize = 4;
pub(crate) const ECHILD: isize = 10;
pub(crate) const EAGAIN: isize = 11;

pub(crate) const O_NONBLOCK: usize = 0o4000;
pub(crate) const O_CLOEXEC: usize = 0o2000000;
pub(crate) const F_SETFD: usize = 2;
pub(crate) const F_GETFL: usize = 3;
pub(crate) const F_SETFL: usize = 4;
pub(crate) const FD_CLOEXEC: usize = 1;
pub(crate) const WNOHANG: usize = 1;
pub(crate) const SIG_BLOCK: usize = 0;
pub(crate) const SIG_SETMASK: usize = 2;
pub(crate) const SIG_DFL: usize = 0;
pub(crate) const O_RDWR: usize = 2;
pub(crate) const O_WRONLY: usize = 1;
pub(crate) const O_CREAT: usize = 0o100;
pub(crate) const O_APPEND: usize = 0o2000;
pub(crate) const SEEK_END: usize = 2;
pub(crate) const PATH_MAX: usize = 4096;
pub(crate) const SIG_IGN: usize = 1;
pub(crate) const TIOCGWINSZ: usize = 0x5413;
pub(crate) const TIOCSWINSZ: usize = 0x5414;
pub(crate) const CLOCK_REALTIME: usize = 0;
pub(crate) const CLOCK_MONOTONIC: usize = 1;
pub(crate) const POLLIN: i16 = 1;
pub(crate) const POLLOUT: i16 = 4;

pub(crate) const SIGHUP: u32 = 1;
pub(crate) const SIGINT: u32 = 2;
pub(crate) const SIGPIPE: u32 = 13;
pub(crate) const SIGTERM: u32 = 15;
pub(crate) const SIGCHLD: u32 = 17;
pub(crate) const SIGWINCH: u32 = 28;

/// Raw system call with up to four arguments; returns the kernel's result (`-errno` on error).
///
/// # Safety
/// The arguments must satisfy the kernel contract of syscall `n` (valid pointers etc.).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn syscall(n: usize, a1: usize, a2: usize, a3: usize, a4: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller upholds the syscall's contract; `syscall` clobbers rcx and r11 only.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a1, in("rsi") a2,
             in("rdx") a3, in("r10") a4, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// Raw system call with up to four arguments; returns the kernel's result (`-errno` on error).
///
/// # Safety
/// The arguments must satisfy the kernel contract of syscall `n` (valid pointers etc.).
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub(crate) unsafe fn syscall(n: usize, a1: usize, a2: usize, a3: usize, a4: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller upholds the syscall's contract; `svc 0` returns in x0 and clobbers
    // nothing else.
    unsafe {
        asm!("svc 0", in("x8") n, inlateout("x0") a1 as isize => ret, in("x1") a2,
             in("x2") a3, in("x3") a4, options(nostack));
    }
    ret
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn exit(code: i32) -> ! {
    // SAFETY: exit_group takes no pointers and never returns.
    unsafe {
        asm!("syscall", in("rax") nr::EXIT_GROUP, in("rdi") code as isize as usize,
             options(noreturn, nostack));
    }
}

#[cfg(target_arch = "aarch64")]
pub(crate) fn exit(code: i32) -> ! {
    // SAFETY: exit_group takes no pointers and never returns.
    unsafe {
        asm!("svc 0", in("x8") nr::EXIT_GROUP, in("x0") code as isize as usize,
             options(noreturn, nostack));
    }
}

/// `AT_FDCWD` as a syscall argument (-100, sign-extended).
#[cfg(target_arch = "aarch64")]
const AT_FDCWD: usize = -100isize as usize;

/// `open(path, flags, mode)`; `path` is NUL-terminated.
///
/// # Safety
/// `path` must point to a NUL-terminated string.
pub(crate) unsafe fn sys_open(path: *const u8, flags: usize, mode: usize) -> isize {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller passes a NUL-terminated path.
    let r = unsafe { syscall(nr::OPEN, path as usize, flags, mode, 0) };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: the caller passes a NUL-terminated path.
    let r = unsafe { syscall(nr::OPENAT, AT_FDCWD, path as usize, flags, mode) };
    r
}

/// `dup2(old, new)`: returns `new` or `-errno`.
pub(crate) fn sys_dup2(old: usize, new: usize) -> isize {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: descriptors only.
    let r = unsafe { syscall(nr::DUP2, old, new, 0, 0) };
    #[cfg(target_arch = "aarch64")]
    let r = if old == new {
        // dup3 refuses old == new, which dup2 accepts as a no-op.
        new as isize
    } else {
        // SAFETY: descriptors only.
        unsafe { syscall(nr::DUP3, old, new, 0, 0) }
    };
    r
}

/// `fork()`: the child's pid in the parent, 0 in the child, or `-errno`.
///
/// # Safety
/// The process must be single-threaded (it is: no threads are ever started).
pub(crate) unsafe fn sys_fork() -> isize {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: fork takes no arguments; the caller guarantees a single thread.
    let r = unsafe { syscall(nr::FORK, 0, 0, 0, 0) };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: clone(SIGCHLD) with no other flags and no new stack is fork; no thread-id
    // pointers are used without their flags.
    let r = unsafe { syscall(nr::CLONE, SIGCHLD as usize, 0, 0, 0) };
    r
}

/// `rename(from, to)`; both NUL-terminated.
///
/// # Safety
/// Both must point to NUL-terminated strings.
pub(crate) unsafe fn sys_rename(from: *const u8, to: *const u8) -> isize {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller passes NUL-terminated paths.
    let r = unsafe { syscall(nr::RENAME, from as usize, to as usize, 0, 0) };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: the caller passes NUL-terminated paths.
    let r = unsafe { syscall(nr::RENAMEAT, AT_FDCWD, from as usize, AT_FDCWD, to as usize) };
    r
}

/// `unlink(path)`; NUL-terminated.
///
/// # Safety
/// `path` must point to a NUL-terminated string.
pub(crate) unsafe fn sys_unlink(path: *const u8) -> isize {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller passes a NUL-terminated path.
    let r = unsafe { syscall(nr::UNLINK, path as usize, 0, 0, 0) };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: the caller passes a NUL-terminated path.
    let r = unsafe { syscall(nr::UNLINKAT, AT_FDCWD, path as usize, 0, 0) };
    r
}

pub(crate) fn read(fd: i32, buf: &mut [u8]) -> isize {
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

pub(crate) fn write(fd: i32, buf: &[u8]) -> isize {
    // SAFETY: `buf` is valid for reads of its length.
    unsafe { syscall(nr::WRITE, fd as usize, buf.as_ptr() as usize, buf.len(), 0) }
}

pub(crate) fn close(fd: i32) {
    // SAFETY: closing a descriptor involves no memory; we only close fds we own.
    unsafe {
        syscall(nr::CLOSE, fd as usize, 0, 0, 0);
    }
}

pub(crate) fn fcntl(fd: i32, cmd: usize, arg: usize) -> isize {
    // SAFETY: only integer-argument fcntl commands are used.
    unsafe { syscall(nr::FCNTL, fd as usize, cmd, arg, 0) }
}

pub(crate) fn set_nonblock(fd: i32) {
    let fl = fcntl(fd, F_GETFL, 0);
    if fl >= 0 {
        fcntl(fd, F_SETFL, fl as usize | O_NONBLOCK);
    }
}

pub(crate) fn kill(pid: i32, sig: u32) {
    // SAFETY: no memory involved.
    unsafe {
        syscall(nr::KILL, pid as usize, sig as usize, 0, 0);
    }
}

/// `wait4(pid, &status, WNOHANG, NULL)`: returns the pid (or 0 / -errno) and the status.
/// Waits for child `pid` to exit (retrying on EINTR); an error (already reaped) ends the wait.
pub(crate) fn wait_blocking(pid: i32) {
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

pub(crate) fn wait_nohang(pid: i32) -> (isize, i32) {
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
pub(crate) struct PollFd {
    pub(crate) fd: i32,
    pub(crate) events: i16,
    pub(crate) revents: i16,
}

pub(crate) fn poll(fds: &mut [PollFd], timeout_ms: i32) -> isize {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `fds` is a valid array of `struct pollfd` of the given length.
    let r = unsafe {
        syscall(
            nr::POLL,
            fds.as_mut_ptr() as usize,
            fds.len(),
            timeout_ms as isize as usize,
            0,
        )
    };
    #[cfg(target_arch = "aarch64")]
    let r = {
        let ts = Timespec {
            sec: i64::from(timeout_ms / 1000),
            nsec: i64::from(timeout_ms % 1000) * 1_000_000,
        };
        // A negative timeout waits forever: no timespec.
        let tp = if timeout_ms < 0 {
            0
        } else {
            &ts as *const Timespec as usize
        };
        // SAFETY: `fds` is a valid array of `struct pollfd`, `tp` NULL or a valid timespec;
        // no signal mask is given.
        unsafe { syscall(nr::PPOLL, fds.as_mut_ptr() as usize, fds.len(), tp, 0) }
    };
    r
}

#[repr(C)]
#[derive(Default)]
pub(crate) struct Timespec {
    pub(crate) sec: i64,
    pub(crate) nsec: i64,
}

pub(crate) fn clock(id: usize) -> Timespec {
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
pub(crate) fn now_ms() -> i64 {
    let ts = clock(CLOCK_MONOTONIC);
    ts.sec * 1000 + ts.nsec / 1_000_000
}

#[repr(C)]
#[derive(Default)]
pub(crate) struct Winsize {
    pub(crate) row: u16,
    pub(crate) col: u16,
    pub(crate) xpixel: u16,
    pub(crate) ypixel: u16,
}

/// Copies the window size of fd 0 to `master`.
pub(crate) fn copy_winsize(master: i32) {
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

pub(crate) fn sigbit(sig: u32) -> u64 {
    1u64 << (sig - 1)
}

/// The kernel's `struct sigaction` on x86_64.
#[repr(C)]
pub(crate) struct KSigaction {
    pub(crate) handler: usize,
    pub(crate) flags: u64,
    pub(crate) restorer: usize,
    pub(crate) mask: u64,
}

/// Sets SIGPIPE to SIG_IGN, blocks the supervised signals (they should already be) and
/// returns a signalfd for them.
pub(crate) fn setup_signals() -> isize {
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
pub(crate) fn write_all(fd: i32, mut buf: &[u8]) -> bool {
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
