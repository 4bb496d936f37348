//! `/_ping`, `/version`, `/info`, `/system/df`.

use std::sync::Arc;

use serde_json::json;

use crate::http::{self, Resp};
use crate::server::App;
use crate::Result;

/// `GET|HEAD /_ping`: `OK` with the headers clients negotiate with (`Api-Version`,
/// `Builder-Version: 1`: the classic builder, since berth has no BuildKit session endpoint).
pub fn ping(head: bool) -> Resp {
    let mut r = http::with_headers(
        200,
        "text/plain; charset=utf-8",
        if head {
            http::empty()
        } else {
            http::full("OK")
        },
    );
    let h = r.headers_mut();
    h.insert(
        "Builder-Version",
        hyper::header::HeaderValue::from_static("1"),
    );
    h.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(
        hyper::header::PRAGMA,
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    r
}

/// `GET /version`: the `Server` part of `berth version`'s document.
pub async fn version(_app: &Arc<App>) -> Result<Resp> {
    let doc = berth_engine::info::version()["Server"].clone();
    Ok(http::json(200, &doc))
}

/// `GET /info`: `berth info`'s document, with the fields only a daemon reports (swarm,
/// registry configuration, listener counts) in their inactive or empty form.
pub async fn info(app: &Arc<App>) -> Result<Resp> {
    let root = app.root.clone();
    let mut doc = app
        .blocking(move |store| Ok(berth_engine::info::info(store, &root)?))
        .await?;
    doc["NFd"] = json!(0);
    doc["NGoroutines"] = json!(0);
    doc["NEventsListener"] = json!(0);
    doc["RegistryConfig"] =
        json!({"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": []});
    doc["Swarm"] = json!({"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null});
    Ok(http::json(200, &doc))
}

/// `GET /system/df`: images, containers, volumes and build cache with their sizes, from the
/// same `berth_system::disk_usage` that `berth system df` prints (the CLI and the socket agree).
pub async fn df(app: &Arc<App>) -> Result<Resp> {
    let doc = app
        .blocking(|store| {
            berth_system::disk_usage(store)
                .map(|u| u.api_json())
                .map_err(|e| crate::ApiError::Internal(e.to_string()))
        })
        .await?;
    Ok(http::json(200, &doc))
}
