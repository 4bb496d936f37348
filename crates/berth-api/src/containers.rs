//! Container endpoints: create, list, inspect, start, stop, restart, kill, delete, prune,
//! rename, pause, changes, top, resize (wait, logs and attach, update have their own
//! modules).

use std::sync::Arc;

use http_body_util::BodyExt;
use serde_json::json;

use berth_engine::ops::{self, Attach, CreateRequest};
use berth_engine::state::{self, Container, State};
use berth_store::Store;

use crate::http::{self, Query, Resp};
use crate::router::Req;
use crate::server::App;
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

/// Look a container up by id, name or unique id prefix (404 with Docker's wording). A row
/// that says active while its monitor is gone (killed, rebooted) is reconciled first, so
/// the answer is never stale; the other rows are not read.
pub fn find(store: &Store, name: &str) -> Result<Container> {
    let c = state::lookup(store, name)?;
    if c.state.is_active() && !state::monitor_alive(&c) {
        ops::reconcile(store)?;
        return state::lookup(store, &c.id).map_err(ApiError::from);
    }
    Ok(c)
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

/// `GET /containers/json?all=&limit=&size=&filters=`: the engine's list entries
/// (`berth_engine::list::summary`, the rows `ps` formats) with the filters of `ps`.
pub async fn list(app: &Arc<App>, r: Req) -> Result<Resp> {
    use berth_engine::{list, view};
    let all = r.query.bool("all", false);
    let limit = r.query.int("limit")?;
    let size = r.query.bool("size", false);
    let items: Vec<String> = r
        .query
        .filters()?
        .into_iter()
        .flat_map(|(k, vs)| vs.into_iter().map(move |v| format!("{k}={v}")))
        .collect();
    let filters =
        view::PsFilter::parse(&items).map_err(|e| ApiError::BadParameter(e.to_string()))?;
    let v = app
        .blocking(move |store| {
            let rows = ops::reconciled_rows(store)?;
            let lctx = list::ListContext::load(store, &rows)?;
            let mut fctx = view::FilterContext {
                order: rows.iter().map(|c| c.id.clone()).collect(),
                paused: lctx.paused_ids(),
                ..Default::default()
            };
            for (k, v) in filters.references() {
                let c = state::lookup(store, v)?;
                if k == "before" {
                    fctx.before = Some(c);
                } else {
                    fctx.since = Some(c);
                }
            }
            let ancestors: Vec<&str> = items
                .iter()
                .filter_map(|f| f.strip_prefix("ancestor="))
                .collect();
            let images = (size || !ancestors.is_empty())
                .then(|| berth_image::ImageStore::open(store).ok())
                .flatten();
            if let Some(is) = &images {
                for v in ancestors {
                    if let Ok(img) = is.resolve(v) {
                        fctx.ancestor_ids.push(img.id.to_string());
                    }
                }
            }
            let image_sizes: std::collections::HashMap<String, u64> = match (&images, size) {
                (Some(is), true) => is
                    .list()
                    .map(|l| l.into_iter().map(|i| (i.id.to_string(), i.size)).collect())
                    .unwrap_or_default(),
                _ => Default::default(),
            };
            let show_all = all || filters.implies_all();
            let max = limit
                .filter(|l| *l > 0)
                .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
            let out: Vec<serde_json::Value> = rows
                .iter()
                .filter(|c| show_all || c.state.is_active())
                .filter(|c| filters.matches(c, lctx.health_of(c), &fctx))
                .take(max)
                .map(|c| {
                    let sizes = size.then(|| list::Sizes {
                        rw: berth_engine::rootfs::upper_size(store, &c.id),
                        image: image_sizes.get(c.image_id.as_str()).copied().unwrap_or(0),
                    });
                    list::summary(store, c, &lctx, sizes)
                })
                .collect();
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
        let attached = pending.is_some();
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
            Ok(started) => {
                app2.watch_monitor(store, &c.id);
                if attached {
                    // The monitor reports the exit here: waiters learn of it at once.
                    app2.ring_on_exit(&c.id, started.sync);
                }
                app2.ring(&c.id);
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
        app2.ring(&c.id);
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
    let app2 = app.clone();
    app.blocking(move |store| {
        let c = find(store, &id)?;
        if c.state.is_active() && state::monitor_alive(&c) && !force {
            return Err(ApiError::Conflict(format!(
                "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                c.name
            )));
        }
        ops::remove(store, &c, force)?;
        app2.ring(&c.id);
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
