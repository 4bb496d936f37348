//! `stop`, `kill` and `wait`: signals to the container's init, and waiting until its monitor
//! records the exit.

use std::time::{Duration, Instant};

use berth_store::Store;

use super::reconcile::reconcile_one;
use crate::host::Host;
use crate::state::{self, Container, State};
use crate::{EngineError, Result};

/// Send signal `sig` to the container's init.
///
/// Errors: [`EngineError::NotRunning`] unless it runs under a live monitor;
/// [`EngineError::Other`] when the signal cannot be sent.
pub fn kill(store: &Store, c: &Container, sig: i32) -> Result<()> {
    kill_with(&Host::real(), store, c, sig)
}

/// [`kill`] with the given host services.
///
/// Errors: as [`kill`].
pub fn kill_with(host: &Host, store: &Store, c: &Container, sig: i32) -> Result<()> {
    let fresh = state::get(store, &c.id)?.ok_or_else(|| EngineError::NotFound(c.name.clone()))?;
    match (fresh.state, fresh.pid) {
        (State::Running, Some(pid)) if state::monitor_alive(&fresh) => {
            match host.signals.signal_container(pid, &c.id, sig) {
                Ok(true) => {
                    // A paused container gets the signal when thawed (Docker thaws on kill).
                    if sig == libc::SIGKILL {
                        super::thaw_if_frozen(host, &fresh);
                    }
                    state::event(store, &fresh, "kill", &[("signal", &sig.to_string())]);
                    Ok(())
                }
                Ok(false) => Err(EngineError::NotRunning(c.name.clone())),
                Err(e) => Err(EngineError::Other(format!(
                    "cannot signal container {}: {e}",
                    c.name
                ))),
            }
        }
        _ => Err(EngineError::NotRunning(c.name.clone())),
    }
}

/// Stop: no restart, the stop signal, then SIGKILL after `timeout` seconds (default: the
/// container's `--stop-timeout`); waits until the exit is recorded.
///
/// Errors: [`EngineError::Other`] if it is still running 10 s after SIGKILL.
pub fn stop(store: &Store, c: &Container, timeout: Option<u32>) -> Result<()> {
    let was_running = c.state.is_active();
    stop_with(&Host::real(), store, c, timeout)?;
    if was_running {
        state::event(store, c, "stop", &[]);
    }
    Ok(())
}

/// [`stop`] with the given host services.
///
/// Errors: as [`stop`].
pub fn stop_with(host: &Host, store: &Store, c: &Container, timeout: Option<u32>) -> Result<()> {
    state::request_stop(store, &c.id)?;
    let fresh = state::get(store, &c.id)?.ok_or_else(|| EngineError::NotFound(c.name.clone()))?;
    if !fresh.state.is_active() || !state::monitor_alive(&fresh) {
        if fresh.state.is_active() {
            reconcile_one(host, store, &fresh);
        }
        return Ok(());
    }
    let sig = crate::config::parse_signal(&c.config.stop_signal).unwrap_or(libc::SIGTERM);
    let timeout = Duration::from_secs(u64::from(timeout.unwrap_or(c.config.stop_timeout)));
    if let Some(pid) = fresh.pid {
        let _ = host.signals.signal_container(pid, &c.id, sig);
    }
    // A paused container cannot act on the signal: thaw it (Docker does the same).
    super::thaw_if_frozen(host, &fresh);
    if wait_state(host, store, &c.id, timeout)? {
        return Ok(());
    }
    if let Some(pid) = state::get(store, &c.id)?.and_then(|c| c.pid) {
        let _ = host.signals.signal_container(pid, &c.id, libc::SIGKILL);
    }
    if wait_state(host, store, &c.id, Duration::from_secs(10))? {
        return Ok(());
    }
    Err(EngineError::Other(format!(
        "container {} did not stop within the timeout",
        c.name
    )))
}

/// Wait until the container is no longer active (or gone). True if it stopped.
///
/// The row is polled (5 ms doubling to 100 ms); while its init runs, the pause between two
/// looks is a wait on the init's pidfd, so its exit is seen at once, and the monitor's record
/// of it is then looked for every few milliseconds (1 ms doubling to 20 ms, for a second).
pub(super) fn wait_state(host: &Host, store: &Store, id: &str, timeout: Duration) -> Result<bool> {
    let end = Instant::now() + timeout;
    let mut delay = Duration::from_millis(5);
    // The init being watched: its pid, its pidfd while it runs, when it was seen to exit.
    let mut watched: Option<i32> = None;
    let mut init: Option<std::os::fd::OwnedFd> = None;
    let mut exited_at: Option<Instant> = None;
    loop {
        match state::get(store, id)? {
            None => return Ok(true),
            Some(c) if !c.state.is_active() => return Ok(true),
            Some(c) if !state::monitor_alive(&c) => {
                reconcile_one(host, store, &c);
                return Ok(true);
            }
            Some(c) => {
                // A first look, or a restarted init: watch the current one.
                if c.pid.is_some() && c.pid != watched {
                    watched = c.pid;
                    init = c.pid.and_then(|p| crate::pidfd::open_container(p, id));
                    exited_at = None;
                }
            }
        }
        let now = Instant::now();
        if now >= end {
            return Ok(false);
        }
        let nap = delay.min(end - now);
        let max = if exited_at.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            Duration::from_millis(20)
        } else {
            Duration::from_millis(100)
        };
        match &init {
            Some(fd) => match crate::pidfd::wait_exit(fd, nap) {
                Ok(false) => {}
                Ok(true) => {
                    // Exited: the monitor records it once it released the container.
                    init = None;
                    exited_at = Some(Instant::now());
                    delay = Duration::from_millis(1);
                    continue;
                }
                Err(_) => init = None,
            },
            None => std::thread::sleep(nap),
        }
        delay = (delay * 2).min(max);
    }
}

/// Block until the container is not running; returns its exit code (0 if none is recorded).
///
/// Errors: [`EngineError::Db`] when the row cannot be read.
pub fn wait(store: &Store, c: &Container) -> Result<i32> {
    let host = Host::real();
    loop {
        if wait_state(&host, store, &c.id, Duration::from_secs(3600))? {
            break;
        }
    }
    // A --rm container's row is gone once it exited: its monitor left the code behind.
    Ok(match state::get(store, &c.id)? {
        Some(row) => row.exit_code.unwrap_or(0),
        None => crate::exits::get(store.root(), &c.id).unwrap_or(0),
    })
}
