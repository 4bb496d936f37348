//! An attached client (`run -it`, `start -a`, `attach`): the container's output to this
//! process's stdout/stderr, this process's input to the container, window size and signals
//! forwarded, and Docker's detach sequence (Ctrl-P Ctrl-Q by default) that leaves the
//! container running.
//!
//! The client never holds the container's streams alone, so that it can go away at any time:
//! - started attached with a terminal ([`start_tty`]), the monitor writes the terminal's
//!   output into a pipe this process relays;
//! - attached later ([`attach`]), output is followed from the container's log (from its
//!   current end), as the API's attach does.
//!
//! Input is written straight to the container's end, taken from its monitor with
//! `pidfd_getfd(2)`: the pty master (which also takes the window size) or, without a
//! terminal, the write end of the container's stdin pipe. Nothing is ever read from them: the
//! monitor alone reads the container's output.

use std::io::BufRead;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SignalFd};

use berth_store::Store;

use crate::detach::{DetachKeys, EscapeMatcher};
use crate::fdio::{signal_set, write_all};
use crate::ops::{AttachStdio, Started};
use crate::state::{self, Container, State};
use crate::terminal::{self, RawMode};
use crate::{EngineError, Result};

/// How a client attaches.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// Forward this process's standard input (only when the container keeps its stdin open,
    /// `-i`).
    pub stdin: bool,
    /// The detach sequence; it is watched for when the container has a terminal and input is
    /// forwarded (as Docker).
    pub detach_keys: DetachKeys,
    /// Forward the signals this process receives to the container (`--sig-proxy`).
    pub sig_proxy: bool,
}

/// How an attached session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The container exited with this code (0-255, 128 + signal).
    Exited(i32),
    /// The user typed the detach sequence: the container keeps running.
    Detached,
    /// This process received the signal (not forwarded) and stops attaching; the container
    /// keeps running.
    Signalled(i32),
}

/// Signals a session catches (and forwards to the container with `sig_proxy`).
const FORWARDED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Start container `c` (it has a terminal) attached to this process: its output goes
/// through a pipe to stdout, stdin goes to its terminal, and the detach sequence leaves it
/// running. The monitor's pty gets this terminal's window size before the container starts.
///
/// Errors: as [`crate::ops::start`] (nothing runs then); once started, the session itself
/// does not fail: a problem reaching the terminal only stops input.
pub fn start_tty(store: &Store, c: &Container, opts: &AttachOptions) -> Result<Outcome> {
    let (out_r, out_w) = pipe()?;
    let null = std::fs::File::open("/dev/null").map_err(|e| EngineError::io("/dev/null", e))?;
    let err_w = out_w
        .try_clone()
        .map_err(|e| EngineError::Other(format!("dup: {e}")))?;
    let size = terminal::winsize(1).or_else(|| terminal::winsize(0));
    // Raw mode first: nothing the container prints may pass through cooked output
    // processing, and keys typed meanwhile stay as typed.
    let mut raw = RawMode::enable(terminal::isatty(0) || terminal::isatty(1));
    let mut started = crate::ops::start_attached_tty(
        store,
        c,
        AttachStdio {
            stdin: null.into(),
            stdout: out_w,
            stderr: err_w,
        },
        size,
    )?;
    let master = monitor_master(started.monitor_pid, started.pid).ok();
    let pending = raw.take_pending();
    let mut s = Session {
        input: if opts.stdin && c.config.open_stdin {
            master.as_ref().and_then(|m| m.try_clone().ok())
        } else {
            None
        },
        master,
        matcher: Some(opts.detach_keys.matcher()),
        sig_proxy: opts.sig_proxy,
        pid: started.pid,
        kill_grace: true,
    };
    Ok(s.run(store, &c.id, Output::Pipe(out_r, &mut started), pending))
}

/// Attach this process to running container `c`: output from its log (what it prints from
/// now on), input to its terminal or stdin pipe, the detach sequence (with a terminal) and
/// signals (with `sig_proxy`, without a terminal; as Docker). Ends when the container exits,
/// the user detaches, or (without forwarding) a signal arrives.
///
/// Errors: [`EngineError::InvalidArgument`] when the container is not running, paused or
/// restarting (Docker's messages); [`EngineError::Other`] when its terminal or stdin cannot
/// be reached from its monitor.
pub fn attach(store: &Store, c: &Container, opts: &AttachOptions) -> Result<Outcome> {
    let fresh = state::get(store, &c.id)?.ok_or_else(|| EngineError::NotFound(c.name.clone()))?;
    check_attachable(&fresh)?;
    let pid = fresh.pid.unwrap_or(0);
    let monitor = fresh.monitor_pid.unwrap_or(0);
    let tty = fresh.config.tty;
    let master = if tty {
        Some(monitor_master(monitor, pid)?)
    } else {
        None
    };
    let input = if !opts.stdin || !fresh.config.open_stdin {
        None
    } else if let Some(m) = &master {
        Some(
            m.try_clone()
                .map_err(|e| EngineError::Other(format!("dup: {e}")))?,
        )
    } else {
        Some(monitor_stdin(monitor, pid)?)
    };
    if fresh.config.log_config.driver == "none" {
        eprintln!(
            "berth: container {} logs with --log-driver none: its output cannot be shown",
            fresh.name
        );
    }
    // What the container prints from now on: by time, not by the log's end when the
    // follower thread gets to it (input forwarded meanwhile may already have an answer).
    let since = chrono::Utc::now();
    let mut raw = RawMode::enable(tty && (terminal::isatty(0) || terminal::isatty(1)));
    let pending = raw.take_pending();
    if let Some(m) = &master {
        // Docker's trick: a size change makes the program in the terminal redraw (a shell
        // shows its prompt again).
        if let Some((r, cols)) = terminal::winsize(1).or_else(|| terminal::winsize(0)) {
            terminal::set_winsize(m.as_raw_fd(), r.saturating_add(1), cols.saturating_add(1));
            terminal::set_winsize(m.as_raw_fd(), r, cols);
        }
    }
    let follower = LogFollower::spawn(store.root(), &fresh, pid, since)?;
    let mut s = Session {
        input,
        master,
        matcher: tty.then(|| opts.detach_keys.matcher()),
        sig_proxy: opts.sig_proxy && !tty,
        pid,
        kill_grace: false,
    };
    let outcome = s.run(store, &c.id, Output::Log(follower), pending);
    drop(raw);
    Ok(outcome)
}

/// Docker's refusals for `attach`.
fn check_attachable(c: &Container) -> Result<()> {
    if c.state == State::Restarting {
        return Err(EngineError::InvalidArgument(
            "cannot attach to a restarting container, wait until it is running".into(),
        ));
    }
    if c.state != State::Running || !state::monitor_alive(c) || c.pid.is_none() {
        return Err(EngineError::InvalidArgument(
            "cannot attach to a stopped container, start it first".into(),
        ));
    }
    if crate::ops::is_paused(c) {
        return Err(EngineError::InvalidArgument(
            "cannot attach to a paused container, unpause it first".into(),
        ));
    }
    Ok(())
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| EngineError::Other(format!("pipe: {e}")))
}

/// The pty master of the container whose init is `pid`, duplicated from its monitor
/// (`monitor`): the monitor's master whose slave is the init's stdin (same devpts instance
/// and number), or, when the init's stdin is no longer its terminal, the monitor's only one.
///
/// Errors: [`EngineError::Other`] when the monitor holds none or cannot be reached.
pub fn monitor_master(monitor: i32, pid: i32) -> Result<OwnedFd> {
    use std::os::unix::fs::MetadataExt;
    let unreachable = |why: String| {
        EngineError::Other(format!(
            "cannot reach the container's terminal through its monitor (pid {monitor}): {why}"
        ))
    };
    let pidfd = crate::pidfd::open(monitor).map_err(|e| unreachable(e.to_string()))?;
    let slave = std::fs::metadata(format!("/proc/{pid}/fd/0"))
        .ok()
        .filter(|m| libc::major(m.rdev()) == 136);
    let dir = format!("/proc/{monitor}/fd");
    let entries = std::fs::read_dir(&dir).map_err(|e| unreachable(e.to_string()))?;
    let mut masters = Vec::new();
    for e in entries.flatten() {
        let Ok(link) = std::fs::read_link(e.path()) else {
            continue;
        };
        if !link.to_string_lossy().ends_with("ptmx") {
            continue;
        }
        let Some(n) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(fd) = crate::pidfd::get_fd(&pidfd, n) else {
            continue;
        };
        let mut ptn: libc::c_uint = 0;
        // SAFETY: TIOCGPTN writes the pty number into the integer we pass; it fails on
        // anything that is not a pty master.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGPTN, &mut ptn) } != 0 {
            continue;
        }
        let dev = std::fs::File::from(fd.try_clone().map_err(|e| unreachable(e.to_string()))?)
            .metadata()
            .map(|m| m.dev())
            .unwrap_or(0);
        masters.push((fd, ptn, dev));
    }
    // The init's own terminal: same devpts instance and number, else the same number, else
    // the monitor's only master.
    let pick = match &slave {
        Some(s) => {
            let n = libc::minor(s.rdev());
            masters
                .iter()
                .position(|(_, p, d)| *p == n && *d == s.dev())
                .or_else(|| {
                    let same: Vec<usize> =
                        (0..masters.len()).filter(|i| masters[*i].1 == n).collect();
                    (same.len() == 1).then(|| same[0])
                })
        }
        None => None,
    }
    .or_else(|| (masters.len() == 1).then_some(0));
    if let Some(i) = pick {
        return Ok(masters.swap_remove(i).0);
    }
    Err(unreachable("it holds no terminal of this container".into()))
}

/// The write end of the stdin pipe of the container whose init is `pid`, duplicated from its
/// monitor (`monitor`).
///
/// Errors: [`EngineError::Other`] when the monitor no longer holds it (the container's stdin
/// was closed) or cannot be reached.
pub fn monitor_stdin(monitor: i32, pid: i32) -> Result<OwnedFd> {
    let unreachable = |why: String| {
        EngineError::Other(format!(
            "cannot reach the container's standard input through its monitor (pid {monitor}): {why}; attach with --no-stdin"
        ))
    };
    let target =
        std::fs::read_link(format!("/proc/{pid}/fd/0")).map_err(|e| unreachable(e.to_string()))?;
    if !target.to_string_lossy().starts_with("pipe:") {
        return Err(unreachable("its stdin is not a pipe".into()));
    }
    let pidfd = crate::pidfd::open(monitor).map_err(|e| unreachable(e.to_string()))?;
    let entries =
        std::fs::read_dir(format!("/proc/{monitor}/fd")).map_err(|e| unreachable(e.to_string()))?;
    for e in entries.flatten() {
        if std::fs::read_link(e.path()).ok().as_ref() != Some(&target) {
            continue;
        }
        if let Some(n) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
            if let Ok(fd) = crate::pidfd::get_fd(&pidfd, n) {
                return Ok(fd);
            }
        }
    }
    Err(unreachable("its stdin was closed".into()))
}

/// The container's log from `since` on, followed in a thread that writes to stdout/stderr;
/// the read end of
/// `done` sees EOF when it finished (the container stopped running).
struct LogFollower {
    done: OwnedFd,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogFollower {
    fn spawn(
        root: &std::path::Path,
        c: &Container,
        pid: i32,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<LogFollower> {
        let (r, w) = pipe()?;
        let root = root.to_path_buf();
        let id = c.id.clone();
        let path = crate::rootfs::Bundle::new(&root, &c.id).log();
        let thread = std::thread::spawn(move || {
            let _done = w;
            let Ok(store) = Store::open(&root) else {
                return;
            };
            let mut running = || match state::get(&store, &id) {
                Ok(Some(c)) => {
                    c.state == State::Running && c.pid == Some(pid) && state::monitor_alive(&c)
                }
                _ => false,
            };
            let opts = crate::logs::LogOptions {
                follow: true,
                since: Some(since),
                ..Default::default()
            };
            let _ = crate::logs::copy(
                &path,
                &opts,
                &mut running,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            );
        });
        Ok(LogFollower {
            done: r,
            thread: Some(thread),
        })
    }
}

enum Output<'a> {
    /// The monitor's pipe, and the sync pipe that reports `exit CODE`.
    Pipe(OwnedFd, &'a mut Started),
    Log(LogFollower),
}

struct Session {
    /// Where input goes (pty master or stdin pipe).
    input: Option<OwnedFd>,
    /// The pty master, for the window size.
    master: Option<OwnedFd>,
    /// Watches input for the detach sequence.
    matcher: Option<EscapeMatcher>,
    sig_proxy: bool,
    /// The container's init.
    pid: i32,
    /// SIGINT/SIGTERM forwarded to a container that is still running 2 s later kill it
    /// (foreground `run`, as without a terminal).
    kill_grace: bool,
}

impl Session {
    fn run(
        &mut self,
        store: &Store,
        id: &str,
        mut output: Output<'_>,
        pending: Vec<u8>,
    ) -> Outcome {
        let set = signal_set(&[FORWARDED.as_slice(), &[Signal::SIGWINCH]].concat());
        let old = set.thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK);
        let outcome =
            match SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) {
                Ok(sfd) => self.pump(store, id, &mut output, pending, &sfd),
                Err(_) => Outcome::Exited(125),
            };
        // Signals that arrived meanwhile stay caught by the signalfd's queue; restore the mask.
        if let Ok(old) = old {
            let _ = old.thread_set_mask();
        }
        if let Output::Log(f) = &mut output {
            if outcome != Outcome::Detached && !matches!(outcome, Outcome::Signalled(_)) {
                if let Some(t) = f.thread.take() {
                    let _ = t.join();
                }
            }
        }
        outcome
    }

    /// Write `data` to the container's input through the matcher; true when the detach
    /// sequence was seen.
    fn forward(&mut self, data: &[u8], buf: &mut Vec<u8>) -> bool {
        buf.clear();
        let detached = match self.matcher.as_mut() {
            Some(m) => m.feed(data, buf),
            None => {
                buf.extend_from_slice(data);
                false
            }
        };
        if let Some(fd) = &self.input {
            if !buf.is_empty() && !write_all(fd.as_raw_fd(), buf) {
                self.input = None;
            }
        }
        detached
    }

    fn pump(
        &mut self,
        store: &Store,
        id: &str,
        output: &mut Output<'_>,
        pending: Vec<u8>,
        sfd: &SignalFd,
    ) -> Outcome {
        let mut scratch = Vec::with_capacity(32 * 1024);
        if !pending.is_empty() && self.forward(&pending, &mut scratch) {
            return Outcome::Detached;
        }
        let mut stdin_open = self.input.is_some();
        let mut buf = vec![0u8; 32 * 1024];
        let mut kill_at: Option<Instant> = None;
        let mut pipe_open = true;
        loop {
            // SAFETY: fd 0 is open for the life of the process.
            let stdin0 = unsafe { BorrowedFd::borrow_raw(0) };
            let sync_buffered =
                matches!(&*output, Output::Pipe(_, s) if !s.sync.buffer().is_empty());
            let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
            let (mut i_out, mut i_sync, mut i_done, mut i_in) = (None, None, None, None);
            match &*output {
                Output::Pipe(out, started) => {
                    if pipe_open {
                        i_out = Some(fds.len());
                        fds.push(PollFd::new(out.as_fd(), PollFlags::POLLIN));
                    }
                    if started.sync.buffer().is_empty() {
                        i_sync = Some(fds.len());
                        fds.push(PollFd::new(
                            started.sync.get_ref().as_fd(),
                            PollFlags::POLLIN,
                        ));
                    }
                }
                Output::Log(f) => {
                    i_done = Some(fds.len());
                    fds.push(PollFd::new(f.done.as_fd(), PollFlags::POLLIN));
                }
            }
            if stdin_open && self.input.is_some() {
                i_in = Some(fds.len());
                fds.push(PollFd::new(stdin0, PollFlags::POLLIN));
            }
            let timeout = if sync_buffered {
                PollTimeout::ZERO
            } else {
                match kill_at {
                    Some(t) => PollTimeout::from(
                        u16::try_from(
                            t.saturating_duration_since(Instant::now())
                                .as_millis()
                                .min(60_000),
                        )
                        .unwrap_or(60_000),
                    ),
                    None => PollTimeout::NONE,
                }
            };
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return Outcome::Exited(125),
            }
            let ready = |i: Option<usize>| {
                i.and_then(|i| fds[i].revents())
                    .map(|r| !r.is_empty())
                    .unwrap_or(false)
            };
            let (sig_r, out_r, sync_r, done_r, in_r) = (
                ready(Some(0)),
                ready(i_out),
                ready(i_sync) || sync_buffered,
                ready(i_done),
                ready(i_in),
            );
            drop(fds);
            if kill_at.is_some_and(|t| Instant::now() >= t) {
                let _ = crate::pidfd::signal_container(self.pid, id, libc::SIGKILL);
                kill_at = None;
            }
            if sig_r {
                while let Ok(Some(si)) = sfd.read_signal() {
                    let s = i32::try_from(si.ssi_signo).unwrap_or(0);
                    if s == libc::SIGWINCH {
                        if let Some(m) = &self.master {
                            if let Some((r, c)) =
                                terminal::winsize(1).or_else(|| terminal::winsize(0))
                            {
                                terminal::set_winsize(m.as_raw_fd(), r, c);
                            }
                        }
                        continue;
                    }
                    if !self.sig_proxy {
                        return Outcome::Signalled(s);
                    }
                    let _ = crate::pidfd::signal_container(self.pid, id, s);
                    if self.kill_grace && (s == libc::SIGINT || s == libc::SIGTERM) {
                        kill_at.get_or_insert(Instant::now() + Duration::from_secs(2));
                    }
                }
            }
            if out_r {
                if let Output::Pipe(out, _) = output {
                    if !copy_out(out.as_raw_fd(), &mut buf) {
                        pipe_open = false;
                    }
                }
            }
            if in_r {
                // SAFETY: reading into our own buffer from fd 0.
                let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
                match usize::try_from(n) {
                    Ok(0) | Err(_) => {
                        stdin_open = false;
                        let mut rest = Vec::new();
                        if let Some(m) = self.matcher.as_mut() {
                            m.flush(&mut rest);
                        }
                        if let (Some(fd), false) = (&self.input, rest.is_empty()) {
                            write_all(fd.as_raw_fd(), &rest);
                        }
                        // Without a terminal our copy of the container's stdin goes; the
                        // monitor keeps it open (Docker keeps stdin open after an attach).
                        if self.master.is_none() {
                            self.input = None;
                        }
                    }
                    Ok(n) => {
                        let data = buf[..n].to_vec();
                        if self.forward(&data, &mut scratch) {
                            return Outcome::Detached;
                        }
                    }
                }
            }
            if sync_r {
                if let Output::Pipe(out, started) = output {
                    let mut line = String::new();
                    match started.sync.read_line(&mut line) {
                        Ok(0) | Err(_) => {
                            // The monitor went away without a word: what the store says.
                            drain_out(out.as_raw_fd(), &mut buf);
                            return Outcome::Exited(recorded_exit(store, id));
                        }
                        Ok(_) => {
                            if let Some(code) = line.trim_end().strip_prefix("exit ") {
                                // Everything the container printed is in the pipe by now.
                                drain_out(out.as_raw_fd(), &mut buf);
                                return Outcome::Exited(code.parse().unwrap_or(125));
                            }
                        }
                    }
                }
            }
            if done_r {
                return Outcome::Exited(final_exit(store, id, self.pid));
            }
        }
    }
}

/// Copy what `fd` has to stdout; false on EOF or error.
fn copy_out(fd: i32, buf: &mut [u8]) -> bool {
    // SAFETY: reading into our own buffer from a pipe we own.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    match usize::try_from(n) {
        Ok(0) => false,
        Ok(n) => {
            write_all(1, &buf[..n]);
            true
        }
        Err(_) => std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR),
    }
}

/// Copy what is left in the pipe without waiting for its writer to close it.
fn drain_out(fd: i32, buf: &mut [u8]) {
    crate::fdio::set_nonblocking(fd);
    for _ in 0..10_000 {
        // SAFETY: reading into our own buffer from a pipe we own.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match usize::try_from(n) {
            Ok(0) => return,
            Ok(n) => {
                write_all(1, &buf[..n]);
            }
            Err(_) => {
                if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    return;
                }
            }
        }
    }
}

/// The exit code the store recorded for container `id` (or its monitor left behind for a
/// removed `--rm` container); 125 when there is none.
fn recorded_exit(store: &Store, id: &str) -> i32 {
    match state::get(store, id) {
        Ok(Some(c)) => c.exit_code.unwrap_or(125),
        _ => crate::exits::get(store.root(), id).unwrap_or(125),
    }
}

/// After the log follower ended: wait (bounded) until the run whose init was `pid` is
/// recorded as over, then its exit code.
fn final_exit(store: &Store, id: &str, pid: i32) -> i32 {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        match state::get(store, id) {
            Ok(Some(c)) if c.state == State::Running && c.pid == Some(pid) => {
                if !state::monitor_alive(&c) {
                    break;
                }
            }
            _ => break,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    recorded_exit(store, id)
}
