//! Network endpoints: list, inspect, create, delete, prune.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use berth_engine::ops;

use crate::http::{self, Resp};
use crate::router::Req;
use crate::server::App;
use crate::{ApiError, Result};

/// `GET /networks?filters=`: Docker's network list (`bridge`, `host`, `none` and the
/// user-defined ones) with `network ls` filters ([`berth_net::filter_shown`]).
pub async fn list(app: &Arc<App>, r: Req) -> Result<Resp> {
    let filters = r.query.filters()?;
    let v = app
        .blocking(move |store| {
            berth_net::filter_shown(store, &filters)?
                .iter()
                .map(|n| Ok(berth_net::network_doc(store, n)?))
                .collect::<Result<Vec<_>>>()
        })
        .await?;
    Ok(http::json(200, &v))
}

/// `GET /networks/{id}`.
pub async fn inspect(app: &Arc<App>, id: String) -> Result<Resp> {
    let doc = app
        .blocking(move |store| Ok(berth_net::inspect_network(store, &id)?))
        .await?;
    Ok(http::json(200, &doc))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfig {
    subnet: Option<String>,
    gateway: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    config: Option<Vec<IpamConfig>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: Option<String>,
    internal: bool,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    check_duplicate: Option<bool>,
    labels: Option<std::collections::HashMap<String, String>>,
}

/// `POST /networks/create`: 201 `{"Id": …, "Warning": ""}`; 409 when the name is taken.
pub async fn create(app: &Arc<App>, mut r: Req) -> Result<Resp> {
    let b: CreateBody = crate::containers::read_json(&mut r.inner).await?;
    if b.name.is_empty() {
        return Err(ApiError::BadParameter(
            "Name: a network name is required".into(),
        ));
    }
    let _ = &b.check_duplicate;
    let ipam = b.ipam.and_then(|i| i.config).unwrap_or_default();
    let first = ipam.into_iter().next().unwrap_or_default();
    let opts = berth_net::CreateOptions {
        name: b.name.clone(),
        subnet: first.subnet,
        gateway: first.gateway,
        internal: b.internal,
        driver: b.driver.unwrap_or_default(),
        labels: b.labels.unwrap_or_default().into_iter().collect(),
    };
    let n = app
        .blocking(move |store| {
            // `host` and `none`: the library's refusal (403), as Docker answers.
            if berth_net::Predefined::by_name(&opts.name).is_none()
                && berth_net::inspect_network(store, &opts.name).is_ok()
            {
                return Err(ApiError::Conflict(format!(
                    "network with name {} already exists",
                    opts.name
                )));
            }
            Ok(berth_net::create_network(store, &opts)?)
        })
        .await?;
    Ok(http::json(201, &json!({"Id": n.id, "Warning": ""})))
}

/// `DELETE /networks/{id}`: 204.
pub async fn remove(app: &Arc<App>, id: String) -> Result<Resp> {
    app.blocking(move |store| {
        berth_net::remove_network(store, &id)?;
        Ok(())
    })
    .await?;
    Ok(http::no_content())
}

/// `POST /networks/prune`.
pub async fn prune(app: &Arc<App>) -> Result<Resp> {
    let v = app
        .blocking(|store| Ok(berth_net::prune_networks(store)?))
        .await?;
    Ok(http::json(200, &json!({"NetworksDeleted": v})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct EndpointConfig {
    aliases: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: String,
    endpoint_config: Option<EndpointConfig>,
    force: bool,
}

/// `POST /networks/{id}/connect` (`{"Container": …, "EndpointConfig": {"Aliases": […]}}`)
/// and `/disconnect` (`{"Container": …, "Force": …}`): 200; 404 for an unknown container
/// or network; the same library calls as `berth network connect|disconnect`
/// (`ops::connect_network`, `ops::disconnect_network`), for running and stopped containers.
pub async fn connect(app: &Arc<App>, net: String, mut r: Req, on: bool) -> Result<Resp> {
    let b: ConnectBody = crate::containers::read_json(&mut r.inner).await?;
    if b.container.is_empty() {
        return Err(ApiError::BadParameter(
            "Container: give the container to connect".into(),
        ));
    }
    app.blocking(move |store| {
        let c = crate::containers::find(store, &b.container)?;
        let res = if on {
            let att = berth_net::Attachment {
                network: net,
                aliases: b
                    .endpoint_config
                    .and_then(|e| e.aliases)
                    .unwrap_or_default(),
            };
            ops::connect_network(store, &c, &att)
        } else {
            ops::disconnect_network(store, &c, &net, b.force)
        };
        res.map_err(|e| match e {
            berth_engine::EngineError::Net(berth_net::NetError::Other(m)) => ApiError::Conflict(m),
            e => e.into(),
        })
    })
    .await?;
    Ok(http::with_headers(200, "", http::empty()))
}
