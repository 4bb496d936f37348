//! `POST /containers/{id}/wait`: the exit status once a container stops, exits again, or is
//! removed.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use berth_engine::ops;
use berth_engine::state::{self, Container, State};
use berth_store::Store;

use crate::containers::find;
use crate::http::{self, Query, Resp};
use crate::server::{App, Bell};
use crate::{ApiError, Result};

/// What `wait` waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Condition {
    NotRunning,
    NextExit,
    Removed,
}

/// `POST /containers/{id}/wait?condition=`: the 200 header goes out at once (the docker CLI
/// waits for it before it starts the container), `{"StatusCode": N}` when the condition holds.
pub async fn wait(app: &Arc<App>, id: String, q: &Query) -> Result<Resp> {
    let cond = match q.get("condition").unwrap_or("") {
        "" | "not-running" => Condition::NotRunning,
        "next-exit" => Condition::NextExit,
        "removed" => Condition::Removed,
        other => {
            return Err(ApiError::BadParameter(format!(
                "invalid condition {other:?}: use not-running, next-exit or removed"
            )))
        }
    };
    let c = app
        .blocking({
            let id = id.clone();
            move |store| find(store, &id)
        })
        .await?;
    // Registered before the 200 goes out: the docker CLI starts the container only then.
    let bell = app.bell(&c.id)?;
    let (tx, body) = http::channel();
    let root = app.root.clone();
    std::thread::Builder::new()
        .name("berth-api-wait".into())
        .spawn(move || {
            let Some(code) = wait_for(&root, &bell, &c, cond, &tx) else {
                return;
            };
            let doc = json!({"StatusCode": code, "Error": null});
            let _ = tx.blocking_send(Bytes::from(format!("{doc}\n")));
        })
        .map_err(|e| ApiError::Internal(format!("starting the wait thread: {e}")))?;
    Ok(http::with_headers(200, "application/json", body))
}

/// The longest sleep between two looks at the store while the container's monitor runs (it
/// is watched through a pidfd, so its exit ends the sleep at once).
const WAIT_WATCHED: Duration = Duration::from_millis(250);
/// The longest sleep while there is no monitor to watch (not started yet).
const WAIT_UNWATCHED: Duration = Duration::from_millis(50);

/// What ended a sleep between two looks at the store.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Woken {
    /// The time was up.
    Timeout,
    /// The process behind the pidfd (the monitor) exited.
    MonitorExited,
    /// This service changed the container or heard of its exit ([`App::ring`]).
    Rung,
}

/// Sleep up to `d`, waking early when the bell rings or the process behind `pidfd` exits.
fn sleep_or_wake(bell: &Bell, pidfd: Option<&OwnedFd>, d: Duration) -> Woken {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let ms = u16::try_from(d.as_millis()).unwrap_or(u16::MAX);
    let mut fds = vec![PollFd::new(bell.fd.as_fd(), PollFlags::POLLIN)];
    if let Some(fd) = pidfd {
        fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
    }
    if !matches!(nix::poll::poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0) {
        return Woken::Timeout;
    }
    let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
    if fds.get(1).is_some_and(ready) {
        Woken::MonitorExited
    } else {
        bell.clear();
        Woken::Rung
    }
}

/// Watch the store until `cond` holds for `c`; returns the exit code, or `None` when the
/// client went away first. The store is read again whenever `bell` rings (this service
/// started or removed the container, or its monitor reported the exit) and when the
/// container's monitor, watched through a pidfd, exits; between those, at growing
/// intervals (changes made by other processes, such as the CLI).
fn wait_for(
    root: &std::path::Path,
    bell: &Bell,
    c: &Container,
    cond: Condition,
    tx: &tokio::sync::mpsc::Sender<Bytes>,
) -> Option<i64> {
    let first_finish = c.finished_at.clone();
    let first_restarts = c.restart_count;
    let mut delay = Duration::from_millis(5);
    let mut n: u64 = 0;
    let Ok(store) = Store::open(root) else {
        return Some(-1);
    };
    // The monitor watched (its pid) and its pidfd; the last one seen to exit.
    let mut watched: Option<(i32, OwnedFd)> = None;
    let mut ended: Option<i32> = None;
    loop {
        if tx.is_closed() {
            return None;
        }
        n += 1;
        if n % 50 == 0 {
            let _ = ops::reconcile(&store);
        }
        match state::get(&store, &c.id) {
            Ok(Some(row)) => {
                let code = i64::from(row.exit_code.unwrap_or(0));
                let stopped = matches!(row.state, State::Exited | State::Created);
                let new_exit = row.state == State::Exited
                    && (row.finished_at != first_finish || row.restart_count != first_restarts);
                match cond {
                    Condition::NotRunning if stopped => return Some(code),
                    Condition::NextExit if new_exit => return Some(code),
                    _ => {}
                }
                let monitor = row
                    .monitor_pid
                    .filter(|p| ended != Some(*p) && state::monitor_alive(&row));
                if monitor != watched.as_ref().map(|w| w.0) {
                    watched = monitor.and_then(|pid| {
                        let p = rustix::process::Pid::from_raw(pid)?;
                        rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
                            .ok()
                            .map(|fd| (pid, fd))
                    });
                }
            }
            Ok(None) => {
                return Some(i64::from(
                    berth_engine::exits::get(root, &c.id).unwrap_or(0),
                ));
            }
            Err(_) => {}
        }
        let limit = if watched.is_some() {
            WAIT_WATCHED
        } else {
            WAIT_UNWATCHED
        };
        delay = (delay * 2).min(limit);
        match sleep_or_wake(bell, watched.as_ref().map(|w| &w.1), delay) {
            Woken::Timeout => {}
            Woken::MonitorExited => {
                // The monitor is gone: its last writes (exit code, removal) are done; look
                // again right away.
                ended = watched.take().map(|w| w.0);
                delay = Duration::from_millis(2);
            }
            Woken::Rung => delay = Duration::from_millis(2),
        }
    }
}
