//! Signals that reach the right process: the container's recorded pid is opened as a pidfd,
//! checked to still be a process of that container (its cgroup names the container id), and
//! signalled through the pidfd, so a pid recycled by an unrelated process is never signalled.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Open a pidfd for `pid`.
///
/// Errors: `ESRCH` when no such process exists.
pub fn open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(r).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Duplicate descriptor `target` of the process behind `pidfd` into this process
/// (`pidfd_getfd(2)`, Linux 5.6; needs ptrace access to that process). The copy shares the
/// open file description (offset, `O_NONBLOCK`) with the original.
///
/// Errors: `EBADF` when the process has no such descriptor, `EPERM` without access.
pub fn get_fd(pidfd: &OwnedFd, target: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_getfd takes a pidfd, a descriptor number and flags (0) and returns a new
    // descriptor (close-on-exec) or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(r).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Send `sig` through a pidfd.
///
/// Errors: `ESRCH` when the process has exited.
pub fn send(fd: &OwnedFd, sig: i32) -> io::Result<()> {
    // SAFETY: pidfd_send_signal takes a descriptor, a signal number, a null siginfo and flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `pid` is a process of container `id` (its cgroup path names the id).
pub fn in_container(pid: i32, id: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map(|cg| cg.contains(id))
        .unwrap_or(false)
}

/// Signal the init of container `id`, recorded as `pid`. Returns `Ok(false)` when that pid is
/// gone or no longer the container's (recycled), without signalling anything.
///
/// Errors: the kernel refuses the signal (other than the process having exited).
pub fn signal_container(pid: i32, id: &str, sig: i32) -> io::Result<bool> {
    if pid <= 0 {
        return Ok(false);
    }
    let fd = match open(pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(false),
        Err(e) => return Err(e),
    };
    // The pidfd pins the process we check: if the pid is recycled after this point, the
    // signal below fails with ESRCH instead of reaching the newcomer.
    if !in_container(pid, id) {
        return Ok(false);
    }
    match send(&fd, sig) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A pidfd for the init of container `id`, recorded as `pid`: `None` when that pid is gone or
/// no longer the container's (recycled), or pidfds are unavailable.
pub fn open_container(pid: i32, id: &str) -> Option<OwnedFd> {
    if pid <= 0 {
        return None;
    }
    let fd = open(pid).ok()?;
    // Checked after opening: the pidfd pins the process the check looked at.
    in_container(pid, id).then_some(fd)
}

/// Wait at most `timeout` for the process behind `fd` to exit. True once it has exited.
///
/// Errors: `poll(2)` fails (other than being interrupted, which counts as not yet exited).
pub fn wait_exit(fd: &OwnedFd, timeout: std::time::Duration) -> io::Result<bool> {
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call; a pidfd polls readable once its
    // process has exited.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(r > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_exit_wakes_when_the_process_exits() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let fd = open(i32::try_from(child.id()).unwrap()).unwrap();
        assert!(!wait_exit(&fd, std::time::Duration::from_millis(10)).unwrap());
        send(&fd, libc::SIGKILL).unwrap();
        assert!(wait_exit(&fd, std::time::Duration::from_secs(10)).unwrap());
        child.wait().unwrap();
    }

    #[test]
    fn foreign_pid_is_not_signalled() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        // Not in a cgroup named like this container: nothing is sent.
        assert!(!signal_container(pid, "no-such-container-id-0123456789", libc::SIGKILL).unwrap());
        assert!(child.try_wait().unwrap().is_none());
        let fd = open(pid).unwrap();
        send(&fd, libc::SIGKILL).unwrap();
        child.wait().unwrap();
        // Exited and reaped: the old pidfd refuses instead of hitting a recycled pid.
        assert!(send(&fd, libc::SIGKILL).is_err());
    }
}
