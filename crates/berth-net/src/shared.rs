//! Fixed host ports shared by a port group (the replicas of a compose service): which members
//! take new connections, and keeping each shared port's firewall chain in step with the
//! `net_ports` rows.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use berth_store::rusqlite::Connection;
use berth_store::Store;

use crate::backend::Backend;
use crate::nft::SharedPort;
use crate::ports::Proto;
use crate::state::{self, PortRow};
use crate::Result;

/// A shared host port: (host address, host port, protocol).
pub(crate) type Key = (Ipv4Addr, u16, String);

/// The shared host ports among `rows`.
pub(crate) fn keys(rows: &[PortRow]) -> BTreeSet<Key> {
    rows.iter()
        .filter(|r| r.shared())
        .map(|r| (r.host_ip, r.host_port, r.proto.clone()))
        .collect()
}

/// Queue the current members of each of `keys` on the firewall (not committed).
pub(crate) fn sync(db: &Connection, be: &Backend, keys: &BTreeSet<Key>) -> Result<()> {
    for (ip, port, proto) in keys {
        let backends = state::shared_backends(db, *ip, *port, proto)?
            .iter()
            .map(|r| (r.container_ip, r.container_port))
            .collect();
        be.firewall.share(&SharedPort {
            host_ip: *ip,
            host_port: *port,
            proto: Proto::parse(proto).unwrap_or(Proto::Tcp),
            backends,
        })?;
    }
    Ok(())
}

/// Whether container `container_id` takes new connections on the host ports it shares with
/// its port group: the engine turns this on when its health check passes and off when it
/// turns unhealthy, and `compose up` turns it off to drain a replica before stopping it.
/// Connections already made are not touched. Nothing happens for a container without shared
/// ports.
///
/// Errors: [`crate::NetError`] from the tables or the firewall.
pub fn set_port_backend(store: &Store, container_id: &str, active: bool) -> Result<()> {
    set_port_backend_with(store, &Backend::host(store)?, container_id, active)
}

/// [`set_port_backend`] through the given backend.
pub fn set_port_backend_with(
    store: &Store,
    be: &Backend,
    container_id: &str,
    active: bool,
) -> Result<()> {
    state::migrate(store)?;
    let rows = state::immediate(store.db(), |db| {
        state::set_ports_active(db, container_id, active)
    })?;
    let keys = keys(&rows);
    if keys.is_empty() {
        return Ok(());
    }
    sync(store.db(), be, &keys)?;
    be.firewall.commit()
}
