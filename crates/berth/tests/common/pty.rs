//! A terminal for tests: runs `berth ARGS` with a fresh pseudo-terminal as its stdin, stdout
//! and stderr (its controlling terminal), records everything it prints, and lets the test
//! type keys (Ctrl-P Ctrl-Q …) and wait for output or the exit.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A child process on its own terminal.
pub struct PtyChild {
    child: Child,
    master: std::fs::File,
    out: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// Receives once the reader saw the terminal's end (every slave descriptor closed).
    closed: std::sync::mpsc::Receiver<()>,
}

impl PtyChild {
    /// Spawn `cmd` with a new pty (80x24) as its stdio and controlling terminal.
    pub fn spawn(mut cmd: Command) -> PtyChild {
        let ws = libc::winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // Both ends close-on-exec from the start: other tests spawn processes concurrently,
        // and a terminal leaked into them (or into a container monitor) would mix sessions.
        let master = nix::pty::posix_openpt(
            nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC,
        )
        .expect("posix_openpt");
        nix::pty::grantpt(&master).unwrap();
        nix::pty::unlockpt(&master).unwrap();
        let name = nix::pty::ptsname_r(&master).unwrap();
        let slave: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(&name)
            .unwrap()
            .into();
        // SAFETY: TIOCSWINSZ reads the struct we pass.
        unsafe {
            libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
        // SAFETY: the master's descriptor is owned by `master`, which is consumed here.
        let master: OwnedFd = unsafe {
            use std::os::fd::{FromRawFd, IntoRawFd};
            OwnedFd::from_raw_fd(master.into_raw_fd())
        };
        let s = slave.as_raw_fd();
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        // SAFETY: between fork and exec the closure only calls setsid and ioctl, which are
        // async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY, 0);
                let _ = s;
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn on pty");
        drop(slave);
        let master = std::fs::File::from(master);
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut r = master.try_clone().unwrap();
        let sink = out.clone();
        let (tx, closed) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once every slave descriptor is closed.
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            let _ = tx.send(());
        });
        PtyChild {
            child,
            master,
            out,
            reader: Some(reader),
            closed,
        }
    }

    /// Type `keys` on the terminal.
    pub fn send(&mut self, keys: &[u8]) {
        self.master.write_all(keys).unwrap();
    }

    /// Everything printed so far, lossily decoded.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// Wait (up to 60 s: slow VMs) until the output contains `text`; false if it never did.
    pub fn expect(&self, text: &str) -> bool {
        let end = Instant::now() + Duration::from_secs(60);
        while Instant::now() < end {
            if self.output().contains(text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Wait (up to 60 s) for the process to exit; its exit code, or `None` if it did not
    /// (it is killed then). Its last output has been read when this returns (up to 5 s more
    /// for the terminal to close).
    pub fn wait(&mut self) -> Option<i32> {
        let end = Instant::now() + Duration::from_secs(60);
        while Instant::now() < end {
            if let Some(st) = self.child.try_wait().unwrap() {
                use std::os::unix::process::ExitStatusExt;
                let _ = self.closed.recv_timeout(Duration::from_secs(5));
                return Some(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// The process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for PtyChild {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // The reader ends with the last slave descriptor; do not wait on it.
        let _ = self.reader.take();
    }
}
