//! Small helpers on raw descriptors shared by the monitor and the CLI's attach/exec code.

use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Copy the terminal window size of `from` to the pty `to` (no-op if `from` is no terminal).
pub fn copy_winsize(from: i32, to: i32) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass; TIOCSWINSZ reads it.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_row > 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Write all of `data`, retrying on EINTR/EAGAIN; false if the descriptor failed.
pub fn write_all(fd: i32, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        // SAFETY: writing from our own buffer.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    continue;
                }
                _ => return false,
            }
        }
        if n == 0 {
            return false;
        }
        data = &data[n.unsigned_abs()..];
    }
    true
}

/// Make a descriptor non-blocking.
pub fn set_nonblocking(fd: i32) {
    // SAFETY: fcntl on a descriptor we own; F_GETFL/F_SETFL only change file status flags.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

/// The signal set holding `sigs` (for `sigprocmask` and `signalfd`).
pub(crate) fn signal_set(sigs: &[Signal]) -> SigSet {
    let mut s = SigSet::empty();
    for &x in sigs {
        s.add(x);
    }
    s
}

/// Reap every exited child; returns the wait status of `pid` if it was among them.
pub fn reap(pid: i32) -> Option<WaitStatus> {
    let mut found = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(ws) => {
                if ws.pid() == Some(Pid::from_raw(pid)) {
                    found = Some(ws);
                }
            }
        }
    }
    found
}

/// Exit status of a process as Docker reports it: the code, or 128 + signal.
pub fn exit_code(ws: WaitStatus) -> Option<i32> {
    match ws {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}
