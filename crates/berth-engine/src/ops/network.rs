//! `network connect` / `network disconnect` of a container in any state, as Docker does: the
//! container's configured networks (its `NetworkMode::Networks` list, what the next start
//! attaches) always change; a running container is also attached or detached at once
//! through `berth-net`. `berth network connect|disconnect` and the API's
//! `POST /networks/{id}/connect|disconnect` both call these.

use berth_net::{Attachment, NetError, NetworkMode};
use berth_store::Store;

use crate::state::{self, Container, State};
use crate::{EngineError, Result};

/// Whether the configured attachment `a` names the network `net` (by name, id or id
/// prefix; `bridge` is the default network).
fn names(store: &Store, a: &Attachment, net: &berth_net::Network) -> bool {
    berth_net::canonical_name(&a.network) == net.name
        || berth_net::get_network(store, &a.network).is_ok_and(|n| n.id == net.id)
}

/// The container's network list, or Docker's refusal for a container without one of its
/// own (`none`, `host`, `container:`).
fn network_list<'a>(c: &'a mut Container, verb: &str) -> Result<&'a mut Vec<Attachment>> {
    match &mut c.config.network {
        NetworkMode::Networks(list) => Ok(list),
        NetworkMode::None => Err(EngineError::InvalidArgument(format!(
            "container cannot be {verb} multiple networks with one of the networks in private (none) mode; recreate it with --network NAME"
        ))),
        NetworkMode::Host | NetworkMode::Container(_) => Err(EngineError::InvalidArgument(
            format!("container sharing network namespace with another container or host cannot be {verb} any other network; recreate it with --network NAME"),
        )),
    }
}

/// Connect the container `c` to the network `att.network` with `att.aliases`. The network
/// joins the container's configuration (kept across restarts); a running container gets its
/// interface now. Connecting a stopped container to a network it is already configured for
/// changes nothing (as Docker).
///
/// # Errors
/// [`EngineError::Net`] with [`NetError::NotFound`] for an unknown network, with
/// [`NetError::Other`] when a running container is already connected or the attachment
/// fails; [`EngineError::InvalidArgument`] for a container networked with `none`, `host` or
/// `container:`; [`EngineError::NotFound`] when the container was removed meanwhile.
pub fn connect_network(store: &Store, c: &Container, att: &Attachment) -> Result<()> {
    if let Some(p) = berth_net::predefined_of(store, &att.network)? {
        return connect_predefined(c, p);
    }
    let net = berth_net::get_network(store, &att.network)?;
    let mut fresh = state::get(store, &c.id)?.ok_or_else(|| EngineError::NotFound(c.id.clone()))?;
    if fresh.state == State::Removing {
        return Err(EngineError::InvalidArgument(format!(
            "container {} is being removed",
            fresh.name
        )));
    }
    let running = fresh.state == State::Running;
    let list = network_list(&mut fresh, "connected to")?;
    let configured = list.iter().any(|a| names(store, a, &net));
    if running {
        berth_net::connect(
            store,
            &c.id,
            &Attachment {
                network: net.name.clone(),
                aliases: att.aliases.clone(),
            },
        )?;
    } else if configured {
        return Ok(());
    }
    if !configured {
        list.push(Attachment {
            network: net.name.clone(),
            aliases: att.aliases.clone(),
        });
        state::set_config(store, &c.id, &fresh.config)?;
    }
    if !running {
        berth_events::record(
            store,
            "network",
            "connect",
            &net.id,
            &[
                ("name", berth_net::shown_name(&net.name)),
                ("container", &c.id),
            ],
        );
    }
    Ok(())
}

/// Disconnect the container `c` from `network`. The network leaves the container's
/// configuration; a running container loses its interface now. With `force`, a network that
/// no longer exists is still removed from the configuration (by the name given).
///
/// # Errors
/// [`EngineError::Net`] with [`NetError::NotFound`] for an unknown network (without
/// `force`), with [`NetError::Other`] when the container is not connected to it or the
/// detachment fails; [`EngineError::InvalidArgument`] for a container networked with
/// `none`, `host` or `container:`.
pub fn disconnect_network(store: &Store, c: &Container, network: &str, force: bool) -> Result<()> {
    if let Some(p) = berth_net::predefined_of(store, network)? {
        return disconnect_predefined(c, p);
    }
    let net = match berth_net::get_network(store, network) {
        Ok(n) => Some(n),
        Err(NetError::NotFound(_)) if force => None,
        Err(e) => return Err(e.into()),
    };
    let mut fresh = state::get(store, &c.id)?.ok_or_else(|| EngineError::NotFound(c.id.clone()))?;
    let name = fresh.name.clone();
    let running = fresh.state == State::Running;
    let first_ip = !fresh.config.extra.ipv4_address.is_empty();
    let list = network_list(&mut fresh, "disconnected from")?;
    let before = list.len();
    let first_matches = list.first().is_some_and(|a| match &net {
        Some(n) => names(store, a, n),
        None => a.network == network,
    });
    list.retain(|a| match &net {
        Some(n) => !names(store, a, n),
        None => a.network != network,
    });
    let was_configured = list.len() != before;
    let live = match &net {
        Some(n) if running => berth_net::endpoints_of(store, &c.id)?
            .iter()
            .any(|e| e.network == n.name),
        _ => false,
    };
    let shown = net
        .as_ref()
        .map_or(network, |n| berth_net::shown_name(&n.name));
    if !was_configured && !live {
        return Err(NetError::Other(format!(
            "container {name} is not connected to the network {shown}"
        ))
        .into());
    }
    if live {
        if let Some(n) = &net {
            berth_net::disconnect(store, &c.id, &n.name)?;
        }
    }
    if was_configured {
        if first_matches && first_ip {
            // `--ip`/`--mac-address` belonged to the first network's endpoint.
            fresh.config.extra.ipv4_address.clear();
            fresh.config.extra.ipv6_address.clear();
            fresh.config.extra.mac_address.clear();
        }
        state::set_config(store, &c.id, &fresh.config)?;
    }
    if !live {
        if let Some(n) = &net {
            berth_events::record(
                store,
                "network",
                "disconnect",
                &n.id,
                &[
                    ("name", berth_net::shown_name(&n.name)),
                    ("container", &c.id),
                ],
            );
        }
    }
    Ok(())
}

/// Docker's answer to `network connect host|none`: a container networked with that mode is
/// already connected; anything else is refused with Docker's message.
fn connect_predefined(c: &Container, p: berth_net::Predefined) -> Result<()> {
    use berth_net::Predefined as P;
    match (&c.config.network, p) {
        (NetworkMode::Host, P::Host) | (NetworkMode::None, P::None) => Ok(()),
        (NetworkMode::Host | NetworkMode::Container(_), _) => Err(EngineError::InvalidArgument(
            "container sharing network namespace with another container or host cannot be connected to any other network".into(),
        )),
        (_, P::Host) => Err(EngineError::InvalidArgument(
            "container cannot be disconnected from host network or connected to host network"
                .into(),
        )),
        (_, P::None) => Err(EngineError::InvalidArgument(
            "container cannot be connected to multiple networks with one of the networks in private (none) mode".into(),
        )),
    }
}

/// Docker's answer to `network disconnect host|none`: a container is never detached from
/// the host's or its own empty namespace (recreate it with another `--network`); one not in
/// that mode is not connected to it.
fn disconnect_predefined(c: &Container, p: berth_net::Predefined) -> Result<()> {
    use berth_net::Predefined as P;
    match (&c.config.network, p) {
        (NetworkMode::Host, P::Host) => Err(EngineError::InvalidArgument(
            "container cannot be disconnected from host network or connected to host network"
                .into(),
        )),
        (NetworkMode::None, P::None) => Err(EngineError::InvalidArgument(format!(
            "container {} cannot be disconnected from the none network; recreate it with --network NAME",
            c.name
        ))),
        _ => Err(NetError::Other(format!(
            "container {} is not connected to the network {}",
            c.name,
            p.name()
        ))
        .into()),
    }
}
