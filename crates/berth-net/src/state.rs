//! berth-net's tables (component `net`) and typed access to them: one file per table
//! (`networks` with `net_labels`, `sandboxes`, `endpoints`, `ports`); this file holds the
//! migrations, the write transaction and what spans every table (a container's rename and
//! removal).

use berth_store::rusqlite::{self, Connection, Row};
use berth_store::Store;

use crate::Result;

mod endpoints;
mod networks;
mod ports;
mod sandboxes;
#[cfg(test)]
mod tests;

pub use endpoints::{
    all_endpoints, delete_endpoint, endpoints_of_container, endpoints_of_network, insert_endpoint,
    used_ips, Endpoint,
};
pub use networks::{
    delete_network, find_network, get_network, insert_labels, insert_network, labels_of,
    list_networks, next_ip, set_next_ip, Network,
};
pub use ports::{
    delete_ports_of_address, insert_port, ports_of_container, ports_on, set_ports_active,
    shared_backends, PortRow,
};
pub use sandboxes::{find_sandbox, get_sandbox, insert_sandbox, list_sandboxes, Sandbox};

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS net_networks (
    name TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    driver TEXT NOT NULL,
    bridge TEXT NOT NULL UNIQUE,
    subnet TEXT NOT NULL,
    gateway TEXT NOT NULL,
    internal INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL,
    next_ip INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS net_sandboxes (
    container_id TEXT PRIMARY KEY,
    container_name TEXT NOT NULL,
    mode TEXT NOT NULL,
    netns TEXT,
    owns_netns INTEGER NOT NULL,
    dir TEXT NOT NULL,
    hostname TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS net_endpoints (
    container_id TEXT NOT NULL,
    network TEXT NOT NULL,
    container_name TEXT NOT NULL,
    ip TEXT NOT NULL,
    mac TEXT NOT NULL,
    aliases TEXT NOT NULL,
    veth TEXT NOT NULL,
    ifname TEXT NOT NULL,
    PRIMARY KEY (container_id, network),
    UNIQUE (network, ip)
);
CREATE TABLE IF NOT EXISTS net_ports (
    host_ip TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    proto TEXT NOT NULL,
    container_id TEXT NOT NULL,
    container_port INTEGER NOT NULL,
    container_ip TEXT NOT NULL,
    PRIMARY KEY (host_ip, host_port, proto)
);",
    "CREATE TABLE IF NOT EXISTS net_labels (
    network TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (network, key)
);",
    // A fixed host port may be shared by the containers of one port group (the replicas of a
    // compose service): one row per container, with the group and whether it takes traffic.
    "CREATE TABLE net_ports_v2 (
    host_ip TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    proto TEXT NOT NULL,
    container_id TEXT NOT NULL,
    container_port INTEGER NOT NULL,
    container_ip TEXT NOT NULL,
    port_group TEXT NOT NULL DEFAULT '',
    active INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (host_ip, host_port, proto, container_id)
);
INSERT INTO net_ports_v2 (host_ip, host_port, proto, container_id, container_port, container_ip)
    SELECT host_ip, host_port, proto, container_id, container_port, container_ip FROM net_ports;
DROP TABLE net_ports;
ALTER TABLE net_ports_v2 RENAME TO net_ports;",
];

/// Create or upgrade the network tables (component `net`).
///
/// # Errors
/// The store's migration error.
pub fn migrate(store: &Store) -> Result<()> {
    store.migrate("net", MIGRATIONS)?;
    Ok(())
}

/// Run `f` in a `BEGIN IMMEDIATE` transaction: the write lock is taken up front, so two berth
/// processes allocating addresses or ports serialise instead of failing on lock upgrade.
pub fn immediate<T>(db: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    db.execute_batch("BEGIN IMMEDIATE")?;
    match f(db) {
        Ok(v) => match db.execute_batch("COMMIT") {
            Ok(()) => Ok(v),
            Err(e) => {
                let _ = db.execute_batch("ROLLBACK");
                Err(e.into())
            }
        },
        Err(e) => {
            let _ = db.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn parse_col<T: std::str::FromStr>(r: &Row, i: usize) -> rusqlite::Result<T> {
    let s: String = r.get(i)?;
    s.parse().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("bad value {s:?}").into(),
        )
    })
}

/// A container's new name in its sandbox and endpoint rows (DNS answers the new name).
pub fn rename_container(db: &Connection, id: &str, name: &str) -> Result<()> {
    db.execute(
        "UPDATE net_sandboxes SET container_name = ?1 WHERE container_id = ?2",
        [name, id],
    )?;
    db.execute(
        "UPDATE net_endpoints SET container_name = ?1 WHERE container_id = ?2",
        [name, id],
    )?;
    Ok(())
}

/// Forget everything about container `id` (sandbox, endpoints, ports).
///
/// # Errors
/// A database error.
pub fn delete_container(db: &Connection, id: &str) -> Result<()> {
    db.execute("DELETE FROM net_ports WHERE container_id = ?1", [id])?;
    db.execute("DELETE FROM net_endpoints WHERE container_id = ?1", [id])?;
    db.execute("DELETE FROM net_sandboxes WHERE container_id = ?1", [id])?;
    Ok(())
}

/// Every container id any table still mentions.
pub fn all_container_ids(db: &Connection) -> Result<Vec<String>> {
    let mut st = db.prepare(
        "SELECT container_id FROM net_sandboxes UNION SELECT container_id FROM net_endpoints
         UNION SELECT container_id FROM net_ports",
    )?;
    let v = st
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}
