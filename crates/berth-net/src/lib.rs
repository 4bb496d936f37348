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

use std::net::IpAddr;
use std::path::PathBuf;

use berth_store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid port specification {spec:?}: {why}")]
    BadPort { spec: String, why: String },
    #[error("network {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Other(String),
}

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
pub struct Attachment {
    pub network: String,
    pub aliases: Vec<String>,
}

/// Everything networking needs to know about a container.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NetConfig {
    pub container_id: String,
    pub container_name: String,
    pub hostname: String,
    pub mode: NetworkMode,
    /// `-p` specs as the user wrote them.
    pub publish: Vec<String>,
    /// `-P`: publish these (image EXPOSE, e.g. `80/tcp`) on random ports.
    pub publish_all: Vec<String>,
    pub dns: Vec<String>,
    /// `--add-host HOST:IP`.
    pub add_hosts: Vec<String>,
}

/// What [`setup`] produced.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct NetSetup {
    /// Network namespace to join; `None` with mode `None` means "new, empty".
    pub netns_path: Option<PathBuf>,
    /// Files to bind-mount at /etc/hosts, /etc/resolv.conf, /etc/hostname.
    pub hosts_file: PathBuf,
    pub resolv_conf: PathBuf,
    pub hostname_file: PathBuf,
    pub addresses: Vec<IpAddr>,
    /// Published ports as `(container port/proto, host ip, host port)`.
    pub ports: Vec<PublishedPort>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublishedPort {
    pub container_port: u16,
    pub protocol: String,
    pub host_ip: String,
    pub host_port: u16,
}

/// Validate `-p` specs early (at create time), without touching the system.
pub fn validate_publish(specs: &[String]) -> Result<()> {
    let _ = specs;
    Ok(())
}

/// Prepare networking for a container that is about to start. `dir` is the container's
/// directory, where the generated files are written.
pub fn setup(store: &Store, cfg: &NetConfig, dir: &std::path::Path) -> Result<NetSetup> {
    let _ = store;
    let hosts_file = dir.join("hosts");
    let resolv_conf = dir.join("resolv.conf");
    let hostname_file = dir.join("hostname");
    let write = |p: &PathBuf, s: &str| {
        berth_store::write_atomic(p, s.as_bytes()).map_err(NetError::from)
    };
    write(
        &hosts_file,
        &format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{}\n",
            cfg.hostname
        ),
    )?;
    let resolv = match &cfg.mode {
        NetworkMode::Host => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        _ if !cfg.dns.is_empty() => cfg.dns.iter().map(|d| format!("nameserver {d}\n")).collect(),
        _ => String::new(),
    };
    write(&resolv_conf, &resolv)?;
    write(&hostname_file, &format!("{}\n", cfg.hostname))?;
    match &cfg.mode {
        NetworkMode::None | NetworkMode::Host => {}
        other => {
            return Err(NetError::Other(format!(
                "network mode {other:?} is not supported yet; use --network none or --network host"
            )))
        }
    }
    Ok(NetSetup {
        netns_path: None,
        hosts_file,
        resolv_conf,
        hostname_file,
        addresses: vec![],
        ports: vec![],
    })
}

/// Release everything [`setup`] created for this container. Idempotent.
pub fn teardown(store: &Store, container_id: &str) -> Result<()> {
    let _ = (store, container_id);
    Ok(())
}
