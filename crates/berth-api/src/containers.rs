//! Container endpoints: create, list, inspect, start, stop, restart, kill, wait, logs, attach,
//! delete, prune.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::json;

use berth_engine::ops::{self, Attach, CreateRequest};
use berth_engine::state::{self, Container, State};
use berth_store::Store;

use crate::http::{self, Query, Resp};
use crate::router::Req;
use crate::server::{App, PendingAttach};
use crate::{ApiError, Result};

/// Largest request body read into memory (create, exec, network bodies): 16 MiB.
pub const MAX_BODY: usize = 16 << 20;

/// Read a JSON request body (empty is `{}`), bounded by [`MAX_BODY`]; errors name the field.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    req: &mut hyper::Request<hyper::body::Incoming>,
) -> Result<T> {
    let body = http_body_util::Limited::new(req.body_mut(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::BadParameter(format!("reading the request body: {e}")))?
        .to_bytes();
    let data: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &body
    };
    let de = &mut serde_json::Deserializer::from_slice(data);
    serde_path_to_error::deserialize(de).map_err(|e| {
        ApiError::BadParameter(format!("invalid JSON body at {}: {}", e.path(), e.inner()))
    })
}

/// Look a container up by id, name or unique id prefix (404 with Docker's wording).
pub fn find(store: &Store, name: &str) -> Result<Container> {
    ops::reconcile(store)?;
    state::lookup(store, name).map_err(ApiError::from)
}

/// `POST /containers/create?name=`.
pub async fn create(app: &Arc<App>, mut r: Req) -> Result<Resp> {
    let body: bollard_stubs::models::ContainerCreateBody = read_json(&mut r.inner).await?;
    let name = r
        .query
        .get("name")
        .filter(|n| !n.is_empty())
        .map(|n| n.strip_prefix('/').unwrap_or(n).to_string());
    let (c, warnings) = app
        .blocking(move |store| {
            ops::reconcile(store)?;
            let b = crate::create::build_config(store, &body)?;
            let c = ops::create(
                store,
                CreateRequest {
                    name,
                    image_ref: b.image_ref,
                    image_id: b.image_id,
                    config: b.config,
                },
            )?;
            Ok((c, b.warnings))
        })
        .await?;
    Ok(http::json(201, &json!({"Id": c.id, "Warnings": warnings})))
}

/// What container list entries need from other tables, read once for the whole list
/// (health states, network endpoints) instead of once per container.
pub struct ListContext {
    health: std::collections::HashMap<String, String>,
    networks: std::collections::HashMap<String, serde_json::Map<String, serde_json::Value>>,
}

impl ListContext {
    /// Read the health states and every container's networks (three queries).
    pub fn load(store: &Store) -> Result<ListContext> {
        Ok(ListContext {
            health: berth_engine::health::all_status(store)?,
            networks: berth_net::networks_of_all(store)?,
        })
    }

    /// The health status of `c` (`None` without a health check).
    fn health_of(&self, c: &Container) -> Option<&str> {
        c.config
            .healthcheck
            .as_ref()
            .and(self.health.get(&c.id).map(String::as_str))
    }
}

/// The list entry of a container (`GET /containers/json`, Docker's `ContainerSummary`).
pub fn summary(store: &Store, c: &Container, ctx: &ListContext) -> serde_json::Value {
    let health = ctx.health_of(c);
    let ports: Vec<serde_json::Value> = c
        .net
        .as_ref()
        .filter(|_| c.state == State::Running)
        .map(|n| {
            n.ports
                .iter()
                .map(|p| {
                    json!({"IP": p.host_ip, "PrivatePort": p.container_port,
                           "PublicPort": p.host_port, "Type": p.protocol})
                })
                .collect()
        })
        .unwrap_or_default();
    let network_mode = match &c.config.network {
        berth_net::NetworkMode::None => "none".to_string(),
        berth_net::NetworkMode::Host => "host".into(),
        berth_net::NetworkMode::Container(id) => format!("container:{id}"),
        berth_net::NetworkMode::Networks(n) => n
            .first()
            .map(|a| a.network.clone())
            .unwrap_or_else(|| "bridge".into()),
    };
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image_name,
        "ImageID": c.image_id.as_str(),
        "Command": c.config.args.join(" "),
        "Created": c.created,
        "Ports": ports,
        "Labels": c.config.labels,
        "State": c.state.as_str(),
        "Status": berth_engine::view::status_text(c, health),
        "HostConfig": {"NetworkMode": network_mode},
        "NetworkSettings": {"Networks": ctx.networks.get(&c.id).cloned().unwrap_or_default()},
        "Mounts": berth_engine::volumes::mounts_json(store, &c.config),
    })
}

/// `GET /containers/json?all=&limit=&filters=`: the filters of `ps` (`berth_engine::view`).
pub async fn list(app: &Arc<App>, r: Req) -> Result<Resp> {
    let all = r.query.bool("all", false);
    let limit = r.query.int("limit")?;
    let items: Vec<String> = r
        .query
        .filters()?
        .into_iter()
        .flat_map(|(k, vs)| vs.into_iter().map(move |v| format!("{k}={v}")))
        .collect();
    let filters = berth_engine::view::PsFilter::parse(&items)
        .map_err(|e| ApiError::BadParameter(e.to_string()))?;
    let v = app
        .blocking(move |store| {
            let rows = ops::reconciled_rows(store)?;
            let lctx = ListContext::load(store)?;
            let mut fctx = berth_engine::view::FilterContext {
                order: rows.iter().map(|c| c.id.clone()).collect(),
                ..Default::default()
            };
            for (k, v) in filters.references() {
                let c = find(store, v)?;
                if k == "before" {
                    fctx.before = Some(c);
                } else {
                    fctx.since = Some(c);
                }
            }
            if let Ok(is) = berth_image::ImageStore::open(store) {
                for v in items.iter().filter_map(|f| f.strip_prefix("ancestor=")) {
                    if let Ok(img) = is.resolve(v) {
                        fctx.ancestor_ids.push(img.id.to_string());
                    }
                }
            }
            let show_all = all || filters.implies_all();
            let mut out = Vec::new();
            for c in &rows {
                let h = lctx.health_of(c);
                if !(show_all || c.state.is_active()) || !filters.matches(c, h, &fctx) {
                    continue;
                }
                out.push(summary(store, c, &lctx));
                if let Some(l) = limit {
                    if l > 0 && out.len() >= usize::try_from(l).unwrap_or(usize::MAX) {
                        break;
                    }
                }
            }
            Ok(out)
        })
        .await?;
    Ok(http::json(200, &v))
}

/// `GET /containers/{id}/json`.
pub async fn inspect(app: &Arc<App>, id: String) -> Result<Resp> {
    let doc = app
        .blocking(move |store| {
            let c = find(store, &id)?;
            Ok(berth_engine::inspect::container_json(store, &c))
        })
        .await?;
    Ok(http::json(200, &doc))
}

/// `POST /containers/{id}/start`: 204, or 304 when it already runs. An attach connection
/// made before gets the container's streams.
pub async fn start(app: &Arc<App>, id: String) -> Result<Resp> {
    let app2 = app.clone();
    app.blocking(move |store| {
        let c = find(store, &id)?;
        if c.state.is_active() && state::monitor_alive(&c) {
            return Err(ApiError::NotModified("container already started".into()));
        }
        let pending = app2.attaches.lock().ok().and_then(|mut m| m.remove(&c.id));
        let res = match pending {
            Some(p) => ops::start_attached_to(
                store,
                &c,
                ops::AttachStdio {
                    stdin: p.stdin,
                    stdout: p.stdout,
                    stderr: p.stderr,
                },
            ),
            None => ops::start(store, &c, Attach::No),
        };
        match res {
            Ok(_started) => {
                app2.watch_monitor(store, &c.id);
                Ok(())
            }
            Err(e) => {
                // A failed start of an auto-remove container leaves nothing behind.
                if c.config.auto_remove {
                    let _ = ops::remove(store, &c, true);
                    let _ = berth_engine::volumes::remove_anonymous(store, &c.config);
                }
                Err(e.into())
            }
        }
    })
    .await?;
    Ok(http::no_content())
}

/// `t` (seconds, -1: no limit) of stop/restart.
fn timeout(q: &Query) -> Result<Option<u32>> {
    Ok(q.int("t")?
        .map(|t| u32::try_from(t).unwrap_or(if t < 0 { u32::MAX } else { u32::MAX - 1 })))
}

/// `POST /containers/{id}/stop?t=`: 204, or 304 when it is not running.
pub async fn stop(app: &Arc<App>, id: String, q: &Query) -> Result<Resp> {
    let t = timeout(q)?;
    app.blocking(move |store| {
        let c = find(store, &id)?;
        if !c.state.is_active() {
            return Err(ApiError::NotModified("container already stopped".into()));
        }
        Ok(ops::stop(store, &c, t)?)
    })
    .await?;
    Ok(http::no_content())
}

/// `POST /containers/{id}/restart?t=`.
pub async fn restart(app: &Arc<App>, id: String, q: &Query) -> Result<Resp> {
    let t = timeout(q)?;
    let app2 = app.clone();
    app.blocking(move |store| {
        let c = find(store, &id)?;
        ops::stop(store, &c, t)?;
        let c = find(store, &c.id)?;
        ops::start(store, &c, Attach::No)?;
        app2.watch_monitor(store, &c.id);
        Ok(())
    })
    .await?;
    Ok(http::no_content())
}

/// `POST /containers/{id}/kill?signal=`: 204; 409 when it is not running.
pub async fn kill(app: &Arc<App>, id: String, q: &Query) -> Result<Resp> {
    let sig_text = q
        .get("signal")
        .filter(|s| !s.is_empty())
        .unwrap_or("KILL")
        .to_string();
    let sig = berth_engine::config::parse_signal(&sig_text)
        .map_err(|e| ApiError::BadParameter(e.to_string()))?;
    app.blocking(move |store| {
        let c = find(store, &id)?;
        ops::kill(store, &c, sig).map_err(|e| match e {
            berth_engine::EngineError::NotRunning(_) => ApiError::Conflict(format!(
                "cannot kill container: {}: container {} is not running",
                c.name, c.id
            )),
            e => e.into(),
        })
    })
    .await?;
    Ok(http::no_content())
}

/// `DELETE /containers/{id}?force=&v=`.
pub async fn remove(app: &Arc<App>, id: String, q: &Query) -> Result<Resp> {
    let force = q.bool("force", false);
    let volumes = q.bool("v", false);
    app.blocking(move |store| {
        let c = find(store, &id)?;
        if c.state.is_active() && state::monitor_alive(&c) && !force {
            return Err(ApiError::Conflict(format!(
                "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                c.name
            )));
        }
        ops::remove(store, &c, force)?;
        if volumes {
            berth_engine::volumes::remove_anonymous(store, &c.config)?;
        }
        Ok(())
    })
    .await?;
    Ok(http::no_content())
}

/// `POST /containers/prune`.
pub async fn prune(app: &Arc<App>, _r: Req) -> Result<Resp> {
    let v = app
        .blocking(|store| {
            ops::reconcile(store)?;
            let mut deleted = Vec::new();
            for c in state::all(store)? {
                if matches!(c.state, State::Exited | State::Created)
                    && ops::remove(store, &c, false).is_ok()
                {
                    deleted.push(c.id);
                }
            }
            ops::sweep(store)?;
            Ok(deleted)
        })
        .await?;
    Ok(http::json(
        200,
        &json!({"ContainersDeleted": v, "SpaceReclaimed": 0}),
    ))
}

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
    let (tx, body) = http::channel();
    let root = app.root.clone();
    std::thread::Builder::new()
        .name("berth-api-wait".into())
        .spawn(move || {
            let Some(code) = wait_for(&root, &c, cond, &tx) else {
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

/// Sleep up to `d`, waking early when the process behind `pidfd` exits; returns whether it
/// has exited.
fn sleep_or_exit(pidfd: Option<&OwnedFd>, d: Duration) -> bool {
    let Some(fd) = pidfd else {
        std::thread::sleep(d);
        return false;
    };
    use std::os::fd::AsFd;
    let mut fds = [nix::poll::PollFd::new(
        fd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let ms = u16::try_from(d.as_millis()).unwrap_or(u16::MAX);
    matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)), Ok(n) if n > 0)
}

/// Watch the store until `cond` holds for `c`; returns the exit code, or `None` when the
/// client went away first. The container's monitor is watched through a pidfd, so an exit
/// is seen as soon as the monitor has recorded it and gone.
fn wait_for(
    root: &std::path::Path,
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
        if sleep_or_exit(watched.as_ref().map(|w| &w.1), delay) {
            // The monitor is gone: its last writes (exit code, removal) are done; look again
            // right away.
            ended = watched.take().map(|w| w.0);
            delay = Duration::from_millis(2);
        }
    }
}

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

/// `POST /containers/{id}/rename?name=`: 204; 409 when the name is taken.
pub async fn rename(app: &Arc<App>, id: String, q: &Query) -> Result<Resp> {
    let name = q
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::BadParameter("name: give the new name".into()))?
        .trim_start_matches('/')
        .to_string();
    app.blocking(move |store| {
        let c = find(store, &id)?;
        Ok(ops::rename(store, &c, &name)?)
    })
    .await?;
    Ok(http::no_content())
}

/// `POST /containers/{id}/pause` and `/unpause`: 204; 409 when it is not running.
pub async fn pause(app: &Arc<App>, id: String, on: bool) -> Result<Resp> {
    app.blocking(move |store| {
        let c = find(store, &id)?;
        if on {
            Ok(ops::pause(store, &c)?)
        } else {
            Ok(ops::unpause(store, &c)?)
        }
    })
    .await?;
    Ok(http::no_content())
}

/// `GET /containers/{id}/changes`: `[{"Path": …, "Kind": 0|1|2}]` (modified, added, deleted).
pub async fn changes(app: &Arc<App>, id: String) -> Result<Resp> {
    let v = app
        .blocking(move |store| {
            let c = find(store, &id)?;
            let list = ops::diff(store, &c)?;
            Ok(list
                .into_iter()
                .map(|(k, p)| {
                    let kind = match k {
                        'A' => 1,
                        'D' => 2,
                        _ => 0,
                    };
                    json!({"Path": p, "Kind": kind})
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(http::json(200, &v))
}

/// `GET /containers/{id}/top?ps_args=`: `{"Titles": […], "Processes": [[…]]}`.
pub async fn top(app: &Arc<App>, id: String, q: &Query) -> Result<Resp> {
    let args: Vec<String> = q
        .get("ps_args")
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let v = app
        .blocking(move |store| {
            let c = find(store, &id)?;
            let (titles, rows) = ops::top(&c, &args)?;
            Ok(json!({"Titles": titles, "Processes": rows}))
        })
        .await?;
    Ok(http::json(200, &v))
}

/// `POST /containers/{id}/resize?h=&w=`: 200; the terminal of a container started with one
/// gets the new size (and its foreground processes `SIGWINCH`). 409 when it is not running.
pub async fn resize(app: &Arc<App>, id: String, q: &Query) -> Result<Resp> {
    let (rows, cols) = crate::resize::size(q)?;
    let c = app.blocking(move |store| find(store, &id)).await?;
    if c.state != State::Running {
        return Err(ApiError::Conflict(format!(
            "cannot resize container {}: it is not running",
            c.id
        )));
    }
    if c.config.tty {
        if let Some(pid) = c.pid {
            if !crate::resize::resize_pid(pid, rows, cols) {
                return Err(ApiError::Conflict(format!(
                    "cannot resize container {}: its terminal is not open yet",
                    c.id
                )));
            }
        }
    }
    Ok(http::with_headers(200, "", http::empty()))
}

/// `POST /containers/{id}/update`: Docker's `UpdateConfig` (resources and restart policy;
/// zeros and empty strings leave a setting as it is) through the engine's `update`, the call
/// `berth update` makes. 200 `{"Warnings": […]}`; 400 for values out of range, conflicts, or
/// settings berth cannot change on a container.
pub async fn update(app: &Arc<App>, id: String, mut r: Req) -> Result<Resp> {
    let b: bollard_stubs::models::ContainerUpdateBody = read_json(&mut r.inner).await?;
    let req = update_request(&b)?;
    let warnings = app
        .blocking(move |store| {
            let c = find(store, &id)?;
            Ok(berth_engine::ops::update(store, &c, &req)?)
        })
        .await?;
    Ok(http::json(200, &json!({"Warnings": warnings})))
}

/// The engine's request for an `UpdateConfig` body. Errors name the field berth cannot
/// change.
fn update_request(
    b: &bollard_stubs::models::ContainerUpdateBody,
) -> Result<berth_engine::ops::UpdateRequest> {
    let refuse = |field: &str| {
        Err(ApiError::BadParameter(format!(
            "{field} cannot be changed by update in berth: recreate the container with it"
        )))
    };
    for (f, v) in [
        ("Devices", b.devices.as_ref().map(Vec::len)),
        ("Ulimits", b.ulimits.as_ref().map(Vec::len)),
        (
            "BlkioWeightDevice",
            b.blkio_weight_device.as_ref().map(Vec::len),
        ),
        (
            "BlkioDeviceReadBps",
            b.blkio_device_read_bps.as_ref().map(Vec::len),
        ),
        (
            "BlkioDeviceWriteBps",
            b.blkio_device_write_bps.as_ref().map(Vec::len),
        ),
        (
            "BlkioDeviceReadIOps",
            b.blkio_device_read_iops.as_ref().map(Vec::len),
        ),
        (
            "BlkioDeviceWriteIOps",
            b.blkio_device_write_iops.as_ref().map(Vec::len),
        ),
    ] {
        if v.unwrap_or(0) > 0 {
            return refuse(f);
        }
    }
    if b.oom_kill_disable == Some(true) {
        return refuse("OomKillDisable");
    }
    if b.memory_swappiness.is_some_and(|s| s >= 0) {
        return refuse("MemorySwappiness");
    }
    if b.cgroup_parent.as_deref().is_some_and(|p| !p.is_empty()) {
        return refuse("CgroupParent");
    }
    if b.cpu_realtime_period.unwrap_or(0) != 0 || b.cpu_realtime_runtime.unwrap_or(0) != 0 {
        return refuse("CpuRealtimePeriod/CpuRealtimeRuntime");
    }
    let restart = match &b.restart_policy {
        Some(rp) => match rp.name {
            None | Some(bollard_stubs::models::RestartPolicyNameEnum::EMPTY) => None,
            Some(n) => {
                let text = match (n, rp.maximum_retry_count.filter(|c| *c > 0)) {
                    (bollard_stubs::models::RestartPolicyNameEnum::ON_FAILURE, Some(c)) => {
                        format!("on-failure:{c}")
                    }
                    (n, _) => n.to_string(),
                };
                Some(
                    berth_engine::config::RestartPolicy::parse(&text)
                        .map_err(|e| ApiError::BadParameter(format!("RestartPolicy: {e}")))?,
                )
            }
        },
        None => None,
    };
    Ok(berth_engine::ops::UpdateRequest {
        memory: b.memory,
        memory_swap: b.memory_swap,
        memory_reservation: b.memory_reservation,
        kernel_memory: None,
        nano_cpus: b.nano_cpus,
        cpu_shares: b.cpu_shares,
        cpu_period: b.cpu_period,
        cpu_quota: b.cpu_quota,
        cpuset_cpus: b.cpuset_cpus.clone().filter(|s| !s.is_empty()),
        cpuset_mems: b.cpuset_mems.clone().filter(|s| !s.is_empty()),
        pids_limit: b.pids_limit,
        blkio_weight: b.blkio_weight.filter(|w| *w != 0).map(i64::from),
        restart,
    })
}
