//! Signal names and numbers as Docker accepts them, for every front end (`kill -s`,
//! `--stop-signal`, an image's `STOPSIGNAL`, compose's `stop_signal`, the API's `signal`).
//!
//! Accepted forms, case-insensitive, with or without the `SIG` prefix:
//! - a number from 1 to 64 (`9`, `37`);
//! - a standard name (`TERM`, `SIGKILL`, `sigusr1`) and Linux aliases (`IOT`, `CLD`, `POLL`);
//! - real-time signals: `RTMIN`, `RTMIN+n`, `RTMAX`, `RTMAX-n` (Linux: `RTMIN` = 34,
//!   `RTMAX` = 64, as in Docker and glibc), e.g. `SIGRTMIN+3` = 37, `RTMAX-1` = 63.
//!
//! Docker's own table lists `RTMIN+1`…`RTMIN+15` and `RTMAX-14`…`RTMAX-1`; berth accepts every
//! offset that stays between `RTMIN` and `RTMAX`.

/// The first real-time signal number on Linux as user programs see it (glibc reserves 32, 33).
pub const SIGRTMIN: i32 = 34;
/// The last signal number on Linux.
pub const SIGRTMAX: i32 = 64;

/// A string that names no signal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid signal {input:?}: use a name such as TERM, KILL or RTMIN+3, or a number from 1 to {max}", max = SIGRTMAX)]
pub struct SignalError {
    /// What the user wrote.
    pub input: String,
}

/// Standard names without `SIG`, with their Linux numbers (aliases after the main name).
const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
    ("UNUSED", libc::SIGSYS),
];

/// Parse a signal as Docker does (see the crate docs for the forms). Returns its number,
/// 1 to 64.
///
/// # Errors
/// [`SignalError`] when `s` is empty, 0, out of range or names no signal.
pub fn parse(s: &str) -> Result<i32, SignalError> {
    let bad = || SignalError {
        input: s.to_string(),
    };
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        return if (1..=SIGRTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let up = t.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(&(_, n)) = NAMES.iter().find(|(k, _)| *k == name) {
        return Ok(n);
    }
    let rt = |base: i32, rest: &str, sign: i32| -> Option<i32> {
        let n = if rest.is_empty() {
            base
        } else {
            let (op, num) = rest.split_at(1);
            let want = if sign > 0 { "+" } else { "-" };
            if op != want || num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            base + sign * num.parse::<i32>().ok()?
        };
        (SIGRTMIN..=SIGRTMAX).contains(&n).then_some(n)
    };
    let n = if let Some(rest) = name.strip_prefix("RTMIN") {
        rt(SIGRTMIN, rest, 1)
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        rt(SIGRTMAX, rest, -1)
    } else {
        None
    };
    n.ok_or_else(bad)
}

/// The name Docker shows for a signal number (`SIGTERM`, `SIGRTMIN+3`, `SIGRTMAX`), or
/// `None` outside 1 to 64 and for the two numbers glibc reserves (32, 33).
pub fn name(n: i32) -> Option<String> {
    if let Some((k, _)) = NAMES.iter().find(|(_, v)| *v == n) {
        return Some(format!("SIG{k}"));
    }
    match n {
        SIGRTMIN => Some("SIGRTMIN".into()),
        SIGRTMAX => Some("SIGRTMAX".into()),
        n if (SIGRTMIN + 1..=SIGRTMIN + 15).contains(&n) => {
            Some(format!("SIGRTMIN+{}", n - SIGRTMIN))
        }
        n if (SIGRTMIN + 16..SIGRTMAX).contains(&n) => Some(format!("SIGRTMAX-{}", SIGRTMAX - n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        let table: &[(&str, i32)] = &[
            ("TERM", 15),
            ("SIGTERM", 15),
            ("term", 15),
            ("SigTerm", 15),
            ("15", 15),
            ("9", 9),
            ("KILL", 9),
            ("sigkill", 9),
            ("HUP", 1),
            ("INT", 2),
            ("QUIT", 3),
            ("USR1", 10),
            ("USR2", 12),
            ("IOT", 6),
            ("ABRT", 6),
            ("CLD", 17),
            ("CHLD", 17),
            ("POLL", 29),
            ("IO", 29),
            ("STKFLT", 16),
            ("PWR", 30),
            ("SYS", 31),
            ("WINCH", 28),
            ("STOP", 19),
            ("CONT", 18),
            ("RTMIN", 34),
            ("SIGRTMIN", 34),
            ("RTMIN+0", 34),
            ("SIGRTMIN+3", 37),
            ("sigrtmin+3", 37),
            ("RtMin+1", 35),
            ("RTMIN+15", 49),
            ("RTMIN+30", 64),
            ("RTMAX", 64),
            ("SIGRTMAX-1", 63),
            ("RTMAX-14", 50),
            ("rtmax-30", 34),
            ("37", 37),
            ("64", 64),
            (" 15 ", 15),
        ];
        for (s, n) in table {
            assert_eq!(parse(s), Ok(*n), "{s}");
        }
    }

    #[test]
    fn refused_forms() {
        for s in [
            "",
            "0",
            "-1",
            "65",
            "999",
            "NOPE",
            "SIG",
            "SIGSIGTERM",
            "RTMIN+",
            "RTMIN-1",
            "RTMAX+1",
            "RTMIN+31",
            "RTMAX-31",
            "RTMIN+x",
            "RTMIN++1",
            "TERM1",
            "SIG15",
        ] {
            let e = parse(s).unwrap_err();
            assert!(e.to_string().starts_with("invalid signal"), "{s}: {e}");
        }
    }

    #[test]
    fn names_round_trip() {
        for n in (1..=31).chain(SIGRTMIN..=SIGRTMAX) {
            let name = name(n).unwrap_or_else(|| panic!("{n} has no name"));
            assert_eq!(parse(&name), Ok(n), "{name}");
        }
        assert_eq!(name(37).as_deref(), Some("SIGRTMIN+3"));
        assert_eq!(name(63).as_deref(), Some("SIGRTMAX-1"));
        assert_eq!(name(15).as_deref(), Some("SIGTERM"));
        assert_eq!(name(6).as_deref(), Some("SIGABRT"));
        assert_eq!(name(32), None);
        assert_eq!(name(0), None);
    }
}
