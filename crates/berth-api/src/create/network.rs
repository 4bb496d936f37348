//! The create body's network settings: `HostConfig.NetworkMode` with
//! `NetworkingConfig.EndpointsConfig` as berth's network mode, and the endpoint's address, MAC,
//! links and exposed ports as `berth run`'s extra settings.

use berth_image::ImageStore;
use berth_net::{Attachment, NetworkMode};
use berth_store::Store;
use bollard_stubs::models::{ContainerCreateBody, HostConfig};

use berth_engine::config as ccfg;

use super::bad;
use crate::{ApiError, Result};

/// `HostConfig.NetworkMode` and `NetworkingConfig.EndpointsConfig` as berth's network mode:
/// bridge (or the user networks compose names in `EndpointsConfig`), none, host,
/// `container:<peer>` or named networks with their aliases.
///
/// Errors: 404 for a missing `container:` peer.
pub(super) fn network_mode(
    store: &Store,
    body: &ContainerCreateBody,
    h: &HostConfig,
) -> Result<NetworkMode> {
    let mode = h.network_mode.clone().unwrap_or_default();
    let endpoints = body
        .networking_config
        .as_ref()
        .and_then(|n| n.endpoints_config.clone())
        .unwrap_or_default();
    let aliases_of = |net: &str| -> Vec<String> {
        endpoints
            .get(net)
            .and_then(|e| e.aliases.clone())
            .unwrap_or_default()
    };
    let network = match mode.as_str() {
        "" | "default" | "bridge" => {
            // compose names its networks in EndpointsConfig with NetworkMode = that network.
            let user: Vec<&String> = endpoints
                .keys()
                .filter(|k| !matches!(k.as_str(), "bridge" | "default"))
                .collect();
            if user.is_empty() {
                NetworkMode::Networks(vec![Attachment {
                    network: "bridge".into(),
                    aliases: vec![],
                }])
            } else {
                NetworkMode::Networks(
                    user.iter()
                        .map(|n| Attachment {
                            network: n.to_string(),
                            aliases: aliases_of(n),
                        })
                        .collect(),
                )
            }
        }
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        m if m.starts_with("container:") => {
            let other = berth_engine::state::lookup(store, &m["container:".len()..])?;
            NetworkMode::Container(other.id)
        }
        m => {
            let mut nets = vec![Attachment {
                network: m.to_string(),
                aliases: aliases_of(m),
            }];
            for (n, e) in &endpoints {
                if n != m {
                    nets.push(Attachment {
                        network: n.clone(),
                        aliases: e.aliases.clone().unwrap_or_default(),
                    });
                }
            }
            NetworkMode::Networks(nets)
        }
    };
    Ok(network)
}

/// `Config.ExposedPorts` (less the image's and the published ones, which `berth run` does
/// not record either), `HostConfig.Links`, the endpoint's requested address and MAC,
/// `HostConfig.ContainerIDFile`: what `--expose`, `--link`, `--ip`, `--mac-address` and
/// `--cidfile` give the CLI's configuration.
pub(super) fn run_extras(
    store: &Store,
    body: &ContainerCreateBody,
    h: &HostConfig,
    network: &NetworkMode,
) -> Result<ccfg::RunExtras> {
    let image_ports: Vec<String> = body
        .image
        .as_deref()
        .and_then(|i| ImageStore::open(store).ok()?.resolve(i).ok())
        .and_then(|i| i.config.exposed_ports.clone())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let published: Vec<&String> = h.port_bindings.iter().flat_map(|m| m.keys()).collect();
    let mut expose: Vec<String> = Vec::new();
    for p in body.exposed_ports.iter().flat_map(|m| m.keys()) {
        let p = if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        };
        if !image_ports.contains(&p) && !published.contains(&&p) && !expose.contains(&p) {
            expose.push(p);
        }
    }
    let mut links = Vec::new();
    for l in h.links.iter().flatten() {
        if !matches!(network, NetworkMode::Networks(_)) {
            return Err(ApiError::BadParameter(
                "HostConfig.Links: links need a bridge or user-defined network (not host, none or container:)".into(),
            ));
        }
        let l = l.trim_start_matches('/');
        let (name, alias) = l.split_once(':').unwrap_or((l, l));
        let alias = alias.rsplit('/').next().unwrap_or(alias);
        let other = berth_engine::state::lookup(store, name).map_err(|e| {
            bad(
                "HostConfig.Links",
                format!("could not get container for {name}: {e}"),
            )
        })?;
        links.push(format!("{}:{alias}", other.name));
    }
    let endpoints = body
        .networking_config
        .as_ref()
        .and_then(|n| n.endpoints_config.as_ref());
    let first_net = match network {
        NetworkMode::Networks(n) => n.first().map(|a| a.network.clone()),
        _ => None,
    };
    let endpoint = first_net
        .as_ref()
        .and_then(|n| endpoints.and_then(|e| e.get(n)));
    let ipv4 = endpoint
        .and_then(|e| e.ipam_config.as_ref())
        .and_then(|i| i.ipv4_address.clone())
        .unwrap_or_default();
    let ipv6 = endpoint
        .and_then(|e| e.ipam_config.as_ref())
        .and_then(|i| i.ipv6_address.clone())
        .unwrap_or_default();
    #[allow(deprecated)]
    let mac = endpoint
        .and_then(|e| e.mac_address.clone())
        .filter(|m| !m.is_empty())
        .or_else(|| body.mac_address.clone())
        .unwrap_or_default();
    if !ipv4.is_empty() {
        ipv4.parse::<std::net::Ipv4Addr>().map_err(|_| {
            bad(
                "EndpointsConfig.IPAMConfig.IPv4Address",
                format!("{ipv4:?} is not an IPv4 address"),
            )
        })?;
        if first_net.as_deref().is_none_or(|n| n == "bridge") {
            return Err(ApiError::BadParameter(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
    }
    if !ipv6.is_empty() {
        return Err(ApiError::BadParameter(format!(
            "EndpointsConfig.IPAMConfig.IPv6Address {ipv6:?}: berth's networks are IPv4 only"
        )));
    }
    if !mac.is_empty() {
        berth_net::ipam::check_mac(&mac).map_err(|e| bad("MacAddress", e))?;
        if first_net.is_none() {
            return Err(ApiError::BadParameter(
                "conflicting options: MacAddress needs a network the container has its own interface on (not host, none or container:)".into(),
            ));
        }
    }
    Ok(ccfg::RunExtras {
        expose,
        links,
        ipv4_address: ipv4,
        ipv6_address: ipv6,
        mac_address: mac,
        cidfile: h.container_id_file.clone().unwrap_or_default(),
    })
}
