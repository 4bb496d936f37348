//! Network definitions: the default network, `network create/ls/rm/prune/reset`.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;

use berth_store::Store;
use ipnet::Ipv4Net;

use crate::backend::Backend;
use crate::config::NetConf;
use crate::sandbox::cleanup_stale_with;
use crate::state::{self, Endpoint, Network};
use crate::{
    canonical_name, dns, ipam, join_errors, now, random_id, NetError, Result, DEFAULT_NETWORK,
    DEFAULT_NETWORK_ALIAS,
};

/// The default network's row, created from the settings on first use.
pub(crate) fn ensure_default(store: &Store, conf: &NetConf) -> Result<Network> {
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
            let hosts =
                u32::try_from((1u64 << (32 - u32::from(subnet.prefix_len()))).saturating_sub(2))
                    .unwrap_or(u32::MAX);
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

/// Options of `network create`.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Network name (unique).
    pub name: String,
    /// `--subnet` in CIDR form; `None`: the next free subnet of the pool.
    pub subnet: Option<String>,
    /// `--gateway`; `None`: the subnet's first host address.
    pub gateway: Option<String>,
    /// `--internal`: no route out of the network (no NAT, no forwarding to the host's uplink).
    pub internal: bool,
    /// `--driver`; only `bridge` (or empty, meaning bridge) is supported.
    pub driver: String,
    /// Labels (`--label`, compose's `com.docker.compose.*`), kept in `net_labels`.
    pub labels: std::collections::BTreeMap<String, String>,
}

fn valid_name(n: &str) -> bool {
    let mut b = n.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphanumeric())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
        && n.len() <= 64
}

/// Create a user-defined network (and its bridge).
pub fn create_network(store: &Store, o: &CreateOptions) -> Result<Network> {
    create_network_with(store, o, true)
}

/// [`create_network`] for a front end that starts containers on the network right away
/// (`compose up`): the bridge is made now, but the network's firewall state (forwarding,
/// NAT, isolation) is applied in the same nftables transaction as the first container's
/// published ports, when it joins, instead of in a transaction of its own. Until a container
/// joins, nothing can use the network's firewall state.
///
/// Errors: as [`create_network`].
pub fn create_network_deferred(store: &Store, o: &CreateOptions) -> Result<Network> {
    create_network_with(store, o, false)
}

fn create_network_with(store: &Store, o: &CreateOptions, firewall_now: bool) -> Result<Network> {
    state::migrate(store)?;
    let be = Backend::host(store)?;
    let conf = &be.conf;
    if !o.driver.is_empty() && o.driver != "bridge" {
        return Err(NetError::Other(format!(
            "network driver {} is not supported; use --driver bridge",
            o.driver
        )));
    }
    if crate::Predefined::by_name(&o.name).is_some() {
        return Err(NetError::NotPermitted(o.name.clone()));
    }
    if [DEFAULT_NETWORK, DEFAULT_NETWORK_ALIAS].contains(&o.name.as_str()) {
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
    let default = ensure_default(store, conf)?;
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
        state::insert_labels(db, &n.name, &o.labels)?;
        Ok(n)
    })?;
    let res = be.driver.ensure_network(&net).and_then(|created| {
        if firewall_now {
            be.firewall.ensure_network(&net, created)?;
            be.firewall.commit()
        } else {
            Ok(())
        }
    });
    if let Err(e) = res {
        let _ = be.driver.remove_network(&net);
        let _ = be.firewall.remove_network(&net);
        let _ = state::delete_network(store.db(), &net.name);
        return Err(e);
    }
    berth_events::record(
        store,
        "network",
        "create",
        &net.id,
        &[("name", &net.name), ("type", &net.driver)],
    );
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

/// Remove a user-defined network; refused while a container uses it.
///
/// # Errors
/// [`NetError::Predefined`] for Docker's predefined networks (`bridge`, `host`, `none`, by
/// name or id), [`NetError::NotFound`], [`NetError::InUse`], host-side failures.
pub fn remove_network(store: &Store, name: &str) -> Result<Network> {
    let n = match crate::find_shown(store, name)? {
        crate::Listed::Stored(n) if !n.is_default() => n,
        other => return Err(NetError::Predefined(other.name().to_string())),
    };
    let be = Backend::host(store)?;
    state::immediate(store.db(), |db| {
        if let Some(e) = state::endpoints_of_network(db, &n.name)?.first() {
            return Err(NetError::InUse {
                network: n.name.clone(),
                container: e.container_name.clone(),
            });
        }
        state::delete_network(db, &n.name)
    })?;
    // Both halves go, whatever fails; the first error is reported.
    // Its DNS server goes now, not at its next check: a network created again under this
    // name (compose's down and up) must not find the old server holding the name's lock.
    crate::dns::stop(store.root(), &n.name);
    let link = be.driver.remove_network(&n);
    let fw = be.firewall.remove_network(&n);
    link.and(fw)?;
    berth_events::record(
        store,
        "network",
        "destroy",
        &n.id,
        &[("name", &n.name), ("type", &n.driver)],
    );
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

/// Remove every trace of berth networking for this store: all container sandboxes, every
/// network's bridge, the nftables table. Network definitions (rows) are kept, except that the
/// default network is forgotten (it is recreated from the settings on next use).
pub fn reset(store: &Store) -> Result<()> {
    state::migrate(store)?;
    let be = Backend::host(store)?;
    let mut errs = Vec::new();
    if let Err(e) = cleanup_stale_with(store, &be, &HashSet::new()) {
        errs.push(e);
    }
    for n in state::list_networks(store.db())? {
        if let Err(e) = be.driver.remove_network(&n) {
            errs.push(e);
        }
    }
    if let Err(e) = state::delete_network(store.db(), DEFAULT_NETWORK) {
        errs.push(e);
    }
    if let Err(e) = be.firewall.reset() {
        errs.push(e);
    }
    dns::stop_all(store.root());
    join_errors(errs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_names_follow_docker() {
        for ok in ["a", "web-1", "a.b_c", &"x".repeat(64)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", ".a", "a b", "a/b", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_default_network_is_made_once_from_the_settings() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let a = get_network(&store, "bridge").unwrap();
        let b = get_network(&store, DEFAULT_NETWORK).unwrap();
        assert_eq!(a, b);
        assert!(a.is_default());
        assert_eq!(a.subnet, NetConf::default().bridge_subnet);
        assert!(matches!(
            get_network(&store, "nope"),
            Err(NetError::NotFound(_))
        ));
    }
}
