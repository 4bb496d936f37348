//! Container networking: bridge networks, veth pairs, IPAM, published ports (nftables),
//! embedded DNS, and the per-container network namespace.
//!
//! Contract with `berth-engine` (keep it stable):
//! - [`setup`] runs in the CLI before the container's monitor starts. It creates whatever the
//!   mode needs (netns bind-mounted under `<root>/run/netns/<id>`, veth, address, rules) and
//!   returns the files the engine bind-mounts (`/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`)
//!   and the netns path to put in the OCI spec (`None` = runtime creates a fresh netns for
//!   `none`; with `host` the engine does not unshare the network).
//! - [`teardown`] runs when the container has stopped for good (monitor exit, `rm`, recovery).
//!   It keeps going past individual failures and is idempotent.

//! - [`cleanup_stale`] releases what belonged to containers that no longer run (after a crash
//!   or reboot); the engine calls it with the ids of the containers that are still alive.
//!
//! Networks, endpoints, addresses and published ports live in SQLite (component `net`); every
//! allocation happens in a `BEGIN IMMEDIATE` transaction, so concurrent berth processes never
//! hand out the same address or port. Host-side work goes through a [`driver::Driver`]
//! (today: Linux bridge + veth + nftables; later a rootless one).

pub mod backend;
pub mod config;
mod connect;
mod conns;
pub mod dns;
pub mod driver;
pub mod files;
pub mod firewall;
mod inspect;
pub mod ipam;
pub mod netlink;
pub mod netns;
mod networks;
pub mod nft;
pub mod ports;
mod reserve;
mod sandbox;
mod shared;
mod shown;
pub mod state;

use std::net::IpAddr;
use std::path::PathBuf;

use berth_store::StoreError;

pub use backend::Backend;
pub use config::NetConf;
pub use connect::{connect, disconnect};
pub use conns::serving_connections;
pub use inspect::{
    inspect_network, network_doc, network_row, network_settings, networks_of_all, NETWORKS_HEADERS,
    NETWORKS_TABLE,
};
pub use networks::{
    create_network, create_network_deferred, get_network, list_networks, network_endpoints,
    prune_networks, remove_network, reset, CreateOptions,
};
pub use sandbox::{cleanup_stale, endpoints_of, ports_of, setup, teardown, DNS_UPSTREAM_FILE};
pub use shared::{set_port_backend, set_port_backend_with};
pub use shown::{
    filter_shown, find_shown, list_shown, parse_filter_words, predefined_of, shown_name, Listed,
    Predefined,
};
pub use state::{Endpoint, Network, PortRow, Sandbox};

/// Name under which the default network is stored. Docker-shaped output shows it as
/// [`DEFAULT_NETWORK_ALIAS`] ([`shown_name`]); both names select it.
pub const DEFAULT_NETWORK: &str = "berth";
/// Docker's name for the default network: what every front end shows, accepted everywhere
/// a network name is.
pub const DEFAULT_NETWORK_ALIAS: &str = "bridge";

#[derive(Debug, thiserror::Error)]
/// Errors of the network layer; messages are lowercase, one line, and say what to do.
pub enum NetError {
    #[error(transparent)]
    /// The store (database open, migration, blobs) failed.
    Store(#[from] StoreError),
    #[error("network metadata: {0}")]
    /// A query on the network tables failed.
    Db(#[from] berth_store::DbError),
    #[error("invalid port specification {spec:?}: {why}")]
    /// A `-p` value that cannot be parsed: the value and why.
    BadPort {
        /// The value as given.
        spec: String,
        /// What is wrong with it.
        why: String,
    },
    #[error("network {0} not found; list networks with berth network ls")]
    /// No network has this name or id.
    NotFound(String),
    /// A word that is a prefix of several networks' ids.
    #[error("{0}")]
    Ambiguous(berth_store::lookup::LookupError),
    #[error("network {network} is in use by container {container}; stop it first or use network disconnect")]
    /// The network still has a container attached.
    InUse {
        /// The network's name.
        network: String,
        /// Name (or id) of a container attached to it.
        container: String,
    },
    #[error("network {0} already exists; choose another name")]
    /// A network with this name exists already.
    Exists(String),
    #[error("{0} is a pre-defined network and cannot be removed")]
    /// Docker's predefined networks (`bridge`, `host`, `none`) cannot be removed; the shown name.
    Predefined(String),
    #[error("operation is not permitted on predefined {0} network")]
    /// Docker's refusal to create a network named `host` or `none` (the name).
    NotPermitted(String),
    #[error("{0}")]
    /// A `network ls` filter with an unknown key or a bad value; the message names it.
    BadFilter(String),
    #[error("{0}")]
    /// The host port is taken (by another container or a host process); the message names it.
    PortInUse(String),
    #[error("{0}")]
    /// Anything else (netlink, nftables, namespaces), with a message that says what to do.
    Other(String),
}

/// Results of the network layer.
pub type Result<T, E = NetError> = std::result::Result<T, E>;

/// How a container is networked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NetworkMode {
    /// Own network namespace with only loopback.
    None,
    /// The host's network namespace.
    Host,
    /// Share the network namespace of another container (its id).
    Container(String),
    /// Attach to these networks (`bridge` is the default network).
    Networks(Vec<Attachment>),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
/// One network a container joins, with `--network-alias` names.
pub struct Attachment {
    /// Network name or id (`bridge` is the default network).
    pub network: String,
    /// Extra DNS names of the container on this network.
    pub aliases: Vec<String>,
}

/// Everything networking needs to know about a container.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NetConfig {
    /// Full container id (64 hex characters).
    pub container_id: String,
    /// Container name (without a leading `/`).
    pub container_name: String,
    /// Hostname inside the container.
    pub hostname: String,
    /// `--domainname` (empty: none); the FQDN in /etc/hosts is `hostname.domainname`.
    #[serde(default)]
    pub domainname: String,
    /// How the container is networked.
    pub mode: NetworkMode,
    /// `-p` specs as the user wrote them.
    pub publish: Vec<String>,
    /// `-P`: publish these (image EXPOSE, e.g. `80/tcp`) on random ports.
    pub publish_all: Vec<String>,
    /// `--dns`: nameservers replacing the host's (on user networks: the embedded DNS
    /// server's upstreams for this container).
    pub dns: Vec<String>,
    /// `--dns-search`: search domains replacing the host's (`.`: none).
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// `--dns-option`: resolver options replacing the host's.
    #[serde(default)]
    pub dns_options: Vec<String>,
    /// `--add-host HOST:IP`.
    pub add_hosts: Vec<String>,
    /// `--ip`: the address on the first (user-defined) network; empty: allocated.
    #[serde(default)]
    pub ipv4_address: String,
    /// `--mac-address`: the MAC of the first interface; empty: derived from the address.
    #[serde(default)]
    pub mac_address: String,
    /// Containers of one port group (the replicas of a compose service) may publish the same
    /// fixed host port: new connections are spread over the group's active members.
    #[serde(default)]
    pub port_group: Option<String>,
    /// With a port group: this container takes connections on shared ports only once
    /// [`set_port_backend`] says so (when its health check first passes).
    #[serde(default)]
    pub port_wait_healthy: bool,
}

/// What [`setup`] produced.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct NetSetup {
    /// Network namespace to join; `None` with mode `None` means "new, empty".
    pub netns_path: Option<PathBuf>,
    /// Files to bind-mount at /etc/hosts, /etc/resolv.conf, /etc/hostname.
    pub hosts_file: PathBuf,
    /// File to bind-mount at /etc/resolv.conf.
    pub resolv_conf: PathBuf,
    /// File to bind-mount at /etc/hostname.
    pub hostname_file: PathBuf,
    /// The container's addresses, one per joined network.
    pub addresses: Vec<IpAddr>,
    /// Published ports as `(container port/proto, host ip, host port)`.
    pub ports: Vec<PublishedPort>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
/// A published port as Docker reports it (`inspect`'s `NetworkSettings.Ports`, `port`).
pub struct PublishedPort {
    /// Port inside the container.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Host address bound (`0.0.0.0`: all).
    pub host_ip: String,
    /// Port on the host.
    pub host_port: u16,
}

impl From<&PortRow> for PublishedPort {
    fn from(p: &PortRow) -> Self {
        PublishedPort {
            container_port: p.container_port,
            protocol: p.proto.clone(),
            host_ip: p.host_ip.to_string(),
            host_port: p.host_port,
        }
    }
}

/// Validate `-p` specs early (at create time), without touching the system.
pub fn validate_publish(specs: &[String]) -> Result<()> {
    ports::parse_all(specs, &[]).map(|_| ())
}

/// `bridge` → the default network's name; other names unchanged.
pub fn canonical_name(name: &str) -> &str {
    if name == DEFAULT_NETWORK_ALIAS {
        DEFAULT_NETWORK
    } else {
        name
    }
}

fn random_id() -> String {
    format!(
        "{:016x}{:016x}{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>(),
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn join_errors(errs: Vec<NetError>) -> Result<()> {
    match errs.len() {
        0 => Ok(()),
        1 => Err(errs.into_iter().next().unwrap()),
        _ => Err(NetError::Other(
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )),
    }
}
