//! The supervision loop: output to the log and the attached CLI, stdin, signals, reaping.

use berth_jsonlog::utf8_incomplete_tail;

use core::cell::UnsafeCell;

use crate::*;

pub(crate) const FLAG_ATTACHED: u64 = 1;
pub(crate) const FLAG_STDIN: u64 = 2;
pub(crate) const FLAG_TTY: u64 = 4;

/// How long to keep draining output after the init exited with no data arriving.
pub(crate) const DRAIN_IDLE_MS: i64 = 200;
/// Hard bound on the drain, in case something outside a pid namespace keeps writing.
pub(crate) const DRAIN_MAX_MS: i64 = 5000;
pub(crate) const READ_BUF: usize = 32 * 1024;
pub(crate) const IN_BUF: usize = 16 * 1024;

/// A zero-initialised buffer in .bss: unlike a zeroed stack array, its pages only become
/// resident once data is actually written to them.
pub(crate) struct Bss<const N: usize>(pub(crate) UnsafeCell<[u8; N]>);

// SAFETY: the process is single-threaded, and `main` (run once) takes the only reference.
unsafe impl<const N: usize> Sync for Bss<N> {}

pub(crate) static READ_MEM: Bss<READ_BUF> = Bss(UnsafeCell::new([0; READ_BUF]));
pub(crate) static IN_MEM: Bss<IN_BUF> = Bss(UnsafeCell::new([0; IN_BUF]));
pub(crate) static LOG_MEM: Bss<LOG_BUF> = Bss(UnsafeCell::new([0; LOG_BUF]));

/// One container output stream (stdout, stderr, or the pty master).
pub(crate) struct Stream {
    pub(crate) fd: i32,
    pub(crate) name: &'static [u8],
    /// Attached CLI fd to copy to (1 or 2).
    pub(crate) copy_to: i32,
    /// Bytes of an incomplete UTF-8 sequence at the end of the previous read.
    pub(crate) carry: [u8; 4],
    pub(crate) carry_len: usize,
}

pub(crate) struct Sup {
    pub(crate) pid: i32,
    pub(crate) flags: u64,
    pub(crate) tty: bool,
    /// PID's exit code once reaped.
    pub(crate) code: Option<i32>,
    pub(crate) log: Log,
    pub(crate) out: Stream,
    pub(crate) err: Stream,
    /// Where stdin data goes: IN_FD, or the master with TTY; -1 when not forwarding.
    pub(crate) in_fd: i32,
    /// IN_FD while it is still open (we own it; closing it gives the container EOF).
    pub(crate) in_pipe: i32,
    /// Whether fd 0 is still polled.
    pub(crate) stdin_open: bool,
    /// fd 0 reached EOF/error but buffered data is still to be written.
    pub(crate) stdin_eof: bool,
    pub(crate) in_off: usize,
    pub(crate) in_len: usize,
    /// Whether copying to the attached fds 1/2 still works.
    pub(crate) attached: bool,
    pub(crate) last_data: i64,
    pub(crate) health: Option<Health>,
}

impl Sup {
    /// Reads `which` (0 = out, 1 = err) until EAGAIN (bounded), logging and copying.
    pub(crate) fn drain(&mut self, which: usize, rbuf: &mut [u8; READ_BUF]) {
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
    pub(crate) fn push_stdin(&mut self, ibuf: &[u8; IN_BUF]) {
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

    pub(crate) fn stop_stdin_target(&mut self) {
        if !self.tty && self.in_pipe >= 0 {
            close(self.in_pipe);
            self.in_pipe = -1;
        }
        self.in_fd = -1;
        self.in_off = 0;
        self.in_len = 0;
    }

    pub(crate) fn read_stdin(&mut self, ibuf: &mut [u8; IN_BUF]) {
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

    pub(crate) fn reap(&mut self) {
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

    pub(crate) fn signals(&mut self, sfd: i32) {
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
