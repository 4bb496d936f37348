//! The monitor's in-process I/O loop: container output to the log (and an attached CLI),
//! the CLI's input to the container, signals forwarded, the init reaped.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::fdio::{copy_winsize, reap, write_all};
use crate::logs::StreamLog;
use crate::{EngineError, Result};

/// A started container process and the monitor's ends of its stdio.
pub(super) struct Running {
    pub(super) pid: i32,
    pub(super) stdout: Option<OwnedFd>,
    pub(super) stderr: Option<OwnedFd>,
    pub(super) stdin: Option<OwnedFd>,
    pub(super) master: Option<OwnedFd>,
    pub(super) sigfd: SignalFd,
}

pub(super) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| EngineError::Other(format!("pipe: {e}")))
}

pub(super) fn handled_signals() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGCHLD,
        Signal::SIGWINCH,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        s.add(sig);
    }
    s
}

pub(super) fn block_signals() -> Result<SignalFd> {
    let s = handled_signals();
    s.thread_block()
        .map_err(|e| EngineError::Other(format!("sigprocmask: {e}")))?;
    SignalFd::with_flags(&s, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| EngineError::Other(format!("signalfd: {e}")))
}

pub(super) fn unblock_all() {
    let _ = SigSet::all().thread_unblock();
}

/// Copy output to the log (and the attached CLI) until the container's init exits.
pub(super) fn io_loop(
    run: &Running,
    log: &mut LogSink,
    attached_out: &mut bool,
    stdin_open: &mut bool,
    mut health: Option<&mut crate::health::Scheduler>,
) -> WaitStatus {
    let mut buf = vec![0u8; 32 * 1024];
    let (mut out_log, mut err_log) = (StreamLog::default(), StreamLog::default());
    let mut out_open = run.stdout.is_some() || run.master.is_some();
    let mut err_open = run.stderr.is_some();
    let mut exit: Option<WaitStatus> = None;
    let mut stdin_w = run.stdin.as_ref().map(|f| f.as_raw_fd());
    // Reap anything that died before the signal mask was in place.
    if let Some(ws) = reap(run.pid) {
        exit = Some(ws);
    }
    loop {
        if exit.is_some() && !out_open && !err_open {
            break;
        }
        let out_fd = run.master.as_ref().or(run.stdout.as_ref());
        let mut fds: Vec<PollFd> = Vec::with_capacity(4);
        fds.push(PollFd::new(run.sigfd.as_fd(), PollFlags::POLLIN));
        let mut idx_out = None;
        let mut idx_err = None;
        let mut idx_in = None;
        if let (true, Some(f)) = (out_open, out_fd) {
            idx_out = Some(fds.len());
            fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
        }
        if let (true, Some(f)) = (err_open, run.stderr.as_ref()) {
            idx_err = Some(fds.len());
            fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
        }
        // SAFETY: fd 0 stays open for the whole life of the monitor.
        let stdin0 = unsafe { BorrowedFd::borrow_raw(0) };
        if *stdin_open {
            idx_in = Some(fds.len());
            fds.push(PollFd::new(stdin0, PollFlags::POLLIN));
        }
        // Once the init is gone, drain what is left without blocking forever (a grandchild
        // may still hold the pipe; it dies with the pid namespace).
        let timeout = if exit.is_some() {
            PollTimeout::from(200u16)
        } else if let Some(d) = health.as_ref().and_then(|h| h.timeout()) {
            PollTimeout::from(u16::try_from(d.as_millis().clamp(1, 60_000)).unwrap_or(60_000))
        } else {
            PollTimeout::NONE
        };
        let n = match poll(&mut fds, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => 0,
        };
        if n == 0 && exit.is_some() {
            break;
        }
        if let (Some(h), None) = (health.as_mut(), &exit) {
            h.tick();
        }
        let ready = |i: Option<usize>, fds: &Vec<PollFd>| {
            i.and_then(|i| fds[i].revents())
                .map(|r| !r.is_empty())
                .unwrap_or(false)
        };
        let sig_ready = fds[0].revents().map(|r| !r.is_empty()).unwrap_or(false);
        let out_ready = ready(idx_out, &fds);
        let err_ready = ready(idx_err, &fds);
        let in_ready = ready(idx_in, &fds);
        drop(fds);
        if sig_ready {
            while let Ok(Some(si)) = run.sigfd.read_signal() {
                match i32::try_from(si.ssi_signo).unwrap_or(0) {
                    libc::SIGCHLD => {
                        if let Some(ws) = reap(run.pid) {
                            exit = Some(ws);
                        }
                    }
                    libc::SIGWINCH => {
                        if let Some(m) = &run.master {
                            copy_winsize(0, m.as_raw_fd());
                        }
                    }
                    s @ (libc::SIGTERM | libc::SIGINT | libc::SIGHUP) => {
                        // Forward to the container's init.
                        // SAFETY: kill(2) with a pid we started; no memory effects.
                        unsafe {
                            libc::kill(run.pid, s);
                        }
                    }
                    _ => {}
                }
            }
        }
        if out_ready {
            let fd = out_fd.map(|f| f.as_raw_fd()).unwrap_or(-1);
            if !pump(fd, &mut buf, log, ("stdout", &mut out_log), 1, attached_out) {
                out_open = false;
            }
        }
        if err_ready {
            let fd = run.stderr.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
            if !pump(fd, &mut buf, log, ("stderr", &mut err_log), 2, attached_out) {
                err_open = false;
            }
        }
        if in_ready {
            let target = run.master.as_ref().map(|m| m.as_raw_fd()).or(stdin_w);
            // SAFETY: reading into our own buffer from fd 0.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                *stdin_open = false;
                // EOF on the CLI's stdin closes the container's stdin (pipes only).
                stdin_w = None;
                if run.master.is_none() {
                    if let Some(fd) = run.stdin.as_ref() {
                        // SAFETY: closing our write end by dup2-ing /dev/null over it keeps the
                        // OwnedFd valid while delivering EOF to the reader.
                        unsafe {
                            let null =
                                libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                            if null >= 0 {
                                libc::dup2(null, fd.as_raw_fd());
                                libc::close(null);
                            }
                        }
                    }
                }
            } else if let Some(t) = target {
                write_all(t, &buf[..n.unsigned_abs()]);
            }
        }
    }
    // Whatever a stream still held back (it did not reach EOF in time).
    let _ = out_log.finish(&mut log.file, "stdout");
    let _ = err_log.finish(&mut log.file, "stderr");
    exit.unwrap_or(WaitStatus::Exited(Pid::from_raw(run.pid), 255))
}

/// The in-process monitor's log: the file, where it lives, how it rotates.
pub(super) struct LogSink {
    pub(super) file: File,
    pub(super) path: std::path::PathBuf,
    pub(super) rotation: Option<crate::logs::Rotation>,
    /// `--log-driver journald`: every line also goes to the journal.
    pub(super) journal: Option<crate::journald::Journal>,
}

/// Read what is available from `fd`; false on EOF.
pub(super) fn pump(
    fd: i32,
    buf: &mut [u8],
    log: &mut LogSink,
    (stream, slog): (&str, &mut StreamLog),
    dest: i32,
    attached: &mut bool,
) -> bool {
    loop {
        // SAFETY: reading into our own buffer from a descriptor we own.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) => true,
                Some(libc::EINTR) => continue,
                // EIO on a pty master means the slave side is closed.
                _ => {
                    let _ = slog.finish(&mut log.file, stream);
                    if let Some(j) = log.journal.as_mut() {
                        j.finish(stream);
                    }
                    false
                }
            };
        }
        if n == 0 {
            let _ = slog.finish(&mut log.file, stream);
            if let Some(j) = log.journal.as_mut() {
                j.finish(stream);
            }
            return false;
        }
        let data = &buf[..n.unsigned_abs()];
        if let Some(j) = log.journal.as_mut() {
            j.write(stream, data);
        }
        if let Some(r) = &log.rotation {
            let _ = r.maybe_rotate(&mut log.file, &log.path);
        }
        let _ = slog.write(&mut log.file, stream, data);
        if *attached && !write_all(dest, data) {
            *attached = false;
        }
    }
}
