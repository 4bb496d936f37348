//! Docker's container list: one `ContainerSummary` (the entry of `GET /containers/json`) per
//! container, built here for both front ends. The API serves it as it is; `ps` formats its
//! columns from it as the docker CLI does ([`crate::view::ps_row`]), so `berth ps` and
//! `docker ps` against berth's socket print the same rows.

use std::collections::{HashMap, HashSet};

use berth_net::NetworkMode;
use berth_store::Store;
use serde_json::{json, Map, Value};

use crate::state::{Container, State};
use crate::Result;

/// What list entries need from other tables, read once for the whole list instead of once
/// per container: health states (one query), network endpoints (two queries), which
/// running containers are paused (the freezer state of each running container, the only
/// per-container read) and the exposed ports of their images (one read per image).
#[derive(Debug, Default, Clone)]
pub struct ListContext {
    health: HashMap<String, String>,
    networks: HashMap<String, Map<String, Value>>,
    paused: HashSet<String>,
    /// Image id → its `ExposedPorts` (`80/tcp`), for running containers on networks.
    image_exposed: HashMap<String, Vec<String>>,
    /// Network name as shown (`bridge`, `host`, `none`, user networks) → its id, for the
    /// entries of networks a container has no endpoint in; read only when a row needs it.
    network_ids: HashMap<String, String>,
}

impl ListContext {
    /// Read what the entries of `rows` need. Errors: the metadata database.
    pub fn load(store: &Store, rows: &[Container]) -> Result<ListContext> {
        Ok(ListContext {
            health: crate::health::all_status(store)?,
            networks: berth_net::networks_of_all(store)?,
            paused: rows
                .iter()
                .filter(|c| crate::ops::is_paused(c))
                .map(|c| c.id.clone())
                .collect(),
            image_exposed: image_exposed(store, rows),
            network_ids: network_ids(store, rows),
        })
    }

    /// The health status of `c` (`starting`, `healthy`, `unhealthy`); `None` without a
    /// health check.
    pub fn health_of(&self, c: &Container) -> Option<&str> {
        c.config
            .healthcheck
            .as_ref()
            .and(self.health.get(&c.id).map(String::as_str))
    }

    /// Whether `c` is running with its cgroup frozen.
    pub fn is_paused(&self, c: &Container) -> bool {
        self.paused.contains(&c.id)
    }

    /// Ids of the paused containers (for [`crate::view::FilterContext::paused`]).
    pub fn paused_ids(&self) -> Vec<String> {
        self.paused.iter().cloned().collect()
    }
}

/// The exposed ports of the images of `rows`' running containers on networks (those whose
/// list entry shows ports); an image that cannot be read exposes none.
fn image_exposed(store: &Store, rows: &[Container]) -> HashMap<String, Vec<String>> {
    let mut out = HashMap::new();
    let wanted: Vec<&Container> = rows
        .iter()
        .filter(|c| c.state == State::Running && shows_ports(c))
        .collect();
    if wanted.is_empty() {
        return out;
    }
    let Ok(images) = berth_image::ImageStore::open(store) else {
        return out;
    };
    for c in wanted {
        if out.contains_key(c.image_id.as_str()) {
            continue;
        }
        let ports = images
            .get(&c.image_id)
            .ok()
            .and_then(|i| i.config.exposed_ports)
            .map(|m| m.into_keys().collect())
            .unwrap_or_default();
        out.insert(c.image_id.as_str().to_string(), ports);
    }
    out
}

/// Whether `c`'s list entry carries ports: Docker's only come from its network sandbox,
/// which `host`, `none` and `container:` modes do not give it.
fn shows_ports(c: &Container) -> bool {
    matches!(c.config.network, NetworkMode::Networks(_))
}

/// `Ports` of a running container's list entry: each publication (`IP`, `PublicPort`,
/// `PrivatePort`, `Type`), then each exposed port (the image's and `--expose`) that is not
/// published, as `PrivatePort` and `Type` only. Empty while it does not run.
fn ports(c: &Container, ctx: &ListContext) -> Vec<Value> {
    if c.state != State::Running {
        return Vec::new();
    }
    let published = c.net.as_ref().map_or(&[][..], |n| n.ports.as_slice());
    let mut out: Vec<Value> = published
        .iter()
        .map(|p| {
            json!({"IP": p.host_ip, "PrivatePort": p.container_port,
                   "PublicPort": p.host_port, "Type": p.protocol})
        })
        .collect();
    if !shows_ports(c) {
        return out;
    }
    let image = ctx
        .image_exposed
        .get(c.image_id.as_str())
        .map_or(&[][..], Vec::as_slice);
    let mut seen: HashSet<(u64, String)> = published
        .iter()
        .map(|p| (u64::from(p.container_port), p.protocol.to_lowercase()))
        .collect();
    for e in image.iter().chain(c.config.extra.expose.iter()) {
        let (port, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
        let Ok(port) = port.parse::<u64>() else {
            continue;
        };
        if seen.insert((port, proto.to_lowercase())) {
            out.push(json!({"PrivatePort": port, "Type": proto}));
        }
    }
    out
}

/// Sizes of a container for the list's `SizeRw` and `SizeRootFs` (`ps -s`, `size=1`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Bytes written to the container's own layer.
    pub rw: u64,
    /// Bytes of its image.
    pub image: u64,
}

/// Shown network name → id, when some row of `rows` may have a network without an endpoint
/// (not running, or `host`/`none`); empty otherwise (no query). Best effort.
fn network_ids(store: &Store, rows: &[Container]) -> HashMap<String, String> {
    let needed = rows.iter().any(|c| {
        c.state != State::Running
            || matches!(c.config.network, NetworkMode::Host | NetworkMode::None)
    });
    if !needed {
        return HashMap::new();
    }
    let mut ids: HashMap<String, String> = berth_net::list_networks(store)
        .unwrap_or_default()
        .into_iter()
        .map(|n| (berth_net::shown_name(&n.name).to_string(), n.id))
        .collect();
    for p in ["host", "none"] {
        let mode_used = rows.iter().any(|c| match c.config.network {
            NetworkMode::Host => p == "host",
            NetworkMode::None => p == "none",
            _ => false,
        });
        if !mode_used {
            continue;
        }
        if let Ok(l) = berth_net::find_shown(store, p) {
            ids.insert(p.to_string(), l.id().to_string());
        }
    }
    ids
}

/// An endpoint entry of a network the container is configured for but has no endpoint in
/// (stopped, `none`, `host`): Docker lists it with the network's id and empty addresses.
fn unattached_endpoint(network_id: &str) -> Value {
    json!({
        "NetworkID": network_id, "EndpointID": "", "Gateway": "", "IPAddress": "",
        "IPPrefixLen": 0, "MacAddress": "",
    })
}

/// `NetworkSettings.Networks` of `c`: its endpoints, plus the networks of its configuration
/// that have none (a container sharing another's namespace lists none, as in Docker).
fn networks(c: &Container, ctx: &ListContext) -> Map<String, Value> {
    let mut nets = ctx.networks.get(&c.id).cloned().unwrap_or_default();
    let configured: Vec<&str> = match &c.config.network {
        NetworkMode::None => vec!["none"],
        NetworkMode::Host => vec!["host"],
        NetworkMode::Container(_) => Vec::new(),
        NetworkMode::Networks(n) => n
            .iter()
            .map(|a| berth_net::shown_name(&a.network))
            .collect(),
    };
    for n in configured {
        nets.entry(n.to_string()).or_insert_with(|| {
            unattached_endpoint(ctx.network_ids.get(n).map_or("", String::as_str))
        });
    }
    nets
}

/// `HostConfig.NetworkMode` as Docker reports it in the list.
fn network_mode(c: &Container) -> String {
    match &c.config.network {
        NetworkMode::None => "none".into(),
        NetworkMode::Host => "host".into(),
        NetworkMode::Container(id) => format!("container:{id}"),
        NetworkMode::Networks(n) => n
            .first()
            .map(|a| a.network.clone())
            .unwrap_or_else(|| "bridge".into()),
    }
}

/// Docker's `ContainerSummary` of `c`: `Id`, `Names` (`/name`), `Image`, `ImageID`,
/// `Command`, `Created` (Unix seconds), `Ports` (published and exposed, while running), `Labels`,
/// `State` (`paused` for a frozen running container), `Status` (`Up 5 seconds
/// (healthy)`), `HostConfig.NetworkMode`, `NetworkSettings.Networks`, `Mounts`, and with
/// `sizes` `SizeRw` and `SizeRootFs` (bytes, the latter the layer plus the image).
pub fn summary(store: &Store, c: &Container, ctx: &ListContext, sizes: Option<Sizes>) -> Value {
    let paused = ctx.is_paused(c);
    let ports = ports(c, ctx);
    let mut v = json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image_name,
        "ImageID": c.image_id.as_str(),
        "Command": c.config.args.join(" "),
        "Created": c.created,
        "Ports": ports,
        "Labels": c.config.labels,
        "State": crate::view::state_text(c, paused),
        "Status": crate::view::status_text_paused(c, ctx.health_of(c), paused),
        "HostConfig": {"NetworkMode": network_mode(c)},
        "NetworkSettings": {"Networks": networks(c, ctx)},
        "Mounts": crate::volumes::mounts_json(store, &c.config),
    });
    if let (Some(s), Some(o)) = (sizes, v.as_object_mut()) {
        o.insert("SizeRw".into(), json!(s.rw));
        o.insert("SizeRootFs".into(), json!(s.rw.saturating_add(s.image)));
    }
    v
}
