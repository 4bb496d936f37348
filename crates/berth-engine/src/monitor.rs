//! The per-container monitor: a small single-threaded process (`berth __monitor ID`) that
//! creates the container with the runtime, owns its stdio and log file, waits for it, records
//! the exit, applies the restart policy, and exits with the container. It is a child
//! subreaper, so the container's init is its child whatever the runtime does.
//!
//! Protocol with the CLI that spawned it: fd 3 is a pipe on which the monitor writes
//! `started PID\n` or `error CODE MESSAGE\n`, and, when the CLI is attached (foreground run,
//! `start -a`), finally `exit CODE\n`. When attached, fds 0-2 are the CLI's terminal/streams.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{self, SigHandler, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use berth_store::Store;

use crate::fdio::{copy_winsize, exit_code, reap, set_nonblocking, write_all};
use crate::rootfs::Bundle;
use crate::runtime::{ConsoleSocket, Runtime, StdioFds};
use crate::state::{self, State};
use crate::{EngineError, Result};

/// Environment variable telling the monitor that fds 0-2 belong to an attached CLI.
pub const ATTACH_ENV: &str = "BERTH_MONITOR_ATTACHED";

struct Sync {
    f: Option<File>,
    /// A CLI waits for `exit CODE` (foreground run, `start -a`).
    cli_waits: bool,
    exit_sent: bool,
}

impl Sync {
    fn send_exit(&mut self, code: i32) {
        if self.cli_waits && !self.exit_sent {
            self.exit_sent = true;
            self.send(&format!("exit {code}\n"));
        }
    }

    fn send(&mut self, msg: &str) {
        if let Some(f) = self.f.as_mut() {
            if f.write_all(msg.as_bytes()).is_err() {
                self.f = None;
            }
        }
    }
}

/// How the monitor was entered: fresh from the CLI, or back from `berth-supervise` after the
/// container's init exited.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    /// Exit status (0-255, 128+signal) of the container's init.
    pub code: i32,
    /// Supervisor flags (see [`FLAG_ATTACHED`] …) as they were at exit.
    pub flags: u32,
    /// Current restart backoff in milliseconds.
    pub backoff_ms: u64,
    /// When the container was (re)started, ms since the epoch (for resetting the backoff).
    pub started_ms: u64,
}

/// Supervisor flags: fds 0-2 belong to an attached CLI.
pub const FLAG_ATTACHED: u32 = 1;
/// Forward fd 0 to the container's stdin.
pub const FLAG_STDIN: u32 = 2;
/// The container has a terminal (OUT_FD is the pty master).
pub const FLAG_TTY: u32 = 4;

/// Entry point of `berth __monitor ID [--exited …]`. Returns the monitor's exit status.
pub fn run(root: &Path, id: &str, resume: Option<Resume>) -> i32 {
    // SAFETY: fd 3 was set up by the spawning CLI as the write end of the sync pipe; we take
    // ownership of it exactly once. If it is not open, writes fail and are ignored.
    let sync_file = unsafe { File::from_raw_fd(3) };
    let mut sync = Sync {
        f: Some(sync_file),
        cli_waits: std::env::var_os(ATTACH_ENV).is_some(),
        exit_sent: false,
    };
    let attached = match &resume {
        Some(r) => r.flags & FLAG_ATTACHED != 0,
        None => std::env::var_os(ATTACH_ENV).is_some(),
    };
    match monitor(root, id, attached, &mut sync, resume) {
        Ok(code) => {
            sync.send_exit(code);
            0
        }
        Err((code, e)) => {
            sync.send(&format!(
                "error {code} {}\n",
                e.to_string().replace('\n', " ")
            ));
            1
        }
    }
}

type MonResult<T> = std::result::Result<T, (i32, EngineError)>;

fn engine(e: EngineError) -> (i32, EngineError) {
    (125, e)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn monitor(
    root: &Path,
    id: &str,
    attached: bool,
    sync: &mut Sync,
    resume: Option<Resume>,
) -> MonResult<i32> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag and has no memory effects.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    // Back from the supervisor, SIGCHLD & co. are still blocked: keep it that way until the
    // next container is created.
    let store = Store::open(root).map_err(|e| engine(e.into()))?;
    let c = state::get(&store, id)
        .map_err(engine)?
        .ok_or_else(|| engine(EngineError::NotFound(id.to_string())))?;
    if resume.is_none() {
        let me = std::process::id() as i32;
        let my_start = state::process_start_time(me).map(|v| v as i64);
        state::update(
            &store,
            id,
            "monitor_pid = ?1, monitor_start = ?2",
            &[&me, &my_start],
        )
        .map_err(engine)?;
    }

    let bundle = Bundle::new(store.root(), id);
    let runtime = Runtime::new(store.root(), c.config.runtime.as_deref()).map_err(engine)?;
    // `--log-driver none`: output goes nowhere (but is still drained).
    let log_path = if c.config.log_config.driver == "none" {
        std::path::PathBuf::from("/dev/null")
    } else {
        bundle.log()
    };
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| engine(EngineError::io(&log_path, e)))?;
    let rotation = c
        .config
        .log_config
        .rotation()
        .filter(|_| c.config.log_config.readable());

    let mut first = resume.is_none();
    let mut backoff = resume
        .as_ref()
        .map(|r| Duration::from_millis(r.backoff_ms.max(100)))
        .unwrap_or(Duration::from_millis(100));
    let mut started_ms = resume.as_ref().map(|r| r.started_ms).unwrap_or(0);
    let mut flags = match &resume {
        Some(r) => r.flags,
        None => {
            let mut f = 0;
            if attached {
                f |= FLAG_ATTACHED;
                if c.config.open_stdin {
                    f |= FLAG_STDIN;
                }
            }
            if c.config.tty {
                f |= FLAG_TTY;
            }
            f
        }
    };
    let mut pending_exit = resume.as_ref().map(|r| r.code);
    loop {
        if let Some(code) = pending_exit.take() {
            tracing::debug!("monitor {id}: container exited with {code}");
            let oom = oom_killed(id, &store);
            let cur = state::get(&store, id).ok().flatten();
            let stop_requested = cur.as_ref().map(|c| c.stop_requested).unwrap_or(true);
            let restarts = cur.as_ref().map(|c| c.restart_count).unwrap_or(0) as u32;
            if now_ms().saturating_sub(started_ms) >= 10_000 {
                backoff = Duration::from_millis(100);
            }
            if c.config
                .restart
                .should_restart(code, restarts, stop_requested)
                && cur.is_some()
            {
                let now = chrono::Utc::now().to_rfc3339();
                let _ = state::update(
                    &store,
                    id,
                    "state = ?1, exit_code = ?2, finished_at = ?3, restart_count = ?4, pid = NULL, oom_killed = ?5",
                    &[&State::Restarting.as_str(), &code, &now, &((restarts + 1) as i64), &(oom as i64)],
                );
                // The old runtime state must go before the container is created again.
                let _ = runtime.delete(id);
                if wait_backoff(&store, id, backoff) {
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                } else {
                    return finish(&store, &runtime, &bundle, &c, code, oom, sync);
                }
            } else {
                return finish(&store, &runtime, &bundle, &c, code, oom, sync);
            }
        }
        started_ms = now_ms();
        let run = match start_once(&store, &runtime, &bundle, &c, id) {
            Ok(r) => r,
            Err(e) => {
                let code = 125;
                cleanup_after_exit(
                    &store,
                    &runtime,
                    &bundle,
                    id,
                    None,
                    false,
                    Some(&e.to_string()),
                );
                if first {
                    return Err((code, e));
                }
                let _ = logs_append_note(&mut log, &format!("restart failed: {e}"));
                if c.config.auto_remove {
                    let _ = crate::ops::remove_files(&store, &c.id);
                    let _ = state::delete(&store, &c.id);
                    let _ = crate::volumes::release(&store, &c.id);
                    let _ = crate::volumes::remove_anonymous(&store, &c.config);
                }
                return Ok(code);
            }
        };
        if first {
            sync.send(&format!("started {}\n", run.pid));
            first = false;
        }
        // The supervisor runs the health check's schedule; without one nothing else runs.
        match &c.config.healthcheck {
            Some(h) => std::env::set_var(crate::health::SUPERVISE_ENV, h.supervise_env()),
            None => std::env::remove_var(crate::health::SUPERVISE_ENV),
        }
        match &rotation {
            Some(r) => std::env::set_var(crate::logs::ROTATE_ENV, r.supervise_env(&log_path)),
            None => std::env::remove_var(crate::logs::ROTATE_ENV),
        }
        if let Some(sup) = supervisor_path() {
            // Only returns if the exec failed; then supervise in-process.
            exec_supervisor(&sup, &store, id, &run, &log, flags, backoff, started_ms);
        }
        let mut attached_out = flags & FLAG_ATTACHED != 0;
        let mut stdin_open = flags & FLAG_STDIN != 0;
        let mut health =
            crate::health::Scheduler::new(store.root(), id, c.config.healthcheck.as_ref());
        let mut sink = LogSink {
            file: log,
            path: log_path.clone(),
            rotation,
        };
        let ws = io_loop(
            &run,
            &mut sink,
            &mut attached_out,
            &mut stdin_open,
            health.as_mut(),
        );
        if !attached_out {
            flags &= !FLAG_ATTACHED;
        }
        if !stdin_open {
            flags &= !FLAG_STDIN;
        }
        pending_exit = Some(exit_code(ws).unwrap_or(255));
        log = sink.file;
    }
}

/// After the final exit: `--rm` removal; returns the exit code to report.
/// The container stopped for good: record it and release everything it held.
///
/// With `--rm`, what another command could trip over goes first (network, mount, the row and
/// with it the name); then the waiting CLI is told the exit code; the runtime state and the
/// directory, which are keyed by the unique id, are removed last, off the CLI's critical path.
fn finish(
    store: &Store,
    runtime: &Runtime,
    bundle: &Bundle,
    c: &state::Container,
    code: i32,
    oom: bool,
    sync: &mut Sync,
) -> MonResult<i32> {
    let id = c.id.as_str();
    if !c.config.auto_remove {
        cleanup_after_exit(store, runtime, bundle, id, Some(code), oom, None);
        tracing::debug!("monitor {id}: done");
        return Ok(code);
    }
    if let Err(e) = berth_net::teardown(store, id) {
        tracing::warn!("network teardown of {id}: {e}");
    }
    tracing::debug!("monitor {id}: network released");
    let _ = bundle.unmount();
    tracing::debug!("monitor {id}: unmounted");
    crate::exits::record(store.root(), id, code);
    let _ = state::delete(store, id);
    let _ = crate::volumes::release(store, id);
    let _ = crate::volumes::remove_anonymous(store, &c.config);
    let _ = crate::health::forget(store, id);
    tracing::debug!("monitor {id}: removed");
    sync.send_exit(code);
    let _ = runtime.delete(id);
    let _ = crate::ops::remove_files(store, id);
    tracing::debug!("monitor {id}: done");
    Ok(code)
}

/// The static supervisor binary, if installed next to berth (and not disabled).
fn supervisor_path() -> Option<std::path::PathBuf> {
    if std::env::var_os("BERTH_NO_SUPERVISOR").is_some() {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.join("berth-supervise");
    p.is_file().then_some(p)
}

/// Replace this process with `berth-supervise`, handing over the container's stdio.
#[allow(clippy::too_many_arguments)]
fn exec_supervisor(
    sup: &Path,
    store: &Store,
    id: &str,
    run: &Running,
    log: &File,
    flags: u32,
    backoff: Duration,
    started_ms: u64,
) {
    use std::ffi::CString;
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let keep = |fd: Option<i32>| -> i32 {
        match fd {
            Some(fd) => {
                // SAFETY: clearing FD_CLOEXEC on a descriptor we own.
                unsafe {
                    libc::fcntl(fd, libc::F_SETFD, 0);
                }
                fd
            }
            None => -1,
        }
    };
    let out = keep(
        run.master
            .as_ref()
            .or(run.stdout.as_ref())
            .map(|f| f.as_raw_fd()),
    );
    let err = keep(run.stderr.as_ref().map(|f| f.as_raw_fd()));
    let inp = keep(run.stdin.as_ref().map(|f| f.as_raw_fd()));
    let logfd = keep(Some(log.as_raw_fd()));
    let args: Vec<String> = vec![
        sup.to_string_lossy().into_owned(),
        exe.to_string_lossy().into_owned(),
        store.root().to_string_lossy().into_owned(),
        id.to_string(),
        run.pid.to_string(),
        logfd.to_string(),
        out.to_string(),
        err.to_string(),
        inp.to_string(),
        flags.to_string(),
        (backoff.as_millis() as u64).to_string(),
        started_ms.to_string(),
    ];
    let Ok(cargs) = args
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return;
    };
    let Ok(path) = CString::new(sup.as_os_str().as_encoded_bytes()) else {
        return;
    };
    let e = nix::unistd::execv(&path, &cargs);
    tracing::warn!(
        "cannot exec {}: {e:?}; supervising in-process",
        sup.display()
    );
}

/// Sleep for the restart backoff; false if a stop was requested meanwhile.
fn wait_backoff(store: &Store, id: &str, d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50).min(d));
        match state::get(store, id) {
            Ok(Some(c)) if !c.stop_requested => {}
            _ => return false,
        }
    }
    true
}

fn logs_append_note(log: &mut File, msg: &str) -> std::io::Result<()> {
    crate::logs::append(log, "stderr", format!("berth: {msg}\n").as_bytes())
}

/// A started container process and the monitor's ends of its stdio.
struct Running {
    pid: i32,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    master: Option<OwnedFd>,
    sigfd: SignalFd,
}

fn start_once(
    store: &Store,
    runtime: &Runtime,
    bundle: &Bundle,
    c: &state::Container,
    id: &str,
) -> Result<Running> {
    let cfg = &c.config;
    let mut stdio = StdioFds::default();
    let (mut out_r, mut err_r, mut in_w) = (None, None, None);
    let console = if cfg.tty {
        Some(ConsoleSocket::bind(&store.root().join("run"))?)
    } else {
        let (r, w) = pipe()?;
        out_r = Some(r);
        stdio.stdout = Some(w);
        let (r, w) = pipe()?;
        err_r = Some(r);
        stdio.stderr = Some(w);
        if cfg.open_stdin {
            let (r, w) = pipe()?;
            stdio.stdin = Some(r);
            in_w = Some(w);
        } else {
            let null = File::open("/dev/null").map_err(|e| EngineError::io("/dev/null", e))?;
            stdio.stdin = Some(null.into());
        }
        None
    };
    // The container inherits signal mask and ignored signals from us at clone time: give it a
    // clean slate, then take our own settings back.
    unblock_all();
    // SAFETY: restoring the default disposition of SIGPIPE has no memory-safety implications.
    unsafe {
        let _ = signal::signal(Signal::SIGPIPE, SigHandler::SigDfl);
    }
    tracing::debug!("monitor {id}: creating container");
    let created = runtime.create(
        id,
        &bundle.dir,
        stdio,
        console.as_ref().map(|c| c.path.as_path()),
    );
    // SAFETY: as above, for SIG_IGN.
    unsafe {
        let _ = signal::signal(Signal::SIGPIPE, SigHandler::SigIgn);
    }
    let sigfd = block_signals()?;
    let pid = created?;
    let master = match &console {
        Some(cs) => Some(cs.receive()?),
        None => None,
    };
    if let Some(m) = &master {
        copy_winsize(0, m.as_raw_fd());
    }
    tracing::debug!("monitor {id}: created");
    runtime.start(id)?;
    tracing::debug!("monitor {id}: started");
    let now = chrono::Utc::now().to_rfc3339();
    state::update(
        store,
        id,
        "state = ?1, pid = ?2, started_at = ?3, error = NULL, exit_code = NULL, oom_killed = 0",
        &[&State::Running.as_str(), &pid, &now],
    )?;
    if cfg.healthcheck.is_some() {
        crate::health::reset(store, id)?;
    }
    for fd in [&out_r, &err_r, &master].into_iter().flatten() {
        set_nonblocking(fd.as_raw_fd());
    }
    Ok(Running {
        pid,
        stdout: out_r,
        stderr: err_r,
        stdin: in_w,
        master,
        sigfd,
    })
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| EngineError::Other(format!("pipe: {e}")))
}

fn handled_signals() -> SigSet {
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

fn block_signals() -> Result<SignalFd> {
    let s = handled_signals();
    s.thread_block()
        .map_err(|e| EngineError::Other(format!("sigprocmask: {e}")))?;
    SignalFd::with_flags(&s, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| EngineError::Other(format!("signalfd: {e}")))
}

fn unblock_all() {
    let _ = SigSet::all().thread_unblock();
}

/// Copy output to the log (and the attached CLI) until the container's init exits.
fn io_loop(
    run: &Running,
    log: &mut LogSink,
    attached_out: &mut bool,
    stdin_open: &mut bool,
    mut health: Option<&mut crate::health::Scheduler>,
) -> WaitStatus {
    let mut buf = vec![0u8; 32 * 1024];
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
                match si.ssi_signo as i32 {
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
            if !pump(fd, &mut buf, log, "stdout", 1, attached_out) {
                out_open = false;
            }
        }
        if err_ready {
            let fd = run.stderr.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
            if !pump(fd, &mut buf, log, "stderr", 2, attached_out) {
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
                write_all(t, &buf[..n as usize]);
            }
        }
    }
    exit.unwrap_or(WaitStatus::Exited(Pid::from_raw(run.pid), 255))
}

/// The in-process monitor's log: the file, where it lives, how it rotates.
struct LogSink {
    file: File,
    path: std::path::PathBuf,
    rotation: Option<crate::logs::Rotation>,
}

/// Read what is available from `fd`; false on EOF.
fn pump(
    fd: i32,
    buf: &mut [u8],
    log: &mut LogSink,
    stream: &str,
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
                _ => false,
            };
        }
        if n == 0 {
            return false;
        }
        let data = &buf[..n as usize];
        if let Some(r) = &log.rotation {
            let _ = r.maybe_rotate(&mut log.file, &log.path);
        }
        let _ = crate::logs::append(&mut log.file, stream, data);
        if *attached && !write_all(dest, data) {
            *attached = false;
        }
    }
}

/// Whether the kernel's OOM killer fired in the container's memory cgroup.
fn oom_killed(id: &str, _store: &Store) -> bool {
    let parent = crate::cgroup_parent();
    let rel = format!("{}/{}", parent.trim_matches('/'), id);
    // cgroup v1
    if let Ok(s) =
        std::fs::read_to_string(format!("/sys/fs/cgroup/memory/{rel}/memory.oom_control"))
    {
        return s.lines().any(|l| {
            l.strip_prefix("oom_kill ")
                .map(|v| v.trim() != "0")
                .unwrap_or(false)
        });
    }
    // cgroup v2
    if let Ok(s) = std::fs::read_to_string(format!("/sys/fs/cgroup/{rel}/memory.events")) {
        return s.lines().any(|l| {
            l.strip_prefix("oom_kill ")
                .map(|v| v.trim() != "0")
                .unwrap_or(false)
        });
    }
    false
}

/// Release what the running container held, then record the final exit. Resources go first:
/// once the row says "exited", another command may start the container again at once.
fn cleanup_after_exit(
    store: &Store,
    runtime: &Runtime,
    bundle: &Bundle,
    id: &str,
    code: Option<i32>,
    oom: bool,
    error: Option<&str>,
) {
    let _ = runtime.delete(id);
    tracing::debug!("monitor {id}: runtime state deleted");
    if let Err(e) = berth_net::teardown(store, id) {
        tracing::warn!("network teardown of {id}: {e}");
    }
    tracing::debug!("monitor {id}: network released");
    let _ = bundle.unmount();
    let now = chrono::Utc::now().to_rfc3339();
    let _ = state::update(
        store,
        id,
        "state = ?1, exit_code = ?2, finished_at = ?3, oom_killed = ?4, pid = NULL, monitor_pid = NULL, monitor_start = NULL, error = ?5",
        &[&State::Exited.as_str(), &code.unwrap_or(125), &now, &(oom as i64), &error],
    );
}
