//! A container's output streams: `GET /containers/{id}/logs` (from its log file) and
//! `POST /containers/{id}/attach` (hijacked: its own streams when attached before `start`,
//! else its log followed).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use bytes::Bytes;

use berth_engine::state::{self, Container, State};
use berth_store::Store;

use crate::containers::find;
use crate::http::{self, Query, Resp};
use crate::router::Req;
use crate::server::{App, PendingAttach};
use crate::{ApiError, Result};

/// `GET /containers/{id}/logs?stdout=&stderr=&follow=&since=&until=&timestamps=&tail=`.
pub async fn logs(app: &Arc<App>, id: String, q: &Query) -> Result<Resp> {
    let follow = q.bool("follow", false);
    let want_out = q.bool("stdout", false);
    let want_err = q.bool("stderr", false);
    if !want_out && !want_err {
        return Err(ApiError::BadParameter(
            "you must choose at least one stream: set stdout=1 or stderr=1".into(),
        ));
    }
    let tail = match q.get("tail").unwrap_or("all") {
        "all" | "" => None,
        n => match n.parse::<i64>() {
            Ok(v) if v < 0 => None,
            Ok(v) => Some(usize::try_from(v).unwrap_or(usize::MAX)),
            Err(_) => {
                return Err(ApiError::BadParameter(format!(
                    "invalid tail {n:?}: use a number or \"all\""
                )))
            }
        },
    };
    let time = |k: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        match q.get(k).filter(|s| !s.is_empty() && *s != "0") {
            None => Ok(None),
            Some(s) => berth_engine::logs::parse_time(k, s)
                .map(Some)
                .map_err(|e| ApiError::BadParameter(e.to_string())),
        }
    };
    let opts = berth_engine::logs::LogOptions {
        follow,
        tail,
        timestamps: q.bool("timestamps", false),
        since: time("since")?,
        until: time("until")?,
        details: q.bool("details", false),
    };
    let c = app
        .blocking(move |store| {
            let c = find(store, &id)?;
            if !c.config.log_config.readable() {
                return Err(ApiError::BadParameter(format!(
                    "configured logging driver {:?} does not support reading",
                    c.config.log_config.driver
                )));
            }
            Ok(c)
        })
        .await?;
    let tty = c.config.tty;
    let (tx, body) = http::channel();
    let root = app.root.clone();
    std::thread::spawn(move || {
        stream_log(&root, &c, &opts, tx, want_out, want_err);
    });
    Ok(http::with_headers(200, http::stream_type(tty), body))
}

/// Copy a container's log into `tx` (framed unless the container has a terminal).
fn stream_log(
    root: &std::path::Path,
    c: &Container,
    opts: &berth_engine::logs::LogOptions,
    tx: tokio::sync::mpsc::Sender<Bytes>,
    want_out: bool,
    want_err: bool,
) {
    let Ok(store) = Store::open(root) else { return };
    let path = berth_engine::rootfs::Bundle::new(root, &c.id).log();
    let mut out: Box<dyn std::io::Write> = if want_out {
        Box::new(http::ChannelWriter {
            tx: tx.clone(),
            stream: 1,
            multiplex: !c.config.tty,
        })
    } else {
        Box::new(std::io::sink())
    };
    let mut err: Box<dyn std::io::Write> = if want_err {
        Box::new(http::ChannelWriter {
            tx: tx.clone(),
            stream: 2,
            multiplex: !c.config.tty,
        })
    } else {
        Box::new(std::io::sink())
    };
    let id = c.id.clone();
    let mut running = || match state::get(&store, &id) {
        Ok(Some(c)) => {
            (c.state.is_active() && state::monitor_alive(&c)) || c.state == State::Created
        }
        _ => false,
    };
    let _ = berth_engine::logs::copy(&path, opts, &mut running, &mut *out, &mut *err);
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| ApiError::Internal(format!("pipe: {e}")))
}

/// `POST /containers/{id}/attach?stream=&stdin=&stdout=&stderr=&logs=`: hijacked. Before
/// `start`, the container's own streams are handed over at start; on a running container the
/// output is followed from its log.
pub async fn attach(app: &Arc<App>, id: String, mut r: Req) -> Result<Resp> {
    let q = &r.query;
    let stream = q.bool("stream", false);
    let logs = q.bool("logs", false);
    let want_in = q.bool("stdin", false);
    let want_out = q.bool("stdout", false);
    let want_err = q.bool("stderr", false);
    // Docker's daemon watches a terminal's input for the detach sequence (default
    // Ctrl-P Ctrl-Q).
    let keys = match q.get("detachKeys").filter(|k| !k.is_empty()) {
        Some(k) => berth_engine::detach::DetachKeys::parse(k)
            .map_err(|e| ApiError::BadParameter(e.to_string()))?,
        None => berth_engine::detach::DetachKeys::default(),
    };
    let c = app.blocking(move |store| find(store, &id)).await?;
    let tty = c.config.tty;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let running = c.state.is_active();
    let mut stdin_fd = None;
    if stream && !running {
        let (in_r, in_w) = pipe()?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        if let Ok(mut m) = app.attaches.lock() {
            m.insert(
                c.id.clone(),
                PendingAttach {
                    stdin: in_r,
                    stdout: out_w,
                    stderr: err_w,
                },
            );
        }
        if want_in {
            stdin_fd = Some(in_w);
        }
        if want_out {
            http::pump(out_r, tx.clone(), 1, tty);
        } else {
            http::pump(out_r, tokio::sync::mpsc::channel(1).0, 1, tty);
        }
        if want_err {
            http::pump(err_r, tx.clone(), 2, tty);
        } else {
            http::pump(err_r, tokio::sync::mpsc::channel(1).0, 2, tty);
        }
    } else if stream || logs {
        let opts = berth_engine::logs::LogOptions {
            follow: stream,
            tail: if logs { None } else { Some(0) },
            ..Default::default()
        };
        let root = app.root.clone();
        let tx = tx.clone();
        std::thread::spawn(move || stream_log(&root, &c, &opts, tx, want_out, want_err));
    }
    drop(tx);
    Ok(http::hijack_with_keys(
        &mut r.inner,
        http::stream_type(tty),
        rx,
        stdin_fd,
        tty.then_some(keys),
    ))
}
