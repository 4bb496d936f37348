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

pub mod config;
pub mod dns;
pub mod driver;
pub mod files;
pub mod ipam;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod ports;
pub mod state;

use std::collections::HashSet;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use berth_store::{Store, StoreError};
use ipnet::Ipv4Net;

pub use config::NetConf;
use driver::{default_netns_path, BridgeDriver, Driver};
use nft::PortRule;
use ports::{PortMapping, Proto};
pub use state::{Endpoint, Network, PortRow, Sandbox};

/// Name of the default network. `bridge` (Docker's name) selects it too.
pub const DEFAULT_NETWORK: &str = "berth";
/// Docker's name for the default network, accepted everywhere a network name is.
pub const DEFAULT_NETWORK_ALIAS: &str = "bridge";

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("network metadata: {0}")]
    Db(#[from] berth_store::DbError),
    #[error("invalid port specification {spec:?}: {why}")]
    BadPort { spec: String, why: String },
    #[error("network {0} not found; list networks with berth network ls")]
    NotFound(String),
    /// A word that is a prefix of several networks' ids.
    #[error("{0}")]
    Ambiguous(berth_store::lookup::LookupError),
    #[error("network {network} is in use by container {container}; stop it first or use network disconnect")]
    InUse { network: String, container: String },
    #[error("network {0} already exists; choose another name")]
    Exists(String),
    #[error("{0}")]
    PortInUse(String),
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
    /// `--domainname` (empty: none); the FQDN in /etc/hosts is `hostname.domainname`.
    #[serde(default)]
    pub domainname: String,
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

fn driver_for(store: &Store) -> Result<(NetConf, BridgeDriver)> {
    let conf = NetConf::load(store.root())?;
    let drv = BridgeDriver::new(conf.clone(), store.root());
    Ok((conf, drv))
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
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The default network's row, created from the settings on first use.
fn ensure_default(store: &Store, conf: &NetConf) -> Result<Network> {
    let db = store.db();
    if let Some(n) = state::get_network(db, DEFAULT_NETWORK)? {
        return Ok(n);
    }
    state::immediate(db, |db| {
        if let Some(n) = state::get_network(db, DEFAULT_NETWORK)? {
            return Ok(n);
        }
        let subnet = conf.bridge_subnet.trunc();
        let n = Network {
            name: DEFAULT_NETWORK.into(),
            id: random_id(),
            driver: "bridge".into(),
            bridge: conf.default_bridge(),
            subnet,
            gateway: conf
                .bridge_gateway
                .unwrap_or_else(|| ipam::default_gateway(&subnet)),
            internal: false,
            created: now(),
        };
        state::insert_network(db, &n)?;
        // Stores that share the default bridge (same prefix, e.g. test stores) keep separate
        // address tables; starting at a random offset makes their collisions unlikely.
        // The system store hands out addresses from the start, as Docker does.
        if store.root() != Path::new(berth_store::DEFAULT_ROOT) {
            let hosts = (1u64 << (32 - u32::from(subnet.prefix_len()))).saturating_sub(2) as u32;
            if hosts > 16 {
                state::set_next_ip(db, &n.name, 2 + rand::random::<u32>() % (hosts - 2))?;
            }
        }
        Ok(n)
    })
}

/// A network by name (`bridge` = the default), id or id prefix.
pub fn get_network(store: &Store, name: &str) -> Result<Network> {
    state::migrate(store)?;
    let name = canonical_name(name);
    if name == DEFAULT_NETWORK {
        let conf = NetConf::load(store.root())?;
        return ensure_default(store, &conf);
    }
    state::find_network(store.db(), name)?.ok_or_else(|| NetError::NotFound(name.to_string()))
}

/// Bind a host port for a moment to see whether it is free; returns the port bound (useful
/// with port 0, which asks the kernel for a free one).
fn probe_port(ip: Ipv4Addr, port: u16, proto: Proto) -> std::io::Result<u16> {
    match proto {
        Proto::Tcp => std::net::TcpListener::bind((ip, port))?
            .local_addr()
            .map(|a| a.port()),
        Proto::Udp => std::net::UdpSocket::bind((ip, port))?
            .local_addr()
            .map(|a| a.port()),
    }
}

fn container_name_of(db: &berth_store::rusqlite::Connection, id: &str) -> String {
    state::get_sandbox(db, id)
        .ok()
        .flatten()
        .map(|s| s.container_name)
        .unwrap_or_else(|| id.chars().take(12).collect())
}

/// Reserve the host side of one mapping (inside the caller's write transaction).
fn reserve_port(
    db: &berth_store::rusqlite::Connection,
    m: &PortMapping,
    container_id: &str,
    container_ip: Ipv4Addr,
) -> Result<PortRow> {
    let proto = m.protocol.as_str();
    let taken = |port: u16| -> Result<Option<PortRow>> {
        Ok(state::ports_on(db, port, proto)?
            .into_iter()
            .find(|r| ports::overlaps(r.host_ip, m.host_ip)))
    };
    let host_port = match (m.host_port, m.host_port_end) {
        // A host range for one container port: its first port that is free (Docker skips
        // ports that another container or program holds).
        (Some(first), Some(last)) => {
            let mut found = None;
            for p in m.host_candidates() {
                if taken(p)?.is_some() {
                    continue;
                }
                match probe_port(m.host_ip, p, m.protocol) {
                    Ok(_) => {
                        found = Some(p);
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                        return Err(NetError::Other(format!(
                            "cannot publish on {}: not an address of this host; use one of the host's addresses or omit it",
                            m.host_ip
                        )))
                    }
                    Err(e) => {
                        return Err(NetError::Other(format!(
                            "cannot check host port {p}/{proto} on {}: {e}",
                            m.host_ip
                        )))
                    }
                }
            }
            found.ok_or_else(|| {
                NetError::PortInUse(format!(
                    "every host port of {first}-{last}/{proto} on {} is already in use; give a wider or another range",
                    m.host_ip
                ))
            })?
        }
        (Some(p), None) => {
            if let Some(r) = taken(p)? {
                return Err(NetError::PortInUse(format!(
                    "host port {p}/{proto} is already published by container {}; choose another host port",
                    container_name_of(db, &r.container_id)
                )));
            }
            match probe_port(m.host_ip, p, m.protocol) {
                Ok(_) => p,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    return Err(NetError::PortInUse(format!(
                        "host port {p}/{proto} on {} is already in use by another program; choose another host port or stop that program",
                        m.host_ip
                    )))
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                    return Err(NetError::Other(format!(
                        "cannot publish on {}: not an address of this host; use one of the host's addresses or omit it",
                        m.host_ip
                    )))
                }
                Err(e) => {
                    return Err(NetError::Other(format!(
                        "cannot check host port {p}/{proto} on {}: {e}",
                        m.host_ip
                    )))
                }
            }
        }
        (None, _) => {
            let mut found = None;
            for _ in 0..64 {
                let p = probe_port(m.host_ip, 0, m.protocol).map_err(|e| {
                    NetError::Other(format!(
                        "cannot find a free host port on {}: {e}",
                        m.host_ip
                    ))
                })?;
                if taken(p)?.is_none() {
                    found = Some(p);
                    break;
                }
            }
            found.ok_or_else(|| {
                NetError::PortInUse(format!(
                    "no free host port for {}/{proto}; give one explicitly with -p HOST:{}",
                    m.container_port, m.container_port
                ))
            })?
        }
    };
    let row = PortRow {
        host_ip: m.host_ip,
        host_port,
        proto: proto.to_string(),
        container_id: container_id.to_string(),
        container_port: m.container_port,
        container_ip,
    };
    state::insert_port(db, &row)?;
    Ok(row)
}

fn rule_of(p: &PortRow) -> PortRule {
    PortRule {
        host_ip: p.host_ip,
        host_port: p.host_port,
        proto: Proto::parse(&p.proto).unwrap_or(Proto::Tcp),
        ctr_ip: p.container_ip,
        ctr_port: p.container_port,
    }
}

fn write_file(p: &Path, s: &str) -> Result<()> {
    berth_store::write_replace(p, s.as_bytes()).map_err(NetError::from)
}

/// /etc/hosts and /etc/resolv.conf for a container on no berth network (none, container:).
fn write_plain_files(
    root: &Path,
    out: &NetSetup,
    cfg: &NetConfig,
    add_hosts: &[(String, String)],
) -> Result<()> {
    write_file(
        &out.hosts_file,
        &files::hosts(&cfg.hostname, &cfg.domainname, &[], add_hosts),
    )?;
    write_file(
        &out.resolv_conf,
        &container_resolv(NetConf::load(root)?.host_dns(), cfg, None),
    )
}

/// The user's DNS flags of a container.
fn dns_overrides(cfg: &NetConfig) -> files::DnsOverrides {
    files::DnsOverrides {
        servers: cfg.dns.clone(),
        search: cfg.dns_search.clone(),
        options: cfg.dns_options.clone(),
    }
}

/// A container's resolv.conf text (see [`files::resolv_conf`]); warns when the host has no
/// resolver the container can reach, the user gave none and the container has a network.
fn container_resolv(host: files::HostDns, cfg: &NetConfig, embedded: Option<&str>) -> String {
    let cd = host.for_containers();
    let ov = dns_overrides(cfg);
    if let Some(w) = &cd.warning {
        if embedded.is_none() && ov.servers.is_empty() && cfg.mode != NetworkMode::None {
            tracing::warn!("{w}");
        }
    }
    files::resolv_conf(&cd.resolv, &ov, embedded)
}

/// The file in a container's directory listing its `--dns` servers, which the embedded DNS
/// server of a user network relays that container's queries to (`nameserver` lines).
pub const DNS_UPSTREAM_FILE: &str = "resolv.upstream";

/// Prepare networking for a container that is about to start. `dir` is the container's
/// directory, where the generated files are written. Calling it again for the same container
/// (a restart) first releases what the previous call set up.
pub fn setup(store: &Store, cfg: &NetConfig, dir: &Path) -> Result<NetSetup> {
    state::migrate(store)?;
    let id = cfg.container_id.as_str();
    if state::get_sandbox(store.db(), id)?.is_some()
        || default_netns_path(store.root(), id).exists()
    {
        teardown(store, id)?;
    }
    let host_gateway = NetConf::load(store.root())?.host_gateway_ips();
    let mut add_hosts = Vec::new();
    for h in &cfg.add_hosts {
        add_hosts.extend(
            files::parse_add_host(h)
                .map_err(NetError::Other)?
                .resolve(&host_gateway),
        );
    }
    let mut out = NetSetup {
        hosts_file: dir.join("hosts"),
        resolv_conf: dir.join("resolv.conf"),
        hostname_file: dir.join("hostname"),
        ..Default::default()
    };
    let mut sb = Sandbox {
        container_id: id.to_string(),
        container_name: cfg.container_name.clone(),
        mode: String::new(),
        netns: None,
        owns_netns: false,
        dir: dir.to_path_buf(),
        // The FQDN: `network connect` writes the new address with the same names.
        hostname: match cfg.domainname.as_str() {
            "" => cfg.hostname.clone(),
            d => format!("{}.{d}", cfg.hostname),
        },
    };
    write_file(&out.hostname_file, &format!("{}\n", cfg.hostname))?;
    match &cfg.mode {
        NetworkMode::Host => {
            sb.mode = "host".into();
            if !cfg.publish.is_empty() || !cfg.publish_all.is_empty() {
                tracing::warn!("published ports are discarded with --network host");
            }
            let mut hosts = fs::read_to_string("/etc/hosts")
                .unwrap_or_else(|_| files::hosts(&cfg.hostname, &cfg.domainname, &[], &[]));
            if !hosts.ends_with('\n') && !hosts.is_empty() {
                hosts.push('\n');
            }
            for (h, ip) in &add_hosts {
                hosts.push_str(&format!("{ip}\t{h}\n"));
            }
            write_file(&out.hosts_file, &hosts)?;
            // The host's file as is (its loopback resolvers work here), flags on top.
            let host_dns = NetConf::load(store.root())?.host_dns();
            let ov = dns_overrides(cfg);
            let resolv = if ov.is_empty() {
                fs::read_to_string(&host_dns.resolv_conf).unwrap_or_default()
            } else {
                files::resolv_conf(&host_dns.host(), &ov, None)
            };
            write_file(&out.resolv_conf, &resolv)?;
            state::immediate(store.db(), |db| state::insert_sandbox(db, &sb))?;
        }
        NetworkMode::Container(other) => {
            sb.mode = "container".into();
            match state::find_sandbox(store.db(), other)? {
                Some(osb) => {
                    let ns = osb.netns.clone().ok_or_else(|| {
                        NetError::Other(format!(
                            "container {} uses the host network; use --network host instead",
                            osb.container_name
                        ))
                    })?;
                    for (name, dst) in [
                        ("hosts", &out.hosts_file),
                        ("resolv.conf", &out.resolv_conf),
                    ] {
                        let text = fs::read_to_string(osb.dir.join(name)).unwrap_or_default();
                        write_file(dst, &text)?;
                    }
                    out.addresses = state::endpoints_of_container(store.db(), &osb.container_id)?
                        .iter()
                        .map(|e| IpAddr::V4(e.ip))
                        .collect();
                    sb.netns = Some(ns.clone());
                    out.netns_path = Some(ns);
                }
                None => {
                    // Not set up by berth-net (the engine joins its namespace through the
                    // process): generic files, no namespace of ours.
                    write_plain_files(store.root(), &out, cfg, &add_hosts)?;
                }
            }
            state::immediate(store.db(), |db| state::insert_sandbox(db, &sb))?;
        }
        NetworkMode::None => {
            sb.mode = "none".into();
            let ns = default_netns_path(store.root(), id);
            sb.netns = Some(ns.clone());
            sb.owns_netns = true;
            state::immediate(store.db(), |db| state::insert_sandbox(db, &sb))?;
            if let Err(e) = create_netns(&ns) {
                let _ = teardown(store, id);
                return Err(e);
            }
            write_plain_files(store.root(), &out, cfg, &add_hosts)?;
            out.netns_path = Some(ns);
        }
        NetworkMode::Networks(atts) => {
            sb.mode = "networks".into();
            match setup_networks(store, cfg, atts, &mut sb, &add_hosts, &mut out) {
                Ok(()) => {}
                Err(e) => {
                    let _ = teardown(store, id);
                    return Err(e);
                }
            }
        }
    }
    Ok(out)
}

fn create_netns(ns: &Path) -> Result<()> {
    netns::create(ns, || {
        let mut nl = netlink::Netlink::open()?;
        if let Some(lo) = nl.link_index("lo")? {
            nl.set_up(lo)?;
        }
        Ok(())
    })
    .map_err(|e| {
        NetError::Other(format!(
            "cannot create a network namespace at {}: {e}; run berth as root",
            ns.display()
        ))
    })
}

fn setup_networks(
    store: &Store,
    cfg: &NetConfig,
    atts: &[Attachment],
    sb: &mut Sandbox,
    add_hosts: &[(String, String)],
    out: &mut NetSetup,
) -> Result<()> {
    let (conf, drv) = driver_for(store)?;
    let id = cfg.container_id.as_str();
    let mut nets: Vec<(Network, Vec<String>)> = Vec::new();
    for a in atts {
        let n = get_network(store, &a.network)?;
        if n.is_default() && !a.aliases.is_empty() {
            return Err(NetError::Other(
                "network aliases work only on user-defined networks; create one with berth network create".into(),
            ));
        }
        match nets.iter_mut().find(|(x, _)| x.name == n.name) {
            Some((_, al)) => al.extend(a.aliases.iter().cloned()),
            None => nets.push((n, a.aliases.clone())),
        }
    }
    if nets.is_empty() {
        return Err(NetError::Other(
            "no network given; use --network NAME".into(),
        ));
    }
    let mappings = ports::parse_all(&cfg.publish, &cfg.publish_all)?;
    let ns = default_netns_path(store.root(), id);
    sb.netns = Some(ns.clone());
    sb.owns_netns = true;
    let (eps, rows) = state::immediate(store.db(), |db| {
        state::insert_sandbox(db, sb)?;
        let mut eps = Vec::new();
        for (i, (net, aliases)) in nets.iter().enumerate() {
            let used: HashSet<Ipv4Addr> = state::used_ips(db, &net.name)?.into_iter().collect();
            let start = state::next_ip(db, &net.name)?;
            let (ip, next) = ipam::alloc_ip(&net.subnet, net.gateway, &used, start).ok_or_else(|| {
                NetError::Other(format!(
                    "network {} has no free addresses; remove containers from it or use a network with a larger subnet",
                    net.name
                ))
            })?;
            state::set_next_ip(db, &net.name, next)?;
            let ep = Endpoint {
                container_id: id.to_string(),
                network: net.name.clone(),
                container_name: cfg.container_name.clone(),
                ip,
                mac: ipam::mac_string(ipam::mac_for(ip)),
                aliases: aliases.clone(),
                veth: conf.new_veth(),
                ifname: format!("eth{i}"),
            };
            state::insert_endpoint(db, &ep)?;
            eps.push(ep);
        }
        let mut rows = Vec::new();
        if !mappings.is_empty() {
            let target = nets
                .iter()
                .zip(&eps)
                .find(|((n, _), _)| !n.internal)
                .map(|(_, e)| e.ip)
                .ok_or_else(|| {
                    NetError::Other(
                        "ports cannot be published from internal networks; connect the container to a non-internal network too".into(),
                    )
                })?;
            for m in &mappings {
                rows.push(reserve_port(db, m, id, target)?);
            }
        }
        Ok((eps, rows))
    })?;
    create_netns(&ns)?;
    let route_via = nets.iter().position(|(n, _)| !n.internal);
    for (i, ((net, _), ep)) in nets.iter().zip(&eps).enumerate() {
        drv.ensure_network(net)?;
        drv.attach(&ns, net, ep, route_via == Some(i))?;
    }
    let rules: Vec<PortRule> = rows.iter().map(rule_of).collect();
    drv.publish(&rules)?;
    drv.commit()?;
    for (net, _) in &nets {
        if !net.is_default() {
            if let Err(e) = dns::ensure_running(store.root(), &net.name) {
                tracing::warn!(
                    "name resolution on network {} is unavailable: {e}",
                    net.name
                );
            }
        }
    }
    let own: Vec<IpAddr> = eps.iter().map(|e| IpAddr::V4(e.ip)).collect();
    write_file(
        &out.hosts_file,
        &files::hosts(&cfg.hostname, &cfg.domainname, &own, add_hosts),
    )?;
    let embedded = nets
        .iter()
        .find(|(n, _)| !n.is_default())
        .map(|(n, _)| n.gateway.to_string());
    // With the embedded server, --dns names its upstreams for this container.
    let upstream = sb.dir.join(DNS_UPSTREAM_FILE);
    if embedded.is_some() && !cfg.dns.is_empty() {
        let text: String = cfg
            .dns
            .iter()
            .map(|d| format!("nameserver {d}\n"))
            .collect();
        write_file(&upstream, &text)?;
    } else if upstream.exists() {
        let _ = fs::remove_file(&upstream);
    }
    write_file(
        &out.resolv_conf,
        &container_resolv(conf.host_dns(), cfg, embedded.as_deref()),
    )?;
    out.netns_path = Some(ns);
    out.addresses = own;
    out.ports = rows.iter().map(PublishedPort::from).collect();
    Ok(())
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

/// Release everything [`setup`] created for this container. Idempotent; keeps going past
/// individual failures and reports them together.
pub fn teardown(store: &Store, container_id: &str) -> Result<()> {
    state::migrate(store)?;
    let (_conf, drv) = driver_for(store)?;
    let db = store.db();
    let sb = state::get_sandbox(db, container_id)?;
    let eps = state::endpoints_of_container(db, container_id)?;
    let ports = state::ports_of_container(db, container_id)?;
    let mut errs = Vec::new();
    let rules: Vec<PortRule> = ports.iter().map(rule_of).collect();
    if let Err(e) = drv.unpublish(&rules) {
        errs.push(e);
    }
    if let Err(e) = drv.commit() {
        errs.push(e);
    }
    let owned_ns = match &sb {
        Some(s) if s.owns_netns => s.netns.clone(),
        Some(_) => None,
        None => Some(default_netns_path(store.root(), container_id)),
    };
    // Deleting a veth synchronously costs tens of milliseconds (an RCU grace period). When
    // the namespace is ours and its processes are gone, unpinning it is enough: the kernel
    // destroys the namespace and both ends of every veth in it in the background. Veths of
    // a namespace that is still in use (or not ours) are deleted explicitly.
    let mut ns_gone = false;
    if let Some(ns) = &owned_ns {
        // Scanning /proc is only worth it when there are veths to delete.
        let in_use = !eps.is_empty() && netns::in_use_by_process(ns);
        match netns::remove(ns) {
            Ok(()) => ns_gone = !in_use,
            Err(e) => errs.push(NetError::Other(format!(
                "cannot remove network namespace {}: {e}",
                ns.display()
            ))),
        }
    }
    for ep in &eps {
        if ns_gone {
            continue;
        }
        if let Err(e) = drv.detach(ep) {
            errs.push(e);
        }
    }
    if let Err(e) = state::immediate(db, |db| state::delete_container(db, container_id)) {
        errs.push(e);
    }
    join_errors(errs)
}

/// Release the networking of every container berth knows about that is not in
/// `live_container_ids` (after a crash or reboot). Call it with the ids of containers whose
/// processes still run.
pub fn cleanup_stale(store: &Store, live_container_ids: &HashSet<String>) -> Result<()> {
    state::migrate(store)?;
    let mut ids: HashSet<String> = state::all_container_ids(store.db())?.into_iter().collect();
    if let Ok(rd) = fs::read_dir(store.root().join("run").join("netns")) {
        ids.extend(
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string)),
        );
    }
    let mut errs = Vec::new();
    for id in ids {
        if !live_container_ids.contains(&id) {
            if let Err(e) = teardown(store, &id) {
                errs.push(e);
            }
        }
    }
    join_errors(errs)
}

/// Published ports of a container.
pub fn ports_of(store: &Store, container_id: &str) -> Result<Vec<PublishedPort>> {
    state::migrate(store)?;
    Ok(state::ports_of_container(store.db(), container_id)?
        .iter()
        .map(PublishedPort::from)
        .collect())
}

/// Endpoints of a container (one per network).
pub fn endpoints_of(store: &Store, container_id: &str) -> Result<Vec<Endpoint>> {
    state::migrate(store)?;
    state::endpoints_of_container(store.db(), container_id)
}

/// Options of `network create`.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub name: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub internal: bool,
    pub driver: String,
}

fn valid_name(n: &str) -> bool {
    let mut b = n.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphanumeric())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
        && n.len() <= 64
}

/// Create a user-defined network (and its bridge).
pub fn create_network(store: &Store, o: &CreateOptions) -> Result<Network> {
    state::migrate(store)?;
    let (conf, drv) = driver_for(store)?;
    if !o.driver.is_empty() && o.driver != "bridge" {
        return Err(NetError::Other(format!(
            "network driver {} is not supported; use --driver bridge",
            o.driver
        )));
    }
    if [DEFAULT_NETWORK, DEFAULT_NETWORK_ALIAS, "host", "none"].contains(&o.name.as_str()) {
        return Err(NetError::Other(format!(
            "{} is a predefined network name; choose another name",
            o.name
        )));
    }
    if !valid_name(&o.name) {
        return Err(NetError::Other(format!(
            "invalid network name {:?}: use letters, digits, '_', '.', '-' (starting with a letter or digit)",
            o.name
        )));
    }
    let subnet: Option<Ipv4Net> = match &o.subnet {
        Some(s) => Some(
            s.parse::<Ipv4Net>()
                .map_err(|_| {
                    NetError::Other(format!(
                        "invalid --subnet {s:?}: expected an IPv4 CIDR such as 10.90.0.0/24"
                    ))
                })?
                .trunc(),
        ),
        None => None,
    };
    if subnet.is_some_and(|s| s.prefix_len() > 30) {
        return Err(NetError::Other(
            "--subnet is too small; use a prefix of /30 or shorter".into(),
        ));
    }
    let gateway: Option<Ipv4Addr> = match &o.gateway {
        Some(g) => Some(g.parse().map_err(|_| {
            NetError::Other(format!("invalid --gateway {g:?}: expected an IPv4 address"))
        })?),
        None => None,
    };
    if gateway.is_some() && subnet.is_none() {
        return Err(NetError::Other("--gateway needs --subnet".into()));
    }
    // Subnets of other berth networks (any store on this host shows up as a host route).
    let host_routes = ipam::host_routes();
    let default = ensure_default(store, &conf)?;
    let net = state::immediate(store.db(), |db| {
        if state::get_network(db, &o.name)?.is_some() {
            return Err(NetError::Exists(o.name.clone()));
        }
        let existing = state::list_networks(db)?;
        let mut taken: Vec<Ipv4Net> = existing.iter().map(|n| n.subnet).collect();
        taken.push(default.subnet);
        taken.extend(host_routes.iter().map(|(_, n)| *n));
        let subnet = match subnet {
            Some(s) => {
                if let Some(n) = existing.iter().find(|n| ipam::overlap(&n.subnet, &s)) {
                    return Err(NetError::Other(format!(
                        "subnet {s} overlaps network {} ({}); choose another --subnet",
                        n.name, n.subnet
                    )));
                }
                if let Some((dev, r)) = host_routes.iter().find(|(_, r)| ipam::overlap(r, &s)) {
                    return Err(NetError::Other(format!(
                        "subnet {s} overlaps the host route {r} on {dev}; choose another --subnet"
                    )));
                }
                s
            }
            None => ipam::choose_subnet(&conf.pool, &taken).ok_or_else(|| {
                NetError::Other(
                    "no free subnet left in the address pool; give one with --subnet or remove unused networks".into(),
                )
            })?,
        };
        let gw = match gateway {
            Some(g) => {
                let first = u32::from(subnet.network()) + 1;
                let last = u32::from(subnet.broadcast()) - 1;
                if !(first..=last).contains(&u32::from(g)) {
                    return Err(NetError::Other(format!(
                        "gateway {g} is not a host address of subnet {subnet}; choose one inside it"
                    )));
                }
                g
            }
            None => ipam::default_gateway(&subnet),
        };
        let id = random_id();
        let n = Network {
            name: o.name.clone(),
            bridge: conf.user_bridge(&id),
            id,
            driver: "bridge".into(),
            subnet,
            gateway: gw,
            internal: o.internal,
            created: now(),
        };
        state::insert_network(db, &n)?;
        Ok(n)
    })?;
    let res = drv.ensure_network(&net).and_then(|_| drv.commit());
    if let Err(e) = res {
        let _ = drv.remove_network(&net);
        let _ = state::delete_network(store.db(), &net.name);
        return Err(e);
    }
    Ok(net)
}

/// All networks (the default one included).
pub fn list_networks(store: &Store) -> Result<Vec<Network>> {
    state::migrate(store)?;
    let conf = NetConf::load(store.root())?;
    ensure_default(store, &conf)?;
    state::list_networks(store.db())
}

/// Endpoints on a network.
pub fn network_endpoints(store: &Store, name: &str) -> Result<Vec<Endpoint>> {
    let n = get_network(store, name)?;
    state::endpoints_of_network(store.db(), &n.name)
}

/// Docker-like `network inspect` object.
pub fn inspect_network(store: &Store, name: &str) -> Result<serde_json::Value> {
    let n = get_network(store, name)?;
    let eps = state::endpoints_of_network(store.db(), &n.name)?;
    let containers: serde_json::Map<String, serde_json::Value> = eps
        .iter()
        .map(|e| {
            (
                e.container_id.clone(),
                serde_json::json!({
                    "Name": e.container_name,
                    "EndpointID": e.veth,
                    "MacAddress": e.mac,
                    "IPv4Address": format!("{}/{}", e.ip, n.subnet.prefix_len()),
                    "IPv6Address": "",
                    "Aliases": e.aliases,
                }),
            )
        })
        .collect();
    let created = chrono::DateTime::from_timestamp(n.created, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    Ok(serde_json::json!({
        "Name": n.name,
        "Id": n.id,
        "Created": created,
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [{"Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string()}],
        },
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "Containers": containers,
        "Options": {"com.docker.network.bridge.name": n.bridge},
        "Labels": {},
    }))
}

/// Remove a user-defined network; refused while a container uses it.
pub fn remove_network(store: &Store, name: &str) -> Result<Network> {
    let n = get_network(store, name)?;
    if n.is_default() {
        return Err(NetError::Other(format!(
            "{} is the default network and cannot be removed",
            n.name
        )));
    }
    let (_conf, drv) = driver_for(store)?;
    state::immediate(store.db(), |db| {
        if let Some(e) = state::endpoints_of_network(db, &n.name)?.first() {
            return Err(NetError::InUse {
                network: n.name.clone(),
                container: e.container_name.clone(),
            });
        }
        state::delete_network(db, &n.name)
    })?;
    drv.remove_network(&n)?;
    Ok(n)
}

/// Remove every user-defined network no container uses; returns their names.
pub fn prune_networks(store: &Store) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for n in list_networks(store)? {
        if n.is_default() || !state::endpoints_of_network(store.db(), &n.name)?.is_empty() {
            continue;
        }
        match remove_network(store, &n.name) {
            Ok(_) => out.push(n.name),
            Err(NetError::InUse { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Attach a running container to one more network (`network connect`).
pub fn connect(store: &Store, container_id: &str, att: &Attachment) -> Result<Endpoint> {
    state::migrate(store)?;
    let (conf, drv) = driver_for(store)?;
    let net = get_network(store, &att.network)?;
    let sb = state::get_sandbox(store.db(), container_id)?
        .filter(|s| s.mode == "networks" && s.owns_netns)
        .ok_or_else(|| {
            NetError::Other(format!(
                "container {container_id} is not running on a berth network; start it (with --network) first"
            ))
        })?;
    let ns = sb.netns.clone().unwrap_or_default();
    let ep = state::immediate(store.db(), |db| {
        let eps = state::endpoints_of_container(db, container_id)?;
        if eps.iter().any(|e| e.network == net.name) {
            return Err(NetError::Other(format!(
                "container {} is already connected to network {}",
                sb.container_name, net.name
            )));
        }
        let idx = (0..)
            .find(|i| !eps.iter().any(|e| e.ifname == format!("eth{i}")))
            .unwrap_or(0);
        let used: HashSet<Ipv4Addr> = state::used_ips(db, &net.name)?.into_iter().collect();
        let (ip, next) = ipam::alloc_ip(
            &net.subnet,
            net.gateway,
            &used,
            state::next_ip(db, &net.name)?,
        )
        .ok_or_else(|| NetError::Other(format!("network {} has no free addresses", net.name)))?;
        state::set_next_ip(db, &net.name, next)?;
        let ep = Endpoint {
            container_id: container_id.to_string(),
            network: net.name.clone(),
            container_name: sb.container_name.clone(),
            ip,
            mac: ipam::mac_string(ipam::mac_for(ip)),
            aliases: att.aliases.clone(),
            veth: conf.new_veth(),
            ifname: format!("eth{idx}"),
        };
        state::insert_endpoint(db, &ep)?;
        Ok(ep)
    })?;
    let res = drv
        .ensure_network(&net)
        .and_then(|_| drv.attach(&ns, &net, &ep, false))
        .and_then(|_| drv.commit());
    if let Err(e) = res {
        let _ = drv.detach(&ep);
        let _ = store.db().execute(
            "DELETE FROM net_endpoints WHERE container_id = ?1 AND network = ?2",
            [container_id, net.name.as_str()],
        );
        return Err(e);
    }
    if !net.is_default() {
        if let Err(e) = dns::ensure_running(store.root(), &net.name) {
            tracing::warn!(
                "name resolution on network {} is unavailable: {e}",
                net.name
            );
        }
    }
    // The hosts file is bind-mounted: rewrite it in place so the container sees the change.
    let hosts = sb.dir.join("hosts");
    if let Ok(mut text) = fs::read_to_string(&hosts) {
        text.push_str(&format!(
            "{}\t{}\n",
            ep.ip,
            files::own_names(&sb.hostname, "")
        ));
        let _ = fs::write(&hosts, text);
    }
    Ok(ep)
}

/// Detach a container from a network (`network disconnect`).
pub fn disconnect(store: &Store, container_id: &str, network: &str) -> Result<()> {
    state::migrate(store)?;
    let (_conf, drv) = driver_for(store)?;
    let net = get_network(store, network)?;
    let eps = state::endpoints_of_container(store.db(), container_id)?;
    let ep = eps.iter().find(|e| e.network == net.name).ok_or_else(|| {
        NetError::Other(format!(
            "container {container_id} is not connected to network {}",
            net.name
        ))
    })?;
    let ports: Vec<PortRow> = state::ports_of_container(store.db(), container_id)?
        .into_iter()
        .filter(|p| p.container_ip == ep.ip)
        .collect();
    let mut errs = Vec::new();
    if let Err(e) = drv.unpublish(&ports.iter().map(rule_of).collect::<Vec<_>>()) {
        errs.push(e);
    }
    if let Err(e) = drv.detach(ep) {
        errs.push(e);
    }
    if let Err(e) = drv.commit() {
        errs.push(e);
    }
    let r = state::immediate(store.db(), |db| {
        db.execute(
            "DELETE FROM net_endpoints WHERE container_id = ?1 AND network = ?2",
            [container_id, net.name.as_str()],
        )?;
        db.execute(
            "DELETE FROM net_ports WHERE container_id = ?1 AND container_ip = ?2",
            [container_id, ep.ip.to_string().as_str()],
        )?;
        Ok(())
    });
    if let Err(e) = r {
        errs.push(e);
    }
    if let Some(sb) = state::get_sandbox(store.db(), container_id)? {
        let hosts = sb.dir.join("hosts");
        if let Ok(text) = fs::read_to_string(&hosts) {
            let prefix = format!("{}\t", ep.ip);
            let kept: String = text
                .lines()
                .filter(|l| !l.starts_with(&prefix))
                .map(|l| format!("{l}\n"))
                .collect();
            let _ = fs::write(&hosts, kept);
        }
    }
    join_errors(errs)
}

/// Remove every trace of berth networking for this store: all container sandboxes, every
/// network's bridge, the nftables table. Network definitions (rows) are kept, except that the
/// default network is forgotten (it is recreated from the settings on next use).
pub fn reset(store: &Store) -> Result<()> {
    state::migrate(store)?;
    let (conf, drv) = driver_for(store)?;
    let mut errs = Vec::new();
    if let Err(e) = cleanup_stale(store, &HashSet::new()) {
        errs.push(e);
    }
    for n in state::list_networks(store.db())? {
        if let Err(e) = netlink::Netlink::open().and_then(|mut nl| nl.del_link(&n.bridge)) {
            errs.push(NetError::Other(format!(
                "cannot delete bridge {}: {e}",
                n.bridge
            )));
        }
    }
    if let Err(e) = state::delete_network(store.db(), DEFAULT_NETWORK) {
        errs.push(e);
    }
    if let Err(e) = nft::delete_table(conf.nft_table()) {
        errs.push(e);
    }
    drv.forget_firewall();
    dns::stop_all(store.root());
    join_errors(errs)
}

/// Docker-like `NetworkSettings` of a container, for `inspect`.
pub fn network_settings(store: &Store, container_id: &str) -> Result<serde_json::Value> {
    state::migrate(store)?;
    let db = store.db();
    let sb = state::get_sandbox(db, container_id)?;
    let eps = state::endpoints_of_container(db, container_id)?;
    let ports = state::ports_of_container(db, container_id)?;
    let mut pmap = serde_json::Map::new();
    for p in &ports {
        let key = format!("{}/{}", p.container_port, p.proto);
        let entry = pmap.entry(key).or_insert_with(|| serde_json::json!([]));
        if let Some(a) = entry.as_array_mut() {
            a.push(serde_json::json!({
                "HostIp": p.host_ip.to_string(),
                "HostPort": p.host_port.to_string(),
            }));
        }
    }
    let mut nets = serde_json::Map::new();
    let mut top = serde_json::json!({
        "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": "",
    });
    for e in &eps {
        let Some(n) = state::get_network(db, &e.network)? else {
            continue;
        };
        let mut dns_names = vec![e.container_name.clone()];
        dns_names.extend(e.aliases.iter().cloned());
        dns_names.push(e.container_id.chars().take(12).collect());
        let v = serde_json::json!({
            "Aliases": if e.aliases.is_empty() { serde_json::Value::Null } else { serde_json::json!(e.aliases) },
            "NetworkID": n.id,
            "EndpointID": e.veth,
            "Gateway": n.gateway.to_string(),
            "IPAddress": e.ip.to_string(),
            "IPPrefixLen": n.subnet.prefix_len(),
            "MacAddress": e.mac,
            "DNSNames": if n.is_default() { serde_json::Value::Null } else { serde_json::json!(dns_names) },
        });
        if n.is_default() {
            top = serde_json::json!({
                "Gateway": n.gateway.to_string(),
                "IPAddress": e.ip.to_string(),
                "IPPrefixLen": n.subnet.prefix_len(),
                "MacAddress": e.mac,
            });
        }
        nets.insert(n.name.clone(), v);
    }
    let mut out = serde_json::json!({
        "Bridge": "",
        "SandboxID": sb.as_ref().map(|s| s.container_id.clone()).unwrap_or_default(),
        "SandboxKey": sb.as_ref().and_then(|s| s.netns.as_ref()).map(|p| p.display().to_string()).unwrap_or_default(),
        "Ports": pmap,
        "Networks": nets,
    });
    if let (Some(o), Some(t)) = (out.as_object_mut(), top.as_object()) {
        for (k, v) in t {
            o.insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}
