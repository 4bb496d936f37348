//! The `net_networks` and `net_labels` tables: network rows (lookup by id, name or unique id
//! prefix), their labels, and each network's next-address cursor.

use std::net::Ipv4Addr;

use berth_store::rusqlite::{self, params, Connection, OptionalExtension, Row};
use ipnet::Ipv4Net;

use super::parse_col;
use crate::Result;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
/// A network row (`net_networks`).
pub struct Network {
    /// Name (unique; the default network is `berth`, alias `bridge`).
    pub name: String,
    /// Id: 64 hex characters.
    pub id: String,
    /// Driver (`bridge`).
    pub driver: String,
    /// Bridge device on the host.
    pub bridge: String,
    /// IPv4 subnet.
    pub subnet: Ipv4Net,
    /// Address of the bridge, the containers' default gateway.
    pub gateway: Ipv4Addr,
    /// No route out of the network.
    pub internal: bool,
    /// Creation time, Unix seconds.
    pub created: i64,
}

impl Network {
    /// True for the default network (`berth`, alias `bridge`).
    pub fn is_default(&self) -> bool {
        self.name == crate::DEFAULT_NETWORK
    }
}

const NET_COLS: &str = "name, id, driver, bridge, subnet, gateway, internal, created";

fn net_row(r: &Row) -> rusqlite::Result<Network> {
    Ok(Network {
        name: r.get(0)?,
        id: r.get(1)?,
        driver: r.get(2)?,
        bridge: r.get(3)?,
        subnet: parse_col(r, 4)?,
        gateway: parse_col(r, 5)?,
        internal: r.get::<_, i64>(6)? != 0,
        created: r.get(7)?,
    })
}

/// The network named `name` or with id `name`, if any.
///
/// # Errors
/// A database error.
pub fn get_network(db: &Connection, name: &str) -> Result<Option<Network>> {
    Ok(db
        .query_row(
            &format!("SELECT {NET_COLS} FROM net_networks WHERE name = ?1 OR id = ?1"),
            [name],
            net_row,
        )
        .optional()?)
}

/// A network by full id, exact name or unique id prefix (Docker's precedence, see
/// [`berth_store::lookup`]); [`crate::NetError::Ambiguous`] when the word is a prefix of
/// several ids.
pub fn find_network(db: &Connection, name: &str) -> Result<Option<Network>> {
    use berth_store::lookup::{pick, Candidate, LookupError, ID_OR_NAME_OR_PREFIX};
    let mut st = db.prepare(&format!(
        "SELECT {NET_COLS} FROM net_networks WHERE {ID_OR_NAME_OR_PREFIX}"
    ))?;
    let rows: Vec<Network> = st
        .query_map([name], net_row)?
        .collect::<rusqlite::Result<_>>()?;
    let candidates: Vec<Candidate<'_>> = rows
        .iter()
        .map(|n| Candidate {
            id: &n.id,
            id_hex: &n.id,
            names: vec![n.name.as_str()],
        })
        .collect();
    match pick(name, &candidates) {
        Ok(i) => Ok(rows.into_iter().nth(i)),
        Err(LookupError::NotFound(_)) => Ok(None),
        Err(e) => Err(crate::NetError::Ambiguous(e)),
    }
}

/// Every network, by name.
///
/// # Errors
/// A database error.
pub fn list_networks(db: &Connection) -> Result<Vec<Network>> {
    let mut st = db.prepare(&format!(
        "SELECT {NET_COLS} FROM net_networks ORDER BY created, name"
    ))?;
    let v = st
        .query_map([], net_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// Insert a network row.
///
/// # Errors
/// A database error (a name or id taken: constraint violation).
pub fn insert_network(db: &Connection, n: &Network) -> Result<()> {
    db.execute(
        "INSERT INTO net_networks(name, id, driver, bridge, subnet, gateway, internal, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            n.name,
            n.id,
            n.driver,
            n.bridge,
            n.subnet.to_string(),
            n.gateway.to_string(),
            n.internal as i64,
            n.created
        ],
    )?;
    Ok(())
}

/// Delete the network named `name` and its labels.
///
/// # Errors
/// A database error.
pub fn delete_network(db: &Connection, name: &str) -> Result<()> {
    db.execute("DELETE FROM net_networks WHERE name = ?1", [name])?;
    db.execute("DELETE FROM net_labels WHERE network = ?1", [name])?;
    Ok(())
}

/// Record the labels of network `name` (in the transaction that inserts its row).
pub fn insert_labels(
    db: &Connection,
    name: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    for (k, v) in labels {
        db.execute(
            "INSERT OR REPLACE INTO net_labels(network, key, value) VALUES (?1, ?2, ?3)",
            params![name, k, v],
        )?;
    }
    Ok(())
}

/// The labels of network `name` (`com.docker.compose.network=…`, user labels).
pub fn labels_of(
    db: &Connection,
    name: &str,
) -> Result<std::collections::BTreeMap<String, String>> {
    let mut st = db.prepare("SELECT key, value FROM net_labels WHERE network = ?1")?;
    let rows = st.query_map([name], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The next address (as a `u32`) to try when allocating on network `network` (addresses are handed
/// out round-robin).
///
/// # Errors
/// A database error; no row for a missing network.
pub fn next_ip(db: &Connection, network: &str) -> Result<u32> {
    Ok(db.query_row(
        "SELECT next_ip FROM net_networks WHERE name = ?1",
        [network],
        |r| r.get::<_, u32>(0),
    )?)
}

/// Remember where the next allocation on `network` starts.
///
/// # Errors
/// A database error.
pub fn set_next_ip(db: &Connection, network: &str, v: u32) -> Result<()> {
    db.execute(
        "UPDATE net_networks SET next_ip = ?2 WHERE name = ?1",
        params![network, v as i64],
    )?;
    Ok(())
}
