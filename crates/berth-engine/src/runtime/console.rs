//! The console socket: a unix socket on which the runtime sends a container's pty master.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use crate::{EngineError, Result};

/// A listening console socket: the runtime connects and sends the pty master.
#[derive(Debug)]
pub struct ConsoleSocket {
    /// The socket's path, given to the runtime as `--console-socket` (OCI runtime spec,
    /// `process.terminal`); removed on drop.
    pub path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    /// Listen on a new randomly named socket in `dir` (created if missing), or in the temp
    /// directory when the path would pass the 108-byte `sun_path` limit.
    ///
    /// Errors: [`EngineError::Io`] when the directory or socket cannot be created.
    pub fn bind(dir: &Path) -> Result<ConsoleSocket> {
        let name = format!("cs-{:012x}.sock", rand::random::<u64>() & 0xffff_ffff_ffff);
        let mut path = dir.join(&name);
        if path.as_os_str().len() > 100 {
            path = std::env::temp_dir().join(name);
        }
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new("/")))
            .map_err(|e| EngineError::io(&path, e))?;
        let listener = UnixListener::bind(&path).map_err(|e| EngineError::io(&path, e))?;
        Ok(ConsoleSocket { path, listener })
    }

    /// Wait for the runtime to send the pty master.
    ///
    /// Errors: [`EngineError::Io`] when accepting fails or the message carries no file descriptor.
    pub fn receive(&self) -> Result<OwnedFd> {
        let (stream, _) = self
            .listener
            .accept()
            .map_err(|e| EngineError::io(&self.path, e))?;
        recv_fd(stream.as_raw_fd()).map_err(|e| EngineError::io(&self.path, e))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn recv_fd(sock: RawFd) -> std::io::Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(std::io::Error::from)?;
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                for &extra in &fds[1..] {
                    // SAFETY: the kernel just gave us these descriptors; we own and close them.
                    drop(unsafe { OwnedFd::from_raw_fd(extra) });
                }
                // SAFETY: the kernel installed this descriptor for us via SCM_RIGHTS; nothing
                // else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(std::io::Error::other(
        "the runtime sent no terminal on the console socket",
    ))
}
