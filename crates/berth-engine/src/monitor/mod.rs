//! The per-container monitor: a small single-threaded process (`berth __monitor ID`) that
//! creates the container with the runtime, owns its stdio and log file, waits for it, records
//! the exit, applies the restart policy, and exits with the container. It is a child
//! subreaper, so the container's init is its child whatever the runtime does.
//!
//! Protocol with the CLI that spawned it: fd 3 is a pipe on which the monitor writes
//! `started PID\n` or `error CODE MESSAGE\n`, and, when the CLI is attached (foreground run,
//! `start -a`), finally `exit CODE\n`. When attached, fds 0-2 are the CLI's terminal/streams.

mod io;
mod supervisor;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, SigHandler, Signal};

use berth_store::Store;

use crate::config::RestartPolicy;
use crate::fdio::{copy_winsize, exit_code, set_nonblocking};
use crate::host::Host;
use crate::rootfs::Bundle;
use crate::runtime::{ConsoleSocket, Runtime, StdioFds};
use crate::state;
use crate::{EngineError, Result};

pub use crate::paths::{ATTACH_ENV, FLAG_ATTACHED, FLAG_STDIN, FLAG_TTY};
use io::{block_signals, io_loop, pipe, unblock_all, LogSink, Running};
use supervisor::{exec_supervisor, supervisor_path};

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
    match monitor(&Host::real(), root, id, attached, &mut sync, resume) {
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
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// First restart delay, and the delay again once a run lasted [`BACKOFF_RESET_AFTER`].
pub const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest restart delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A run at least this long resets the backoff to [`BACKOFF_START`].
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);

/// What the monitor does after the container's init exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterExit {
    /// Record the exit and release everything.
    Finish,
    /// Wait `delay`, then create the container again; the delay after that is `next`.
    Restart {
        /// How long to wait before restarting.
        delay: Duration,
        /// The delay to use if this run fails again.
        next: Duration,
    },
}

/// Docker's restart rules with exponential backoff: `code` is the exit status, `restarts` how
/// often it was restarted already, `ran_for` how long this run lasted, `backoff` the current
/// delay; `row_exists` is false once the container was removed meanwhile.
pub fn after_exit(
    policy: &RestartPolicy,
    code: i32,
    restarts: u32,
    stop_requested: bool,
    row_exists: bool,
    ran_for: Duration,
    backoff: Duration,
) -> AfterExit {
    if !row_exists || !policy.should_restart(code, restarts, stop_requested) {
        return AfterExit::Finish;
    }
    let delay = if ran_for >= BACKOFF_RESET_AFTER {
        BACKOFF_START
    } else {
        backoff.max(BACKOFF_START)
    };
    AfterExit::Restart {
        delay,
        next: (delay * 2).min(BACKOFF_MAX),
    }
}

fn monitor(
    host: &Host,
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
        let me = i32::try_from(std::process::id())
            .map_err(|_| engine(EngineError::Other("pid out of range".into())))?;
        state::set_monitor(&store, id, me, state::process_start_time(me)).map_err(engine)?;
    }

    let bundle = Bundle::new(store.root(), id);
    let runtime = host
        .runtime(store.root(), c.config.runtime.as_deref())
        .map_err(engine)?;
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
    let ctx = Ctx {
        host,
        store: &store,
        runtime: runtime.as_ref(),
        bundle: &bundle,
        c: &c,
    };

    let mut first = resume.is_none();
    let mut backoff = resume
        .as_ref()
        .map(|r| Duration::from_millis(r.backoff_ms).max(BACKOFF_START))
        .unwrap_or(BACKOFF_START);
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
    // The stored configuration at the last restart (`update` may have changed its limits).
    let mut fresh: Option<crate::config::ContainerConfig> = None;
    loop {
        if let Some(code) = pending_exit.take() {
            tracing::debug!("monitor {id}: container exited with {code}");
            let oom = host.cgroups.oom_killed(&c.cgroup_path());
            let cur = state::get(&store, id).ok().flatten();
            let stop_requested = cur.as_ref().map(|c| c.stop_requested).unwrap_or(true);
            let restarts = cur
                .as_ref()
                .map(|c| u32::try_from(c.restart_count).unwrap_or(u32::MAX))
                .unwrap_or(0);
            let ran_for = Duration::from_millis(now_ms().saturating_sub(started_ms));
            // The policy as stored now: `update --restart` may have changed it.
            let policy = cur
                .as_ref()
                .map_or(&c.config.restart, |c| &c.config.restart);
            match after_exit(
                policy,
                code,
                restarts,
                stop_requested,
                cur.is_some(),
                ran_for,
                backoff,
            ) {
                AfterExit::Finish => return ctx.finish(code, oom, sync),
                AfterExit::Restart { delay, next } => {
                    fresh = cur.map(|c| c.config);
                    let _ = state::mark_restarting(&store, id, code, oom, i64::from(restarts) + 1);
                    if let Ok(Some(c)) = state::get(&store, id) {
                        state::event(&store, &c, "die", &[("exitCode", &code.to_string())]);
                    }
                    // The old runtime state must go before the container is created again.
                    ctx.release_runtime();
                    if !wait_backoff(&store, id, delay) {
                        return ctx.finish(code, oom, sync);
                    }
                    backoff = next;
                }
            }
        }
        started_ms = now_ms();
        let run = match start_once(&ctx, fresh.as_ref()) {
            Ok(r) => r,
            Err(e) => {
                let code = 125;
                ctx.cleanup_after_exit(None, false, Some(&e.to_string()));
                if first {
                    return Err((code, e));
                }
                let _ = logs_append_note(&mut log, &format!("restart failed: {e}"));
                if c.config.auto_remove {
                    let _ = bundle.remove();
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
        // journald needs the framing code of this process: no berth-supervise then.
        let journal = c.config.log_config.driver == "journald";
        if let Some(sup) = supervisor_path().filter(|_| !journal) {
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
            journal: journal
                .then(|| {
                    crate::journald::Journal::open(
                        &crate::journald::socket_path(),
                        &c.id,
                        &c.name,
                        &c.image_name,
                        c.config.log_config.opts.get("tag").map(String::as_str),
                    )
                    .ok()
                })
                .flatten(),
        };
        let ws = io_loop(
            &run,
            &mut sink,
            &mut attached_out,
            &mut stdin_open,
            health.as_mut(),
        );
        log = sink.file;
        if !attached_out {
            flags &= !FLAG_ATTACHED;
        }
        if !stdin_open {
            flags &= !FLAG_STDIN;
        }
        pending_exit = Some(exit_code(ws).unwrap_or(255));
    }
}

/// Let go of the front end's streams: fds 0-2 become /dev/null, so whoever reads the other
/// end of an attached stream (the API service relaying it to a client) sees its end. Only
/// called once the container's output is all written and the exit reported.
fn release_stdio() {
    // SAFETY: open and dup2 on descriptors this process owns; /dev/null replaces fds 0-2,
    // which stay valid, and the temporary descriptor is closed.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            for fd in 0..=2 {
                libc::dup2(null, fd);
            }
            libc::close(null);
        }
    }
}

/// What the monitor works on.
struct Ctx<'a> {
    host: &'a Host,
    store: &'a Store,
    runtime: &'a dyn Runtime,
    bundle: &'a Bundle,
    c: &'a state::Container,
}

impl Ctx<'_> {
    /// Delete the runtime state and the cgroups.
    fn release_runtime(&self) {
        let _ = self.runtime.delete(&self.c.id);
        self.host.cgroups.remove(&self.c.cgroup_path());
    }

    /// The container stopped for good: record it and release everything it held; returns the
    /// exit code to report.
    ///
    /// With `--rm`, what another command could trip over goes first (network, mount, the row
    /// and with it the name); then the waiting CLI is told the exit code; the runtime state
    /// and the directory, which are keyed by the unique id, are removed last, off the CLI's
    /// critical path.
    fn finish(&self, code: i32, oom: bool, sync: &mut Sync) -> MonResult<i32> {
        let id = self.c.id.as_str();
        if !self.c.config.auto_remove {
            self.cleanup_after_exit(Some(code), oom, None);
            tracing::debug!("monitor {id}: done");
            return Ok(code);
        }
        if let Err(e) = self.host.network.teardown(self.store, id) {
            tracing::warn!("network teardown of {id}: {e}");
        }
        tracing::debug!("monitor {id}: network released");
        let _ = self.bundle.unmount();
        tracing::debug!("monitor {id}: unmounted");
        crate::exits::record(self.store.root(), id, code);
        // Docker's order for --rm: network disconnect, (oom,) die, destroy.
        if oom {
            state::event(self.store, self.c, "oom", &[]);
        }
        state::event(
            self.store,
            self.c,
            "die",
            &[("exitCode", &code.to_string())],
        );
        let _ = state::delete(self.store, id);
        state::event(self.store, self.c, "destroy", &[]);
        let _ = crate::volumes::release(self.store, id);
        let _ = crate::volumes::remove_anonymous(self.store, &self.c.config);
        let _ = crate::health::forget(self.store, id);
        tracing::debug!("monitor {id}: removed");
        sync.send_exit(code);
        // What follows is off the front end's path: an attached API connection sees the end
        // of the output now, not when the runtime state and the directory are gone.
        release_stdio();
        self.release_runtime();
        let _ = self.bundle.remove();
        tracing::debug!("monitor {id}: done");
        Ok(code)
    }

    /// Release what the running container held, then record the final exit (125 when `code`
    /// is `None`). Resources go first: once the row says "exited", another command may start
    /// the container again at once.
    fn cleanup_after_exit(&self, code: Option<i32>, oom: bool, error: Option<&str>) {
        let id = self.c.id.as_str();
        self.release_runtime();
        tracing::debug!("monitor {id}: runtime state deleted");
        if let Err(e) = self.host.network.teardown(self.store, id) {
            tracing::warn!("network teardown of {id}: {e}");
        }
        tracing::debug!("monitor {id}: network released");
        let _ = self.bundle.unmount();
        let _ = state::mark_exited(self.store, id, code.unwrap_or(125), oom, error);
        let code_s = code.unwrap_or(125).to_string();
        if oom {
            state::event(self.store, self.c, "oom", &[]);
        }
        state::event(self.store, self.c, "die", &[("exitCode", &code_s)]);
    }
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

/// Create and start the container once; `fresh` is the stored configuration when it was
/// read again for a restart (its cgroup limits are the ones written).
fn start_once(ctx: &Ctx<'_>, fresh: Option<&crate::config::ContainerConfig>) -> Result<Running> {
    let (c, id) = (ctx.c, ctx.c.id.as_str());
    let cfg = &c.config;
    let mut stdio = StdioFds::default();
    let (mut out_r, mut err_r, mut in_w) = (None, None, None);
    let console = if cfg.tty {
        Some(ConsoleSocket::bind(&crate::paths::run_dir(
            ctx.store.root(),
        ))?)
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
    let created = ctx.runtime.create(
        id,
        &ctx.bundle.dir,
        stdio,
        console.as_ref().map(|c| c.path.as_path()),
    );
    // SAFETY: as above, for SIG_IGN.
    unsafe {
        let _ = signal::signal(Signal::SIGPIPE, SigHandler::SigIgn);
    }
    let sigfd = block_signals()?;
    let pid = created.map_err(|e| ulimit_hint(e, &cfg.security.ulimits))?;
    let master = match &console {
        Some(cs) => Some(cs.receive()?),
        None => None,
    };
    if let Some(m) = &master {
        match std::env::var(crate::paths::WINSIZE_ENV).ok().and_then(|v| {
            let (r, c) = v.split_once('x')?;
            Some((r.parse::<u16>().ok()?, c.parse::<u16>().ok()?))
        }) {
            Some((rows, cols)) => crate::terminal::set_winsize(m.as_raw_fd(), rows, cols),
            None => copy_winsize(0, m.as_raw_fd()),
        }
    }
    tracing::debug!("monitor {id}: created");
    // The runtime applied the spec's limits; write them through berth's own cgroup interface
    // too, so they hold whatever the runtime did with them (a runtime binary may skip some).
    // Nothing to write (the common case) costs no file system calls on the start path.
    let limits = crate::cgroups::Limits::from_config(fresh.unwrap_or(cfg));
    if limits != crate::cgroups::Limits::default() {
        ctx.host
            .cgroups
            .apply(&c.cgroup_path(), &limits)
            .map_err(|e| {
                let _ = ctx.runtime.delete(id);
                EngineError::InvalidArgument(format!(
                    "cannot apply the container's cgroup limits: {e}"
                ))
            })?;
    }
    ctx.runtime.start(id)?;
    tracing::debug!("monitor {id}: started");
    state::mark_running(ctx.store, id, pid)?;
    if let Ok(Some(c)) = state::get(ctx.store, id) {
        state::event(ctx.store, &c, "start", &[]);
    }
    if cfg.healthcheck.is_some() {
        crate::health::reset(ctx.store, id)?;
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

/// A runtime's bare EPERM at create when the container has ulimits: most likely the kernel
/// refused one of them (a hard limit above what this host allows); the message names them.
fn ulimit_hint(e: crate::EngineError, ulimits: &[crate::security::Ulimit]) -> crate::EngineError {
    match e {
        crate::EngineError::Runtime(m) if m.contains("EPERM") && !ulimits.is_empty() => {
            let names: Vec<String> = ulimits
                .iter()
                .map(|u| format!("{}={}:{}", u.name, u.soft, u.hard))
                .collect();
            crate::EngineError::Runtime(format!(
                "{m}: the kernel may have refused a ulimit ({}): lower its hard limit to what this host allows (nofile: at most /proc/sys/fs/nr_open)",
                names.join(", ")
            ))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests;
