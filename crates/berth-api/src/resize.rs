//! `POST /containers/{id}/resize?h=&w=` and `POST /exec/{id}/resize?h=&w=`: set the window
//! size of the terminal a container (or exec process) runs on. The terminal is the one the
//! process holds as its stdin (or stdout/stderr): a duplicate of that descriptor is taken with
//! `pidfd_getfd(2)`, and `TIOCSWINSZ` on it changes the size and sends `SIGWINCH` to the
//! terminal's foreground process group, as a resize of the client's own terminal would.

use std::os::fd::{AsFd, OwnedFd};

use rustix::process::{Pid, PidfdFlags, PidfdGetfdFlags};

use crate::http::Query;
use crate::{ApiError, Result};

/// Rows and columns from `h` and `w` (Docker requires both; 0 is allowed and ignored).
///
/// Errors: 400 for a missing or non-numeric value.
pub(crate) fn size(q: &Query) -> Result<(u16, u16)> {
    let get = |k: &str| -> Result<u16> {
        let v = q
            .int(k)?
            .ok_or_else(|| ApiError::BadParameter(format!("{k}: give the terminal size")))?;
        u16::try_from(v)
            .map_err(|_| ApiError::BadParameter(format!("invalid {k} {v}: use 0 to {}", u16::MAX)))
    };
    Ok((get("h")?, get("w")?))
}

/// The terminal `pid` holds as fd 0, 1 or 2, duplicated into this process.
fn terminal_of(pid: i32) -> Option<OwnedFd> {
    let pid = Pid::from_raw(pid)?;
    let pidfd = rustix::process::pidfd_open(pid, PidfdFlags::empty()).ok()?;
    (0..3).find_map(|fd| {
        let dup = rustix::process::pidfd_getfd(pidfd.as_fd(), fd, PidfdGetfdFlags::empty()).ok()?;
        rustix::termios::isatty(&dup).then_some(dup)
    })
}

/// Children of `pid` (all its threads'), from /proc.
fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in rd.flatten() {
        let p = t.path().join("children");
        if let Ok(s) = std::fs::read_to_string(p) {
            out.extend(s.split_whitespace().filter_map(|x| x.parse::<i32>().ok()));
        }
    }
    out
}

/// Set the window size of the terminal of `pid`, or of its nearest descendant that has one
/// (an exec's process runs below the `berth exec` that started it). Returns whether a
/// terminal was found.
pub(crate) fn resize_pid(pid: i32, rows: u16, cols: u16) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    let mut queue = std::collections::VecDeque::from([pid]);
    let mut seen = 0;
    while let Some(p) = queue.pop_front() {
        seen += 1;
        if seen > 256 {
            break;
        }
        // The exec's own `berth exec` relays through pipes: its fds are no terminal.
        if let Some(tty) = terminal_of(p) {
            let ws = rustix::termios::Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            return rustix::termios::tcsetwinsize(&tty, ws).is_ok();
        }
        queue.extend(children(p));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_need_both_numbers() {
        assert_eq!(size(&Query::parse(Some("h=24&w=80"))).unwrap(), (24, 80));
        assert!(size(&Query::parse(Some("h=24"))).is_err());
        assert!(size(&Query::parse(Some("h=24&w=-1"))).is_err());
    }
}
