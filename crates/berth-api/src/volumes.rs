//! Volume endpoints: list, inspect, create, delete, prune.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use berth_store::Store;
use berth_volume::{CreateVolume, PruneFilter, Volume, VolumeStore};

use crate::http::{self, Query, Resp};
use crate::router::Req;
use crate::server::App;
use crate::Result;

/// Docker's volume document.
pub fn volume_json(_store: &Store, v: &Volume) -> serde_json::Value {
    v.inspect_json()
}

/// `GET /volumes?filters=` (`name`, `label`, `dangling`).
pub async fn list(app: &Arc<App>, r: Req) -> Result<Resp> {
    let filters = r.query.filters()?;
    let v = app
        .blocking(move |store| {
            let vs = VolumeStore::open(store)?;
            let in_use = vs.in_use()?;
            let mut out = Vec::new();
            for v in vs.list()? {
                let ok = filters.iter().all(|(k, vals)| {
                    let one = |x: &String| match k.as_str() {
                        "name" => v.name.contains(x.as_str()),
                        "label" => match x.split_once('=') {
                            Some((a, b)) => v.labels.get(a).map(String::as_str) == Some(b),
                            None => v.labels.contains_key(x.as_str()),
                        },
                        "dangling" => (x == "true" || x == "1") != in_use.contains(&v.name),
                        "driver" => v.driver == *x,
                        _ => true,
                    };
                    // Docker's rule: every `label` value must match; others are alternatives.
                    vals.is_empty()
                        || if k == "label" {
                            vals.iter().all(one)
                        } else {
                            vals.iter().any(one)
                        }
                });
                if ok {
                    out.push(volume_json(store, &v));
                }
            }
            Ok(json!({"Volumes": out, "Warnings": []}))
        })
        .await?;
    Ok(http::json(200, &v))
}

/// `GET /volumes/{name}`.
pub async fn inspect(app: &Arc<App>, name: String) -> Result<Resp> {
    let doc = app
        .blocking(move |store| {
            let v = VolumeStore::open(store)?.get(&name)?;
            Ok(volume_json(store, &v))
        })
        .await?;
    Ok(http::json(200, &doc))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: Option<String>,
    driver: Option<String>,
    driver_opts: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

/// `POST /volumes/create`: 201 with the volume (an existing volume of that name is returned
/// as it is, as Docker does).
pub async fn create(app: &Arc<App>, mut r: Req) -> Result<Resp> {
    let b: CreateBody = crate::containers::read_json(&mut r.inner).await?;
    let doc = app
        .blocking(move |store| {
            let vs = VolumeStore::open(store)?;
            let (v, _) = vs.create(&CreateVolume {
                name: b.name.filter(|n| !n.is_empty()),
                driver: b.driver.filter(|d| !d.is_empty()),
                options: b.driver_opts.unwrap_or_default(),
                labels: b.labels.unwrap_or_default(),
            })?;
            Ok(volume_json(store, &v))
        })
        .await?;
    Ok(http::json(201, &doc))
}

/// `DELETE /volumes/{name}?force=`: 204; 409 when a container uses it.
pub async fn remove(app: &Arc<App>, name: String, q: &Query) -> Result<Resp> {
    let force = q.bool("force", false);
    app.blocking(move |store| {
        VolumeStore::open(store)?.remove(&name, force)?;
        Ok(())
    })
    .await?;
    Ok(http::no_content())
}

/// `POST /volumes/prune?filters=` (`all=true` also removes named volumes, `label`).
pub async fn prune(app: &Arc<App>, r: Req) -> Result<Resp> {
    let mut f = PruneFilter::default();
    for (k, vals) in r.query.filters()? {
        for v in vals {
            let kv = |s: &str| match s.split_once('=') {
                Some((a, b)) => (a.to_string(), Some(b.to_string())),
                None => (s.to_string(), None),
            };
            match k.as_str() {
                "all" => f.all = v == "true" || v == "1",
                "label" => f.labels.push(kv(&v)),
                "label!" => f.not_labels.push(kv(&v)),
                _ => {}
            }
        }
    }
    let v = app
        .blocking(move |store| {
            let pruned = VolumeStore::open(store)?.prune(&f)?;
            let bytes: u64 = pruned.iter().map(|p| p.bytes).sum();
            Ok(json!({
                "VolumesDeleted": pruned.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
                "SpaceReclaimed": bytes,
            }))
        })
        .await?;
    Ok(http::json(200, &v))
}
