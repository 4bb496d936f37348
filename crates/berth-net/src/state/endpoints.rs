//! The `net_endpoints` table: a container's interface on one network (address, MAC, aliases,
//! veth), and the addresses in use on a network.

use std::net::Ipv4Addr;

use berth_store::rusqlite::{self, params, Connection, Row};

use super::parse_col;
use crate::Result;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
/// A container's endpoint on one network (`net_endpoints`).
pub struct Endpoint {
    /// Full container id.
    pub container_id: String,
    /// Network name.
    pub network: String,
    /// Container name (a DNS name on the network).
    pub container_name: String,
    /// The container's address on the network.
    pub ip: Ipv4Addr,
    /// MAC address of the container's interface (`aa:bb:cc:dd:ee:ff`; `02:42:` and the address
    /// unless `--mac-address`).
    pub mac: String,
    /// Extra DNS names (`--network-alias`).
    pub aliases: Vec<String>,
    /// Host side of the veth pair.
    pub veth: String,
    /// Interface name inside the container.
    pub ifname: String,
}

const EP_COLS: &str = "container_id, network, container_name, ip, mac, aliases, veth, ifname";

fn ep_row(r: &Row) -> rusqlite::Result<Endpoint> {
    let aliases: String = r.get(5)?;
    Ok(Endpoint {
        container_id: r.get(0)?,
        network: r.get(1)?,
        container_name: r.get(2)?,
        ip: parse_col(r, 3)?,
        mac: r.get(4)?,
        aliases: serde_json::from_str(&aliases).unwrap_or_default(),
        veth: r.get(6)?,
        ifname: r.get(7)?,
    })
}

/// Endpoints of container `id`, by network.
///
/// # Errors
/// A database error.
pub fn endpoints_of_container(db: &Connection, id: &str) -> Result<Vec<Endpoint>> {
    let mut st = db.prepare(&format!(
        "SELECT {EP_COLS} FROM net_endpoints WHERE container_id = ?1 ORDER BY ifname"
    ))?;
    let v = st
        .query_map([id], ep_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// Every endpoint of every container, in one query (for container lists).
///
/// # Errors
/// A database error.
pub fn all_endpoints(db: &Connection) -> Result<Vec<Endpoint>> {
    let mut st = db.prepare(&format!(
        "SELECT {EP_COLS} FROM net_endpoints ORDER BY container_id, ifname"
    ))?;
    let v = st.query_map([], ep_row)?.collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// Endpoints on network `network`.
///
/// # Errors
/// A database error.
pub fn endpoints_of_network(db: &Connection, network: &str) -> Result<Vec<Endpoint>> {
    let mut st = db.prepare(&format!(
        "SELECT {EP_COLS} FROM net_endpoints WHERE network = ?1 ORDER BY container_name"
    ))?;
    let v = st
        .query_map([network], ep_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// Addresses taken on network `network`.
///
/// # Errors
/// A database error.
pub fn used_ips(db: &Connection, network: &str) -> Result<Vec<Ipv4Addr>> {
    let mut st = db.prepare("SELECT ip FROM net_endpoints WHERE network = ?1")?;
    let v = st
        .query_map([network], |r| parse_col::<Ipv4Addr>(r, 0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// Insert an endpoint row.
///
/// # Errors
/// A database error (the address taken: constraint violation).
pub fn insert_endpoint(db: &Connection, e: &Endpoint) -> Result<()> {
    db.execute(
        "INSERT INTO net_endpoints(container_id, network, container_name, ip, mac, aliases, veth, ifname)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            e.container_id,
            e.network,
            e.container_name,
            e.ip.to_string(),
            e.mac,
            serde_json::to_string(&e.aliases).unwrap_or_else(|_| "[]".into()),
            e.veth,
            e.ifname
        ],
    )?;
    Ok(())
}

/// Forget container `container_id`'s endpoint on `network`.
pub fn delete_endpoint(db: &Connection, container_id: &str, network: &str) -> Result<()> {
    db.execute(
        "DELETE FROM net_endpoints WHERE container_id = ?1 AND network = ?2",
        [container_id, network],
    )?;
    Ok(())
}
