//! `network connect` / `network disconnect` of a running container's live endpoint (the
//! engine's `ops::connect_network` also records the change in the container's configuration and
//! handles stopped containers).

use std::collections::HashSet;
use std::fs;
use std::net::Ipv4Addr;

use berth_store::Store;

use crate::backend::Backend;
use crate::networks::get_network;
use crate::reserve::rule_of;
use crate::state::{self, Endpoint, PortRow};
use crate::{dns, files, ipam, join_errors, Attachment, NetError, Result};

/// Attach a running container to one more network (`network connect`).
pub fn connect(store: &Store, container_id: &str, att: &Attachment) -> Result<Endpoint> {
    state::migrate(store)?;
    let be = Backend::host(store)?;
    let conf = &be.conf;
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
    let res = be
        .driver
        .ensure_network(&net)
        .and_then(|created| be.firewall.ensure_network(&net, created))
        .and_then(|_| be.driver.attach(&ns, &net, &ep, false))
        .and_then(|_| be.firewall.commit());
    if let Err(e) = res {
        let _ = be.driver.detach(&ep);
        let _ = state::delete_endpoint(store.db(), container_id, &net.name);
        return Err(e);
    }
    if !net.is_default() {
        if let Err(e) = dns::ensure_running(store.root(), &net.name, &net.id) {
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
    crate::sandbox::record_endpoint_event(store, "connect", &net, container_id);
    Ok(ep)
}

/// Detach a container from a network (`network disconnect`).
pub fn disconnect(store: &Store, container_id: &str, network: &str) -> Result<()> {
    state::migrate(store)?;
    let be = Backend::host(store)?;
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
    if let Err(e) = be.firewall.unpublish(
        &ports
            .iter()
            .filter(|p| !p.shared())
            .map(rule_of)
            .collect::<Vec<_>>(),
    ) {
        errs.push(e);
    }
    if let Err(e) = be.driver.detach(ep) {
        errs.push(e);
    }
    if let Err(e) = be.firewall.commit() {
        errs.push(e);
    }
    let r = state::immediate(store.db(), |db| {
        state::delete_endpoint(db, container_id, &net.name)?;
        state::delete_ports_of_address(db, container_id, ep.ip)
    });
    if let Err(e) = r {
        errs.push(e);
    }
    let shared = crate::shared::keys(&ports);
    if !shared.is_empty() {
        if let Err(e) =
            crate::shared::sync(store.db(), &be, &shared).and_then(|_| be.firewall.commit())
        {
            errs.push(e);
        }
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
    crate::sandbox::record_endpoint_event(store, "disconnect", &net, container_id);
    join_errors(errs)
}
