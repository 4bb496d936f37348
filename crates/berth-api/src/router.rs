//! Request routing: version prefixes (`/v1.50/…` or none), then method and path segments.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request};

use crate::http::{self, decode, Query, Resp};
use crate::server::App;
use crate::{containers, exec, images, networks, system, volumes, ApiError, MIN_API_VERSION};

/// A request split for the handlers.
pub(crate) struct Req {
    /// Percent-decoded path segments after the version prefix.
    pub segs: Vec<String>,
    /// The path after the version prefix, decoded (image names keep their slashes).
    pub path: String,
    /// The query string.
    pub query: Query,
    /// The request (body, headers, upgrade).
    pub inner: Request<Incoming>,
}

/// Split `/v1.44/containers/json` into the version (`1.44`) and the rest.
fn strip_version(path: &str) -> (Option<(u32, u32)>, &str) {
    let Some(rest) = path.strip_prefix("/v") else {
        return (None, path);
    };
    let (ver, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let Some((maj, min)) = ver.split_once('.') else {
        return (None, path);
    };
    match (maj.parse::<u32>(), min.parse::<u32>()) {
        (Ok(a), Ok(b)) => (Some((a, b)), tail),
        _ => (None, path),
    }
}

/// Route one request; every failure becomes Docker's JSON error.
pub(crate) async fn route(app: Arc<App>, req: Request<Incoming>) -> Resp {
    let raw_path = req.uri().path().to_string();
    let (ver, path) = strip_version(&raw_path);
    if let Some((maj, min)) = ver {
        let (mmaj, mmin) = MIN_API_VERSION
            .split_once('.')
            .map(|(a, b)| (a.parse().unwrap_or(1), b.parse().unwrap_or(24)))
            .unwrap_or((1, 24));
        if (maj, min) < (mmaj, mmin) {
            return http::error(&ApiError::BadParameter(format!(
                "client version {maj}.{min} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
            )));
        }
    }
    let query = Query::parse(req.uri().query());
    let path = decode_path(path);
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let method = req.method().clone();
    tracing::debug!("{method} {raw_path}");
    let r = Req {
        segs,
        path,
        query,
        inner: req,
    };
    let t0 = std::time::Instant::now();
    match dispatch(&app, &method, r).await {
        Ok(resp) => {
            tracing::debug!(
                "{method} {raw_path}: {} in {:?}",
                resp.status().as_u16(),
                t0.elapsed()
            );
            resp
        }
        Err(e) => {
            tracing::debug!(
                "{method} {raw_path}: {} {e} in {:?}",
                e.status(),
                t0.elapsed()
            );
            http::error(&e)
        }
    }
}

/// Path segments are decoded one by one (an encoded `/` would otherwise split a segment).
fn decode_path(p: &str) -> String {
    if p.contains('%') {
        decode(&p.replace('+', "%2B"))
    } else {
        p.to_string()
    }
}

async fn dispatch(app: &Arc<App>, method: &Method, r: Req) -> Result<Resp, ApiError> {
    let s: Vec<&str> = r.segs.iter().map(String::as_str).collect();
    let m = method.as_str();
    match (m, s.as_slice()) {
        ("GET" | "HEAD", ["_ping"]) => Ok(system::ping(m == "HEAD")),
        ("GET", ["version"]) => system::version(app).await,
        ("GET", ["info"]) => system::info(app).await,
        ("GET", ["plugins"]) => Ok(http::json(200, &serde_json::json!([]))),
        ("GET", ["system", "df"]) => system::df(app).await,
        ("POST", ["auth"]) => crate::auth::login(app, r).await,
        ("GET", ["events"]) => crate::events::events(app, &r.query).await,

        ("POST", ["build"]) => crate::build::build(app, r).await,

        // ---- containers ----
        ("POST", ["containers", "create"]) => containers::create(app, r).await,
        ("GET", ["containers", "json"]) => containers::list(app, r).await,
        ("POST", ["containers", "prune"]) => containers::prune(app, r).await,
        ("GET", ["containers", id, "json"]) => containers::inspect(app, id.to_string()).await,
        ("POST", ["containers", id, "start"]) => containers::start(app, id.to_string()).await,
        ("POST", ["containers", id, "stop"]) => {
            containers::stop(app, id.to_string(), &r.query).await
        }
        ("POST", ["containers", id, "restart"]) => {
            containers::restart(app, id.to_string(), &r.query).await
        }
        ("POST", ["containers", id, "kill"]) => {
            containers::kill(app, id.to_string(), &r.query).await
        }
        ("POST", ["containers", id, "wait"]) => {
            crate::wait::wait(app, id.to_string(), &r.query).await
        }
        ("GET", ["containers", id, "logs"]) => {
            crate::attach::logs(app, id.to_string(), &r.query).await
        }
        ("POST", ["containers", id, "attach"]) => {
            let id = id.to_string();
            crate::attach::attach(app, id, r).await
        }
        ("POST", ["containers", id, "rename"]) => {
            containers::rename(app, id.to_string(), &r.query).await
        }
        ("POST", ["containers", id, "pause"]) => containers::pause(app, id.to_string(), true).await,
        ("POST", ["containers", id, "unpause"]) => {
            containers::pause(app, id.to_string(), false).await
        }
        ("GET", ["containers", id, "changes"]) => containers::changes(app, id.to_string()).await,
        ("GET", ["containers", id, "top"]) => containers::top(app, id.to_string(), &r.query).await,
        ("POST", ["containers", id, "resize"]) => {
            containers::resize(app, id.to_string(), &r.query).await
        }
        ("POST", ["containers", id, "update"]) => {
            let id = id.to_string();
            crate::update::update(app, id, r).await
        }
        ("GET", ["containers", id, "stats"]) => {
            crate::stats::stats(app, id.to_string(), &r.query).await
        }
        ("HEAD", ["containers", id, "archive"]) => {
            crate::archive::head(app, id.to_string(), &r.query).await
        }
        ("GET", ["containers", id, "archive"]) => {
            crate::archive::get(app, id.to_string(), &r.query).await
        }
        ("PUT", ["containers", id, "archive"]) => {
            let id = id.to_string();
            crate::archive::put(app, id, r).await
        }
        ("GET", ["containers", id, "export"]) => crate::archive::export(app, id.to_string()).await,
        ("DELETE", ["containers", id]) => containers::remove(app, id.to_string(), &r.query).await,
        ("POST", ["containers", id, "exec"]) => {
            let id = id.to_string();
            exec::create(app, id, r).await
        }

        // ---- exec ----
        ("POST", ["exec", id, "start"]) => {
            let id = id.to_string();
            exec::start(app, id, r).await
        }
        ("POST", ["exec", id, "resize"]) => exec::resize(app, id, &r.query).await,
        ("GET", ["exec", id, "json"]) => exec::inspect(app, id),

        // ---- images (names may contain slashes) ----
        ("GET", ["images", "json"]) => images::list(app, r).await,
        ("POST", ["images", "create"]) => images::create(app, r).await,
        ("POST", ["images", "load"]) => images::load(app, r).await,
        ("GET", ["images", "get"]) => images::get(app, r).await,
        ("POST", ["images", "prune"]) => images::prune(app, r).await,
        ("GET", ["images", "search"]) => Err(ApiError::NotImplemented(
            "image search is not supported by berth: search the registry's web page or use its API"
                .into(),
        )),
        ("GET", ["images", .., "json"]) => {
            let name = image_name(&r.path, "/json");
            images::inspect(app, name).await
        }
        ("GET", ["images", .., "history"]) => {
            let name = image_name(&r.path, "/history");
            images::history(app, name).await
        }
        ("GET", ["images", .., "get"]) => {
            let name = image_name(&r.path, "/get");
            images::get_one(app, name).await
        }
        ("POST", ["images", .., "push"]) => {
            let name = image_name(&r.path, "/push");
            images::push(app, name, r).await
        }
        ("POST", ["commit"]) => images::commit(app, &r.query).await,
        ("POST", ["images", .., "tag"]) => {
            let name = image_name(&r.path, "/tag");
            images::tag(app, name, &r.query).await
        }
        ("DELETE", ["images", _, ..]) => {
            let name = image_name(&r.path, "");
            images::remove(app, name, &r.query).await
        }

        // ---- networks ----
        ("GET", ["networks"]) => networks::list(app, r).await,
        ("POST", ["networks", "create"]) => networks::create(app, r).await,
        ("POST", ["networks", "prune"]) => networks::prune(app).await,
        ("GET", ["networks", id]) => networks::inspect(app, id.to_string()).await,
        ("DELETE", ["networks", id]) => networks::remove(app, id.to_string()).await,
        ("POST", ["networks", id, verb @ ("connect" | "disconnect")]) => {
            let (id, on) = (id.to_string(), *verb == "connect");
            networks::connect(app, id, r, on).await
        }

        // ---- volumes ----
        ("GET", ["volumes"]) => volumes::list(app, r).await,
        ("POST", ["volumes", "create"]) => volumes::create(app, r).await,
        ("POST", ["volumes", "prune"]) => volumes::prune(app, r).await,
        ("GET", ["volumes", name]) => volumes::inspect(app, name.to_string()).await,
        ("DELETE", ["volumes", name]) => volumes::remove(app, name.to_string(), &r.query).await,

        // ---- unsupported families ----
        (_, ["swarm" | "nodes" | "services" | "tasks" | "secrets" | "configs", ..]) => {
            Err(ApiError::NotImplemented(
                "this node is not a swarm manager: berth does not support swarm mode".into(),
            ))
        }
        (_, ["session"] | ["grpc"]) => Err(ApiError::NotImplemented(
            "BuildKit sessions are not supported by berth: build with DOCKER_BUILDKIT=0".into(),
        )),
        (_, ["plugins", ..]) => Err(ApiError::NotImplemented(
            "plugins are not supported by berth".into(),
        )),
        _ => Err(ApiError::NotFound(format!(
            "page not found: {m} {} is not an endpoint berth serves",
            r.path
        ))),
    }
}

/// The image name in `/images/NAME/json` (`NAME` may hold slashes).
fn image_name(path: &str, suffix: &str) -> String {
    let p = path.strip_prefix("/images/").unwrap_or(path);
    p.strip_suffix(suffix).unwrap_or(p).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_stripped() {
        assert_eq!(
            strip_version("/v1.44/containers/json"),
            (Some((1, 44)), "/containers/json")
        );
        assert_eq!(strip_version("/_ping"), (None, "/_ping"));
        assert_eq!(strip_version("/volumes/x"), (None, "/volumes/x"));
        assert_eq!(image_name("/images/a/b:1/json", "/json"), "a/b:1");
        assert_eq!(image_name("/images/busybox", ""), "busybox");
    }
}
