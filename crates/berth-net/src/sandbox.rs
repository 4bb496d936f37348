//! A container's networking: [`setup`] before it starts, [`teardown`] when it stopped for
//! good, [`cleanup_stale`] after a crash.

use std::collections::HashSet;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use berth_store::Store;

use crate::backend::Backend;
use crate::config::NetConf;
use crate::driver::default_netns_path;
use crate::networks::get_network;
use crate::nft::PortRule;
use crate::reserve::{reserve_port, rule_of};
use crate::state::{self, Endpoint, Network, Sandbox};
use crate::{
    dns, files, ipam, join_errors, ports, Attachment, NetConfig, NetError, NetSetup, NetworkMode,
    PublishedPort, Result,
};

pub(crate) fn write_file(p: &Path, s: &str) -> Result<()> {
    berth_store::write_replace(p, s.as_bytes()).map_err(NetError::from)
}

/// /etc/hosts and /etc/resolv.conf for a container on no berth network (none, container:).
fn write_plain_files(
    conf: &NetConf,
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
        &container_resolv(conf.host_dns(), cfg, None),
    )
}

/// Give the sandbox `sb` (its mode set) a namespace of its own with loopback only and the
/// plain hosts/resolv.conf files; a failure undoes what was recorded.
fn loopback_only(
    store: &Store,
    be: &Backend,
    sb: &mut Sandbox,
    cfg: &NetConfig,
    add_hosts: &[(String, String)],
    out: &mut NetSetup,
) -> Result<()> {
    let id = sb.container_id.clone();
    let ns = default_netns_path(store.root(), &id);
    sb.netns = Some(ns.clone());
    sb.owns_netns = true;
    state::immediate(store.db(), |db| state::insert_sandbox(db, sb))?;
    if let Err(e) = create_netns(be, &ns) {
        let _ = teardown_with(store, be, &id);
        return Err(e);
    }
    write_plain_files(&be.conf, out, cfg, add_hosts)?;
    out.netns_path = Some(ns);
    Ok(())
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
    setup_with(store, &Backend::host(store)?, cfg, dir)
}

/// [`setup`] through the given backend.
pub fn setup_with(store: &Store, be: &Backend, cfg: &NetConfig, dir: &Path) -> Result<NetSetup> {
    state::migrate(store)?;
    let id = cfg.container_id.as_str();
    if state::get_sandbox(store.db(), id)?.is_some()
        || default_netns_path(store.root(), id).exists()
    {
        teardown_with(store, be, id)?;
    }
    let host_gateway = be.conf.host_gateway_ips();
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
            let host_dns = be.conf.host_dns();
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
                    write_plain_files(&be.conf, &out, cfg, &add_hosts)?;
                }
            }
            state::immediate(store.db(), |db| state::insert_sandbox(db, &sb))?;
        }
        // A namespace with loopback only: `--network none`, or disconnected from every
        // network (`network disconnect` while stopped) as Docker, which `network connect` can
        // attach later.
        NetworkMode::None => {
            sb.mode = "none".into();
            loopback_only(store, be, &mut sb, cfg, &add_hosts, &mut out)?;
        }
        NetworkMode::Networks(atts) if atts.is_empty() => {
            sb.mode = "networks".into();
            loopback_only(store, be, &mut sb, cfg, &add_hosts, &mut out)?;
        }
        NetworkMode::Networks(atts) => {
            sb.mode = "networks".into();
            match setup_networks(store, be, cfg, atts, &mut sb, &add_hosts, &mut out) {
                Ok(()) => {}
                Err(e) => {
                    let _ = teardown_with(store, be, id);
                    return Err(e);
                }
            }
        }
    }
    Ok(out)
}

fn create_netns(be: &Backend, ns: &Path) -> Result<()> {
    be.namespaces.create(ns).map_err(|e| {
        NetError::Other(format!(
            "cannot create a network namespace at {}: {e}; run berth as root",
            ns.display()
        ))
    })
}

fn setup_networks(
    store: &Store,
    be: &Backend,
    cfg: &NetConfig,
    atts: &[Attachment],
    sb: &mut Sandbox,
    add_hosts: &[(String, String)],
    out: &mut NetSetup,
) -> Result<()> {
    let conf = &be.conf;
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
            let ip = if i == 0 && !cfg.ipv4_address.is_empty() {
                // `--ip`: Docker allows it on user-defined networks only.
                let ip: Ipv4Addr = cfg.ipv4_address.parse().map_err(|_| {
                    NetError::Other(format!(
                        "invalid --ip {:?}: give an IPv4 address",
                        cfg.ipv4_address
                    ))
                })?;
                if net.is_default() {
                    return Err(NetError::Other(
                        "user specified IP address is supported on user defined networks only; create one with berth network create --subnet".into(),
                    ));
                }
                if !net.subnet.contains(&ip)
                    || ip == net.gateway
                    || ip == net.subnet.network()
                    || ip == net.subnet.broadcast()
                {
                    return Err(NetError::Other(format!(
                        "invalid --ip {ip}: not a free host address of network {} ({})",
                        net.name, net.subnet
                    )));
                }
                if used.contains(&ip) {
                    return Err(NetError::Other(format!(
                        "address already in use: {ip} on network {}; choose another --ip",
                        net.name
                    )));
                }
                ip
            } else {
                let start = state::next_ip(db, &net.name)?;
                let (ip, next) = ipam::alloc_ip(&net.subnet, net.gateway, &used, start).ok_or_else(|| {
                    NetError::Other(format!(
                        "network {} has no free addresses; remove containers from it or use a network with a larger subnet",
                        net.name
                    ))
                })?;
                state::set_next_ip(db, &net.name, next)?;
                ip
            };
            let mac = match (i, cfg.mac_address.as_str()) {
                (0, m) if !m.is_empty() => m.to_ascii_lowercase(),
                _ => ipam::mac_string(ipam::mac_for(ip)),
            };
            let ep = Endpoint {
                container_id: id.to_string(),
                network: net.name.clone(),
                container_name: cfg.container_name.clone(),
                ip,
                mac,
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
                rows.push(reserve_port(
                    db,
                    m,
                    id,
                    target,
                    cfg.port_group.as_deref().unwrap_or(""),
                    !cfg.port_wait_healthy,
                )?);
            }
        }
        Ok((eps, rows))
    })?;
    tracing::debug!("net {id}: addresses and ports reserved");
    create_netns(be, &ns)?;
    tracing::debug!("net {id}: namespace created");
    let route_via = nets.iter().position(|(n, _)| !n.internal);
    for (i, ((net, _), ep)) in nets.iter().zip(&eps).enumerate() {
        let created = be.driver.ensure_network(net)?;
        be.firewall.ensure_network(net, created)?;
        be.driver.attach(&ns, net, ep, route_via == Some(i))?;
    }
    let rules: Vec<PortRule> = rows.iter().filter(|r| !r.shared()).map(rule_of).collect();
    be.firewall.publish(&rules)?;
    crate::shared::sync(store.db(), be, &crate::shared::keys(&rows))?;
    tracing::debug!("net {id}: links attached");
    be.firewall.commit()?;
    tracing::debug!("net {id}: firewall committed");
    for (net, _) in &nets {
        if !net.is_default() {
            if let Err(e) = dns::ensure_running(store.root(), &net.name, &net.id) {
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
    for (net, _) in &nets {
        record_endpoint_event(store, "connect", net, id);
    }
    out.netns_path = Some(ns);
    out.addresses = own;
    out.ports = rows.iter().map(PublishedPort::from).collect();
    Ok(())
}

/// Release everything [`setup`] created for this container. Idempotent; keeps going past
/// individual failures and reports them together.
pub fn teardown(store: &Store, container_id: &str) -> Result<()> {
    teardown_with(store, &Backend::host(store)?, container_id)
}

/// [`teardown`] through the given backend: published ports, the namespace, the veths (unless
/// the namespace took them along), the rows. Every step runs whatever failed before.
pub fn teardown_with(store: &Store, be: &Backend, container_id: &str) -> Result<()> {
    state::migrate(store)?;
    let db = store.db();
    let sb = state::get_sandbox(db, container_id)?;
    let eps = state::endpoints_of_container(db, container_id)?;
    let ports = state::ports_of_container(db, container_id)?;
    let mut errs = Vec::new();
    let rules: Vec<PortRule> = ports.iter().filter(|r| !r.shared()).map(rule_of).collect();
    if let Err(e) = be.firewall.unpublish(&rules) {
        errs.push(e);
    }
    // Shared ports: this container leaves their chains before anything else goes.
    let shared = crate::shared::keys(&ports);
    if !shared.is_empty() {
        let r = state::immediate(db, |db| state::set_ports_active(db, container_id, false))
            .and_then(|_| crate::shared::sync(db, be, &shared));
        if let Err(e) = r {
            errs.push(e);
        }
    }
    if let Err(e) = be.firewall.commit() {
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
        let in_use = !eps.is_empty() && be.namespaces.in_use(ns);
        match be.namespaces.remove(ns) {
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
        if let Err(e) = be.driver.detach(ep) {
            errs.push(e);
        }
    }
    if let Err(e) = state::immediate(db, |db| state::delete_container(db, container_id)) {
        errs.push(e);
    }
    for ep in &eps {
        if let Ok(net) = crate::get_network(store, &ep.network) {
            record_endpoint_event(store, "disconnect", &net, container_id);
        }
    }
    join_errors(errs)
}

/// Record Docker's `network connect`/`disconnect` event for a container joining or leaving
/// `net` as it starts or stops (actor: the network's id; attributes: its name as Docker shows
/// it — `bridge` for the default network — and the container's id).
pub(crate) fn record_endpoint_event(
    store: &Store,
    action: &str,
    net: &Network,
    container_id: &str,
) {
    let name = if net.is_default() {
        crate::DEFAULT_NETWORK_ALIAS
    } else {
        net.name.as_str()
    };
    berth_events::record(
        store,
        "network",
        action,
        &net.id,
        &[("name", name), ("container", container_id)],
    );
}

/// Release the networking of every container berth knows about that is not in
/// `live_container_ids` (after a crash or reboot). Call it with the ids of containers whose
/// processes still run.
pub fn cleanup_stale(store: &Store, live_container_ids: &HashSet<String>) -> Result<()> {
    cleanup_stale_with(store, &Backend::host(store)?, live_container_ids)
}

/// [`cleanup_stale`] through the given backend.
pub fn cleanup_stale_with(
    store: &Store,
    be: &Backend,
    live_container_ids: &HashSet<String>,
) -> Result<()> {
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
            if let Err(e) = teardown_with(store, be, &id) {
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

#[cfg(test)]
mod tests;
