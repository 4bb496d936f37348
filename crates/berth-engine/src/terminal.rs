//! The client's own terminal while it is attached to a container's terminal: raw mode on
//! standard input (keys go to the container unchanged), no output processing on standard
//! output (the container's terminal already turned `\n` into `\r\n`), and the saved settings
//! put back however the session ends (return, error, panic).

use std::os::fd::BorrowedFd;
use std::sync::Mutex;

use nix::sys::termios::{self, OutputFlags, SetArg, Termios};

/// Whether `fd` is a terminal.
pub fn isatty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// Settings to put back if the process panics while a [`RawMode`] is alive (with
/// `panic = "abort"` no destructor runs).
static SAVED: Mutex<Vec<(i32, Termios)>> = Mutex::new(Vec::new());

fn borrow(fd: i32) -> BorrowedFd<'static> {
    // SAFETY: only called for fds 0 and 1, which stay open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

fn restore(saved: &[(i32, Termios)]) {
    // Output first, then input: when both are one terminal, the input's (original)
    // settings are what remains.
    for (fd, t) in saved.iter().rev() {
        let _ = termios::tcsetattr(borrow(*fd), SetArg::TCSANOW, t);
    }
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Ok(s) = SAVED.lock() {
                restore(&s);
            }
            previous(info);
        }));
    });
}

/// Puts the client's terminal in raw mode while alive: standard input fully raw (when it is
/// a terminal), standard output without output processing (when it is a terminal).
/// Dropping it restores both.
pub struct RawMode {
    saved: Vec<(i32, Termios)>,
    pending: Vec<u8>,
}

impl RawMode {
    /// Enter raw mode if `on` (otherwise a no-op guard). Input the terminal already holds in
    /// canonical form (complete lines, an end-of-file key) is read first and kept as
    /// [`RawMode::take_pending`], so that it reaches the container as typed: switching with
    /// it pending would turn an end-of-file key into a NUL byte.
    pub fn enable(on: bool) -> RawMode {
        let mut me = RawMode {
            saved: Vec::new(),
            pending: Vec::new(),
        };
        if !on {
            return me;
        }
        let in_tty = isatty(0);
        let out_tty = isatty(1);
        let saved_in = if in_tty {
            termios::tcgetattr(borrow(0)).ok()
        } else {
            None
        };
        let saved_out = if out_tty {
            termios::tcgetattr(borrow(1)).ok()
        } else {
            None
        };
        if let Some(t) = &saved_in {
            me.pending = drain_canonical(t);
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            if termios::tcsetattr(borrow(0), SetArg::TCSANOW, &raw).is_ok() {
                me.saved.push((0, t.clone()));
            }
        }
        if let Some(t) = &saved_out {
            // Re-read: when fd 1 is the same terminal as fd 0 this is already raw.
            if let Ok(mut now) = termios::tcgetattr(borrow(1)) {
                now.output_flags.remove(OutputFlags::OPOST);
                if termios::tcsetattr(borrow(1), SetArg::TCSANOW, &now).is_ok() {
                    me.saved.push((1, t.clone()));
                }
            }
        }
        if !me.saved.is_empty() {
            install_panic_hook();
            if let Ok(mut s) = SAVED.lock() {
                s.extend(me.saved.iter().cloned());
            }
        }
        me
    }

    /// Input typed before raw mode took effect, to send before anything read later.
    pub fn take_pending(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    /// Put the saved settings back now (idempotent; also done on drop).
    pub fn restore(&mut self) {
        if self.saved.is_empty() {
            return;
        }
        restore(&self.saved);
        if let Ok(mut s) = SAVED.lock() {
            s.retain(|(fd, _)| !self.saved.iter().any(|(f, _)| f == fd));
        }
        self.saved.clear();
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Read what a canonical-mode terminal on fd 0 already has ready (whole lines; an
/// end-of-file key reads as 0 bytes and is given back as the terminal's EOF character),
/// without blocking. Bounded: at most 64 reads.
fn drain_canonical(t: &Termios) -> Vec<u8> {
    use nix::sys::termios::{LocalFlags, SpecialCharacterIndices};
    let mut out = Vec::new();
    if !t.local_flags.contains(LocalFlags::ICANON) {
        return out;
    }
    let eof = t.control_chars[SpecialCharacterIndices::VEOF as usize];
    let mut buf = [0u8; 4096];
    for _ in 0..64 {
        let mut p = libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one pollfd we own, with a zero timeout.
        let r = unsafe { libc::poll(&mut p, 1, 0) };
        if r <= 0 || p.revents & libc::POLLIN == 0 {
            break;
        }
        // SAFETY: reading into our own buffer; the terminal said input is ready, so in
        // canonical mode this returns at once.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        match usize::try_from(n) {
            Ok(0) => out.push(eof),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    out
}

/// The window size of the terminal on `fd` as (rows, columns), if it is one.
pub fn winsize(fd: i32) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass.
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Set the window size of the pty (master) `fd` to `rows` x `cols`.
pub fn set_winsize(fd: i32, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads the struct we pass.
    unsafe {
        libc::ioctl(fd, libc::TIOCSWINSZ, &ws);
    }
}
